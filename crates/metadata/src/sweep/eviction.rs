//! Eviction: objects oldest-read first (per group and store-wide), and removing their rows (an
//! object whose last row goes is queued for deletion) and stale tags.

use std::collections::HashSet;

use oci::{Digest, GroupPath};

use super::{CHUNK, CandidateRow, Cursor, ObjectRow, Removed, StoredDigest, digest, image};
use crate::error::{MetadataError, Result};
use crate::objects::to_sql_size;
use crate::pool::{Metadata, Pool};

impl Metadata {
    /// A group's objects (blob rows and manifest digest rows), least recently read first, after
    /// `cursor`, read before `before` when given.
    pub async fn objects_by_read(
        &self,
        group: &GroupPath,
        before: Option<i64>,
        cursor: &Cursor,
        limit: usize,
    ) -> Result<Vec<ObjectRow>> {
        // One ordered index range per table (group_path, read_at, digest), merged here: a page
        // costs its own rows, not a sort of the whole group (100 000 rows took minutes).
        const BLOBS: &str = "SELECT CAST(NULL AS TEXT) AS image, digest, size, read_at, created_at FROM blobs \
             WHERE group_path = $1 AND read_at < $2 AND (read_at, digest) > ($3, $4) \
             ORDER BY read_at, digest LIMIT $5";
        const MANIFESTS: &str = "SELECT image, digest, size, read_at, created_at FROM manifests \
             WHERE group_path = $1 AND read_at < $2 AND (read_at, digest) > ($3, $4) AND reference = digest \
             ORDER BY read_at, digest LIMIT $5";
        let (after_read, after_digest) = cursor.clone().unwrap_or((i64::MIN, String::new()));
        let mut rows: Vec<CandidateRow> = Vec::new();
        for sql in [BLOBS, MANIFESTS] {
            let page: Vec<CandidateRow> = on_pool!(self, |pool| sqlx::query_as(sql)
                .bind(group.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(after_read)
                .bind(&after_digest)
                .bind(limit as i64)
                .fetch_all(pool)
                .await?);
            rows.extend(page);
        }
        rows.sort_by(|a, b| (a.read_at, &a.digest).cmp(&(b.read_at, &b.digest)));
        rows.truncate(limit);
        rows.into_iter().map(|row| row.into_object_row(group)).collect()
    }

    /// Objects across all groups, least recently read (by any group) first, after `cursor`.
    pub async fn digests_by_read(&self, cursor: &Cursor, limit: usize) -> Result<Vec<StoredDigest>> {
        const SQL: &str = "SELECT CAST(NULL AS TEXT) AS image, digest, size, read_at, created_at FROM ( \
               SELECT digest, MAX(size) AS size, MAX(read_at) AS read_at, MAX(created_at) AS created_at FROM ( \
                 SELECT digest, size, read_at, created_at FROM blobs \
                 UNION ALL SELECT digest, size, read_at, created_at FROM manifests WHERE reference = digest \
               ) r GROUP BY digest \
             ) o WHERE read_at > $1 OR (read_at = $1 AND digest > $2) ORDER BY read_at, digest LIMIT $3";
        let (after_read, after_digest) = cursor.clone().unwrap_or((i64::MIN, String::new()));
        let rows: Vec<CandidateRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(after_read)
            .bind(&after_digest)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|row| {
                Ok(StoredDigest {
                    digest: digest(row.digest)?,
                    size: row.size.max(0) as u64,
                    read_at: row.read_at,
                    recorded_at: row.created_at,
                })
            })
            .collect()
    }

    /// Every group's rows of `digest` (for the store-wide quota and purges).
    pub async fn rows_of_digest(&self, digest_value: &Digest) -> Result<Vec<ObjectRow>> {
        const SQL: &str = "SELECT group_path, CAST(NULL AS TEXT) AS image, digest, size, read_at, created_at \
             FROM blobs WHERE digest = $1 UNION ALL \
             SELECT group_path, image, digest, size, read_at, created_at FROM manifests \
             WHERE reference = $1 AND digest = $1";
        let rows: Vec<(String, Option<String>, String, i64, i64, i64)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(digest_value.to_string()).fetch_all(pool).await?);
        rows.into_iter()
            .map(|(group, image_name, digest_text, size, read_at, recorded_at)| {
                Ok(ObjectRow {
                    group: GroupPath::parse(&group).map_err(|_| MetadataError::CorruptGroup(group))?,
                    image: image_name.map(image).transpose()?,
                    digest: digest(digest_text)?,
                    size: size.max(0) as u64,
                    read_at,
                    recorded_at,
                })
            })
            .collect()
    }

    /// Removes object rows (a manifest's digest row takes its tags and references along) and
    /// queues every object whose last row that was for deletion at `due_at`. One transaction and a
    /// few statements per 500 rows (blob rows are deleted together; manifests one by one, with
    /// their references).
    pub async fn remove_objects(&self, rows: &[ObjectRow], due_at: i64) -> Result<Removed> {
        const MANIFEST: &str = "DELETE FROM manifests WHERE group_path = $1 AND image = $2 AND digest = $3";
        const REFS: &str = "DELETE FROM manifest_refs WHERE group_path = $1 AND manifest_digest = $2 \
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.group_path = $1 AND m.reference = $2)";
        // An object queued before (and recorded again since) is queued anew: its readers and
        // the control planes remembering its new rows get the full delay and notice again. (One
        // digest appears once per group that held it: grouped, as an upsert may touch a row once.)
        let pending_tail = format!(
            ") INSERT INTO pending_deletes (digest, size, due_at, queued_at) \
             SELECT v.d, MAX(v.s), MAX(v.t), {now} FROM v WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE digest = v.d) \
             AND NOT EXISTS (SELECT 1 FROM manifests WHERE reference = v.d AND digest = v.d) GROUP BY v.d \
             ON CONFLICT (digest) DO UPDATE SET due_at = excluded.due_at, queued_at = excluded.queued_at",
            now = self.now_ms_sql()
        );
        let mut removed = Removed::default();
        for chunk in rows.chunks(CHUNK) {
            let before = removed;
            let blobs: Vec<(String, String, u64)> = chunk
                .iter()
                .filter(|row| row.image.is_none())
                .map(|row| (row.group.as_str().to_owned(), row.digest.to_string(), row.size))
                .collect();
            on_pool!(self, |pool| {
                let mut transaction = match &self.pool {
                    Pool::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                    Pool::Postgres(_) => pool.begin().await?,
                };
                if !blobs.is_empty() {
                    let mut query =
                        sqlx::QueryBuilder::new("DELETE FROM blobs WHERE (group_path, digest) IN (VALUES ");
                    let mut values = query.separated(", ");
                    for (group, digest_text, _) in &blobs {
                        values.push("(");
                        values.push_bind_unseparated(group.as_str());
                        values.push_unseparated(", ");
                        values.push_bind_unseparated(digest_text.as_str());
                        values.push_unseparated(")");
                    }
                    query.push(") RETURNING group_path, digest");
                    let gone: HashSet<(String, String)> =
                        query.build_query_as().fetch_all(&mut *transaction).await?.into_iter().collect();
                    for (group, digest_text, size) in blobs {
                        if gone.contains(&(group, digest_text)) {
                            removed.objects += 1;
                            removed.bytes += size;
                        }
                    }
                }
                for row in chunk {
                    let Some(image_name) = &row.image else { continue };
                    let digest_text = row.digest.to_string();
                    let deleted = sqlx::query(MANIFEST)
                        .bind(row.group.as_str())
                        .bind(image_name.as_str())
                        .bind(&digest_text)
                        .execute(&mut *transaction)
                        .await?
                        .rows_affected();
                    sqlx::query(REFS)
                        .bind(row.group.as_str())
                        .bind(&digest_text)
                        .execute(&mut *transaction)
                        .await?;
                    if deleted > 0 {
                        removed.objects += 1;
                        removed.bytes += row.size;
                        // A manifest's digest row went with the tags pointing at it.
                        removed.tags += deleted - 1;
                    }
                }
                let mut query = sqlx::QueryBuilder::new("WITH v(d, s, t) AS (");
                query.push_values(chunk, |mut values, row| {
                    values
                        .push_bind(row.digest.to_string())
                        .push_bind(to_sql_size(row.size))
                        .push_bind(due_at);
                });
                query.push(pending_tail.as_str());
                query.build().execute(&mut *transaction).await?;
                if removed != before {
                    announce_removal!(self, transaction);
                }
                transaction.commit().await?;
            });
        }
        Ok(removed)
    }

    /// Removes tag rows of `group` read before `before`, except `keep` (image, tag) pairs.
    pub async fn remove_tags_read_before(
        &self,
        group: &GroupPath,
        before: i64,
        keep: &HashSet<(String, String)>,
    ) -> Result<u64> {
        const LIST: &str = "SELECT image, reference FROM manifests \
             WHERE group_path = $1 AND reference <> digest AND read_at < $2";
        const DELETE: &str = "DELETE FROM manifests WHERE group_path = $1 AND image = $2 AND reference = $3";
        let rows: Vec<(String, String)> = on_pool!(self, |pool| sqlx::query_as(LIST)
            .bind(group.as_str())
            .bind(before)
            .fetch_all(pool)
            .await?);
        let doomed: Vec<(String, String)> = rows
            .into_iter()
            .filter(|(image_name, tag)| !keep.contains(&(image_name.clone(), tag.clone())))
            .collect();
        let mut removed = 0;
        for chunk in doomed.chunks(CHUNK) {
            removed += on_pool!(self, |pool| {
                let mut transaction = pool.begin().await?;
                let mut gone = 0;
                for (image_name, tag) in chunk {
                    gone += sqlx::query(DELETE)
                        .bind(group.as_str())
                        .bind(image_name)
                        .bind(tag)
                        .execute(&mut *transaction)
                        .await?
                        .rows_affected();
                }
                if gone > 0 {
                    announce_removal!(self, transaction);
                }
                transaction.commit().await?;
                gone
            });
        }
        Ok(removed)
    }
}
