//! Which format answers a request: the path says (`/v2/…` is OCI; a package format's groups are
//! reached at `/<format>/<group path>/…`: `/npm/…`, `/pypi/…`, `/maven/…`, `/go/…`, `/cargo/…`). Every format of [`cache::Format`] has its arm here, so
//! a new format does not build until it is routed — here too what the gateway is given of the
//! formats' paths (form posts, access-log descriptions), so it needs to know none.

use axum::extract::Request;
use axum::response::Response;
use cache::Format;
use injector::VerifiedRequest;
use oci::{ErrorCode, OciError};

use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{cargo_format, go_format, maven_format, npm_format, oci_format, pypi_format};

/// Whether clients POST a body the gateway forwards to `path`: a token endpoint's form, an npm
/// audit.
pub fn is_form_post(path: &str) -> bool {
    path == oci_format::TOKEN_PATH || npm_format::is_form_post(path)
}

/// What a request path names, for the gateway's access log: the subject (an image) and its
/// reference, as the path's format reads it; `None` when it names none.
pub fn describe_path(path: &str) -> Option<(&str, String)> {
    match Format::of_path(path)? {
        Format::Oci => oci_format::describe_path(path),
        Format::Npm => npm_format::describe_path(path),
        Format::Pypi => pypi_format::describe_path(path),
        Format::Maven => maven_format::describe_path(path),
        Format::Go => go_format::describe_path(path),
        Format::Cargo => cargo_format::describe_path(path),
    }
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    match Format::of_path(request.uri().path()) {
        Some(Format::Oci) => oci_format::decide(control, request, verified).await,
        Some(Format::Npm) => Box::pin(npm_format::decide(control, request, verified)).await,
        Some(Format::Pypi) => Box::pin(pypi_format::decide(control, request, verified)).await,
        Some(Format::Maven) => Box::pin(maven_format::decide(control, request, verified)).await,
        Some(Format::Go) => Box::pin(go_format::decide(control, request, verified)).await,
        Some(Format::Cargo) => Box::pin(cargo_format::decide(control, request, verified)).await,
        None => {
            Err(OciError::new(ErrorCode::Unsupported, format!("no such endpoint: {}", request.uri().path()))
                .with_status(http::StatusCode::NOT_FOUND)
                .into())
        }
    }
}

/// The package format of an upload call's object path, if it is one's.
pub(crate) fn package_format(path: &str) -> Option<&'static crate::packages::PackageFormat> {
    match Format::of_path(path)? {
        Format::Oci => None,
        Format::Npm => Some(&npm_format::NPM),
        Format::Pypi => Some(&pypi_format::PYPI),
        Format::Maven => Some(&maven_format::MAVEN),
        Format::Go => Some(&go_format::GO),
        Format::Cargo => Some(&cargo_format::CARGO),
    }
}
