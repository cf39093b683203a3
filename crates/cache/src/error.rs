//! Why a cache decision or record failed.

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The upstream failed or refused while deciding (token, HEAD).
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    #[error("metadata: {0}")]
    Metadata(#[from] metadata::MetadataError),
}
