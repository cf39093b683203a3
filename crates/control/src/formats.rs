//! Which format answers a request: the path says (`/v2/…` is OCI; a package format's groups are
//! reached at `/<format>/<group path>/…`). Every format of [`cache::Format`] has its arm here, so
//! a new format does not build until it is routed — here too what the gateway is given of the
//! formats' paths (form posts, access-log descriptions), so it needs to know none.

use axum::extract::Request;
use axum::response::Response;
use cache::Format;
use injector::VerifiedRequest;
use oci::{ErrorCode, OciError};

use crate::error::ControlError;
use crate::oci_format;
use crate::plane::ControlPlane;

/// Paths clients POST a form to (a token endpoint), whose body the gateway forwards.
pub const FORM_POSTS: &[&str] = &[oci_format::TOKEN_PATH];

/// What a request path names, for the gateway's access log: the subject (an image) and its
/// reference, as the path's format reads it; `None` when it names none.
pub fn describe_path(path: &str) -> Option<(&str, String)> {
    match Format::of_path(path)? {
        Format::Oci => oci_format::describe_path(path),
    }
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    match Format::of_path(request.uri().path()) {
        Some(Format::Oci) => oci_format::decide(control, request, verified).await,
        None => {
            Err(OciError::new(ErrorCode::Unsupported, format!("no such endpoint: {}", request.uri().path()))
                .with_status(http::StatusCode::NOT_FOUND)
                .into())
        }
    }
}
