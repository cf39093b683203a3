//! Response headers that describe an object, the same for a hit, a miss and a HEAD; and header
//! pairs as text (how the error envelope and the injector contract carry extra headers).

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::digest::Digest;

/// `Docker-Content-Digest` and `ETag` (the quoted digest: content-addressed, hence strong) when the
/// digest is known, `Content-Type`, and the API version header.
pub fn object_headers(digest: Option<&Digest>, media_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(digest) = digest {
        // Built by hand, not with `format!`: this runs on every hit.
        let mut etag = String::with_capacity(73);
        etag.push_str("\"sha256:");
        etag.push_str(digest.hex());
        etag.push('"');
        if let Ok(value) = HeaderValue::try_from(&etag[1..etag.len() - 1]) {
            headers.insert(crate::CONTENT_DIGEST_HEADER, value);
        }
        if let Ok(value) = HeaderValue::try_from(etag) {
            headers.insert(header::ETAG, value);
        }
    }
    if let Ok(value) = HeaderValue::try_from(media_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(crate::API_VERSION_HEADER, HeaderValue::from_static(crate::API_VERSION));
    headers
}

/// Appends name/value pairs to `headers`, repeated names kept. Pairs that are not a valid header
/// name and value are left out: every list comes from our own code, which only builds valid ones.
pub fn append_header_pairs(headers: &mut HeaderMap, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) =
            (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        {
            headers.append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_headers_only_when_known() {
        let digest = Digest::of(b"x");
        let known = object_headers(Some(&digest), crate::media::OCI_MANIFEST);
        assert_eq!(known[crate::CONTENT_DIGEST_HEADER], digest.to_string().as_str());
        assert_eq!(known[header::ETAG], format!("\"{digest}\"").as_str());
        assert_eq!(known[header::CONTENT_TYPE], crate::media::OCI_MANIFEST);
        assert_eq!(known[crate::API_VERSION_HEADER], crate::API_VERSION);
        let unknown = object_headers(None, crate::media::OCTET_STREAM);
        assert!(!unknown.contains_key(crate::CONTENT_DIGEST_HEADER));
        assert!(!unknown.contains_key(header::ETAG));
    }
}
