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
    /// When its content last changed (unix ms): its `Last-Modified`. A record whose digest
    /// differs from the one held sets it (to when its clients were first told it changed), the
    /// same digest keeps the one held.
    pub modified_at: i64,
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

/// Who a stored file is of and where it came from: what its row says when no document listed it.
#[derive(Debug, Clone, Copy)]
pub struct ServedFile<'a> {
    pub package: &'a str,
    pub version: &'a str,
    /// The upstream that served it, and the URL there.
    pub upstream: &'a str,
    pub url: &'a str,
    /// Unix ms.
    pub at: i64,
}

/// Whether a stored file was verified against a published checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAs {
    Verified,
    /// Its upstream published no checksum for it.
    Unverified,
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

/// An object a group's package names: a document, or a stored file with its version (as its
/// document listed it; empty when none was) and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageObject {
    pub package: String,
    /// `(version, path)` of a file; `None` for a document.
    pub file: Option<(String, String)>,
    /// The blob's digest, as text.
    pub digest: String,
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    digest: String,
    size: i64,
    media_type: String,
    upstream: String,
    checked_at: i64,
    created_at: i64,
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
        const SQL: &str = "SELECT d.digest, d.size, d.media_type, d.upstream, d.checked_at, d.created_at, \
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
                modified_at: row.created_at,
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8) \
             ON CONFLICT (group_path, package, variant) DO UPDATE SET \
             created_at = CASE WHEN package_documents.digest = excluded.digest \
             THEN package_documents.created_at ELSE excluded.created_at END, digest = excluded.digest, \
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
            .bind(record.modified_at)
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
        served: &ServedFile<'_>,
    ) -> Result<StoredAs> {
        // A file no document lists and no checksum verifies is first listed here, by its fill;
        // one listed with no upstream (the first that has it serves it) names the one that did.
        const SQL: &str = "INSERT INTO package_files \
             (group_path, path, package, version, algorithm, checksum, url, upstream, digest, size, listed_at) \
             VALUES ($1, $2, $5, $6, '', '', $7, $8, $3, $4, $9) \
             ON CONFLICT (group_path, path) DO UPDATE SET digest = excluded.digest, size = excluded.size, \
             upstream = CASE WHEN package_files.upstream = '' THEN excluded.upstream \
             ELSE package_files.upstream END \
             RETURNING CAST(CASE WHEN algorithm = '' THEN 1 ELSE 0 END AS BIGINT)";
        let (unverified,): (i64,) = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(path)
            .bind(stored.digest.to_string())
            .bind(to_sql_size(stored.size))
            .bind(served.package)
            .bind(served.version)
            .bind(served.url)
            .bind(served.upstream)
            .bind(served.at)
            .fetch_one(pool)
            .await?);
        Ok(if unverified != 0 { StoredAs::Unverified } else { StoredAs::Verified })
    }

    /// How many stored files of `group` were recorded unverified: no checksum was published.
    pub async fn count_unverified_files(&self, group: &GroupPath) -> Result<u64> {
        const SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM package_files \
             WHERE group_path = $1 AND algorithm = '' AND digest <> ''";
        let (count,): (i64,) =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(group.as_str()).fetch_one(pool).await?);
        Ok(u64::try_from(count).unwrap_or(0))
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

    /// The digests a group holds for `package` (its documents' and its stored files'), its names
    /// kept: what a purge of what the package did not read for a while looks at.
    pub async fn package_digests(&self, group: &GroupPath, package: &str) -> Result<Vec<Digest>> {
        const SQL: &str = "SELECT digest FROM package_documents WHERE group_path = $1 AND package = $2 \
             UNION SELECT digest FROM package_files WHERE group_path = $1 AND package = $2 AND digest <> ''";
        let digests: Vec<(String,)> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(package)
            .fetch_all(pool)
            .await?);
        digests.into_iter().map(|(digest,)| parse_digest(digest)).collect()
    }

    /// Of `digests`, those a document or stored file of a package of `group` other than `except`
    /// still names (two packages may hold identical bytes): a purge of `except` keeps their blob
    /// rows.
    pub async fn package_digests_named(
        &self,
        group: &GroupPath,
        digests: &[String],
        except: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let mut named = std::collections::HashSet::new();
        for chunk in digests.chunks(500) {
            let found: Vec<(String,)> = on_pool!(self, |pool| {
                let mut query =
                    sqlx::QueryBuilder::new("SELECT digest FROM package_documents WHERE group_path = ");
                query.push_bind(group.as_str());
                query.push(" AND package <> ");
                query.push_bind(except);
                query.push(" AND digest IN (");
                let mut list = query.separated(", ");
                for digest in chunk {
                    list.push_bind(digest.as_str());
                }
                query.push(") UNION SELECT digest FROM package_files WHERE group_path = ");
                query.push_bind(group.as_str());
                query.push(" AND package <> ");
                query.push_bind(except);
                query.push(" AND digest IN (");
                let mut list = query.separated(", ");
                for digest in chunk {
                    list.push_bind(digest.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            named.extend(found.into_iter().map(|(digest,)| digest));
        }
        Ok(named)
    }

    /// Forgets every package name of `group` (a purge of the whole group): its documents and the
    /// files they listed. Returns how many names went.
    pub async fn forget_packages_of_group(&self, group: &GroupPath) -> Result<u64> {
        const DOCUMENTS: &str = "DELETE FROM package_documents WHERE group_path = $1";
        const FILES: &str = "DELETE FROM package_files WHERE group_path = $1";
        Ok(on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let mut gone = 0;
            for sql in [DOCUMENTS, FILES] {
                gone +=
                    sqlx::query(sql).bind(group.as_str()).execute(&mut *transaction).await?.rows_affected();
            }
            transaction.commit().await?;
            gone
        }))
    }

    /// Every stored object a group's packages name: each document (no version) and each stored
    /// file (with its version as listed, and its path) — what the group's pins are matched
    /// against.
    pub async fn package_objects(&self, group: &GroupPath) -> Result<Vec<PackageObject>> {
        const SQL: &str = "SELECT package, CAST(NULL AS TEXT) AS version, CAST(NULL AS TEXT) AS path, digest \
             FROM package_documents WHERE group_path = $1 \
             UNION ALL SELECT package, version, path, digest FROM package_files \
             WHERE group_path = $1 AND digest <> ''";
        let rows: Vec<(String, Option<String>, Option<String>, String)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(group.as_str()).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(package, version, path, digest)| PackageObject {
                package,
                file: path.map(|path| (version.unwrap_or_default(), path)),
                digest,
            })
            .collect())
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::tests::backends;
    use crate::{BlobRecord, CommitLease};

    const TAKE: CommitLease<'static> = CommitLease::Take { holder: "node-a", ttl_ms: 30_000 };

    fn group(path: &str) -> GroupPath {
        GroupPath::parse(path).unwrap()
    }

    fn listing(path: &str, version: &str) -> FileListing {
        FileListing {
            path: path.to_owned(),
            version: version.to_owned(),
            algorithm: String::new(),
            checksum: String::new(),
            url: format!("http://npm.example.com/{path}"),
        }
    }

    /// Records `bytes` as a blob of `group` and returns its digest.
    async fn stored(db: &Metadata, group_path: &GroupPath, bytes: &[u8]) -> StoredFile {
        let record = BlobRecord {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            media_type: "application/octet-stream".into(),
            upstream: "npmjs".into(),
        };
        db.commit_blob(group_path, &record, TAKE, 10).await.unwrap();
        StoredFile { digest: record.digest, size: record.size, media_type: record.media_type }
    }

    async fn document(db: &Metadata, group_path: &GroupPath, package: &str, bytes: &[u8]) -> Digest {
        let blob = stored(db, group_path, bytes).await;
        let key = DocumentKey { group: group_path.clone(), package: package.into(), variant: "full".into() };
        let record = DocumentRecord {
            digest: blob.digest.clone(),
            size: blob.size,
            media_type: "application/json".into(),
            upstream: "npmjs".into(),
            checked_at: 10,
            modified_at: 10,
            stored: true,
        };
        db.record_package_document(&key, &record, 10).await.unwrap();
        blob.digest
    }

    #[tokio::test]
    async fn a_package_names_its_objects_and_a_purge_finds_what_others_still_name() {
        for (db, _dir) in backends().await {
            let js = group("js");
            let lodash_doc = document(&db, &js, "lodash", b"lodash packument").await;
            let react_doc = document(&db, &js, "react", b"react packument").await;
            let files = [
                listing("lodash/-/lodash-1.0.0.tgz", "1.0.0"),
                listing("lodash/-/lodash-2.0.0.tgz", "2.0.0"),
            ];
            db.list_package_files(&js, "lodash", "npmjs", &files, 10).await.unwrap();
            db.list_package_files(&js, "react", "npmjs", &[listing("react/-/react-1.0.0.tgz", "1.0.0")], 10)
                .await
                .unwrap();
            // Identical bytes in two packages: one blob row, two names.
            let shared = stored(&db, &js, b"same tarball").await;
            let served =
                |package| ServedFile { package, version: "1.0.0", upstream: "npmjs", url: "", at: 10 };
            db.record_package_file(&js, "lodash/-/lodash-1.0.0.tgz", &shared, &served("lodash"))
                .await
                .unwrap();
            db.record_package_file(&js, "react/-/react-1.0.0.tgz", &shared, &served("react")).await.unwrap();

            let mut objects = db.package_objects(&js).await.unwrap();
            objects.sort_by(|a, b| (&a.package, &a.file).cmp(&(&b.package, &b.file)));
            let described: Vec<(&str, Option<&str>)> = objects
                .iter()
                .map(|object| {
                    (object.package.as_str(), object.file.as_ref().map(|(version, _)| version.as_str()))
                })
                .collect();
            assert_eq!(
                described,
                [("lodash", None), ("lodash", Some("1.0.0")), ("react", None), ("react", Some("1.0.0"))],
                "documents, and files once stored (lodash 2.0.0 is only listed)"
            );

            let mut digests: Vec<String> =
                db.package_digests(&js, "lodash").await.unwrap().iter().map(ToString::to_string).collect();
            digests.sort();
            let mut expected = vec![lodash_doc.to_string(), shared.digest.to_string()];
            expected.sort();
            assert_eq!(digests, expected);
            let named = db.package_digests_named(&js, &digests, "lodash").await.unwrap();
            assert_eq!(named, HashSet::from([shared.digest.to_string()]), "react names the shared tarball");

            let forgotten = db.forget_package(&js, "lodash").await.unwrap();
            assert_eq!(forgotten.len(), 2);
            assert!(db.package_digests(&js, "lodash").await.unwrap().is_empty());
            assert_eq!(db.package_counts(&js).await.unwrap(), (1, 1), "react's document and file stay");

            assert_eq!(db.forget_packages_of_group(&js).await.unwrap(), 2);
            assert!(db.package_objects(&js).await.unwrap().is_empty());
            assert_eq!(db.package_counts(&js).await.unwrap(), (0, 0));
            assert!(react_doc != lodash_doc);
        }
    }
}
