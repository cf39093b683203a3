//! The fill itself: open the upstream stream — the injector's sources in turn, until one answers —
//! ask whether to store, write the bytes to a staged upload while clients tail it, verify, persist,
//! record (naming the source that served). Runs detached from every client, under the supervisor:
//! on shutdown past the grace period it aborts its upload (no temp data left) and records nothing.
//!
//! A held fill (`hold`: its group's admission hook must allow the bytes first) gives its clients
//! nothing before the control plane's verdict: asked while the bytes arrive when their digest and
//! size are known up front, else as soon as they are verified. Refused, it fails with the
//! control plane's reason and stores nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use injector::{
    Authorization, CONTRACT_VERSION, FinalizeRequest, InjectorError, ListedFile, References, SendDependency,
    Source, UploadDecision, Verdict, VerdictRequest,
};
use oci::Digest;
use storage::{ContentHasher, Expectation, StorageError, Upload, Verified};
use supervisor::StopSignal;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use upstream::{Attempts, UpstreamError};

use super::admission::{Busy, FillSlot};
use super::control_calls;
use super::recent::RecentChunks;
use super::registry::{Committed, FillAbout, Joined, Lead, Running};
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
    let about = || FillAbout {
        upstream: params.sources.first().map(|source| source.upstream.clone()).unwrap_or_default(),
        kind: params.kind.as_str().to_owned(),
        object: params.object.clone(),
    };
    match gateway.fills.join_or_register(&params.fill_key, about) {
        // Another request started it while this one waited: the slot goes back.
        Joined::Follow(state) => Ok(state),
        Joined::Lead(Lead { reader, state, give_way }) => {
            let gateway = gateway.clone();
            gateway.supervisor.clone().spawn("fill", params.first_url().to_owned(), move |signal| {
                let stop = Stop { signal, give_way };
                run(gateway, params, state, stop, slot)
            });
            Ok(reader)
        }
    }
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
    if let Err(FillError::Upstream(upstream::UpstreamError::NotFound(_))) = &outcome {
        // Before the fill's clients (and those joining meanwhile) get their 404: a request after
        // it is answered from the control plane's memory, not by another upstream GET.
        control_calls::not_found(&gateway, &params).await;
    }
    let metrics = &gateway.observability.gateway;
    match &outcome {
        Ok(finished) => {
            metrics.fill_finished(if finished.stored { "stored" } else { "passthrough" }, finished.size)
        }
        Err(_) => metrics.fill_finished("failed", 0),
    }
    match outcome {
        Ok(finished) => {
            tracing::info!(url = %finished.streaming.url, upstream = %finished.streaming.source, key = %finished.key,
                size = finished.size, stored = finished.stored, "fill complete");
            if finished.stored {
                // Filled again: memory reloads it from what was just stored (a manifest by tag
                // names its key only now; `send_dependency` drops the others when told to fill).
                gateway.small_objects.forget(&finished.key).await;
                gateway.fills.remember_committed(
                    &params.fill_key,
                    Committed {
                        digest: finished.digest.clone(),
                        size: finished.size,
                        media_type: finished.head.media_type(&params.default_media_type),
                        source: finished.streaming.source.clone(),
                    },
                );
            }
            running.finish(FillState::Committed(Arc::new(finished)));
        }
        Err(error) if error.is_expected() => {
            tracing::info!(url = %params.first_url(), %error, "fill ended");
            running.finish(FillState::Failed(Arc::new(error)));
        }
        Err(error) => {
            tracing::warn!(url = %params.first_url(), %error, "fill failed");
            running.finish(FillState::Failed(Arc::new(error)));
        }
    }
}

/// The fill's phases: open the upstream stream, ask the control plane whether to store (and for
/// a lease), stream to storage and clients, settle.
async fn fill(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    running: &Running<'_>,
    stop: &Stop,
) -> Result<Finished, FillError> {
    let opened = open_upstream(gateway, params, stop).await?;
    let expected = Expectation { checksum: params.verify.clone(), size: opened.head.content_length };
    // Held to the end: dropping it stops the lease renewal, however the fill ends.
    let allowed = authorize_and_lease(gateway, params, &opened.head).await?;
    let (streamed, early) = match early_verdict_call(params, &opened) {
        // The hook decides while the bytes arrive; the stream failing ends the wait.
        Some(call) => {
            let asking = async { Ok::<_, FillError>(control_calls::verdict(gateway, params, &call).await) };
            let streaming = async {
                let streamed = stream(gateway, running, stop, opened, allowed.limit, &expected).await?;
                streamed.streaming.awaiting_verdict.store(true, Ordering::Relaxed);
                Ok(streamed)
            };
            let (streamed, verdict) = tokio::try_join!(streaming, asking)?;
            (streamed, Some(verdict))
        }
        None => (stream(gateway, running, stop, opened, allowed.limit, &expected).await?, None),
    };
    let held = Held { stop, early };
    settle(gateway, params, running, &allowed.authorization, streamed, &expected, held).await
}

/// A held fill's verdict call made before the bytes are in: when the digest they must have and
/// their size are known up front (an object fetched by digest).
fn early_verdict_call(params: &SendDependency, opened: &Opened) -> Option<VerdictRequest> {
    params.hold?;
    let digest = params.verify.as_ref().and_then(injector::Checksum::as_digest)?;
    Some(VerdictRequest {
        v: CONTRACT_VERSION,
        kind: params.kind,
        digest,
        size: opened.head.content_length?,
        media_type: opened.head.media_type(&params.default_media_type),
        upstream: opened.source.upstream.clone(),
    })
}

/// What a held fill's end waits on: the verdict asked early, if it was; the stop signal while it
/// asks now.
struct Held<'a> {
    stop: &'a Stop,
    early: Option<Result<Verdict, GatewayError>>,
}

/// Whether a fill's clients may have its verified bytes (`digest`, `size`): always, unless the
/// fill is held; then as the control plane's verdict says — asked early, or now.
async fn admitted(
    gateway: &Gateway,
    params: &SendDependency,
    held: Held<'_>,
    streaming: &Streaming,
    digest: &Digest,
    size: u64,
) -> Result<(), FillError> {
    if params.hold.is_none() {
        return Ok(());
    }
    streaming.awaiting_verdict.store(true, Ordering::Relaxed);
    let verdict = match held.early {
        Some(verdict) => verdict,
        None => {
            let call = VerdictRequest {
                v: CONTRACT_VERSION,
                kind: params.kind,
                digest: digest.clone(),
                size,
                media_type: streaming.head.media_type(&params.default_media_type),
                upstream: streaming.source.clone(),
            };
            tokio::select! {
                verdict = control_calls::verdict(gateway, params, &call) => verdict,
                stopped = held.stop.requested() => return Err(stopped),
            }
        }
    };
    match verdict {
        Ok(Verdict { allow: true, .. }) => Ok(()),
        Ok(Verdict { reason, .. }) => {
            tracing::info!(url = %streaming.url, %digest, %reason, "refused by the admission hook; not stored");
            Err(FillError::Refused(reason))
        }
        Err(error) => Err(FillError::NoVerdict(error.to_string())),
    }
}

/// The upstream's answer, its body still to read, and the source that gave it.
struct Opened {
    response: reqwest::Response,
    head: UpstreamHead,
    source: Source,
}

/// Opens the upstream stream: the injector's sources in turn, until one answers with what was
/// asked. A source that fails — before any byte reached a client — is moved past, counted against
/// its upstream's health when it is an outage; when every source failed, the clients get the first
/// failure that was not a 404.
async fn open_upstream(gateway: &Gateway, params: &SendDependency, stop: &Stop) -> Result<Opened, FillError> {
    let mut attempts = Attempts::default();
    for (index, source) in params.sources.iter().enumerate() {
        let error = match open_source(gateway, params, source, stop).await {
            Ok(opened) => return Ok(opened),
            Err(error) => error,
        };
        let Some(outage) = error.moves_on() else { return Err(error) };
        if index + 1 < params.sources.len() {
            if outage {
                gateway.observability.upstream.failed_over(&upstream::host_label_of(&source.url));
                tracing::info!(upstream = %source.upstream, %error, "upstream failed; the fill asks the next source");
            } else {
                tracing::debug!(upstream = %source.upstream, %error, "not at this upstream; the fill asks the next source");
            }
        }
        let not_found = matches!(error, FillError::Upstream(UpstreamError::NotFound(_)));
        attempts.failed(error, not_found);
    }
    Err(attempts
        .into_error()
        .unwrap_or(FillError::Gateway(GatewayError::BadInjector(InjectorError::NoSource))))
}

/// Opens one source, and refuses its answer by its headers before a byte reaches a client or
/// storage: too large, or not of a type the control plane accepts.
async fn open_source(
    gateway: &Gateway,
    params: &SendDependency,
    source: &Source,
    stop: &Stop,
) -> Result<Opened, FillError> {
    // Nodes with different upstream lists are a deployment error: say so rather than fetch
    // through a client that trusts the wrong CA or follows the wrong redirect rules.
    let client = gateway
        .upstream_http
        .client(&source.upstream)
        .ok_or_else(|| GatewayError::UnknownUpstream(source.upstream.clone()))?;
    let open = upstream::open_stream(
        client,
        &source.url,
        injector::header_map(&source.headers),
        params.kind,
        gateway.settings.header_timeout,
        &gateway.observability.upstream,
    );
    let response = tokio::select! {
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
    // A document fetched by a mutable name has no checksum to check its bytes against: what
    // makes them what was asked is the type upstream declares. Anything else (an internal page a
    // redirect led to) is refused before a byte reaches a client or storage.
    if let Some(accept) = &params.accept
        && !head.content_type.as_deref().is_some_and(|content_type| accept.accepts(content_type))
    {
        return Err(FillError::NotAccepted {
            content_type: head.content_type.clone(),
            what: accept.what.clone(),
        });
    }
    Ok(Opened { response, head, source: source.clone() })
}

/// What the control plane allowed a fill.
struct Allowed {
    authorization: Authorization,
    /// The most bytes the fill takes: the injector's limit or the control plane's, the lower.
    limit: u64,
    /// Stops the lease renewal when dropped.
    _renewal: DropGuard,
}

/// Asks the control plane whether to store the object (with a lease when the database is
/// shared), and keeps the lease alive while the fill runs.
async fn authorize_and_lease(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    head: &UpstreamHead,
) -> Result<Allowed, FillError> {
    let authorization = control_calls::authorize(gateway, params, head.content_length, None).await;
    let done = CancellationToken::new();
    control_calls::keep_lease_alive(gateway, params, head.content_length, &authorization, done.clone());
    let renewal = done.drop_guard();
    let limit = authorization.max_size.min(params.max_size);
    if let Some(size) = head.content_length
        && size > limit
    {
        // Refused before any byte goes out, rather than cut off at the limit.
        return Err(FillError::TooLarge { size, limit });
    }
    Ok(Allowed { authorization, limit, _renewal: renewal })
}

/// What streaming left: where the bytes went, and what the clients read.
struct Streamed {
    storing: Storing,
    streaming: Arc<Streaming>,
}

/// Streams the upstream body to a staged upload, every chunk first to the clients' recent
/// bytes. Storage failing (disk full, I/O errors, S3 down) never fails the clients: the fill
/// streams on uncached, still hashed and verified.
async fn stream(
    gateway: &Gateway,
    running: &Running<'_>,
    stop: &Stop,
    opened: Opened,
    limit: u64,
    expected: &Expectation,
) -> Result<Streamed, FillError> {
    let Opened { mut response, head, source } = opened;
    let recent = Arc::new(RecentChunks::new(gateway.settings.fill_window, gateway.fills.budget()));
    let mut storing = match gateway.store.begin_upload(limit, expected.declared_algorithm()).await {
        Ok(upload) => Storing::Upload(Box::new(upload)),
        Err(error) => {
            storage_failed(gateway, &source.url, &error);
            recent.spool_ends_at(0);
            running.leave_early();
            Storing::PassThrough(Box::new(ContentHasher::new(expected.declared_algorithm())))
        }
    };
    let spool = match &storing {
        Storing::Upload(upload) => Some(upload.spool_reader()),
        Storing::PassThrough(_) => None,
    };
    let streaming = Arc::new(Streaming {
        head,
        recent: recent.clone(),
        spool,
        source: source.upstream,
        url: source.url,
        awaiting_verdict: AtomicBool::new(false),
    });
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
                    storage_failed(gateway, &streaming.url, &error);
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
    Ok(Streamed { storing, streaming })
}

/// The end of a fill whose bytes all arrived: verified against what was expected, allowed by the
/// admission verdict when the fill is held, then stored or not as the control plane decided (or
/// as storage allowed).
async fn settle(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    running: &Running<'_>,
    authorization: &Authorization,
    streamed: Streamed,
    expected: &Expectation,
    held: Held<'_>,
) -> Result<Finished, FillError> {
    let Streamed { storing, streaming } = streamed;
    let upload = match storing {
        Storing::Upload(upload) => *upload,
        Storing::PassThrough(hasher) => {
            let storage::Hashed { digest, size, .. } = hasher.verify(expected).map_err(FillError::from)?;
            admitted(gateway, params, held, &streaming, &digest, size).await?;
            tracing::info!(url = %streaming.url, "streamed without caching: storage failed");
            return Ok(Finished::new(streaming, digest, size, false));
        }
    };
    match &authorization.decision {
        UploadDecision::Store => {
            let verified = upload.verify(expected).await?;
            let (digest, size) = (verified.digest().clone(), verified.size());
            if let Some(check) = &params.archive_check {
                check_archive(check, verified.spool_path(), &digest).await?;
            }
            // Refused: the verified upload goes with this function's end, nothing stored.
            admitted(gateway, params, held, &streaming, &digest, size).await?;
            let lease_id = match claim(gateway, params, authorization, &digest, size).await {
                Claim::Granted { lease_id } => lease_id,
                Claim::Refused => {
                    drop(verified);
                    return Ok(Finished::new(streaming, digest, size, false));
                }
            };
            // Clients finish now; fsync (or the multipart completion) and finalize are the fill's
            // business, not theirs. From here on the fill is not cancelled: it is short, and
            // stopping between persist and finalize would leave an object nothing records.
            let verified_state = Finished::new(streaming.clone(), digest.clone(), size, false);
            running.state.send_replace(FillState::Verified(Arc::new(verified_state)));
            let stored = persist_and_finalize(gateway, params, verified, lease_id, &streaming).await;
            Ok(Finished::new(streaming, digest, size, stored))
        }
        UploadDecision::Passthrough { reason } => {
            let verified = upload.verify_and_discard(expected).await?;
            admitted(gateway, params, held, &streaming, &verified.digest, verified.size).await?;
            tracing::info!(url = %streaming.url, %reason, "streamed without caching");
            Ok(Finished::new(streaming, verified.digest, verified.size, false))
        }
    }
}

/// Runs the injector's check of the whole verified file (off the runtime: it reads the file).
async fn check_archive(
    check: &injector::ArchiveCheck,
    spool: &std::path::Path,
    digest: &Digest,
) -> Result<(), FillError> {
    let (check, spool, hex) = (check.clone(), spool.to_owned(), digest.hex().to_owned());
    tokio::task::spawn_blocking(move || check.check(&spool, &hex))
        .await
        .map_err(|error| FillError::ArchiveCheck(format!("the check did not finish: {error}")))?
        .map_err(|error| FillError::ArchiveCheck(error.to_string()))
}

/// Whether a verified object may be stored, and under which lease.
enum Claim {
    Granted { lease_id: Option<String> },
    Refused,
}

/// A fill that started without a digest (a manifest by tag) claims its object once verified,
/// before it becomes visible in storage: the lease keeps a sweeper from deleting it between the
/// persist and the record. Refused (being deleted, or filled elsewhere): the clients are served,
/// nothing is stored. A fill that started with a digest holds its lease already.
async fn claim(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    authorization: &Authorization,
    digest: &Digest,
    size: u64,
) -> Claim {
    if authorization.lease_id.is_some() {
        return Claim::Granted { lease_id: authorization.lease_id.clone() };
    }
    let claim =
        control_calls::authorize_digest(gateway, params, Some(digest.clone()), Some(size), None).await;
    match claim.decision {
        UploadDecision::Store => Claim::Granted { lease_id: claim.lease_id },
        UploadDecision::Passthrough { reason } => {
            tracing::info!(url = %params.first_url(), %reason, "verified; not stored");
            Claim::Refused
        }
    }
}

/// Makes a verified object durable, then has the control plane record it; says whether it is
/// stored.
async fn persist_and_finalize(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    verified: Verified,
    lease_id: Option<String>,
    streaming: &Streaming,
) -> bool {
    let committed = match verified.persist().await {
        Ok(committed) => committed,
        Err(error) => {
            storage_failed(gateway, &streaming.url, &error);
            return false;
        }
    };
    let media_type = streaming.head.media_type(&params.default_media_type);
    let (references, files) = match params.references {
        Some(rule) => references(rule, streaming, committed.size, &media_type).await,
        None => (Vec::new(), Vec::new()),
    };
    let finalize = FinalizeRequest {
        v: CONTRACT_VERSION,
        kind: params.kind,
        digest: committed.digest,
        size: committed.size,
        media_type,
        key: committed.key,
        lease_id,
        references,
        upstream: streaming.source.clone(),
        files,
    };
    // The object is verified and durable; a failed finalize only means the next request fills
    // again, so clients are still served.
    if let Err(error) = control_calls::finalize(gateway, params, &finalize).await {
        tracing::warn!(url = %streaming.url, %error, "finalize failed; object stays unrecorded");
    }
    true
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

/// What a stored document references, read back from its spool (a document whose references
/// are read is within the injector's `max_size`) by the injector's rule: the digests an OCI
/// manifest names, or the files a package document lists. Nothing when the spool cannot be read
/// or the document not parsed — the references are bookkeeping (pins, purges, a file's
/// checksum known ahead), never worth failing a fill for: a file no document listed has its
/// document read again by the control plane.
async fn references(
    rule: References,
    streaming: &Streaming,
    size: u64,
    media_type: &str,
) -> (Vec<Digest>, Vec<ListedFile>) {
    let Some(spool) = streaming.spool.as_ref() else {
        return (Vec::new(), Vec::new());
    };
    let mut document = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while (document.len() as u64) < size {
        let want = usize::try_from(size - document.len() as u64).unwrap_or(usize::MAX);
        match spool.read_at(document.len() as u64, want).await {
            Ok(chunk) if !chunk.is_empty() => document.extend_from_slice(&chunk),
            _ => return (Vec::new(), Vec::new()),
        }
    }
    match rule {
        References::OciManifest => (oci::media::manifest_references(&document), Vec::new()),
        References::NpmPackument | References::PypiProjectPage | References::CargoIndexFile => {
            let media_type = media_type.to_owned();
            // Parsing a large packument is CPU work: off the runtime's workers.
            let files =
                tokio::task::spawn_blocking(move || injector::listed_files(rule, &document, &media_type))
                    .await;
            (Vec::new(), files.unwrap_or_default())
        }
    }
}
