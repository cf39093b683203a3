//! Fill leases: which node is filling an object, across nodes sharing the database.

use oci::Digest;

use crate::error::Result;
use crate::pool::{Metadata, Pool};

impl Metadata {
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
