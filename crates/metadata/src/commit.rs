//! Recording a stored object, atomically with its fill lease: a row is written only while no
//! sweeper is deleting that object, so a fill's commit and a sweeper's delete can never leave a row
//! pointing at a deleted object (see `sweep.rs` for the sweeper's side of the handshake).

use oci::{Digest, GroupPath, Reference};

use crate::error::Result;
use crate::objects::{BlobRecord, ManifestKey, ManifestRecord, RECORD_MANIFEST_SQL, to_sql_size};
use crate::pool::{Metadata, Pool};

/// Lease holders that delete objects start with this, so a commit can tell them from fills.
pub const SWEEPER_HOLDER_PREFIX: &str = "sweeper:";

/// How a commit claims its object against sweepers.
#[derive(Debug, Clone, Copy)]
pub enum CommitLease<'a> {
    /// The fill took a lease when it was authorized (its digest was known).
    Held { id: &'a str },
    /// The fill had none (a manifest fetched by tag): take one for the commit itself.
    Take { holder: &'a str, ttl_ms: i64 },
}

/// Whether the commit recorded the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Recorded,
    /// A sweeper is deleting (or has deleted) the object; nothing was recorded.
    Refused,
}

#[derive(sqlx::FromRow)]
struct LeaseRow {
    holder: String,
    lease_id: String,
    expires_at: i64,
}

/// What a commit may do given the object's lease row.
enum Claim {
    Refuse,
    /// Record, then delete the lease `id` (ours).
    RecordAndRelease(String),
    /// Record and leave the lease alone (a sibling fill holds it; it protects the object too).
    Record,
}

fn claim(row: Option<LeaseRow>, ours: &str, now: i64) -> Claim {
    match row {
        None => Claim::Refuse,
        Some(row) if row.lease_id == ours => Claim::RecordAndRelease(row.lease_id),
        Some(row) if row.holder.starts_with(SWEEPER_HOLDER_PREFIX) && row.expires_at >= now => Claim::Refuse,
        Some(_) => Claim::Record,
    }
}

/// Takes a lease for a commit that had none: inserted, or taken over when expired.
const TAKE_SQL: &str = "INSERT INTO fill_leases (object_digest, holder, lease_id, expires_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (object_digest) DO UPDATE SET holder = excluded.holder, \
     lease_id = excluded.lease_id, expires_at = excluded.expires_at WHERE fill_leases.expires_at < $5";
const RELEASE_SQL: &str = "DELETE FROM fill_leases WHERE object_digest = $1 AND lease_id = $2";
// `created_at` is when the object was last recorded (quotas spare what was recorded a moment ago).
const UPSERT_BLOB_SQL: &str = "INSERT INTO blobs (group_path, digest, size, media_type, created_at, read_at, upstream) \
     VALUES ($1, $2, $3, $4, $5, $5, $6) \
     ON CONFLICT (group_path, digest) DO UPDATE SET size = excluded.size, \
     media_type = excluded.media_type, created_at = excluded.created_at, read_at = excluded.read_at, \
     upstream = excluded.upstream";
const INSERT_REF_SQL: &str = "INSERT INTO manifest_refs (group_path, manifest_digest, child_digest) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// Runs a commit: claim the object's lease, write `$rows`, release. `$tx` names the transaction
/// inside `$rows`. SQLite takes the write lock at `BEGIN IMMEDIATE`; PostgreSQL locks the lease row
/// (`FOR UPDATE`), which is what a sweeper's claim conflicts on.
macro_rules! commit_with_lease {
    ($db:expr, $digest:expr, $lease:expr, $now:expr, |$tx:ident| $rows:block) => {{
        let digest_text = $digest.to_string();
        let fresh_id = uuid::Uuid::new_v4().to_string();
        on_pool!($db, |pool| {
            let mut $tx = match &$db.pool {
                Pool::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Pool::Postgres(_) => pool.begin().await?,
            };
            let ours = match $lease {
                CommitLease::Held { id } => id.to_owned(),
                CommitLease::Take { holder, ttl_ms } => {
                    sqlx::query(TAKE_SQL)
                        .bind(&digest_text)
                        .bind(holder)
                        .bind(&fresh_id)
                        .bind($now + ttl_ms)
                        .bind($now)
                        .execute(&mut *$tx)
                        .await?;
                    fresh_id.clone()
                }
            };
            let lock = if $db.shared_by_nodes() { " FOR UPDATE" } else { "" };
            let select =
                format!("SELECT holder, lease_id, expires_at FROM fill_leases WHERE object_digest = $1{lock}");
            let row: Option<LeaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(select))
                .bind(&digest_text)
                .fetch_optional(&mut *$tx)
                .await?;
            match claim(row, &ours, $now) {
                Claim::Refuse => {
                    $tx.rollback().await?;
                    Committed::Refused
                }
                decision => {
                    $rows
                    if let Claim::RecordAndRelease(id) = decision {
                        sqlx::query(RELEASE_SQL).bind(&digest_text).bind(id).execute(&mut *$tx).await?;
                    }
                    $tx.commit().await?;
                    Committed::Recorded
                }
            }
        })
    }};
}

impl Metadata {
    /// Records a stored blob of `group` unless a sweeper is deleting its object.
    pub async fn commit_blob(
        &self,
        group: &GroupPath,
        record: &BlobRecord,
        lease: CommitLease<'_>,
        now: i64,
    ) -> Result<Committed> {
        let outcome = commit_with_lease!(self, record.digest, lease, now, |transaction| {
            sqlx::query(UPSERT_BLOB_SQL)
                .bind(group.as_str())
                .bind(record.digest.to_string())
                .bind(to_sql_size(record.size))
                .bind(&record.media_type)
                .bind(now)
                .bind(&record.upstream)
                .execute(&mut *transaction)
                .await?;
        });
        Ok(outcome)
    }

    /// Records a stored manifest under its digest (and `tag`, when fetched by one), with what it
    /// references, unless a sweeper is deleting its object.
    pub async fn commit_manifest(
        &self,
        by_digest: &ManifestKey,
        tag: Option<&Reference>,
        record: &ManifestRecord,
        references: &[Digest],
        lease: CommitLease<'_>,
        now: i64,
    ) -> Result<Committed> {
        let digest_text = record.digest.to_string();
        let mut references_text: Vec<String> = references.iter().map(Digest::to_string).collect();
        references_text.sort();
        references_text.dedup();
        let mut references_of = vec![by_digest.reference.to_string()];
        references_of.extend(tag.map(Reference::to_string));
        let outcome = commit_with_lease!(self, record.digest, lease, now, |transaction| {
            for reference in &references_of {
                sqlx::query(RECORD_MANIFEST_SQL)
                    .bind(by_digest.group.as_str())
                    .bind(by_digest.image.as_str())
                    .bind(reference)
                    .bind(&digest_text)
                    .bind(&record.media_type)
                    .bind(to_sql_size(record.size))
                    .bind(now)
                    .bind(record.checked_at)
                    .bind(&record.upstream)
                    .execute(&mut *transaction)
                    .await?;
            }
            for child in &references_text {
                sqlx::query(INSERT_REF_SQL)
                    .bind(by_digest.group.as_str())
                    .bind(&digest_text)
                    .bind(child)
                    .execute(&mut *transaction)
                    .await?;
            }
        });
        Ok(outcome)
    }
}
