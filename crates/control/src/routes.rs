//! The control plane's HTTP surface: one handler for every path. A request is authenticated (the
//! gateway's internal token), its path parsed by [`oci::parse_v2_path`], its address resolved to a
//! group, decided by the cache's domain and rendered.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::Method;
use oci::{Endpoint, ErrorCode, OciError};

use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{authenticate, passthrough, render, upload};

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
                (ControlError::Unauthenticated(_), _) => {
                    tracing::warn!(%method, %path, %error, "refused unsigned control-plane request")
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
    // Authenticate before anything else, so even unknown paths reveal nothing to an outsider.
    authenticate::internal_request(&control.verifier, request.method(), request.headers())?;
    let method = request.method().clone();
    if method == Method::POST {
        return upload::handle(control, request).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported here: depproxy is a pull-through cache"),
        )
        .into());
    }
    let head = method == Method::HEAD;
    let uri = request.uri();
    let query = uri.query();
    match oci::parse_v2_path(uri.path())? {
        Endpoint::Base => Ok(render::base()),
        Endpoint::Manifest { image, reference } => {
            let resolved = control.cache.resolve(&image, query)?;
            let decision = control.cache.manifest(&resolved, &reference, head).await?;
            render::decision(decision, uri)
        }
        Endpoint::Blob { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            let decision = control.cache.blob(&resolved, &digest, head).await?;
            render::decision(decision, uri)
        }
        Endpoint::TagsList { image } => {
            let resolved = control.cache.resolve(&image, query)?;
            passthrough::tags_list(&resolved, uri).await
        }
        Endpoint::Referrers { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            passthrough::referrers(&resolved, &digest, uri).await
        }
    }
}
