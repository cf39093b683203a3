//! What the sweeper and purges need: objects of a group oldest-read first, removing rows (an
//! object whose last row goes is queued for deletion), the delete handshake with fills, usage, and
//! coordination between nodes (one sweeper at a time; a generation counter, moved in the same
//! transaction as every removal — and on PostgreSQL a notification — that tells every control plane
//! to forget remembered rows; storage deletion waits until all had time to).
//!
//! The delete handshake: a sweeper deletes an object only while it holds the object's fill lease
//! (holder `sweeper:…`) and no row references the object; a fill records a row only after
//! claiming the same lease row (`commit.rs`). Whichever comes second sees the other.

use std::collections::HashSet;

use oci::{Digest, GroupPath, RepositoryName};

use crate::commit::SWEEPER_HOLDER_PREFIX;
use crate::error::{MetadataError, Result};
use crate::objects::to_sql_size;
use crate::pool::{Metadata, Pool};
use crate::watch::REMOVALS_CHANNEL;

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
            sqlx::query("SELECT pg_notify($1, '')").bind(REMOVALS_CHANNEL).execute(&mut *$tx).await?;
        }
    }};
}

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

impl Metadata {
    /// Takes (or renews) the named maintenance lease for `holder` unless another holder's is live.
    pub async fn try_maintenance_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        const SQL: &str = "UPDATE maintenance SET holder = $2, expires_at = $3 \
             WHERE name = $1 AND (expires_at < $4 OR holder = $2)";
        let taken = on_pool!(self, |pool| sqlx::query(SQL)
            .bind(name)
            .bind(holder)
            .bind(now + ttl_ms)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(taken == 1)
    }

    pub async fn release_maintenance_lease(&self, name: &str, holder: &str) -> Result<()> {
        const SQL: &str =
            "UPDATE maintenance SET holder = NULL, expires_at = 0 WHERE name = $1 AND holder = $2";
        on_pool!(self, |pool| sqlx::query(SQL).bind(name).bind(holder).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Counts removals; control planes compare it to drop remembered rows. Every removal moves it
    /// in its own transaction.
    pub async fn generation(&self) -> Result<i64> {
        const SQL: &str = "SELECT generation FROM maintenance WHERE name = 'generation'";
        let value: Option<(i64,)> = on_pool!(self, |pool| sqlx::query_as(SQL).fetch_optional(pool).await?);
        Ok(value.map_or(0, |(value,)| value))
    }

    /// Moves the generation (and notifies listeners) without removing anything.
    pub async fn bump_generation(&self) -> Result<()> {
        on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            announce_removal!(self, transaction);
            transaction.commit().await?;
        });
        Ok(())
    }

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

    /// Objects queued for deletion, due at `now` and queued at least `notice_ms` ago by the
    /// database's clock (so every control plane has forgotten their rows, whoever removed them).
    pub async fn pending_deletes(
        &self,
        now: i64,
        notice_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        let sql = format!(
            "SELECT digest, size FROM pending_deletes WHERE due_at <= $1 AND queued_at <= {} - $2 \
             ORDER BY due_at LIMIT $3",
            self.now_ms_sql()
        );
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(notice_ms)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(|(text, size)| Ok((digest(text)?, size.max(0) as u64))).collect()
    }

    /// Bytes queued for deletion (still in storage).
    pub async fn pending_bytes(&self) -> Result<u64> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM pending_deletes";
        let (bytes,): (i64,) = on_pool!(self, |pool| sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(bytes.max(0) as u64)
    }

    /// Claims `digest` for deletion (see [`Metadata::claim_for_delete_many`]); whether it was.
    pub async fn claim_for_delete(
        &self,
        digest_value: &Digest,
        holder: &str,
        lease_id: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let claimed =
            self.claim_for_delete_many(std::slice::from_ref(digest_value), holder, lease_id, now, ttl_ms);
        Ok(!claimed.await?.is_empty())
    }

    /// Claims `digests` for deletion under one lease id: takes each one's fill lease for `holder`
    /// (a `sweeper:` name) unless a fill holds it, then keeps those no row references. Returns the
    /// claimed ones; for the others, leave the object alone (the queue entry of a referenced one is
    /// dropped: a row references it again).
    pub async fn claim_for_delete_many(
        &self,
        digests: &[Digest],
        holder: &str,
        lease_id: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Digest>> {
        debug_assert!(holder.starts_with(SWEEPER_HOLDER_PREFIX));
        let mut claimed = Vec::new();
        for chunk in digests.chunks(CHUNK) {
            let taken: Vec<(String,)> = on_pool!(self, |pool| {
                let mut take = sqlx::QueryBuilder::new(
                    "INSERT INTO fill_leases (object_digest, holder, lease_id, expires_at) ",
                );
                take.push_values(chunk, |mut values, digest_value| {
                    values
                        .push_bind(digest_value.to_string())
                        .push_bind(holder)
                        .push_bind(lease_id)
                        .push_bind(now + ttl_ms);
                });
                take.push(
                    " ON CONFLICT (object_digest) DO UPDATE SET holder = excluded.holder, \
                     lease_id = excluded.lease_id, expires_at = excluded.expires_at WHERE fill_leases.expires_at < ",
                );
                take.push_bind(now);
                take.push(" RETURNING object_digest");
                take.build_query_as().fetch_all(pool).await?
            });
            if taken.is_empty() {
                continue;
            }
            let taken: Vec<String> = taken.into_iter().map(|(text,)| text).collect();
            // The leases are committed: a commit from now on sees them and refuses; one that
            // committed before is visible here.
            let referenced: HashSet<String> = on_pool!(self, |pool| {
                let mut referenced = sqlx::QueryBuilder::new("SELECT digest FROM blobs WHERE digest IN (");
                push_list(&mut referenced, &taken);
                referenced
                    .push(") UNION SELECT digest FROM manifests WHERE reference = digest AND digest IN (");
                push_list(&mut referenced, &taken);
                referenced.push(")");
                referenced
                    .build_query_as::<(String,)>()
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|(text,)| text)
                    .collect()
            });
            if !referenced.is_empty() {
                let referenced: Vec<String> = referenced.iter().cloned().collect();
                self.forget_deletions(&referenced, lease_id, true).await?;
            }
            for text in taken.into_iter().filter(|text| !referenced.contains(text)) {
                claimed.push(digest(text)?);
            }
        }
        Ok(claimed)
    }

    /// The object of a claimed digest is gone from storage: drop its queue entry and the lease.
    pub async fn finish_delete(&self, digest_value: &Digest, lease_id: &str) -> Result<()> {
        self.finish_delete_many(std::slice::from_ref(digest_value), lease_id).await
    }

    /// The objects of claimed digests are gone from storage: drop their queue entries and leases.
    pub async fn finish_delete_many(&self, digests: &[Digest], lease_id: &str) -> Result<()> {
        let texts: Vec<String> = digests.iter().map(Digest::to_string).collect();
        self.forget_deletions(&texts, lease_id, true).await
    }

    /// Gives up a claim (the storage delete failed; the queue entry stays for the next sweep).
    pub async fn abandon_delete(&self, digest_value: &Digest, lease_id: &str) -> Result<()> {
        self.abandon_delete_many(std::slice::from_ref(digest_value), lease_id).await
    }

    /// Gives up claims (the storage deletes failed; the queue entries stay for the next sweep).
    pub async fn abandon_delete_many(&self, digests: &[Digest], lease_id: &str) -> Result<()> {
        let texts: Vec<String> = digests.iter().map(Digest::to_string).collect();
        self.forget_deletions(&texts, lease_id, false).await
    }

    /// Releases the sweeper's leases `lease_id` of `digests`, and with `dequeue` drops their queue
    /// entries too, in one transaction per chunk.
    async fn forget_deletions(&self, digests: &[String], lease_id: &str, dequeue: bool) -> Result<()> {
        for chunk in digests.chunks(CHUNK) {
            on_pool!(self, |pool| {
                let mut transaction = pool.begin().await?;
                if dequeue {
                    let mut drop_pending =
                        sqlx::QueryBuilder::new("DELETE FROM pending_deletes WHERE digest IN (");
                    push_list(&mut drop_pending, chunk);
                    drop_pending.push(")");
                    drop_pending.build().execute(&mut *transaction).await?;
                }
                let mut release = sqlx::QueryBuilder::new("DELETE FROM fill_leases WHERE lease_id = ");
                release.push_bind(lease_id);
                release.push(" AND object_digest IN (");
                push_list(&mut release, chunk);
                release.push(")");
                release.build().execute(&mut *transaction).await?;
                transaction.commit().await?
            });
        }
        Ok(())
    }

    /// Which of `digests` the database knows of: referenced by a row, queued for deletion, or
    /// leased (being filled or deleted). Objects in storage outside this set are garbage.
    pub async fn known_digests(&self, digests: &[String]) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in digests.chunks(CHUNK) {
            let found: Vec<(String,)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new("WITH c(d) AS (");
                query.push_values(chunk, |mut row, digest_text| {
                    row.push_bind(digest_text.as_str());
                });
                query.push(
                    ") SELECT d FROM c WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = c.d) \
                     OR EXISTS (SELECT 1 FROM manifests WHERE reference = c.d AND digest = c.d) \
                     OR EXISTS (SELECT 1 FROM pending_deletes WHERE digest = c.d) \
                     OR EXISTS (SELECT 1 FROM fill_leases WHERE object_digest = c.d)",
                );
                query.build_query_as().fetch_all(pool).await?
            });
            known.extend(found.into_iter().map(|(text,)| text));
        }
        Ok(known)
    }

    /// Drops fill leases expired before `before` (their holders are gone).
    pub async fn prune_leases(&self, before: i64) -> Result<u64> {
        const SQL: &str = "DELETE FROM fill_leases WHERE expires_at < $1";
        Ok(on_pool!(self, |pool| sqlx::query(SQL).bind(before).execute(pool).await?.rows_affected()))
    }

    /// Each group's usage (groups with no rows are absent).
    pub async fn group_usage(&self) -> Result<Vec<GroupUsage>> {
        const OBJECTS: &str = "SELECT group_path, CAST(SUM(size) AS BIGINT), \
             CAST(SUM(CASE WHEN k = 'b' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN k = 'm' THEN 1 ELSE 0 END) AS BIGINT), MIN(read_at) FROM ( \
               SELECT group_path, 'b' AS k, size, read_at FROM blobs \
               UNION ALL SELECT group_path, 'm' AS k, size, read_at FROM manifests WHERE reference = digest \
             ) o GROUP BY group_path ORDER BY group_path";
        const TAGS: &str = "SELECT group_path, CAST(COUNT(*) AS BIGINT) FROM manifests \
             WHERE reference <> digest GROUP BY group_path";
        let objects: Vec<(String, i64, i64, i64, Option<i64>)> =
            on_pool!(self, |pool| sqlx::query_as(OBJECTS).fetch_all(pool).await?);
        let tags: Vec<(String, i64)> = on_pool!(self, |pool| sqlx::query_as(TAGS).fetch_all(pool).await?);
        let mut usage: Vec<GroupUsage> = objects
            .into_iter()
            .map(|(group, bytes, blobs, manifests, oldest_read)| GroupUsage {
                group,
                bytes: bytes.max(0) as u64,
                blobs: blobs.max(0) as u64,
                manifests: manifests.max(0) as u64,
                tags: 0,
                oldest_read,
            })
            .collect();
        for (group, count) in tags {
            match usage.iter_mut().find(|entry| entry.group == group) {
                Some(entry) => entry.tags = count.max(0) as u64,
                None => usage.push(GroupUsage { group, tags: count.max(0) as u64, ..GroupUsage::default() }),
            }
        }
        Ok(usage)
    }

    /// Each group's objects and bytes by the upstream that served them.
    pub async fn upstream_usage(&self) -> Result<Vec<UpstreamUsage>> {
        const SQL: &str = "SELECT group_path, upstream, CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ( \
               SELECT group_path, upstream, size FROM blobs \
               UNION ALL SELECT group_path, upstream, size FROM manifests WHERE reference = digest \
             ) o GROUP BY group_path, upstream ORDER BY group_path, upstream";
        let rows: Vec<(String, String, i64, i64)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(group, upstream, objects, bytes)| UpstreamUsage {
                group,
                upstream,
                objects: objects.max(0) as u64,
                bytes: bytes.max(0) as u64,
            })
            .collect())
    }

    /// Bytes of distinct objects the rows reference (what the store holds, queued deletions aside).
    pub async fn referenced_bytes(&self) -> Result<u64> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ( \
               SELECT digest, MAX(size) AS size FROM ( \
                 SELECT digest, size FROM blobs \
                 UNION ALL SELECT digest, size FROM manifests WHERE reference = digest \
               ) r GROUP BY digest \
             ) o";
        let (bytes,): (i64,) = on_pool!(self, |pool| sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(bytes.max(0) as u64)
    }

    /// A group's tag rows.
    pub async fn tags_of_group(&self, group: &GroupPath) -> Result<Vec<TagRow>> {
        const SQL: &str =
            "SELECT image, reference, digest FROM manifests WHERE group_path = $1 AND reference <> digest";
        let rows: Vec<(String, String, String)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(group.as_str()).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|(image, tag, digest)| TagRow { image, tag, digest }).collect())
    }

    /// What the given manifests of `group` reference (one level).
    pub async fn manifest_children(&self, group: &GroupPath, manifests: &[String]) -> Result<Vec<String>> {
        let mut children = Vec::new();
        for chunk in manifests.chunks(CHUNK) {
            let found: Vec<(String,)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT DISTINCT child_digest FROM manifest_refs WHERE group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(" AND manifest_digest IN (");
                let mut list = query.separated(", ");
                for digest_text in chunk {
                    list.push_bind(digest_text.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            children.extend(found.into_iter().map(|(text,)| text));
        }
        Ok(children)
    }

    /// Of `children`, those some manifest of `group` other than `excluding` references.
    pub async fn referenced_elsewhere(
        &self,
        group: &GroupPath,
        children: &[String],
        excluding: &HashSet<String>,
    ) -> Result<HashSet<String>> {
        let mut referenced = HashSet::new();
        for chunk in children.chunks(CHUNK) {
            let found: Vec<(String, String)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT child_digest, manifest_digest FROM manifest_refs WHERE group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(" AND child_digest IN (");
                let mut list = query.separated(", ");
                for digest_text in chunk {
                    list.push_bind(digest_text.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            referenced.extend(
                found.into_iter().filter(|(_, parent)| !excluding.contains(parent)).map(|(child, _)| child),
            );
        }
        Ok(referenced)
    }

    /// The manifest digest rows of one image of `group`.
    pub async fn manifests_of_image(
        &self,
        group: &GroupPath,
        image_name: &RepositoryName,
    ) -> Result<Vec<ObjectRow>> {
        const SQL: &str = "SELECT image, digest, size, read_at, created_at FROM manifests \
             WHERE group_path = $1 AND image = $2 AND reference = digest";
        let rows: Vec<CandidateRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(image_name.as_str())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(|row| row.into_object_row(group)).collect()
    }

    /// Blob rows of `group` among `digests`.
    pub async fn blobs_among(&self, group: &GroupPath, digests: &[String]) -> Result<Vec<ObjectRow>> {
        let mut rows = Vec::new();
        for chunk in digests.chunks(CHUNK) {
            let found: Vec<(String, i64, i64, i64)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT digest, size, read_at, created_at FROM blobs WHERE group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(" AND digest IN (");
                let mut list = query.separated(", ");
                for digest_text in chunk {
                    list.push_bind(digest_text.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            for (text, size, read_at, recorded_at) in found {
                rows.push(ObjectRow {
                    group: group.clone(),
                    image: None,
                    digest: digest(text)?,
                    size: size.max(0) as u64,
                    read_at,
                    recorded_at,
                });
            }
        }
        Ok(rows)
    }

    /// Bytes of the objects of `group` among `digests` (blob rows and manifest digest rows).
    pub async fn bytes_among(&self, group: &GroupPath, digests: &[String]) -> Result<u64> {
        let mut bytes = 0u64;
        for chunk in digests.chunks(CHUNK) {
            let found: Vec<(i64,)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new("WITH c(d) AS (");
                query.push_values(chunk, |mut row, digest_text| {
                    row.push_bind(digest_text.as_str());
                });
                query.push(") SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM (SELECT digest, size FROM blobs WHERE group_path = ");
                query.push_bind(group.as_str());
                query.push(
                    " UNION SELECT digest, size FROM manifests WHERE reference = digest AND group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(") o WHERE o.digest IN (SELECT d FROM c)");
                query.build_query_as().fetch_all(pool).await?
            });
            bytes += found.into_iter().map(|(sum,)| sum.max(0) as u64).sum::<u64>();
        }
        Ok(bytes)
    }

    /// Removes every tag row of one image of `group`.
    pub async fn remove_tags_of_image(&self, group: &GroupPath, image_name: &RepositoryName) -> Result<u64> {
        const SQL: &str =
            "DELETE FROM manifests WHERE group_path = $1 AND image = $2 AND reference <> digest";
        Ok(on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let gone = sqlx::query(SQL)
                .bind(group.as_str())
                .bind(image_name.as_str())
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if gone > 0 {
                announce_removal!(self, transaction);
            }
            transaction.commit().await?;
            gone
        }))
    }

    /// Removes every tag row of `group` read before `before` (all of them without).
    pub async fn remove_tags_of_group(&self, group: &GroupPath, before: Option<i64>) -> Result<u64> {
        const SQL: &str =
            "DELETE FROM manifests WHERE group_path = $1 AND reference <> digest AND read_at < $2";
        Ok(on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let gone = sqlx::query(SQL)
                .bind(group.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if gone > 0 {
                announce_removal!(self, transaction);
            }
            transaction.commit().await?;
            gone
        }))
    }
}
