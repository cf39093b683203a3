//! What a fill publishes to its readers: its state, its bytes, its outcome or why it failed.

use std::sync::Arc;

use http::StatusCode;
use oci::{Digest, ErrorCode, OciError};
use storage::{SpoolReader, StorageError};
use tokio::sync::watch;
use upstream::UpstreamError;

use super::recent::RecentChunks;
use crate::error::GatewayError;

/// What a refusal by an admission hook names as its rule (the control plane's word for it too).
const ADMISSION_RULE: &str = "admission_hook";

/// What upstream said about the object in its response headers.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamHead {
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
}

impl UpstreamHead {
    /// The media type the object is served and recorded as: upstream's `Content-Type` when it
    /// sent one, else `default` (the injector's).
    pub fn media_type(&self, default: &str) -> String {
        self.content_type.clone().unwrap_or_else(|| default.to_owned())
    }
}

/// The bytes of a running fill, readable while they arrive.
pub(crate) struct Streaming {
    pub head: UpstreamHead,
    /// The recent bytes, in memory: where followers read first.
    pub recent: Arc<RecentChunks>,
    /// Reads the spool, for followers behind the recent bytes; shared by all clients, and still
    /// readable after the upload is committed or removed. `None` when storage failed at the start.
    pub spool: Option<SpoolReader>,
    /// The upstream whose answer this is (the source that served), by its configured name.
    pub source: String,
    /// The URL it was fetched at (for logs).
    pub url: String,
    /// A held fill whose bytes are all in, waiting for its admission verdict (for the report).
    pub awaiting_verdict: std::sync::atomic::AtomicBool,
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

impl Finished {
    /// The outcome of the bytes `streaming` holds, which hashed to `digest`.
    pub(crate) fn new(streaming: Arc<Streaming>, digest: Digest, size: u64, stored: bool) -> Self {
        Finished {
            head: streaming.head.clone(),
            key: injector::storage_key(&digest),
            digest,
            size,
            stored,
            streaming,
        }
    }
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
            FillState::Connecting | FillState::Streaming(_) | FillState::Failed(_) => None,
        }
    }

    pub(crate) fn is_terminal(&self) -> bool {
        self.verified().is_some() || matches!(self, FillState::Failed(_))
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
    #[error("upstream answered with content type {content_type:?}, not {what}")]
    NotAccepted { content_type: Option<String>, what: String },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Gateway(#[from] GatewayError),
    #[error("the proxy is shutting down")]
    ShuttingDown,
    #[error("a client fell behind a fill that storage could not keep")]
    FellBehind,
    #[error("no client followed the fill, and another miss needed its slot")]
    GaveWay,
    #[error("the fill task ended without a result")]
    Vanished,
    /// A held fill's bytes, refused by the group's admission hook (the control plane's words).
    #[error("{0}")]
    Refused(String),
    /// A held fill's verdict could not be had from the control plane.
    #[error("no admission verdict: {0}")]
    NoVerdict(String),
    /// The verified file failed the injector's check of its whole content (Go's `h1:`).
    #[error("refused: {0}")]
    ArchiveCheck(String),
}

impl FillError {
    /// Whether this ending is nothing for the operator to look into: the upstream has no such
    /// object (a client's typo: the client's 404), the proxy is shutting down, or the fill gave
    /// way to another. Logged at info; the rest are warnings.
    pub(crate) fn is_expected(&self) -> bool {
        match self {
            FillError::Upstream(UpstreamError::NotFound(_))
            | FillError::ShuttingDown
            | FillError::GaveWay
            | FillError::Refused(_) => true,
            FillError::Upstream(_)
            | FillError::IdleTimeout(_)
            | FillError::Broken(_)
            | FillError::TooLarge { .. }
            | FillError::NotAccepted { .. }
            | FillError::Storage(_)
            | FillError::Gateway(_)
            | FillError::FellBehind
            | FillError::Vanished
            | FillError::NoVerdict(_)
            | FillError::ArchiveCheck(_) => false,
        }
    }

    /// Whether a fill with another source tries it after this failure, which came before any byte
    /// reached a client; `Some(true)` when the failure also counts against the upstream's health.
    /// Only the upstream's own failures move on (it has no such object, refused, is down, or
    /// answered with something that is not what was asked); the proxy's own do not.
    pub(crate) fn moves_on(&self) -> Option<bool> {
        match self {
            FillError::Upstream(error) => Some(error.counts_against_health()),
            FillError::NotAccepted { .. } => Some(false),
            FillError::IdleTimeout(_)
            | FillError::Broken(_)
            | FillError::TooLarge { .. }
            | FillError::Storage(_)
            | FillError::Gateway(_)
            | FillError::ShuttingDown
            | FillError::FellBehind
            | FillError::GaveWay
            | FillError::Vanished
            | FillError::Refused(_)
            | FillError::NoVerdict(_)
            | FillError::ArchiveCheck(_) => None,
        }
    }

    /// The answer for clients that have not received a status line yet.
    pub fn to_oci(&self) -> OciError {
        match self {
            FillError::Upstream(error) => error.to_oci(),
            FillError::IdleTimeout(_) => OciError::new(ErrorCode::Unavailable, self.to_string())
                .with_status(StatusCode::GATEWAY_TIMEOUT),
            // The type goes to the log only: it is upstream's text.
            FillError::NotAccepted { what, .. } => OciError::new(
                ErrorCode::Unavailable,
                format!("the upstream registry answered with something that is not {what}"),
            )
            .with_status(StatusCode::BAD_GATEWAY),
            // The transport error names the upstream URL (maybe presigned): it goes to the log only.
            FillError::Broken(_) => OciError::new(ErrorCode::Unavailable, "the upstream stream broke off")
                .with_status(StatusCode::BAD_GATEWAY),
            FillError::TooLarge { .. } | FillError::Storage(StorageError::TooLarge { .. }) => {
                OciError::new(ErrorCode::Denied, format!("{self}: refused by the proxy's size limit"))
            }
            FillError::Storage(error) if error.is_content_error() => OciError::new(
                ErrorCode::Unavailable,
                format!("upstream sent content that failed verification: {error}"),
            )
            .with_status(StatusCode::BAD_GATEWAY),
            FillError::ShuttingDown => OciError::new(ErrorCode::Unavailable, "the proxy is shutting down")
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header("Retry-After", "5"),
            FillError::GaveWay => OciError::new(ErrorCode::Unavailable, self.to_string())
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header("Retry-After", "1"),
            FillError::Storage(_) | FillError::Gateway(_) | FillError::Vanished | FillError::FellBehind => {
                OciError::internal("the proxy could not store the object")
            }
            FillError::Refused(message) => OciError::new(ErrorCode::Denied, message.clone())
                .with_detail(serde_json::json!({ "rule": ADMISSION_RULE })),
            // Held, never served unjudged: the control plane's trouble is the client's 503.
            FillError::NoVerdict(_) => OciError::new(
                ErrorCode::Unavailable,
                "the proxy could not have this object judged by its admission hook; retry shortly",
            )
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .with_header("Retry-After", "5"),
            FillError::ArchiveCheck(message) => OciError::new(
                ErrorCode::Unavailable,
                format!("upstream sent content that failed verification: {message}"),
            )
            .with_status(StatusCode::BAD_GATEWAY),
        }
    }
}

/// Waits until the fill has left `Connecting`.
pub(crate) async fn started(state: &mut watch::Receiver<FillState>) -> FillState {
    match state.wait_for(|current| !matches!(current, FillState::Connecting)).await {
        Ok(current) => current.clone(),
        Err(_) => FillState::Failed(Arc::new(FillError::Vanished)),
    }
}

/// Waits until the fill is verified or failed.
pub(crate) async fn finished(
    state: &mut watch::Receiver<FillState>,
) -> Result<Arc<Finished>, Arc<FillError>> {
    match state.wait_for(FillState::is_terminal).await {
        Ok(current) => match &*current {
            FillState::Verified(finished) | FillState::Committed(finished) => Ok(finished.clone()),
            FillState::Failed(error) => Err(error.clone()),
            FillState::Connecting | FillState::Streaming(_) => Err(Arc::new(FillError::Vanished)),
        },
        Err(_) => Err(Arc::new(FillError::Vanished)),
    }
}
