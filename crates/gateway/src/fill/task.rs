//! The fill itself: open the upstream stream, ask whether to store, write the bytes to a staged
//! upload while clients tail it, verify, persist, record. Runs detached from every client, under
//! the supervisor: on shutdown past the grace period it aborts its upload (no temp data left) and
//! records nothing.

use std::sync::Arc;

use injector::{CONTRACT_VERSION, FinalizeRequest, SendDependency, UploadDecision};
use storage::Expectation;
use supervisor::StopSignal;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::control_calls;
use super::registry::Running;
use super::state::{FillError, FillState, Finished, Streaming, UpstreamHead};
use crate::state::Gateway;

/// Joins the fill of `params.fill_key`, starting it when none runs.
pub(crate) fn join_or_start(gateway: &Arc<Gateway>, params: SendDependency) -> watch::Receiver<FillState> {
    let (receiver, sender) = gateway.fills.join_or_register(&params.fill_key);
    if let Some(sender) = sender {
        let gateway = gateway.clone();
        gateway
            .supervisor
            .clone()
            .spawn("fill", params.url.clone(), move |signal| run(gateway, params, sender, signal));
    }
    receiver
}

async fn run(
    gateway: Arc<Gateway>,
    params: SendDependency,
    state: watch::Sender<FillState>,
    signal: StopSignal,
) {
    let running = Running::new(&gateway.fills, &params.fill_key, state);
    let outcome = fill(&gateway, &params, &running.state, &signal).await;
    let metrics = &gateway.observability.gateway;
    match &outcome {
        Ok(finished) => {
            metrics.fill_finished(if finished.stored { "stored" } else { "passthrough" }, finished.size)
        }
        Err(_) => metrics.fill_finished("failed", 0),
    }
    match outcome {
        Ok(finished) => {
            tracing::info!(url = %params.url, key = %finished.key, size = finished.size, stored = finished.stored, "fill complete");
            running.finish(FillState::Committed(Arc::new(finished)));
        }
        Err(error) => {
            tracing::warn!(url = %params.url, %error, "fill failed");
            running.finish(FillState::Failed(Arc::new(error)));
        }
    }
}

async fn fill(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    state: &watch::Sender<FillState>,
    signal: &StopSignal,
) -> Result<Finished, FillError> {
    let open = upstream::open_stream(
        &gateway.upstream_http,
        &params.url,
        injector::header_map(&params.headers),
        params.kind,
        gateway.settings.header_timeout,
        &gateway.observability.upstream,
    );
    let mut response = tokio::select! {
        response = open => response?,
        _ = signal.cancelled() => return Err(FillError::ShuttingDown),
    };
    let head = UpstreamHead {
        content_length: response.content_length(),
        content_type: response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    if let Some(size) = head.content_length
        && size > params.max_size
    {
        return Err(FillError::TooLarge { size, limit: params.max_size });
    }
    let authorization = control_calls::authorize(gateway, params, head.content_length, None).await;
    // Stops the lease renewal when this function returns, however it returns.
    let _lease_renewal = {
        let done = CancellationToken::new();
        control_calls::keep_lease_alive(gateway, params, head.content_length, &authorization, done.clone());
        done.drop_guard()
    };
    let limit = authorization.max_size.min(params.max_size);
    if let Some(size) = head.content_length
        && size > limit
    {
        // Refused before any byte goes out, rather than cut off at the limit.
        return Err(FillError::TooLarge { size, limit });
    }
    let mut upload = gateway.store.begin_upload(limit, params.expected_digest.as_ref()).await?;
    let streaming = Arc::new(Streaming { head: head.clone(), spool: upload.spool_reader() });
    state.send_replace(FillState::Streaming(streaming.clone()));

    let idle = gateway.settings.idle_timeout;
    loop {
        let chunk = tokio::select! {
            chunk = tokio::time::timeout(idle, response.chunk()) => chunk,
            _ = signal.cancelled() => {
                upload.abort().await;
                return Err(FillError::ShuttingDown);
            }
        };
        match chunk {
            Err(_) => {
                upload.abort().await;
                return Err(FillError::IdleTimeout(idle));
            }
            Ok(Err(error)) => {
                upload.abort().await;
                return Err(FillError::Broken(upstream::error_chain(&error)));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => upload.write(chunk).await?,
        }
    }
    let expected = Expectation { digest: params.expected_digest.clone(), size: head.content_length };
    let media_type = oci::media::media_type_or_default(params.kind, head.content_type.as_deref());
    match authorization.decision {
        UploadDecision::Store => {
            let verified = upload.verify(&expected).await?;
            let (digest, size) = (verified.digest().clone(), verified.size());
            let key = injector::storage_key(&digest);
            // Clients finish now; fsync (or the multipart completion) and finalize are the fill's
            // business, not theirs. From here on the fill is not cancelled: it is short, and
            // stopping between persist and finalize would leave an object nothing records.
            state.send_replace(FillState::Verified(Arc::new(Finished {
                head: head.clone(),
                key: key.clone(),
                digest: digest.clone(),
                size,
                stored: false,
                streaming: streaming.clone(),
            })));
            let stored = match verified.persist().await {
                Ok(committed) => {
                    let finalize = FinalizeRequest {
                        v: CONTRACT_VERSION,
                        kind: params.kind,
                        digest: committed.digest,
                        size: committed.size,
                        media_type,
                        key: committed.key,
                        lease_id: authorization.lease_id.clone(),
                    };
                    // The object is verified and durable; a failed finalize only means the next
                    // request fills again, so clients are still served.
                    if let Err(error) = control_calls::finalize(gateway, params, &finalize).await {
                        tracing::warn!(url = %params.url, %error, "finalize failed; object stays unrecorded");
                    }
                    true
                }
                Err(error) => {
                    tracing::error!(url = %params.url, %error, "verified object could not be stored");
                    false
                }
            };
            Ok(Finished { head, key, digest, size, stored, streaming })
        }
        UploadDecision::Passthrough { reason } => {
            let verified = upload.verify_and_discard(&expected).await?;
            tracing::info!(url = %params.url, %reason, "streamed without caching");
            Ok(Finished {
                head,
                key: verified.key,
                digest: verified.digest,
                size: verified.size,
                stored: false,
                streaming,
            })
        }
    }
}
