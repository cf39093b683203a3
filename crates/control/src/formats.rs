//! Which format answers a request: the path says (`/v2/…` is OCI; a package format's groups are
//! reached at `/<format>/<group path>/…`). Every format of [`cache::Format`] has its arm here, so
//! a new format does not build until it is routed.

use axum::extract::Request;
use axum::response::Response;
use cache::Format;
use injector::VerifiedRequest;
use oci::{ErrorCode, OciError};

use crate::error::ControlError;
use crate::oci_format;
use crate::plane::ControlPlane;

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
