//! Errors of the metadata layer.

use crate::url::DatabaseUrl;

/// Errors of the metadata layer.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0} (use sqlite:… or postgres://…)")]
    UnsupportedUrl(DatabaseUrl),
    #[error("stored digest {0:?} is invalid")]
    CorruptDigest(String),
    #[error("stored group path {0:?} is invalid")]
    CorruptGroup(String),
    #[error("an active access token is already named {0:?}")]
    NameTaken(String),
    #[error("cannot create the database file: {0}")]
    CreateFile(#[source] std::io::Error),
}

pub(crate) type Result<T> = std::result::Result<T, MetadataError>;
