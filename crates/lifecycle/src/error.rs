//! Errors of the lifecycle.

/// What can fail in a sweep, a purge or a statistics query.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Metadata(#[from] metadata::MetadataError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("no group {0:?}")]
    UnknownGroup(String),
    #[error("another node took the sweep over")]
    LeaseLost,
}
