//! The metadata database: which objects each group has cached, tag → digest mappings with their
//! freshness, the referrers API's lists, when each was last read, fill leases across nodes, the
//! lifecycle's bookkeeping (deletions queued, traffic, jobs, maintenance leases), access tokens (by
//! hash), the admission hooks' verdicts, and the package formats' documents and the files they list. SQLite (default) and PostgreSQL share one set of
//! queries and one test suite; each has its own migrations.
//!
//! Every write is an upsert on a unique key: concurrent finalizes of one object are normal.

#[macro_use]
mod pool;
mod clock;
mod commit;
mod error;
mod jobs;
mod leases;
mod objects;
mod packages;
mod reads;
mod referrers;
#[macro_use]
mod sweep;
mod tokens;
mod url;
mod verdicts;
mod watch;

pub use clock::Clock;
pub use commit::{CommitLease, Committed, SWEEPER_HOLDER_PREFIX};
pub use error::MetadataError;
pub use jobs::JobRecord;
pub use objects::{BlobKey, BlobRecord, ManifestKey, ManifestRecord};
pub use packages::{
    DocumentKey, DocumentRecord, FileListing, FileRecord, PackageObject, ServedFile, StoredAs, StoredFile,
};
pub use pool::Metadata;
pub use reads::{HourlyTraffic, Reads, Traffic};
pub use referrers::{ReferrersAnswer, ReferrersKey, ReferrersRecord};
pub use sweep::{Cursor, GroupUsage, ObjectRow, Removed, StoredDigest, TagRow, UpstreamUsage};
pub use tokens::AccessTokenRecord;
pub use url::DatabaseUrl;
pub use verdicts::VerdictRecord;
pub use watch::RemovalWatch;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
