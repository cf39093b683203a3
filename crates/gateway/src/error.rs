//! Gateway errors, their one mapping to the OCI envelope, and their HTTP answer.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use oci::{ErrorCode, OciError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The control plane could not be reached, or its connection broke.
    #[error("control plane unreachable: {0}")]
    ControlUnreachable(String),
    /// The control plane's answer body could not be read.
    #[error("control plane answer unreadable: {0}")]
    ControlAnswerUnreadable(String),
    /// A client's request body was too large or broke off.
    #[error("client request body unreadable: {0}")]
    ClientBody(String),
    #[error("control plane sent an unusable injector: {0}")]
    BadInjector(#[from] injector::InjectorError),
    #[error("control plane answered an upload call with {0}")]
    ControlRefused(StatusCode),
    #[error("control plane answer is not valid JSON: {0}")]
    BadControlAnswer(String),
    /// An injector named an upload route that is not a valid path.
    #[error("injector names an invalid upload route {0:?}")]
    InvalidUploadRoute(String),
    /// Our own upload call could not be encoded (a bug).
    #[error("cannot encode an upload call: {0}")]
    EncodeCall(#[source] serde_json::Error),
    /// A header we built is not a valid header value (a bug).
    #[error("header {0} would not be a valid header value")]
    InvalidHeader(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    /// The control plane's injector is not signed for the request it answers: forged, replayed
    /// from another request, or from a control plane with another secret. Never acted on.
    #[error("refused an injector that does not verify: {0}")]
    ForgedInjector(#[source] injector::SignatureError),
    /// The control plane's URL and a request path do not make a URL (a bug or a bad flag).
    #[error("invalid control-plane URL {0}")]
    InvalidControlUrl(String),
    /// The TLS settings for the control plane cannot be used.
    #[error("control-plane TLS: {0}")]
    ControlTls(String),
    /// An injector names an upstream this gateway's configuration does not have.
    #[error("the injector names upstream {0:?}, which this gateway's configuration does not list")]
    UnknownUpstream(String),
}

impl GatewayError {
    pub fn to_oci(&self) -> OciError {
        match self {
            GatewayError::ControlUnreachable(_) | GatewayError::ControlAnswerUnreadable(_) => {
                OciError::new(ErrorCode::Unavailable, "control plane unavailable")
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            GatewayError::ClientBody(_) => {
                OciError::new(ErrorCode::Unsupported, "the request body is too large or incomplete")
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            GatewayError::BadInjector(_)
            | GatewayError::ControlRefused(_)
            | GatewayError::BadControlAnswer(_)
            | GatewayError::InvalidUploadRoute(_)
            | GatewayError::EncodeCall(_)
            | GatewayError::InvalidHeader(_)
            | GatewayError::Storage(_)
            | GatewayError::UnknownUpstream(_)
            | GatewayError::InvalidControlUrl(_)
            | GatewayError::ControlTls(_) => OciError::internal("internal error in the gateway"),
            GatewayError::ForgedInjector(_) => {
                OciError::new(ErrorCode::Unknown, "the control plane's answer did not verify")
                    .with_status(StatusCode::BAD_GATEWAY)
            }
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.to_oci().to_http_response().map(Body::from)
    }
}
