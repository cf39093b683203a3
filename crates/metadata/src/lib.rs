//! The metadata database: which objects each group has cached, tag → digest mappings with their
//! freshness, fill leases across nodes, and access tokens (by hash). SQLite (default) and
//! PostgreSQL share one set of queries and one test suite; each has its own migrations.
//!
//! Every write is an upsert on a unique key: concurrent finalizes of one object are normal.

use std::str::FromStr as _;
use std::time::Duration;

use oci::{Digest, GroupPath, Reference, RepositoryName};
use sqlx::migrate::MigrateDatabase as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
}

type Result<T> = std::result::Result<T, MetadataError>;

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same statement on whichever backend the database uses.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A database URL. Its password never appears in `Debug` or `Display` (logs, errors,
/// `check-config`); [`DatabaseUrl::expose`] gives the real one to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut parsed) if parsed.password().is_some() => {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
                parsed.to_string()
            }
            Ok(_) => self.0.clone(),
            // Not a URL we can parse: show only its scheme, in case a password hides in it.
            Err(_) => match self.0.split_once(':') {
                Some((scheme, _)) => format!("{scheme}:***"),
                None => "***".to_owned(),
            },
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

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
}

#[derive(sqlx::FromRow)]
struct BlobRow {
    digest: String,
    size: i64,
    media_type: String,
}

#[derive(sqlx::FromRow)]
struct ManifestRow {
    digest: String,
    media_type: String,
    size: i64,
    checked_at: i64,
    stored: i64,
}

fn parse_digest(text: String) -> Result<Digest> {
    text.parse().map_err(|_| MetadataError::CorruptDigest(text))
}

/// Sizes are `u64` in Rust and `BIGINT` in SQL; objects never approach 2^63 bytes.
fn to_sql_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// A handle on the metadata database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metadata {
    pool: Pool,
}

impl Metadata {
    /// Connects (creating the database when missing) and runs migrations.
    pub async fn connect(database: &DatabaseUrl) -> Result<Self> {
        let url = database.expose();
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !sqlx::Postgres::database_exists(url).await? {
                // Two nodes may race to create it; losing the race is fine.
                if let Err(error) = sqlx::Postgres::create_database(url).await
                    && !sqlx::Postgres::database_exists(url).await?
                {
                    return Err(error.into());
                }
            }
            let pool = PgPoolOptions::new().max_connections(16).connect(url).await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(MetadataError::UnsupportedUrl(database.clone()));
        };
        Ok(Metadata { pool })
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Whether several nodes may share this database (PostgreSQL), so that work on one object —
    /// a fill — must be coordinated between them. A SQLite file belongs to one node.
    pub fn shared_by_nodes(&self) -> bool {
        match self.pool {
            Pool::Sqlite(_) => false,
            Pool::Postgres(_) => true,
        }
    }

    pub async fn find_blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>> {
        const SQL: &str = "SELECT digest, size, media_type FROM blobs WHERE group_path = $1 AND digest = $2";
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
            })
        })
        .transpose()
    }

    /// Records a blob of `group`.
    pub async fn upsert_blob(&self, group: &GroupPath, record: &BlobRecord, now: i64) -> Result<()> {
        const SQL: &str = "INSERT INTO blobs (group_path, digest, size, media_type, created_at, read_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (group_path, digest) DO UPDATE SET size = excluded.size, \
             media_type = excluded.media_type, read_at = excluded.read_at";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(group.as_str())
            .bind(record.digest.to_string())
            .bind(to_sql_size(record.size))
            .bind(&record.media_type)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn find_manifest(&self, key: &ManifestKey) -> Result<Option<ManifestRecord>> {
        const SQL: &str = "SELECT m.digest, m.media_type, m.size, m.checked_at, \
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
            })
        })
        .transpose()
    }

    /// Records (or re-points) a manifest reference, confirmed by upstream at `now`.
    pub async fn upsert_manifest(&self, key: &ManifestKey, record: &ManifestRecord, now: i64) -> Result<()> {
        const SQL: &str = "INSERT INTO manifests \
             (group_path, image, reference, digest, media_type, size, created_at, checked_at, read_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7) \
             ON CONFLICT (group_path, image, reference) DO UPDATE SET digest = excluded.digest, \
             media_type = excluded.media_type, size = excluded.size, checked_at = excluded.checked_at, \
             read_at = excluded.read_at";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.reference.to_string())
            .bind(record.digest.to_string())
            .bind(&record.media_type)
            .bind(to_sql_size(record.size))
            .bind(now)
            .bind(record.checked_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
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

    /// Takes the fill lease of `digest` for `holder` unless another holder has a live one.
    /// Returns whether `holder` now holds it.
    pub async fn acquire_lease(
        &self,
        digest: &Digest,
        holder: &str,
        lease_id: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        const SQL: &str = "INSERT INTO fill_leases (object_digest, holder, lease_id, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (object_digest) DO UPDATE SET holder = excluded.holder, \
             lease_id = excluded.lease_id, expires_at = excluded.expires_at \
             WHERE fill_leases.expires_at < $5 OR fill_leases.holder = excluded.holder";
        let result = on_pool!(self, |pool| sqlx::query(SQL)
            .bind(digest.to_string())
            .bind(holder)
            .bind(lease_id)
            .bind(now + ttl_ms)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(result == 1)
    }

    /// Extends a lease still held under `lease_id`. Returns whether it was.
    pub async fn renew_lease(&self, digest: &Digest, lease_id: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        const SQL: &str = "UPDATE fill_leases SET expires_at = $3 WHERE object_digest = $1 AND lease_id = $2";
        let result = on_pool!(self, |pool| sqlx::query(SQL)
            .bind(digest.to_string())
            .bind(lease_id)
            .bind(now + ttl_ms)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(result == 1)
    }

    pub async fn release_lease(&self, digest: &Digest, lease_id: &str) -> Result<()> {
        const SQL: &str = "DELETE FROM fill_leases WHERE object_digest = $1 AND lease_id = $2";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(digest.to_string())
            .bind(lease_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}

mod clock;
mod tokens;

pub use clock::Clock;
pub use tokens::AccessTokenRecord;

#[cfg(test)]
mod tests;
