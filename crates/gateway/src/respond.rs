//! Response building shared by every way the gateway answers: OCI errors, an object's headers,
//! responses from parts.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use oci::{Digest, OciError};

/// An OCI error envelope as a response.
pub(crate) fn oci_error(error: &OciError) -> Response {
    error.to_http_response().map(Body::from)
}

/// An error the gateway answers itself, in the shape the injector named: its status and headers
/// (`Retry-After`, a challenge) as always, its message as the client's protocol words errors.
pub(crate) fn error_in(shape: injector::ErrorShape, error: &OciError) -> Response {
    let mut response = oci_error(error);
    let (content_type, body) = match shape {
        injector::ErrorShape::Oci => return response,
        injector::ErrorShape::JsonError => {
            ("application/json", serde_json::json!({ "error": error.message }).to_string())
        }
        injector::ErrorShape::Text => ("text/plain; charset=utf-8", format!("{}\n", error.message)),
        injector::ErrorShape::JsonErrors => {
            ("application/json", serde_json::json!({ "errors": [{ "detail": error.message }] }).to_string())
        }
    };
    *response.body_mut() = Body::from(body);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    response
}

pub(crate) fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The headers of an object the gateway serves itself (a hit or a fill): when the digest is
/// known, the `ETag` (the quoted digest: content-addressed, hence strong) and the header the
/// injector names for the digest; `Content-Type`; and `Accept-Ranges`, since it answers `Range`.
/// The format's other headers come in the injector.
pub(crate) fn served_object_headers(
    digest: Option<&Digest>,
    media_type: &str,
    digest_header: Option<&str>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(digest) = digest {
        // Built by hand, not with `format!`: this runs on every hit.
        let mut etag = String::with_capacity(73);
        etag.push_str("\"sha256:");
        etag.push_str(digest.hex());
        etag.push('"');
        if let Some(name) = digest_header.and_then(|name| HeaderName::try_from(name).ok())
            && let Ok(value) = HeaderValue::try_from(&etag[1..etag.len() - 1])
        {
            headers.insert(name, value);
        }
        if let Ok(value) = HeaderValue::try_from(etag) {
            headers.insert(header::ETAG, value);
        }
    }
    if let Ok(value) = HeaderValue::try_from(media_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_header_is_the_one_the_injector_names_and_only_when_the_digest_is_known() {
        let digest = Digest::of(b"x");
        let known = served_object_headers(Some(&digest), "application/x", Some("Docker-Content-Digest"));
        assert_eq!(known["docker-content-digest"], digest.to_string().as_str());
        assert_eq!(known[header::ETAG], format!("\"{digest}\"").as_str());
        assert_eq!(known[header::CONTENT_TYPE], "application/x");
        assert_eq!(known[header::ACCEPT_RANGES], "bytes");
        let unnamed = served_object_headers(Some(&digest), "application/x", None);
        assert_eq!(unnamed.len(), 3, "no digest header: {unnamed:?}");
        let unknown = served_object_headers(None, "application/x", Some("Docker-Content-Digest"));
        assert!(!unknown.contains_key("docker-content-digest") && !unknown.contains_key(header::ETAG));
    }
}

#[cfg(test)]
mod error_shape_tests {
    use super::*;

    #[test]
    fn errors_come_in_the_shape_the_injector_names() {
        let error = OciError::new(oci::ErrorCode::Denied, "refused: CVE-1")
            .with_status(StatusCode::FORBIDDEN)
            .with_header("Retry-After", "1".to_owned());
        let npm = error_in(injector::ErrorShape::JsonError, &error);
        assert_eq!(npm.status(), StatusCode::FORBIDDEN);
        assert_eq!(npm.headers()["content-type"], "application/json");
        assert_eq!(npm.headers()["retry-after"], "1", "headers kept");
        let text = error_in(injector::ErrorShape::Text, &error);
        assert!(text.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let oci = error_in(injector::ErrorShape::Oci, &error);
        assert_eq!(oci.headers()["content-type"], "application/json");
    }
}
