//! A fill's calls to the control plane: may it store the object (and under which lease), keeping
//! that lease alive while the bytes flow, may a held fill's clients have the bytes (the admission
//! verdict), recording the stored object — or reporting that the upstream has no such object.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use injector::{
    Authorization, AuthorizeRequest, CONTRACT_CONTENT_TYPE, CONTRACT_VERSION, FinalizeRequest,
    NotFoundReport, Purpose, SendDependency, UploadDecision, Verdict, VerdictRequest,
};
use tokio_util::sync::CancellationToken;

use crate::error::GatewayError;
use crate::state::Gateway;

/// Largest answer the control plane gives to an upload call.
const MAX_ANSWER: usize = 64 * 1024;

/// Asks the control plane whether to store. If it cannot answer, the client is still served:
/// the bytes stream through uncached.
pub(super) async fn authorize(
    gateway: &Gateway,
    params: &SendDependency,
    size: Option<u64>,
    renew: Option<String>,
) -> Authorization {
    authorize_digest(
        gateway,
        params,
        params.verify.as_ref().and_then(injector::Checksum::as_digest),
        size,
        renew,
    )
    .await
}

/// [`authorize`] for a digest learned from the bytes (a manifest fetched by tag, once verified):
/// the lease that keeps a sweeper from deleting the object between its persist and its record.
pub(super) async fn authorize_digest(
    gateway: &Gateway,
    params: &SendDependency,
    digest: Option<oci::Digest>,
    size: Option<u64>,
    renew: Option<String>,
) -> Authorization {
    let call = AuthorizeRequest {
        v: CONTRACT_VERSION,
        kind: params.kind,
        digest,
        size,
        node: gateway.settings.node_id.clone(),
        renew,
    };
    let answer = match call_upload(gateway, &params.upload.authorize, &call, Duration::ZERO).await {
        Ok(body) => serde_json::from_slice::<Authorization>(&body)
            .map_err(|error| GatewayError::BadControlAnswer(error.to_string())),
        Err(error) => Err(error),
    };
    answer.unwrap_or_else(|error| {
        tracing::warn!(url = %params.first_url(), %error, "upload authorize failed; streaming without caching");
        Authorization {
            v: CONTRACT_VERSION,
            decision: UploadDecision::Passthrough { reason: format!("authorize failed: {error}") },
            max_size: params.max_size,
            lease_id: None,
            lease_seconds: None,
        }
    })
}

/// Records the stored object.
pub(super) async fn finalize(
    gateway: &Gateway,
    params: &SendDependency,
    call: &FinalizeRequest,
) -> Result<(), GatewayError> {
    call_upload(gateway, &params.upload.finalize, call, Duration::ZERO).await.map(drop)
}

/// Asks the control plane whether a held fill's clients may have its bytes. The group's admission
/// hook decides, taking up to the hold's time — which the call is allowed beyond the usual.
pub(super) async fn verdict(
    gateway: &Gateway,
    params: &SendDependency,
    call: &VerdictRequest,
) -> Result<Verdict, GatewayError> {
    let longer = params.hold.map_or(Duration::ZERO, |hold| hold.decides_within());
    let body = call_upload(gateway, &params.upload.verdict, call, longer).await?;
    serde_json::from_slice::<Verdict>(&body)
        .map_err(|error| GatewayError::BadControlAnswer(error.to_string()))
}

/// Tells the control plane the upstream answered 404 for the object, so it answers the next
/// requests for it without another upstream request. Best effort: failing only costs those.
pub(super) async fn not_found(gateway: &Gateway, params: &SendDependency) {
    if params.upload.not_found.is_empty() {
        return;
    }
    let call = NotFoundReport { v: CONTRACT_VERSION, kind: params.kind };
    if let Err(error) = call_upload(gateway, &params.upload.not_found, &call, Duration::ZERO).await {
        tracing::debug!(url = %params.first_url(), %error, "cannot report an upstream 404 to the control plane");
    }
}

/// Keeps the fill's lease alive (a third of its lifetime between renewals) under the supervisor,
/// until `done` is cancelled — the fill drops it when it ends — or shutdown cancels.
pub(super) fn keep_lease_alive(
    gateway: &std::sync::Arc<Gateway>,
    params: &SendDependency,
    size: Option<u64>,
    authorization: &Authorization,
    done: CancellationToken,
) {
    let Some(lease_id) = authorization.lease_id.clone() else { return };
    let every = Duration::from_secs(authorization.lease_seconds.unwrap_or(30).max(3) / 3);
    let gateway = gateway.clone();
    let params = params.clone();
    gateway.supervisor.clone().spawn(
        "lease-renewal",
        params.first_url().to_owned(),
        move |signal| async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = signal.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let answer = authorize(&gateway, &params, size, Some(lease_id.clone())).await;
                if !matches!(answer.decision, UploadDecision::Store) {
                    // Another node took over after our lease lapsed; both commit the same verified
                    // bytes, so this fill simply goes on.
                    tracing::warn!(url = %params.first_url(), "fill lease lost");
                    return;
                }
            }
        },
    );
}

/// POSTs an upload call to the control plane and returns its body on 2xx; the control plane may
/// take `longer` than its request timeout to answer.
async fn call_upload<T: serde::Serialize>(
    gateway: &Gateway,
    path: &str,
    body: &T,
    longer: Duration,
) -> Result<Bytes, GatewayError> {
    // The token binds the body's SHA-256: we know it before sending, we built it.
    let json = serde_json::to_vec(body).map_err(GatewayError::EncodeCall)?;
    let mut request = Request::new(Bytes::from(json));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = path.parse().map_err(|_| GatewayError::InvalidUploadRoute(path.to_owned()))?;
    request.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTRACT_CONTENT_TYPE));
    let (response, _) =
        gateway.control.call_allowing(&gateway.signer, Purpose::Upload, request, longer).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|error| GatewayError::ControlAnswerUnreadable(error.to_string()))?;
    if !status.is_success() {
        tracing::warn!(%status, path, body = %String::from_utf8_lossy(&body), "control plane refused an upload call");
        return Err(GatewayError::ControlRefused(status));
    }
    Ok(body)
}
