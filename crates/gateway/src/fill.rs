//! Single-flight fills: the first miss of an object starts a *detached* task that fetches it from
//! upstream into a staged upload (a temp file), publishing its progress. Every client of the
//! object — the first one too — tails that file at its own pace. Clients never own the fill: one
//! that leaves changes nothing for the others or for the cache.
//!
//! State machine (published on a `watch` channel):
//!
//! ```text
//! Connecting ──headers 2xx──▶ Streaming{spool, progress} ──verified+committed──▶ Committed
//!      │                            │
//!      └──error──▶ Failed ◀──error / mismatch / too large / idle timeout──┘
//! ```
//! The fill task dropping its sender without a final state also counts as failure. The in-flight
//! entry is removed *before* the final state is published, so a request arriving later never
//! joins a finished fill: it asks the control plane again and finds the object cached (or starts
//! a new fill after a failure).

use std::collections::HashMap;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use injector::{
    Authorization, AuthorizeRequest, CONTRACT_CONTENT_TYPE, CONTRACT_VERSION, FinalizeRequest,
    INTERNAL_TOKEN_HEADER, Purpose, SendDependency, UploadDecision,
};
use oci::{Digest, ErrorCode, ObjectKind, OciError};
use storage::{Expectation, StorageError};
use tokio::sync::watch;
use upstream::UpstreamError;

use crate::Gateway;
use crate::error::GatewayError;

/// Largest read a tailing client makes at once.
const TAIL_CHUNK: usize = 1024 * 1024;

/// What upstream said about the object in its response headers.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamHead {
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
}

/// The bytes of a running fill, readable while they are written.
pub(crate) struct Streaming {
    pub head: UpstreamHead,
    /// A read handle on the spool; positioned reads need no seek, so all clients share it, and it
    /// stays valid after the file is renamed into place or removed.
    pub file: Arc<std::fs::File>,
    /// Bytes written to the spool so far.
    pub progress: watch::Receiver<u64>,
}

/// A fill that finished and verified.
pub(crate) struct Finished {
    pub head: UpstreamHead,
    pub key: String,
    pub digest: Digest,
    pub size: u64,
    /// Whether the object is in storage (false for a pass-through fill).
    pub stored: bool,
    /// The spool it was written to, still readable by clients that joined late.
    pub streaming: Arc<Streaming>,
}

#[derive(Clone)]
pub(crate) enum FillState {
    Connecting,
    Streaming(Arc<Streaming>),
    /// The bytes checked out: readers may finish. The fill goes on making the object durable and
    /// recording it, out of every client's way.
    Verified(Arc<Finished>),
    Committed(Arc<Finished>),
    Failed(Arc<FillError>),
}

impl FillState {
    /// The verified outcome, once there is one (it never turns into a failure afterwards).
    pub(crate) fn verified(&self) -> Option<&Arc<Finished>> {
        match self {
            FillState::Verified(finished) | FillState::Committed(finished) => Some(finished),
            _ => None,
        }
    }
}

/// Why a fill failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FillError {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("upstream sent no data for {0:?}")]
    IdleTimeout(std::time::Duration),
    #[error("upstream stream broke: {0}")]
    Broken(String),
    #[error("object is {size} bytes, over the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Gateway(#[from] GatewayError),
    #[error("the fill task ended without a result")]
    Vanished,
}

impl FillError {
    /// The answer for clients that have not received a status line yet.
    pub fn to_oci(&self) -> OciError {
        match self {
            FillError::Upstream(error) => error.to_oci(),
            FillError::IdleTimeout(_) => OciError::new(ErrorCode::Unavailable, self.to_string())
                .with_status(StatusCode::GATEWAY_TIMEOUT),
            FillError::Broken(_) => {
                OciError::new(ErrorCode::Unavailable, self.to_string()).with_status(StatusCode::BAD_GATEWAY)
            }
            FillError::TooLarge { .. } | FillError::Storage(StorageError::TooLarge { .. }) => {
                OciError::new(ErrorCode::Denied, format!("{self}: refused by the proxy's size limit"))
            }
            FillError::Storage(error) if error.is_content_error() => OciError::new(
                ErrorCode::Unavailable,
                format!("upstream sent content that failed verification: {error}"),
            )
            .with_status(StatusCode::BAD_GATEWAY),
            FillError::Storage(_) | FillError::Gateway(_) | FillError::Vanished => {
                OciError::internal("the proxy could not store the object")
            }
        }
    }
}

/// The fills running on this node, by fill key.
pub struct Fills {
    inflight: Mutex<HashMap<String, watch::Receiver<FillState>>>,
    /// How many fills run; lets tests and shutdown wait for detached fills without polling.
    running: watch::Sender<usize>,
}

impl Default for Fills {
    fn default() -> Self {
        Fills { inflight: Mutex::default(), running: watch::channel(0).0 }
    }
}

impl Fills {
    pub fn len(&self) -> usize {
        *self.running.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no fill runs.
    pub async fn wait_idle(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|count| *count == 0).await;
    }

    /// Joins the fill of `key`; when none runs, registers one and returns the sender of its
    /// state too: the caller must then run it (under a [`Running`]).
    fn join_or_register(&self, key: &str) -> (watch::Receiver<FillState>, Option<watch::Sender<FillState>>) {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = inflight.get(key) {
            return (state.clone(), None);
        }
        let (sender, receiver) = watch::channel(FillState::Connecting);
        inflight.insert(key.to_owned(), receiver.clone());
        self.running.send_replace(inflight.len());
        (receiver, Some(sender))
    }

    fn remove(&self, key: &str) {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        inflight.remove(key);
        self.running.send_replace(inflight.len());
    }
}

/// A registered fill while its task runs. [`Running::finish`] removes the in-flight entry, then
/// publishes the final state. Dropped unfinished — the fill panicked or its task was cancelled —
/// it still removes the entry, then closes the state channel, which readers take as failure: a key
/// is never left pointing at a dead fill, and `wait_idle` never waits for one.
struct Running<'a> {
    fills: &'a Fills,
    key: &'a str,
    state: watch::Sender<FillState>,
    finished: bool,
}

impl Running<'_> {
    fn finish(mut self, outcome: FillState) {
        // Removed first: a request arriving from now on asks the control plane again instead of
        // joining a finished fill.
        self.fills.remove(self.key);
        self.finished = true;
        self.state.send_replace(outcome);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            tracing::error!(key = self.key, "fill ended without a result");
            self.fills.remove(self.key);
        }
    }
}

/// Joins the fill of `params.fill_key`, starting it when none runs.
pub(crate) fn join_or_start(gateway: &Arc<Gateway>, params: SendDependency) -> watch::Receiver<FillState> {
    let (receiver, sender) = gateway.fills.join_or_register(&params.fill_key);
    if let Some(sender) = sender {
        tokio::spawn(run(gateway.clone(), params, sender));
    }
    receiver
}

async fn run(gateway: Arc<Gateway>, params: SendDependency, state: watch::Sender<FillState>) {
    let running = Running { fills: &gateway.fills, key: &params.fill_key, state, finished: false };
    let outcome = fill(&gateway, &params, &running.state).await;
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
) -> Result<Finished, FillError> {
    let mut request_headers = HeaderMap::new();
    for (name, value) in &params.headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        {
            request_headers.append(name, value);
        }
    }
    let mut response = upstream::open_stream(
        &gateway.upstream_http,
        &params.url,
        request_headers,
        params.kind,
        gateway.settings.header_timeout,
        &gateway.observability.upstream,
    )
    .await?;
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
    let authorization = authorize(gateway, params, head.content_length, None).await;
    // Keeps the fill lease alive while the bytes flow; stops when this function returns.
    let _renewal = authorization.lease_id.clone().map(|lease_id| {
        let every = Duration::from_secs(authorization.lease_seconds.unwrap_or(30).max(3) / 3);
        AbortOnDrop(tokio::spawn(renew_lease(
            gateway.clone(),
            params.clone(),
            head.content_length,
            lease_id,
            every,
        )))
    });
    let limit = authorization.max_size.min(params.max_size);
    if let Some(size) = head.content_length
        && size > limit
    {
        // Refused before any byte goes out, rather than cut off at the limit.
        return Err(FillError::TooLarge { size, limit });
    }
    let upload = gateway.store.begin_upload(limit, params.expected_digest.as_ref()).await?;
    let (spool, progress) = upload.spool();
    let file = tokio::task::spawn_blocking(move || std::fs::File::open(spool.path))
        .await
        .map_err(|_| FillError::Vanished)?
        .map_err(StorageError::from)?;
    let streaming = Arc::new(Streaming { head: head.clone(), file: Arc::new(file), progress });
    state.send_replace(FillState::Streaming(streaming.clone()));

    let mut upload = upload;
    let idle = gateway.settings.idle_timeout;
    loop {
        match tokio::time::timeout(idle, response.chunk()).await {
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
    let media_type = match params.kind {
        ObjectKind::Blob => head.content_type.clone().unwrap_or_else(|| oci::media::OCTET_STREAM.to_owned()),
        ObjectKind::Manifest => head.content_type.clone().unwrap_or_default(),
    };
    match authorization.decision {
        UploadDecision::Store => {
            let verified = upload.verify(&expected).await?;
            let (digest, size) = (verified.digest().clone(), verified.size());
            let key = storage::key_for(&digest);
            // Clients finish now; fsync (or the multipart completion) and finalize are the fill's
            // business, not theirs.
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
                    if let Err(error) = call_upload(gateway, &params.upload.finalize, &finalize).await {
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

/// Asks the control plane whether to store. If it cannot answer, the client is still served:
/// the bytes stream through uncached.
/// Aborts a helper task when its owner is done.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn renew_lease(
    gateway: Arc<Gateway>,
    params: SendDependency,
    size: Option<u64>,
    lease_id: String,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let answer = authorize(&gateway, &params, size, Some(lease_id.clone())).await;
        if !matches!(answer.decision, UploadDecision::Store) {
            // Another node took over after our lease lapsed; both commit the same verified bytes,
            // so this fill simply goes on.
            tracing::warn!(url = %params.url, "fill lease lost");
            return;
        }
    }
}

async fn authorize(
    gateway: &Gateway,
    params: &SendDependency,
    size: Option<u64>,
    renew: Option<String>,
) -> Authorization {
    let call = AuthorizeRequest {
        v: CONTRACT_VERSION,
        kind: params.kind,
        digest: params.expected_digest.clone(),
        size,
        node: gateway.settings.node_id.clone(),
        renew,
    };
    let answer = match call_upload(gateway, &params.upload.authorize, &call).await {
        Ok(body) => serde_json::from_slice::<Authorization>(&body)
            .map_err(|error| GatewayError::BadControlAnswer(error.to_string())),
        Err(error) => Err(error),
    };
    answer.unwrap_or_else(|error| {
        tracing::warn!(url = %params.url, %error, "upload authorize failed; streaming without caching");
        Authorization {
            v: CONTRACT_VERSION,
            decision: UploadDecision::Passthrough { reason: format!("authorize failed: {error}") },
            max_size: params.max_size,
            lease_id: None,
            lease_seconds: None,
        }
    })
}

/// POSTs an upload call to the control plane and returns its body on 2xx.
async fn call_upload<T: serde::Serialize>(
    gateway: &Gateway,
    path: &str,
    body: &T,
) -> Result<Bytes, GatewayError> {
    let json = serde_json::to_vec(body).map_err(|error| GatewayError::BadControlAnswer(error.to_string()))?;
    let token = HeaderValue::try_from(gateway.signer.sign(Purpose::Upload)?)
        .map_err(|_| GatewayError::ControlUnreachable("token is not a header value".into()))?;
    let mut request = Request::new(Body::from(json));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() =
        path.parse().map_err(|_| GatewayError::BadControlAnswer(format!("bad upload path {path:?}")))?;
    request.headers_mut().insert(INTERNAL_TOKEN_HEADER, token);
    request.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTRACT_CONTENT_TYPE));
    let response = gateway.control.call(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map_err(|error| GatewayError::ControlUnreachable(error.to_string()))?;
    if !status.is_success() {
        tracing::warn!(%status, path, body = %String::from_utf8_lossy(&body), "control plane refused an upload call");
        return Err(GatewayError::ControlRefused(status));
    }
    Ok(body)
}

/// Waits until the fill has left `Connecting`.
pub(crate) async fn started(state: &mut watch::Receiver<FillState>) -> FillState {
    match state.wait_for(|current| !matches!(current, FillState::Connecting)).await {
        Ok(current) => current.clone(),
        Err(_) => FillState::Failed(Arc::new(FillError::Vanished)),
    }
}

/// Waits until the fill is committed or failed.
pub(crate) async fn finished(
    state: &mut watch::Receiver<FillState>,
) -> Result<Arc<Finished>, Arc<FillError>> {
    match state
        .wait_for(|current| current.verified().is_some() || matches!(current, FillState::Failed(_)))
        .await
    {
        Ok(current) => match &*current {
            FillState::Verified(finished) | FillState::Committed(finished) => Ok(finished.clone()),
            FillState::Failed(error) => Err(error.clone()),
            _ => Err(Arc::new(FillError::Vanished)),
        },
        Err(_) => Err(Arc::new(FillError::Vanished)),
    }
}

/// One client's position in a running fill. Yields bytes as they land in the spool; withholds
/// the last byte written until the fill is verified, so a client never sees a complete response
/// (nor every byte of an object it knows the size of) for content that then fails its check.
pub(crate) struct Tail {
    streaming: Arc<Streaming>,
    progress: watch::Receiver<u64>,
    state: watch::Receiver<FillState>,
    offset: u64,
    progress_open: bool,
    done: bool,
}

impl Tail {
    pub fn new(streaming: Arc<Streaming>, state: watch::Receiver<FillState>) -> Self {
        let progress = streaming.progress.clone();
        Tail { streaming, progress, state, offset: 0, progress_open: true, done: false }
    }

    /// The next chunk, `None` at the verified end, an error when the fill failed.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        loop {
            let terminal = match &*self.state.borrow() {
                FillState::Verified(finished) | FillState::Committed(finished) => Some(Ok(finished.size)),
                FillState::Failed(error) => Some(Err(error.to_string())),
                _ => None,
            };
            let readable = match terminal {
                Some(Err(message)) => {
                    self.done = true;
                    return Some(Err(std::io::Error::other(message)));
                }
                Some(Ok(size)) => {
                    if self.offset >= size {
                        self.done = true;
                        return None;
                    }
                    size
                }
                // Until the fill is verified the last byte written stays back, with or without a
                // Content-Length: a client that stops at the size it expects (or a chunked body
                // that happens to be whole) never holds a complete body that then fails.
                None => self.progress.borrow().saturating_sub(1),
            };
            if self.offset < readable {
                let length = (readable - self.offset).min(TAIL_CHUNK as u64) as usize;
                return Some(self.read(length).await);
            }
            tokio::select! {
                changed = self.progress.changed(), if self.progress_open => {
                    if changed.is_err() {
                        self.progress_open = false;
                    }
                }
                changed = self.state.changed() => {
                    let terminal = {
                        let state = self.state.borrow();
                        state.verified().is_some() || matches!(&*state, FillState::Failed(_))
                    };
                    if changed.is_err() && !terminal {
                        self.done = true;
                        return Some(Err(std::io::Error::other(FillError::Vanished.to_string())));
                    }
                }
            }
        }
    }

    async fn read(&mut self, length: usize) -> Result<Bytes, std::io::Error> {
        let file = self.streaming.file.clone();
        let offset = self.offset;
        let chunk = tokio::task::spawn_blocking(move || -> Result<Bytes, std::io::Error> {
            let mut buffer = BytesMut::zeroed(length);
            let read = file.read_at(&mut buffer, offset)?;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "spool shorter than published",
                ));
            }
            buffer.truncate(read);
            Ok(buffer.freeze())
        })
        .await
        .map_err(std::io::Error::other)??;
        self.offset += chunk.len() as u64;
        Ok(chunk)
    }

    /// The tail as a response body stream.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut tail| async move {
            tail.next_chunk().await.map(|item| (item, tail))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fill_that_dies_without_a_result_frees_its_key_and_fails_its_readers() {
        let fills = Fills::default();
        let (mut reader, sender) = fills.join_or_register("key");
        let sender = sender.unwrap();
        let (joined, none) = fills.join_or_register("key");
        assert!(none.is_none(), "a second caller joins");
        assert_eq!(fills.len(), 1);
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _running = Running { fills: &fills, key: "key", state: sender, finished: false };
            panic!("the fill panics");
        }));
        assert!(died.is_err());
        assert!(fills.is_empty(), "the entry is gone");
        fills.wait_idle().await;
        for state in [&mut reader, &mut joined.clone()] {
            match started(state).await {
                FillState::Failed(error) => assert!(matches!(*error, FillError::Vanished)),
                _ => panic!("a reader of a dead fill must see a failure"),
            }
        }
        let (_, sender) = fills.join_or_register("key");
        assert!(sender.is_some(), "the next request starts a new fill");
    }

    #[tokio::test]
    async fn finishing_frees_the_key_and_publishes_the_outcome() {
        let fills = Fills::default();
        let (mut reader, sender) = fills.join_or_register("key");
        let running = Running { fills: &fills, key: "key", state: sender.unwrap(), finished: false };
        running.finish(FillState::Failed(Arc::new(FillError::Broken("test".into()))));
        assert!(fills.is_empty());
        assert!(matches!(started(&mut reader).await, FillState::Failed(_)));
        assert!(matches!(
            finished(&mut reader).await,
            Err(error) if matches!(*error, FillError::Broken(_))
        ));
    }
}
