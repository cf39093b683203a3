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
    /// A request that does not fit its group (an image of a package group, a package of an
    /// image group, a name that is no package name).
    #[error("{0}")]
    Invalid(String),
    #[error("another node took the sweep over")]
    LeaseLost,
}
