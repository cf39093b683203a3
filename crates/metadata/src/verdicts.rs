//! Admission verdicts: what a group's admission hook said about an object, by the object's
//! digest — kept until an operator forgets them, so an object is asked about once.

use oci::{Digest, GroupPath};

use crate::error::Result;
use crate::pool::{Metadata, Pool};

/// A hook's verdict on one object for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    /// Whether the group's clients may have the object.
    pub allowed: bool,
    /// Why, as the hook said it (empty when it said nothing).
    pub reason: String,
    /// When the hook decided (unix ms).
    pub decided_at: i64,
}

impl Metadata {
    /// The verdict `group`'s hook gave on `digest`, if any.
    pub async fn find_verdict(&self, group: &GroupPath, digest: &Digest) -> Result<Option<VerdictRecord>> {
        const SQL: &str = "SELECT allowed, reason, decided_at FROM admission_verdicts WHERE group_path = $1 AND digest = $2";
        let row: Option<(i64, String, i64)> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(digest.to_string())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(allowed, reason, decided_at)| VerdictRecord {
            allowed: allowed != 0,
            reason,
            decided_at,
        }))
    }

    /// Records (or replaces) `group`'s verdict on `digest`.
    pub async fn record_verdict(
        &self,
        group: &GroupPath,
        digest: &Digest,
        verdict: &VerdictRecord,
    ) -> Result<()> {
        const SQL: &str = "INSERT INTO admission_verdicts (group_path, digest, allowed, reason, decided_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (group_path, digest) DO UPDATE SET allowed = excluded.allowed, \
             reason = excluded.reason, decided_at = excluded.decided_at";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(group.as_str())
            .bind(digest.to_string())
            .bind(i64::from(verdict.allowed))
            .bind(&verdict.reason)
            .bind(verdict.decided_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Forgets every group's verdict on `digest`, so the next request for the object asks its
    /// group's hook again; says how many there were. Announced like a removal (the generation
    /// moves in the same transaction), so every control plane forgets the verdicts it remembers.
    pub async fn forget_verdicts(&self, digest: &Digest) -> Result<u64> {
        const SQL: &str = "DELETE FROM admission_verdicts WHERE digest = $1";
        let forgotten = on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let forgotten =
                sqlx::query(SQL).bind(digest.to_string()).execute(&mut *transaction).await?.rows_affected();
            if forgotten > 0 {
                announce_removal!(self, transaction);
            }
            transaction.commit().await?;
            forgotten
        });
        Ok(forgotten)
    }
}
