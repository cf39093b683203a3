//! Background jobs (purges): their progress, readable from any node and from the CLI.

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
        const SQL: &str = "SELECT id, kind, description, state, done, total, bytes, error, created_at, finished_at \
             FROM jobs WHERE id = $1";
        Ok(on_pool!(self, |pool| sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?))
    }

    /// Forgets jobs finished before `before`.
    pub async fn prune_jobs(&self, before: i64) -> Result<u64> {
        const SQL: &str = "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1";
        Ok(on_pool!(self, |pool| sqlx::query(SQL).bind(before).execute(pool).await?.rows_affected()))
    }
}
