//! The fill itself: open the upstream stream, ask whether to store, write the bytes to a staged
//! upload while clients tail it, verify, persist, record. Runs detached from every client, under
//! the supervisor: on shutdown past the grace period it aborts its upload (no temp data left) and
//! records nothing.

use std::net::IpAddr;
use std::sync::Arc;

use injector::{CONTRACT_VERSION, FinalizeRequest, SendDependency, UploadDecision};
use oci::Digest;
use storage::{ContentHasher, Expectation, StorageError, Upload};
use supervisor::StopSignal;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::admission::{Busy, FillSlot};
use super::control_calls;
use super::recent::RecentChunks;
use super::registry::{FillAbout, Running};
use super::state::{FillError, FillState, Finished, Streaming, UpstreamHead};
use crate::error::GatewayError;
use crate::state::Gateway;

/// Joins the fill of `params.fill_key`, or starts it once a fill slot is free for `client`.
pub(crate) async fn join_or_start(
    gateway: &Arc<Gateway>,
    params: SendDependency,
    client: IpAddr,
) -> Result<watch::Receiver<FillState>, Busy> {
    if let Some(state) = gateway.fills.join(&params.fill_key) {
        return Ok(state);
    }
    let slot = gateway.admission.admit(client, || gateway.fills.make_room()).await?;
    let about = || FillAbout::of(&params.upstream, params.kind, &params.url);
    let (receiver, registered) = gateway.fills.join_or_register(&params.fill_key, about);
    // Another request may have started it while this one waited: then the slot goes back.
    if let Some((sender, give_way)) = registered {
        let gateway = gateway.clone();
        gateway.supervisor.clone().spawn("fill", params.url.clone(), move |signal| {
            let stop = Stop { signal, give_way };
            run(gateway, params, sender, stop, slot)
        });
    }
    Ok(receiver)
}

/// What may stop a fill early: shutdown past its grace, or giving way to a waiting miss (when no
/// client follows it).
struct Stop {
    signal: StopSignal,
    give_way: CancellationToken,
}

impl Stop {
    async fn requested(&self) -> FillError {
        tokio::select! {
            _ = self.signal.cancelled() => FillError::ShuttingDown,
            _ = self.give_way.cancelled() => FillError::GaveWay,
        }
    }
}

async fn run(
    gateway: Arc<Gateway>,
    params: SendDependency,
    state: watch::Sender<FillState>,
    stop: Stop,
    slot: FillSlot,
) {
    let running = Running::new(&gateway.fills, &params.fill_key, state);
    let outcome = fill(&gateway, &params, &running, &stop).await;
    drop(slot);
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
            if finished.stored {
                // Filled again: memory reloads it from what was just stored (a manifest by tag
                // names its key only now; `send_dependency` drops the others when told to fill).
                gateway.small_objects.forget(&finished.key).await;
            }
            running.finish(FillState::Committed(Arc::new(finished)));
        }
        Err(error) if error.is_expected() => {
            tracing::info!(url = %params.url, %error, "fill ended");
            running.finish(FillState::Failed(Arc::new(error)));
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
    running: &Running<'_>,
    stop: &Stop,
) -> Result<Finished, FillError> {
    // Nodes with different upstream lists are a deployment error: say so rather than fetch
    // through a client that trusts the wrong CA or follows the wrong redirect rules.
    let client = gateway
        .upstream_http
        .client(&params.upstream)
        .ok_or_else(|| GatewayError::UnknownUpstream(params.upstream.clone()))?;
    let open = upstream::open_stream(
        client,
        &params.url,
        injector::header_map(&params.headers),
        params.kind,
        gateway.settings.header_timeout,
        &gateway.observability.upstream,
    );
    let mut response = tokio::select! {
        response = open => response?,
        stopped = stop.requested() => return Err(stopped),
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
    // A tag has no digest to check the bytes against: what makes them a manifest is the type
    // upstream declares. Anything else (an internal page a redirect led to) is refused before a
    // byte reaches a client or storage.
    if params.kind == oci::ObjectKind::Manifest
        && params.verify.is_none()
        && !head.content_type.as_deref().is_some_and(oci::media::is_manifest_type)
    {
        return Err(FillError::NotAManifest(head.content_type.clone()));
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
    let recent = Arc::new(RecentChunks::new(gateway.settings.fill_window, gateway.fills.budget()));
    // Storage failing (disk full, I/O errors, S3 down) never fails the clients: the fill streams
    // on uncached, still hashed and verified.
    let expected = Expectation { checksum: params.verify.clone(), size: head.content_length };
    let mut storing = match gateway.store.begin_upload(limit, expected.declared_algorithm()).await {
        Ok(upload) => Storing::Upload(Box::new(upload)),
        Err(error) => {
            storage_failed(gateway, &params.url, &error);
            recent.spool_ends_at(0);
            running.leave_early();
            Storing::PassThrough(Box::new(ContentHasher::new(expected.declared_algorithm())))
        }
    };
    let spool = match &storing {
        Storing::Upload(upload) => Some(upload.spool_reader()),
        Storing::PassThrough(_) => None,
    };
    let streaming = Arc::new(Streaming { head: head.clone(), recent: recent.clone(), spool });
    running.state.send_replace(FillState::Streaming(streaming.clone()));

    let idle = gateway.settings.idle_timeout;
    loop {
        let chunk = tokio::select! {
            chunk = tokio::time::timeout(idle, response.chunk()) => chunk,
            stopped = stop.requested() => {
                storing.abort().await;
                return Err(stopped);
            }
        };
        let chunk = match chunk {
            Err(_) => {
                storing.abort().await;
                return Err(FillError::IdleTimeout(idle));
            }
            Ok(Err(error)) => {
                storing.abort().await;
                return Err(FillError::Broken(telemetry::error_chain(&error)));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        // Followers may read it now, before it is on disk.
        recent.push(chunk.clone()).await;
        storing = match storing {
            Storing::Upload(mut upload) => match upload.write(chunk).await {
                Ok(()) => Storing::Upload(upload),
                Err(error) if error.is_content_error() => {
                    upload.abort().await;
                    return Err(error.into());
                }
                Err(error) => {
                    storage_failed(gateway, &params.url, &error);
                    let written = upload.spool_reader().progress().borrow().to_owned();
                    recent.spool_ends_at(written);
                    running.leave_early();
                    Storing::PassThrough(Box::new((*upload).abandon().await))
                }
            },
            Storing::PassThrough(mut hasher) => {
                hasher.update(&chunk);
                if hasher.len() > limit {
                    return Err(FillError::TooLarge { size: hasher.len(), limit });
                }
                Storing::PassThrough(hasher)
            }
        };
    }
    let media_type = oci::media::media_type_or_default(params.kind, head.content_type.as_deref());
    let upload = match storing {
        Storing::Upload(upload) => *upload,
        Storing::PassThrough(hasher) => {
            let storage::Hashed { digest, size, .. } = hasher.verify(&expected).map_err(FillError::from)?;
            tracing::info!(url = %params.url, "streamed without caching: storage failed");
            return Ok(Finished {
                head,
                key: injector::storage_key(&digest),
                digest,
                size,
                stored: false,
                streaming,
            });
        }
    };
    match authorization.decision {
        UploadDecision::Store => {
            let verified = upload.verify(&expected).await?;
            let (digest, size) = (verified.digest().clone(), verified.size());
            let key = injector::storage_key(&digest);
            // A fill that started without a digest (a manifest by tag) claims its object now,
            // before it becomes visible in storage: the lease keeps a sweeper from deleting it
            // between the persist and the record. Refused (being deleted, or filled elsewhere):
            // the clients are served, nothing is stored.
            let mut lease_id = authorization.lease_id.clone();
            if lease_id.is_none() {
                let claim =
                    control_calls::authorize_digest(gateway, params, Some(digest.clone()), Some(size), None)
                        .await;
                match claim.decision {
                    UploadDecision::Store => lease_id = claim.lease_id,
                    UploadDecision::Passthrough { reason } => {
                        tracing::info!(url = %params.url, %reason, "verified; not stored");
                        drop(verified);
                        return Ok(Finished { head, key, digest, size, stored: false, streaming });
                    }
                }
            }
            // Clients finish now; fsync (or the multipart completion) and finalize are the fill's
            // business, not theirs. From here on the fill is not cancelled: it is short, and
            // stopping between persist and finalize would leave an object nothing records.
            running.state.send_replace(FillState::Verified(Arc::new(Finished {
                head: head.clone(),
                key: key.clone(),
                digest: digest.clone(),
                size,
                stored: false,
                streaming: streaming.clone(),
            })));
            let stored = match verified.persist().await {
                Ok(committed) => {
                    let references = manifest_references(params.kind, &streaming, committed.size).await;
                    let finalize = FinalizeRequest {
                        v: CONTRACT_VERSION,
                        kind: params.kind,
                        digest: committed.digest,
                        size: committed.size,
                        media_type,
                        key: committed.key,
                        lease_id: lease_id.clone(),
                        references,
                    };
                    // The object is verified and durable; a failed finalize only means the next
                    // request fills again, so clients are still served.
                    if let Err(error) = control_calls::finalize(gateway, params, &finalize).await {
                        tracing::warn!(url = %params.url, %error, "finalize failed; object stays unrecorded");
                    }
                    true
                }
                Err(error) => {
                    storage_failed(gateway, &params.url, &error);
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

/// Where a fill's bytes go: to storage, or — when storage failed — nowhere but the clients, still
/// hashed so they are verified all the same.
enum Storing {
    Upload(Box<Upload>),
    PassThrough(Box<ContentHasher>),
}

impl Storing {
    async fn abort(self) {
        if let Storing::Upload(upload) = self {
            upload.abort().await;
        }
    }
}

/// Reports storage failing, once per interval whatever the number of fills it hits.
static STORAGE_FAILED: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(30));

fn storage_failed(gateway: &Gateway, url: &str, error: &StorageError) {
    gateway.observability.gateway.storage_failed();
    if let Some(held_back) = STORAGE_FAILED.admit() {
        tracing::warn!(url, %error, held_back, "storage failed: the fill goes on uncached; the next miss tries storage again");
    }
}

/// What a stored manifest references, read back from its spool (a manifest is small: at most
/// `max_manifest_size`). Nothing for blobs, or when the spool cannot be read — the references are
/// bookkeeping for pins and purges, never worth failing a fill for.
async fn manifest_references(kind: oci::ObjectKind, streaming: &Streaming, size: u64) -> Vec<Digest> {
    let Some(spool) = streaming.spool.as_ref().filter(|_| kind == oci::ObjectKind::Manifest) else {
        return Vec::new();
    };
    let mut manifest = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while (manifest.len() as u64) < size {
        let want = usize::try_from(size - manifest.len() as u64).unwrap_or(usize::MAX);
        match spool.read_at(manifest.len() as u64, want).await {
            Ok(chunk) if !chunk.is_empty() => manifest.extend_from_slice(&chunk),
            _ => return Vec::new(),
        }
    }
    oci::media::manifest_references(&manifest)
}
