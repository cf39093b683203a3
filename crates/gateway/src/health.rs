//! `/healthz` (the process answers) and `/readyz` (storage, and the control plane with its
//! database, answer). A readiness answer is reused for a second, so polling every second from many
//! places costs one check per second.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use injector::{Purpose, READY_PATH};

use crate::state::Gateway;

/// The key of an object no one pulls: a `stat` of it asks storage without reading anything.
fn probe_key() -> String {
    injector::storage_key(&oci::Digest::of(b"depproxy readiness probe"))
}

/// What is not ready, if anything.
async fn check(gateway: &Gateway) -> Result<(), String> {
    if let Err(error) = gateway.store.stat(&probe_key()).await {
        tracing::warn!(%error, "not ready: storage does not answer");
        return Err("storage unreachable".into());
    }
    let mut request = http::Request::new(Bytes::new());
    *request.uri_mut() = http::Uri::from_static(READY_PATH);
    match gateway.control.call(&gateway.signer, Purpose::Forward, request).await {
        Ok((response, _)) if response.status() == StatusCode::OK => Ok(()),
        Ok((response, _)) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
            Err("metadata database unreachable".into())
        }
        Ok((response, _)) => Err(format!("control plane answered {}", response.status().as_u16())),
        Err(error) => {
            tracing::warn!(%error, "not ready: the control plane does not answer");
            Err("control plane unreachable".into())
        }
    }
}

/// The `/readyz` answer: 200 `ready`, or 503 with what is not.
pub(crate) async fn readyz(gateway: &Gateway) -> Response {
    let outcome = match gateway.readiness.reused() {
        Some(outcome) => outcome,
        None => {
            let outcome = check(gateway).await;
            gateway.readiness.remember(outcome.clone());
            outcome
        }
    };
    let (status, text) = match outcome {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")),
    };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}
