//! `gateway::requested_range`: a `Range` header value against an object size. The first 8 bytes
//! are the size (little-endian), the rest the header value. A range returned is non-empty and lies
//! within the object; a lone well-formed `bytes=a-b` inside it is served exactly.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, value) = data.split_at(8);
    let mut size = u64::from_le_bytes(size.try_into().unwrap());
    // Small sizes make the edges (0, 1, end of object) likely; keep some huge ones too.
    if size & 1 == 0 {
        size = (size >> 1) % 4096;
    }
    let Ok(value) = HeaderValue::from_bytes(value) else { return };
    let mut headers = HeaderMap::new();
    headers.insert(header::RANGE, value.clone());
    let result = gateway::requested_range(&headers, size);
    if let Ok(Some(range)) = &result {
        assert!(range.start < range.end, "{range:?} for size {size}");
        assert!(range.end <= size, "{range:?} for size {size}");
    }
    // A simple single range the parser must get exactly right.
    if let Some(spec) = value.to_str().ok().and_then(|text| text.strip_prefix("bytes="))
        && let Some((first, last)) = spec.split_once('-')
        && let (Ok(first), Ok(last)) = (first.parse::<u64>(), last.parse::<u64>())
        && first.to_string() == spec.split_once('-').unwrap().0
        && last.to_string() == spec.split_once('-').unwrap().1
        && first <= last
        && last < size
    {
        assert_eq!(result, Ok(Some(first..last + 1)), "{spec:?} for size {size}");
    }
    assert_eq!(gateway::requested_range(&HeaderMap::new(), size), Ok(None));
});
