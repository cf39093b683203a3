//! The OCI format: the distribution API's pull endpoints. The path is parsed by
//! [`oci::parse_v2_path`], the image address resolved to a group, the caller authorized, the
//! manifest or blob decided by the cache's domain and rendered; tag lists and referrers pass
//! through; `/v2/token` is the docker token flow's endpoint.

use axum::extract::Request;
use axum::response::Response;
use http::Method;
use injector::VerifiedRequest;
use oci::{Endpoint, ErrorCode, OciError};

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{authorize, passthrough, render, token_endpoint};

/// A request under `/v2/`.
pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    let endpoint = oci::parse_v2_path(request.uri().path())?;
    let caller = Caller::from_headers(request.headers(), &control.trusted_proxies);
    let method = request.method().clone();
    let head = method == Method::HEAD;
    let uri = request.uri();
    let query = uri.query();
    match endpoint {
        Endpoint::Token => {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, token_endpoint::MAX_FORM).await.map_err(|_| {
                OciError::new(ErrorCode::Unsupported, "the token request is too large")
                    .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
            })?;
            // The form carries credentials: it must be the one the gateway signed.
            verified.check_body(&body).map_err(ControlError::Unauthenticated)?;
            Box::pin(token_endpoint::handle(control, &parts.method, &parts.uri, &body, caller)).await
        }
        _ if method != Method::GET && !head => Err(OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported here: depproxy is a pull-through cache"),
        )
        .into()),
        Endpoint::Base => {
            authorize::base(control, &caller).await?;
            Ok(render::base())
        }
        Endpoint::Manifest { image, reference } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            let decision = match &caller.refetch {
                // The gateway could not read what the first answer served.
                Some(unreadable) => {
                    Box::pin(control.cache.refetch_manifest(&resolved, &reference, unreadable)).await?
                }
                None => control.cache.manifest(&resolved, &reference, head).await?,
            };
            Ok(render::decision(decision, uri, resolved.group.path.as_str(), caller.address))
        }
        Endpoint::Blob { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            let decision = match &caller.refetch {
                Some(unreadable) => {
                    Box::pin(control.cache.refetch_blob(&resolved, &digest, unreadable)).await?
                }
                None => control.cache.blob(&resolved, &digest, head).await?,
            };
            Ok(render::decision(decision, uri, resolved.group.path.as_str(), caller.address))
        }
        Endpoint::TagsList { image } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            Box::pin(passthrough::tags_list(&resolved, uri)).await
        }
        Endpoint::Referrers { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            Box::pin(passthrough::referrers(&resolved, &digest, uri)).await
        }
    }
}
