//! Cached objects: blob rows and manifest rows (a tag or digest of a group's image), with the
//! freshness of tags.

use oci::{Digest, GroupPath, Reference, RepositoryName};

use crate::error::{MetadataError, Result};
use crate::pool::{Metadata, Pool};

/// Names a group's blob row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey {
    pub group: GroupPath,
    pub digest: Digest,
}

/// Names a manifest row: a group's image (as upstream names it) by tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestKey {
    pub group: GroupPath,
    pub image: RepositoryName,
    pub reference: Reference,
}

/// A cached blob of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The name of the upstream that served it (empty: not known, recorded before upstreams were).
    pub upstream: String,
}

/// A cached manifest reference of a group's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// When upstream last confirmed this reference (unix ms).
    pub checked_at: i64,
    /// Whether the manifest itself is cached (a digest row exists). A tag learned from an upstream
    /// HEAD alone points at a digest that may not be. Read-only: ignored by upserts.
    pub stored: bool,
    /// The name of the upstream that served it, or answered for the tag (empty: not known).
    pub upstream: String,
}

#[derive(sqlx::FromRow)]
struct BlobRow {
    digest: String,
    size: i64,
    media_type: String,
    upstream: String,
}

#[derive(sqlx::FromRow)]
struct ManifestRow {
    digest: String,
    media_type: String,
    size: i64,
    checked_at: i64,
    stored: i64,
    upstream: String,
}

fn parse_digest(text: String) -> Result<Digest> {
    text.parse().map_err(|_| MetadataError::CorruptDigest(text))
}

/// Sizes are `u64` in Rust and `BIGINT` in SQL; objects never approach 2^63 bytes.
pub(crate) fn to_sql_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// The one statement that records a manifest reference; `$also` are more columns set on conflict.
macro_rules! upsert_manifest_sql {
    ($($also:literal)?) => {
        concat!(
            "INSERT INTO manifests \
             (group_path, image, reference, digest, media_type, size, created_at, checked_at, read_at, upstream) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9) \
             ON CONFLICT (group_path, image, reference) DO UPDATE SET digest = excluded.digest, \
             media_type = excluded.media_type, size = excluded.size, checked_at = excluded.checked_at, \
             read_at = excluded.read_at, upstream = excluded.upstream"
            $(, ", ", $also)?
        )
    };
}

/// Re-points a reference upstream confirmed: when its object was recorded stays as it was.
const UPSERT_MANIFEST_SQL: &str = upsert_manifest_sql!();

/// A fill records the manifest: it counts as recorded now (quotas spare what was recorded a moment
/// ago).
pub(crate) const RECORD_MANIFEST_SQL: &str = upsert_manifest_sql!("created_at = excluded.created_at");

impl Metadata {
    pub async fn find_blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>> {
        const SQL: &str =
            "SELECT digest, size, media_type, upstream FROM blobs WHERE group_path = $1 AND digest = $2";
        let row: Option<BlobRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(key.group.as_str())
            .bind(key.digest.to_string())
            .fetch_optional(pool)
            .await?);
        row.map(|row| {
            Ok(BlobRecord {
                digest: parse_digest(row.digest)?,
                size: row.size as u64,
                media_type: row.media_type,
                upstream: row.upstream,
            })
        })
        .transpose()
    }

    /// Records a blob of `group`.
    pub async fn upsert_blob(&self, group: &GroupPath, record: &BlobRecord, now: i64) -> Result<()> {
        const SQL: &str = "INSERT INTO blobs (group_path, digest, size, media_type, created_at, read_at, upstream) \
             VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT (group_path, digest) DO UPDATE SET size = excluded.size, \
             media_type = excluded.media_type, read_at = excluded.read_at, upstream = excluded.upstream";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(group.as_str())
            .bind(record.digest.to_string())
            .bind(to_sql_size(record.size))
            .bind(&record.media_type)
            .bind(now)
            .bind(&record.upstream)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn find_manifest(&self, key: &ManifestKey) -> Result<Option<ManifestRecord>> {
        const SQL: &str = "SELECT m.digest, m.media_type, m.size, m.checked_at, m.upstream, \
             CAST(CASE WHEN d.reference IS NULL THEN 0 ELSE 1 END AS BIGINT) AS stored \
             FROM manifests m LEFT JOIN manifests d \
             ON d.group_path = m.group_path AND d.image = m.image AND d.reference = m.digest \
             WHERE m.group_path = $1 AND m.image = $2 AND m.reference = $3";
        let row: Option<ManifestRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.reference.to_string())
            .fetch_optional(pool)
            .await?);
        row.map(|row| {
            Ok(ManifestRecord {
                digest: parse_digest(row.digest)?,
                media_type: row.media_type,
                size: row.size as u64,
                checked_at: row.checked_at,
                stored: row.stored != 0,
                upstream: row.upstream,
            })
        })
        .transpose()
    }

    /// Records (or re-points) a manifest reference, confirmed by upstream at `now`.
    pub async fn upsert_manifest(&self, key: &ManifestKey, record: &ManifestRecord, now: i64) -> Result<()> {
        const SQL: &str = UPSERT_MANIFEST_SQL;
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.reference.to_string())
            .bind(record.digest.to_string())
            .bind(&record.media_type)
            .bind(to_sql_size(record.size))
            .bind(now)
            .bind(record.checked_at)
            .bind(&record.upstream)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The upstream that served the group's most recently recorded manifest of `image` (objects
    /// of a group with several upstreams are asked there first); `None` when not known.
    pub async fn image_upstream(&self, group: &GroupPath, image: &RepositoryName) -> Result<Option<String>> {
        const SQL: &str = "SELECT upstream FROM manifests WHERE group_path = $1 AND image = $2 \
             AND upstream <> '' ORDER BY created_at DESC LIMIT 1";
        let row: Option<(String,)> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(image.as_str())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(upstream,)| upstream))
    }

    /// Upstream confirmed the reference still points at `digest`.
    pub async fn mark_manifest_checked(&self, key: &ManifestKey, now: i64) -> Result<()> {
        const SQL: &str =
            "UPDATE manifests SET checked_at = $4 WHERE group_path = $1 AND image = $2 AND reference = $3";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.reference.to_string())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}
