//! The control plane's HTTP surface: one handler for every path. A request is authenticated (the
//! gateway's internal token), its path parsed by [`oci::parse_v2_path`], its address resolved to a
//! group, decided by the cache's domain and rendered.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::Method;
use injector::{Purpose, VerifiedRequest};
use oci::{Endpoint, ErrorCode, OciError};

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{authenticate, authorize, passthrough, render, token_endpoint, upload};

impl ControlPlane {
    /// The router the gateway calls, in process or over HTTP.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }
}

async fn handle(State(control): State<Arc<ControlPlane>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match dispatch(&control, request).await {
        Ok(response) => response,
        Err(error) => {
            match (&error, error.to_oci().class()) {
                (ControlError::Unauthenticated(injector::SignatureError::ReplayCacheFull), _) => {
                    // Overload, not an attack (tokens are checked before they are remembered):
                    // one line per interval, not one per refused request.
                    if let Some(held_back) = OVERLOADED.admit() {
                        tracing::warn!(%method, %path, held_back, "too many internal requests this second; answering 503")
                    }
                }
                (ControlError::Unauthenticated(_), _) => {
                    tracing::warn!(%method, %path, %error, "refused unsigned control-plane request")
                }
                (ControlError::TooManyFailures(_), _) => {
                    tracing::debug!(%method, %path, %error, "client error")
                }
                (_, oci::ErrorClass::Internal) => {
                    tracing::error!(%method, %path, %error, "control plane error")
                }
                (_, oci::ErrorClass::Upstream) => tracing::warn!(%method, %path, %error, "upstream error"),
                (_, oci::ErrorClass::Client) => tracing::debug!(%method, %path, %error, "client error"),
            }
            error.into_response()
        }
    }
}

async fn dispatch(control: &ControlPlane, request: Request) -> Result<Response, ControlError> {
    // Authenticate the gateway before anything else, so even unknown paths reveal nothing to an
    // outsider. Upload calls are the only requests a gateway makes on its own behalf.
    let upload_call =
        request.method() == Method::POST && injector::split_upload_path(request.uri().path()).is_some();
    let purpose = if upload_call { Purpose::Upload } else { Purpose::Forward };
    let verified = authenticate::internal_request(&control.verifier, purpose, &request)?;
    let mut response = if upload_call {
        // Boxed: once per fill, and inline it would size every hit's future.
        Box::pin(upload::handle(control, request, &verified)).await?
    } else {
        decide(control, request, &verified).await?
    };
    authenticate::seal_answer(&control.verifier, &verified, &mut response)?;
    Ok(response)
}

/// A gateway's list of its live fills: handed to the admin API (204).
async fn fill_report(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    let body = axum::body::to_bytes(request.into_body(), 4 << 20).await.map_err(|_| {
        OciError::new(ErrorCode::Unsupported, "the fill report is too large")
            .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
    })?;
    verified.check_body(&body).map_err(ControlError::Unauthenticated)?;
    if let Some(sink) = &control.fill_reports {
        sink(&body);
    }
    Ok(http::StatusCode::NO_CONTENT.into_response())
}

/// 200 when the metadata database answers, 503 when it does not.
async fn ready(control: &ControlPlane) -> Response {
    match control.cache.metadata().ping().await {
        Ok(()) => (http::StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: the metadata database does not answer");
            (http::StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// A forwarded client request, authenticated.
async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    // The rare answers are boxed: inline, their futures would make every hit's future larger —
    // and it is copied whole each time the router boxes it.
    if request.uri().path() == injector::READY_PATH {
        return Ok(Box::pin(ready(control)).await);
    }
    if request.uri().path() == injector::FILLS_REPORT_PATH && request.method() == Method::POST {
        return Box::pin(fill_report(control, request, verified)).await;
    }
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
            authorize::pull(control, &caller, &resolved.group, &image).await?;
            let decision = match &caller.refetch {
                // The gateway could not read what the first answer served.
                Some(unreadable) => {
                    Box::pin(control.cache.refetch_manifest(&resolved, &reference, unreadable)).await?
                }
                None => control.cache.manifest(&resolved, &reference, head).await?,
            };
            Ok(render::decision(decision, uri, resolved.group.path.as_str()))
        }
        Endpoint::Blob { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image).await?;
            let decision = match &caller.refetch {
                Some(unreadable) => {
                    Box::pin(control.cache.refetch_blob(&resolved, &digest, unreadable)).await?
                }
                None => control.cache.blob(&resolved, &digest, head).await?,
            };
            Ok(render::decision(decision, uri, resolved.group.path.as_str()))
        }
        Endpoint::TagsList { image } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image).await?;
            Box::pin(passthrough::tags_list(&resolved, uri)).await
        }
        Endpoint::Referrers { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image).await?;
            Box::pin(passthrough::referrers(&resolved, &digest, uri)).await
        }
    }
}

/// Reports refusals for overload once per interval.
static OVERLOADED: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(10));
