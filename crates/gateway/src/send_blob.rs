//! `send-blob`: serve a cached object with HEAD, a single `Range` (206/416) and `If-None-Match`
//! (the ETag is the digest: content-addressed, hence strong).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use injector::SendBlob;
use oci::{Digest, ErrorCode, OciError};
use storage::{BlobStore, StorageError};

use crate::respond::{oci_error, served_object_headers, with_headers};
use crate::small_objects::{LoadError, SmallObjects};

pub(crate) async fn serve(
    store: &BlobStore,
    small_objects: &SmallObjects,
    params: &SendBlob,
    method: &Method,
    request: &HeaderMap,
) -> Response {
    let mut headers = served_object_headers(Some(&params.digest), &params.media_type);
    injector::append_headers(&mut headers, &params.headers);
    if if_none_match_hits(request, &params.digest) {
        return with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }
    let range = match requested_range(request, params.size) {
        Ok(range) => range,
        Err(()) => {
            let error = OciError::new(ErrorCode::RangeInvalid, "requested range not satisfiable")
                .with_header(header::CONTENT_RANGE.as_str(), format!("bytes */{}", params.size));
            return oci_error(&error);
        }
    };
    let (status, length) = match &range {
        Some(range) => {
            let value = format!("bytes {}-{}/{}", range.start, range.end - 1, params.size);
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, range.end - range.start)
        }
        None => (StatusCode::OK, params.size),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if method == Method::HEAD {
        return with_headers(status, headers, Body::empty());
    }
    // Object storage may serve blob bytes itself; manifests always come from us, with our headers.
    if !oci::media::is_manifest_type(&params.media_type) {
        match store.redirect_url(&params.key).await {
            Ok(Some(url)) => return redirect(&url),
            Ok(None) => {}
            Err(error) => tracing::warn!(key = %params.key, %error, "cannot presign; streaming instead"),
        }
    }
    if small_objects.holds(params.size) {
        return match small_objects.get(store, &params.key, &params.digest, params.size).await {
            Ok(bytes) => {
                let body = match range {
                    // Validated against `params.size`, which the loaded bytes match.
                    Some(range) => bytes.slice(range.start as usize..range.end as usize),
                    None => bytes,
                };
                with_headers(status, headers, Body::from(body))
            }
            Err(error) => match &*error {
                LoadError::Storage(error) => read_failed(params, error),
                LoadError::Damaged { .. } => {
                    tracing::error!(%error, "refusing to serve a damaged cached object");
                    oci_error(&OciError::internal("cached object is damaged"))
                }
            },
        };
    }
    match store.read(&params.key, range).await {
        Ok(reader) => with_headers(status, headers, Body::from_stream(reader.stream)),
        Err(error) => read_failed(params, &error),
    }
}

fn read_failed(params: &SendBlob, error: &StorageError) -> Response {
    if let StorageError::NotFound(key) = error {
        tracing::error!(%key, digest = %params.digest, "cached object is missing from storage");
        let code = if oci::media::is_manifest_type(&params.media_type) {
            ErrorCode::ManifestUnknown
        } else {
            ErrorCode::BlobUnknown
        };
        return oci_error(&OciError::new(code, "cached object is missing from storage"));
    }
    tracing::error!(key = %params.key, %error, "cannot read cached object");
    oci_error(&OciError::internal("cannot read cached object"))
}

fn redirect(url: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(location) = HeaderValue::try_from(url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn if_none_match_hits(request: &HeaderMap, digest: &Digest) -> bool {
    let digest = digest.to_string();
    request.get_all(header::IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.trim_matches('"') == digest
        })
    })
}

/// `Ok(None)`: serve everything (no `Range`, or several ranges, which RFC 9110 lets us ignore).
/// `Err(())`: the range cannot be satisfied (416).
fn requested_range(request: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(value) = request.get(header::RANGE) else {
        return Ok(None);
    };
    let Ok(text) = value.to_str() else { return Err(()) };
    let parsed = http_range_header::parse_range_header(text).map_err(|_| ())?;
    let ranges = parsed.validate(size).map_err(|_| ())?;
    match ranges.as_slice() {
        [single] => Ok(Some(*single.start()..*single.end() + 1)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn ranges() {
        assert_eq!(requested_range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(requested_range(&headers(header::RANGE, "bytes=2-4"), 10), Ok(Some(2..5)));
        assert_eq!(requested_range(&headers(header::RANGE, "bytes=5-"), 10), Ok(Some(5..10)));
        assert_eq!(requested_range(&headers(header::RANGE, "bytes=-3"), 10), Ok(Some(7..10)));
        assert_eq!(requested_range(&headers(header::RANGE, "bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(requested_range(&headers(header::RANGE, "bytes=10-20"), 10), Err(()));
        assert_eq!(requested_range(&headers(header::RANGE, "lines=1-2"), 10), Err(()));
    }

    #[test]
    fn etags() {
        let digest = Digest::of(b"x");
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, &format!("\"{digest}\"")), &digest));
        assert!(if_none_match_hits(
            &headers(header::IF_NONE_MATCH, &format!("\"a\", W/\"{digest}\"")),
            &digest
        ));
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, "*"), &digest));
        assert!(!if_none_match_hits(&headers(header::IF_NONE_MATCH, "\"sha256:00\""), &digest));
    }
}
