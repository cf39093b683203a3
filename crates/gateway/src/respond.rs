//! Response building shared by every way the gateway answers: OCI errors and responses from parts.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use oci::{Digest, OciError};

/// An OCI error envelope as a response.
pub(crate) fn oci_error(error: &OciError) -> Response {
    error.to_http_response().map(Body::from)
}

pub(crate) fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The headers of an object the gateway serves itself (a hit or a fill): the object's headers,
/// and `Accept-Ranges` since it answers `Range`.
pub(crate) fn served_object_headers(digest: Option<&Digest>, media_type: &str) -> HeaderMap {
    let mut headers = oci::response::object_headers(digest, media_type);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers
}
