//! `Range` requests: one range is served as 206 with `Content-Range`; several are ignored (the
//! whole object, as RFC 9110 allows); an unsatisfiable one is 416.

use std::ops::Range;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use oci::{ErrorCode, OciError};

/// The `Range` header names no byte of the object.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// `Ok(None)`: serve everything (no `Range`, or several ranges). `Err`: 416. A range returned lies
/// within `0..size` and is not empty. (Public for the fuzz target in `fuzz/`.)
pub fn requested_range(request: &HeaderMap, size: u64) -> Result<Option<Range<u64>>, Unsatisfiable> {
    let Some(value) = request.get(header::RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| Unsatisfiable)?;
    let parsed = http_range_header::parse_range_header(text).map_err(|_| Unsatisfiable)?;
    let ranges = parsed.validate(size).map_err(|_| Unsatisfiable)?;
    match ranges.as_slice() {
        // `validate` clamps the end to `size - 1` with a saturating subtraction, so an empty object
        // "satisfies" `bytes=0-0` as 0..=0: no byte of it exists, that is a 416.
        [single] if *single.end() >= size => Err(Unsatisfiable),
        [single] => Ok(Some(*single.start()..*single.end() + 1)),
        _ => Ok(None),
    }
}

/// Whether the request asks for a range at all (its validity needs the size).
pub(crate) fn has_range(request: &HeaderMap) -> bool {
    request.contains_key(header::RANGE)
}

/// The 416 answer.
pub(crate) fn not_satisfiable(size: u64) -> OciError {
    OciError::new(ErrorCode::RangeInvalid, "requested range not satisfiable")
        .with_header(header::CONTENT_RANGE.as_str(), format!("bytes */{size}"))
}

/// Sets `Content-Range` (for a range) and `Content-Length`; returns the status and body length.
pub(crate) fn status_and_length(
    headers: &mut HeaderMap,
    range: Option<&Range<u64>>,
    size: Option<u64>,
) -> (StatusCode, Option<u64>) {
    let (status, length) = match (range, size) {
        (Some(range), Some(size)) => {
            if let Ok(value) =
                HeaderValue::try_from(format!("bytes {}-{}/{size}", range.start, range.end - 1))
            {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, Some(range.end - range.start))
        }
        (_, size) => (StatusCode::OK, size),
    };
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    (status, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn ranges() {
        assert_eq!(requested_range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(requested_range(&headers("bytes=2-4"), 10), Ok(Some(2..5)));
        assert_eq!(requested_range(&headers("bytes=5-"), 10), Ok(Some(5..10)));
        assert_eq!(requested_range(&headers("bytes=-3"), 10), Ok(Some(7..10)));
        assert_eq!(requested_range(&headers("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(requested_range(&headers("bytes=10-20"), 10), Err(Unsatisfiable));
        assert_eq!(requested_range(&headers("lines=1-2"), 10), Err(Unsatisfiable));
    }

    /// Found by the `range` fuzz target: `bytes=0-0` of an empty object came back as `0..1`, one
    /// byte past its end.
    #[test]
    fn no_range_of_an_empty_object() {
        for value in ["bytes=0-0", "bytes=0-", "bytes=0-10", "bytes=-1"] {
            assert_eq!(requested_range(&headers(value), 0), Err(Unsatisfiable), "{value}");
        }
        assert_eq!(requested_range(&headers("bytes=0-0"), 1), Ok(Some(0..1)));
    }

    #[test]
    fn content_range_and_length() {
        let mut map = HeaderMap::new();
        assert_eq!(
            status_and_length(&mut map, Some(&(2..5)), Some(10)),
            (StatusCode::PARTIAL_CONTENT, Some(3))
        );
        assert_eq!(map[header::CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(map[header::CONTENT_LENGTH], "3");
        let mut whole = HeaderMap::new();
        assert_eq!(status_and_length(&mut whole, None, Some(10)), (StatusCode::OK, Some(10)));
        assert!(!whole.contains_key(header::CONTENT_RANGE));
    }
}
