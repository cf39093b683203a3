//! Coordination between nodes: the named maintenance lease (one sweeper at a time) and the
//! generation counter that tells every control plane to forget remembered rows.

use crate::error::Result;
use crate::pool::{Metadata, Pool};

impl Metadata {
    /// Takes (or renews) the named maintenance lease for `holder` unless another holder's is live;
    /// a lease of a new name (a group's warm entry) is made on first use.
    pub async fn try_maintenance_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        const SQL: &str = "INSERT INTO maintenance (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE maintenance.expires_at < $4 OR maintenance.holder = $2";
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
}
