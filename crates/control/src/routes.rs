//! The control plane's HTTP surface: one handler for every path. A request is authenticated (the
//! gateway's internal token), then answered by the control plane's own routes (readiness, fill
//! reports, upload calls) or by the format its path is addressed to ([`crate::formats`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::Method;
use injector::{Purpose, VerifiedRequest};
use oci::{ErrorCode, OciError};

use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{authenticate, formats, upload};

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
                (ControlError::ContractVersion { .. }, _) => {
                    tracing::error!(%method, %path, %error, "gateway of another version")
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
    let body =
        axum::body::to_bytes(request.into_body(), injector::MAX_FILL_REPORT_BYTES).await.map_err(|_| {
            OciError::new(ErrorCode::Unsupported, "the fill report is too large")
                .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
        })?;
    verified.check_body(&body).map_err(ControlError::Unauthenticated)?;
    if let Some(sink) = &control.fill_reports {
        sink(&body);
    }
    Ok(http::StatusCode::NO_CONTENT.into_response())
}

/// 200 when the metadata database answers, 503 when it does not — as the last check found,
/// within a second: any client reaching a gateway may ask.
async fn ready(control: &ControlPlane) -> Response {
    let ping = async {
        match control.cache.metadata().ping().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "not ready: the metadata database does not answer");
                false
            }
        }
    };
    if control.readiness.ready(ping).await {
        (http::StatusCode::OK, "ready").into_response()
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

/// A forwarded client request, authenticated: the control plane's own routes, then the format
/// its path is addressed to.
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
    formats::decide(control, request, verified).await
}

/// Reports refusals for overload once per interval.
static OVERLOADED: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(10));
