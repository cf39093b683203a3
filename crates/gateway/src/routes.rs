//! The gateway's public HTTP surface: health, metrics, and every `/v2/` request — forwarded to the
//! control plane, then answered by executing its injector or relaying its answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::Method;
use injector::Injector;
use oci::{ErrorCode, OciError};

use crate::forward::{ControlAnswer, ask_control};
use crate::metrics::render_registry;
use crate::respond::oci_error;
use crate::state::Gateway;
use crate::{send_blob, send_dependency};

impl Gateway {
    /// The public HTTP surface.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/metrics", axum::routing::get(metrics))
            .fallback(handle)
            .with_state(self.clone())
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    render_registry(gateway.observability.registry.as_deref())
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let method = request.method().clone();
    // The token endpoint takes the OAuth2 form by POST; everything else is a pull.
    let token_form = method == Method::POST && request.uri().path() == "/v2/token";
    if method != Method::GET && method != Method::HEAD && !token_form {
        let error = OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported: depproxy is a pull-through cache (pull only)"),
        );
        return oci_error(&error);
    }
    let client_headers = request.headers().clone();
    let path = request.uri().path().to_owned();
    let metrics = &gateway.observability.gateway;
    match ask_control(&gateway, request, token_form).await {
        Ok(ControlAnswer::Relay(response)) => {
            metrics.decided("relay");
            response
        }
        Ok(ControlAnswer::Execute(Injector::SendBlob(params))) => {
            metrics.decided("hit");
            send_blob::serve(&gateway.store, &gateway.small_objects, &params, &method, &client_headers).await
        }
        Ok(ControlAnswer::Execute(Injector::SendDependency(params))) => {
            metrics.decided("miss");
            send_dependency::serve(&gateway, params, &method).await
        }
        Err(error) => {
            tracing::error!(%method, %path, %error, "gateway error");
            error.into_response()
        }
    }
}
