//! The control plane's error type and its single mapping to the OCI envelope.

use oci::OciError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A client-facing answer decided by policy or validation.
    #[error("{0}")]
    Oci(#[from] OciError),
    #[error("{0}")]
    Upstream(#[from] upstream::UpstreamError),
    #[error("metadata: {0}")]
    Metadata(#[from] metadata::MetadataError),
    #[error("injector: {0}")]
    Injector(#[from] injector::InjectorError),
    /// The gateway sent an upload call that does not fit the contract.
    #[error("bad upload call: {0}")]
    BadUploadCall(String),
}

impl ControlError {
    pub fn to_oci(&self) -> OciError {
        match self {
            ControlError::Oci(error) => error.clone(),
            ControlError::Upstream(error) => error.to_oci(),
            ControlError::Metadata(_) | ControlError::Injector(_) => {
                OciError::internal("internal error in the control plane")
            }
            ControlError::BadUploadCall(message) => {
                OciError::new(oci::ErrorCode::Unsupported, message.clone())
                    .with_status(http::StatusCode::BAD_REQUEST)
            }
        }
    }
}
