//! Background jobs (purges, warm runs): their progress and results, readable from any node and
//! from the CLI; and when each scheduled warm entry is due, shared by every node.

use crate::error::Result;
use crate::objects::to_sql_size;
use crate::pool::{Metadata, Pool};

/// A job's row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub description: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub done: i64,
    pub total: i64,
    pub bytes: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// What the job found and did, as JSON its kind defines (a warm run's report); none for
    /// purges.
    pub result: Option<String>,
}

impl Metadata {
    pub async fn create_job(&self, id: &str, kind: &str, description: &str, now: i64) -> Result<()> {
        const SQL: &str =
            "INSERT INTO jobs (id, kind, description, state, created_at) VALUES ($1, $2, $3, 'running', $4)";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(id)
            .bind(kind)
            .bind(description)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn update_job_progress(&self, id: &str, done: u64, total: u64, bytes: u64) -> Result<()> {
        const SQL: &str = "UPDATE jobs SET done = $2, total = $3, bytes = $4 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(id)
            .bind(to_sql_size(done))
            .bind(to_sql_size(total))
            .bind(to_sql_size(bytes))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Ends a job: `error` set means it failed.
    pub async fn finish_job(&self, id: &str, error: Option<&str>, now: i64) -> Result<()> {
        const SQL: &str = "UPDATE jobs SET state = $2, error = $3, finished_at = $4 WHERE id = $1";
        let state = if error.is_some() { "failed" } else { "done" };
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(id)
            .bind(state)
            .bind(error)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn find_job(&self, id: &str) -> Result<Option<JobRecord>> {
        const SQL: &str = "SELECT id, kind, description, state, done, total, bytes, error, created_at, \
             finished_at, result FROM jobs WHERE id = $1";
        Ok(on_pool!(self, |pool| sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?))
    }

    /// Records what a job found and did (JSON), while it runs or at its end.
    pub async fn set_job_result(&self, id: &str, result: &str) -> Result<()> {
        const SQL: &str = "UPDATE jobs SET result = $2 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(SQL).bind(id).bind(result).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The latest jobs of `kind` whose description starts with `prefix`, newest first.
    pub async fn recent_jobs(&self, kind: &str, prefix: &str, limit: u32) -> Result<Vec<JobRecord>> {
        const SQL: &str = "SELECT id, kind, description, state, done, total, bytes, error, created_at, \
             finished_at, result FROM jobs WHERE kind = $1 AND substr(description, 1, length($2)) = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3";
        Ok(on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(kind)
            .bind(prefix)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?))
    }

    /// Claims the run of the scheduled job `name` that is due at `now`: true (and the next one is
    /// due at `next_due`) for exactly one caller — whichever node moves `due_at` first — while
    /// it is due; a job never claimed is due at once.
    pub async fn claim_due_schedule(&self, name: &str, now: i64, next_due: i64) -> Result<bool> {
        const SQL: &str = "INSERT INTO warm_schedules (name, due_at) VALUES ($1, $3) \
             ON CONFLICT (name) DO UPDATE SET due_at = $3 WHERE warm_schedules.due_at <= $2";
        let claimed = on_pool!(self, |pool| sqlx::query(SQL)
            .bind(name)
            .bind(now)
            .bind(next_due)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(claimed == 1)
    }

    /// Notes the job that ran the scheduled job `name` last and, when given, when it is due next
    /// (a run on request starts its period anew).
    pub async fn set_schedule(&self, name: &str, due_at: Option<i64>, last_job: Option<&str>) -> Result<()> {
        const SQL: &str = "INSERT INTO warm_schedules (name, due_at, last_job) VALUES ($1, COALESCE($2, 0), $3) \
             ON CONFLICT (name) DO UPDATE SET due_at = COALESCE($2, warm_schedules.due_at), \
             last_job = COALESCE($3, warm_schedules.last_job)";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(name)
            .bind(due_at)
            .bind(last_job)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// When the scheduled job `name` is due next and the job that ran it last; none before its
    /// first claim.
    pub async fn schedule(&self, name: &str) -> Result<Option<(i64, Option<String>)>> {
        const SQL: &str = "SELECT due_at, last_job FROM warm_schedules WHERE name = $1";
        Ok(on_pool!(self, |pool| sqlx::query_as(SQL).bind(name).fetch_optional(pool).await?))
    }

    /// Forgets jobs finished before `before`.
    pub async fn prune_jobs(&self, before: i64) -> Result<u64> {
        const SQL: &str = "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1";
        Ok(on_pool!(self, |pool| sqlx::query(SQL).bind(before).execute(pool).await?.rows_affected()))
    }
}
