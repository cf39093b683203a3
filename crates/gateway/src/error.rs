//! Gateway errors and their one mapping to the OCI envelope.

use http::StatusCode;
use oci::{ErrorCode, OciError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("control plane unreachable: {0}")]
    ControlUnreachable(String),
    #[error("control plane sent an unusable injector: {0}")]
    BadInjector(#[from] injector::InjectorError),
    #[error("control plane answered an upload call with {0}")]
    ControlRefused(StatusCode),
    #[error("control plane answer is not valid JSON: {0}")]
    BadControlAnswer(String),
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("signing: {0}")]
    Signing(#[from] injector::SignatureError),
}

impl GatewayError {
    pub fn to_oci(&self) -> OciError {
        match self {
            GatewayError::ControlUnreachable(_) => {
                OciError::new(ErrorCode::Unavailable, "control plane unavailable")
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            _ => OciError::internal("internal error in the gateway"),
        }
    }
}
