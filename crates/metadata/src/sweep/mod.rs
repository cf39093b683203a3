//! What the sweeper and purges need: objects of a group oldest-read first, removing rows (an
//! object whose last row goes is queued for deletion), the delete handshake with fills, usage, and
//! coordination between nodes (one sweeper at a time; a generation counter, moved in the same
//! transaction as every removal — and on PostgreSQL a notification — that tells every control plane
//! to forget remembered rows; storage deletion waits until all had time to).
//!
//! The delete handshake: a sweeper deletes an object only while it holds the object's fill lease
//! (holder `sweeper:…`) and no row references the object; a fill records a row only after
//! claiming the same lease row (`commit.rs`). Whichever comes second sees the other.
//!
//! A module per job: `eviction`, `deletes`, `usage`, `purge`, and `maintenance` (the lease and
//! the generation); the rows they share are here.

use oci::{Digest, GroupPath, RepositoryName};

use crate::error::{MetadataError, Result};

/// Appends `texts` as a comma-separated list of bound values.
fn push_list<DB: sqlx::Database>(query: &mut sqlx::QueryBuilder<DB>, texts: &[String])
where
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut list = query.separated(", ");
    for text in texts {
        list.push_bind(text.as_str());
    }
}

/// In the removal's transaction `$tx`: moves the generation and, on PostgreSQL, notifies every
/// listening control plane (delivered when the transaction commits).
macro_rules! announce_removal {
    ($db:expr, $tx:ident) => {{
        sqlx::query("UPDATE maintenance SET generation = generation + 1 WHERE name = 'generation'")
            .execute(&mut *$tx)
            .await?;
        if $db.shared_by_nodes() {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind($crate::watch::REMOVALS_CHANNEL)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

mod deletes;
mod eviction;
mod maintenance;
mod purge;
mod usage;

/// A stored object as one group holds it: a blob row, or a manifest's digest row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub group: GroupPath,
    /// `None` for a blob; the image for a manifest.
    pub image: Option<RepositoryName>,
    pub digest: Digest,
    pub size: u64,
    pub read_at: i64,
    /// When the object was last recorded in this group (a fill's commit).
    pub recorded_at: i64,
}

/// A stored object across groups, for the store-wide quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDigest {
    pub digest: Digest,
    pub size: u64,
    /// The latest read by any group.
    pub read_at: i64,
    /// The latest record by any group.
    pub recorded_at: i64,
}

/// One group's share of the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupUsage {
    pub group: String,
    /// Bytes of the objects the group holds (an object shared with another group counts in both).
    pub bytes: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub tags: u64,
    /// The least recent read of any of its objects (unix ms).
    pub oldest_read: Option<i64>,
}

/// What one upstream served a group: its objects (blobs and stored manifests) and their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamUsage {
    pub group: String,
    /// The upstream's name; empty for rows recorded before upstreams were.
    pub upstream: String,
    pub objects: u64,
    pub bytes: u64,
}

/// What a removal took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Removed {
    pub objects: u64,
    pub bytes: u64,
    pub tags: u64,
}

/// A tag row: which image and tag, and where it points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub image: String,
    pub tag: String,
    pub digest: String,
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    image: Option<String>,
    digest: String,
    size: i64,
    read_at: i64,
    created_at: i64,
}

impl CandidateRow {
    fn into_object_row(self, group: &GroupPath) -> Result<ObjectRow> {
        Ok(ObjectRow {
            group: group.clone(),
            image: self.image.map(image).transpose()?,
            digest: digest(self.digest)?,
            size: self.size.max(0) as u64,
            read_at: self.read_at,
            recorded_at: self.created_at,
        })
    }
}

fn digest(text: String) -> Result<Digest> {
    text.parse().map_err(|_| MetadataError::CorruptDigest(text))
}

fn image(text: String) -> Result<RepositoryName> {
    RepositoryName::parse(&text).map_err(|_| MetadataError::CorruptGroup(text))
}

/// Keyset position in an oldest-read-first listing.
pub type Cursor = Option<(i64, String)>;

const CHUNK: usize = 500;
