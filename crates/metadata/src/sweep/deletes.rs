//! The delete handshake with fills: queued deletions, claiming an object's fill lease before its
//! bytes go, finishing or abandoning the delete, and which stored objects the database knows.

use std::collections::HashSet;

use oci::Digest;

use super::{CHUNK, digest, push_list};
use crate::commit::SWEEPER_HOLDER_PREFIX;
use crate::error::Result;
use crate::pool::{Metadata, Pool};

impl Metadata {
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
}
