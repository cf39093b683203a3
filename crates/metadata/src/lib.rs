//! The metadata database: which objects each group has cached, tag → digest mappings with their
//! freshness, fill leases across nodes, and access tokens (by hash). SQLite (default) and
//! PostgreSQL share one set of queries and one test suite; each has its own migrations.
//!
//! Every write is an upsert on a unique key: concurrent finalizes of one object are normal.

#[macro_use]
mod pool;
mod clock;
mod error;
mod leases;
mod objects;
mod tokens;
mod url;

pub use clock::Clock;
pub use error::MetadataError;
pub use objects::{BlobKey, BlobRecord, ManifestKey, ManifestRecord};
pub use pool::Metadata;
pub use tokens::AccessTokenRecord;
pub use url::DatabaseUrl;

#[cfg(test)]
mod tests;
