//! The package formats' names (npm, PyPI): which document a group holds for a package, and which
//! files its documents list — with the checksum the upstream published for each and, once stored,
//! the sha256 digest of its blob row. The bytes themselves are blob rows: a name whose blob row is
//! gone (evicted, purged) reads as not stored.

use oci::{Digest, GroupPath};

use crate::error::{MetadataError, Result};
use crate::objects::to_sql_size;
use crate::pool::{Metadata, Pool};

/// Names a package document: a group's package, in one variant (`full`, `abbreviated`, `html`,
/// `json`: what the upstream was asked for).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentKey {
    pub group: GroupPath,
    pub package: String,
    pub variant: String,
}

/// A cached package document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub upstream: String,
    /// When the upstream last sent or confirmed it (unix ms).
    pub checked_at: i64,
    /// Whether its blob row exists. Read-only: ignored when recording.
    pub stored: bool,
}

/// A file as a document lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileListing {
    /// Its path under the group (what clients ask for).
    pub path: String,
    pub version: String,
    /// The checksum the upstream published: `sha256`, `sha512`, `sha1`, or empty when none.
    pub algorithm: String,
    /// Lowercase hex.
    pub checksum: String,
    /// Where the upstream said it is (absolute URL).
    pub url: String,
}

/// A listed file, and its blob once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub package: String,
    pub listing: FileListing,
    /// The upstream whose document listed it (empty: not known).
    pub upstream: String,
    /// Its stored bytes' digest, when its blob row exists.
    pub stored: Option<StoredFile>,
}

/// Where a stored file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    digest: String,
    size: i64,
    media_type: String,
    upstream: String,
    checked_at: i64,
    stored: i64,
}

#[derive(sqlx::FromRow)]
struct FileRow {
    package: String,
    path: String,
    version: String,
    algorithm: String,
    checksum: String,
    url: String,
    upstream: String,
    digest: String,
    size: i64,
    media_type: Option<String>,
}

fn parse_digest(text: String) -> Result<Digest> {
    text.parse().map_err(|_| MetadataError::CorruptDigest(text))
}

/// A document listing files again keeps what is stored of each, unless its checksum changed
/// (the upstream republished it): then it is fetched and verified again.
const LIST_FILE_SQL: &str = "INSERT INTO package_files \
     (group_path, path, package, version, algorithm, checksum, url, upstream, listed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (group_path, path) DO UPDATE SET package = excluded.package, \
     version = excluded.version, url = excluded.url, upstream = excluded.upstream, \
     listed_at = excluded.listed_at, \
     digest = CASE WHEN package_files.algorithm = excluded.algorithm \
         AND package_files.checksum = excluded.checksum THEN package_files.digest ELSE '' END, \
     algorithm = excluded.algorithm, checksum = excluded.checksum";

impl Metadata {
    pub async fn find_package_document(&self, key: &DocumentKey) -> Result<Option<DocumentRecord>> {
        const SQL: &str = "SELECT d.digest, d.size, d.media_type, d.upstream, d.checked_at, \
             CAST(CASE WHEN b.digest IS NULL THEN 0 ELSE 1 END AS BIGINT) AS stored \
             FROM package_documents d LEFT JOIN blobs b \
             ON b.group_path = d.group_path AND b.digest = d.digest \
             WHERE d.group_path = $1 AND d.package = $2 AND d.variant = $3";
        let row: Option<DocumentRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(key.group.as_str())
            .bind(&key.package)
            .bind(&key.variant)
            .fetch_optional(pool)
            .await?);
        row.map(|row| {
            Ok(DocumentRecord {
                digest: parse_digest(row.digest)?,
                size: row.size as u64,
                media_type: row.media_type,
                upstream: row.upstream,
                checked_at: row.checked_at,
                stored: row.stored != 0,
            })
        })
        .transpose()
    }

    /// Records a document the upstream sent at `now` (its blob row recorded by the caller).
    pub async fn record_package_document(
        &self,
        key: &DocumentKey,
        record: &DocumentRecord,
        now: i64,
    ) -> Result<()> {
        const SQL: &str = "INSERT INTO package_documents \
             (group_path, package, variant, digest, size, media_type, upstream, created_at, checked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (group_path, package, variant) DO UPDATE SET digest = excluded.digest, \
             size = excluded.size, media_type = excluded.media_type, upstream = excluded.upstream, \
             checked_at = excluded.checked_at";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(&key.package)
            .bind(&key.variant)
            .bind(record.digest.to_string())
            .bind(to_sql_size(record.size))
            .bind(&record.media_type)
            .bind(&record.upstream)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The upstream confirmed the document is current.
    pub async fn mark_package_document_checked(&self, key: &DocumentKey, now: i64) -> Result<()> {
        const SQL: &str = "UPDATE package_documents SET checked_at = $4 \
             WHERE group_path = $1 AND package = $2 AND variant = $3";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(&key.package)
            .bind(&key.variant)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Records the files a document of `package` lists, as `upstream` published them, in one
    /// transaction.
    pub async fn list_package_files(
        &self,
        group: &GroupPath,
        package: &str,
        upstream: &str,
        files: &[FileListing],
        now: i64,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            for file in files {
                sqlx::query(LIST_FILE_SQL)
                    .bind(group.as_str())
                    .bind(&file.path)
                    .bind(package)
                    .bind(&file.version)
                    .bind(&file.algorithm)
                    .bind(&file.checksum)
                    .bind(&file.url)
                    .bind(upstream)
                    .bind(now)
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
        });
        Ok(())
    }

    /// The file at `path` of `group`, as its document listed it, and its blob once stored.
    pub async fn find_package_file(&self, group: &GroupPath, path: &str) -> Result<Option<FileRecord>> {
        const SQL: &str = "SELECT f.package, f.path, f.version, f.algorithm, f.checksum, f.url, \
             f.upstream, f.digest, f.size, b.media_type \
             FROM package_files f LEFT JOIN blobs b \
             ON b.group_path = f.group_path AND b.digest = f.digest \
             WHERE f.group_path = $1 AND f.path = $2";
        let row: Option<FileRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(path)
            .fetch_optional(pool)
            .await?);
        row.map(file_record).transpose()
    }

    /// Records that the file at `path` of `group` is stored as `stored` (its blob row recorded by
    /// the caller).
    pub async fn record_package_file(
        &self,
        group: &GroupPath,
        path: &str,
        stored: &StoredFile,
    ) -> Result<()> {
        const SQL: &str =
            "UPDATE package_files SET digest = $3, size = $4 WHERE group_path = $1 AND path = $2";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(group.as_str())
            .bind(path)
            .bind(stored.digest.to_string())
            .bind(to_sql_size(stored.size))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The digests a group holds for `package` — its documents' and its stored files' — and
    /// forgets its names: what a purge of the package removes.
    pub async fn forget_package(&self, group: &GroupPath, package: &str) -> Result<Vec<Digest>> {
        const DIGESTS: &str = "SELECT digest FROM package_documents WHERE group_path = $1 AND package = $2 \
             UNION SELECT digest FROM package_files WHERE group_path = $1 AND package = $2 AND digest <> ''";
        const DOCUMENTS: &str = "DELETE FROM package_documents WHERE group_path = $1 AND package = $2";
        const FILES: &str = "DELETE FROM package_files WHERE group_path = $1 AND package = $2";
        let digests: Vec<(String,)> = on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let digests = sqlx::query_as(DIGESTS)
                .bind(group.as_str())
                .bind(package)
                .fetch_all(&mut *transaction)
                .await?;
            for sql in [DOCUMENTS, FILES] {
                sqlx::query(sql).bind(group.as_str()).bind(package).execute(&mut *transaction).await?;
            }
            transaction.commit().await?;
            digests
        });
        digests.into_iter().map(|(digest,)| parse_digest(digest)).collect()
    }

    /// How many documents and stored files a group's packages have.
    pub async fn package_counts(&self, group: &GroupPath) -> Result<(u64, u64)> {
        const SQL: &str = "SELECT \
             (SELECT COUNT(*) FROM package_documents d JOIN blobs b \
                ON b.group_path = d.group_path AND b.digest = d.digest WHERE d.group_path = $1), \
             (SELECT COUNT(*) FROM package_files f JOIN blobs b \
                ON b.group_path = f.group_path AND b.digest = f.digest WHERE f.group_path = $1)";
        let (documents, files): (i64, i64) =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(group.as_str()).fetch_one(pool).await?);
        Ok((documents.max(0) as u64, files.max(0) as u64))
    }
}

fn file_record(row: FileRow) -> Result<FileRecord> {
    let stored = match (row.digest.is_empty(), row.media_type) {
        (false, Some(media_type)) => {
            Some(StoredFile { digest: parse_digest(row.digest)?, size: row.size as u64, media_type })
        }
        _ => None,
    };
    Ok(FileRecord {
        package: row.package,
        listing: FileListing {
            path: row.path,
            version: row.version,
            algorithm: row.algorithm,
            checksum: row.checksum,
            url: row.url,
        },
        upstream: row.upstream,
        stored,
    })
}
