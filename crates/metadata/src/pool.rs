//! The connection pool: SQLite or PostgreSQL, migrations at connect, and [`Metadata`], the handle
//! every query goes through.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{MetadataError, Result};
use crate::url::DatabaseUrl;

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same statement on whichever backend the database uses.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A new SQLite database file readable by the proxy's user and group only, whatever the umask
/// (SQLite gives its `-wal` and `-shm` files the database file's mode). An existing file, or an
/// in-memory database, is left as it is.
async fn create_private_file(path: &std::path::Path) -> Result<()> {
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    let created = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(path).await;
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(MetadataError::CreateFile(error)),
    }
}

/// A handle on the metadata database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub(crate) pool: Pool,
}

impl Metadata {
    /// Connects (creating the database when missing) and runs migrations.
    pub async fn connect(database: &DatabaseUrl) -> Result<Self> {
        let url = database.expose();
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            create_private_file(options.get_filename()).await?;
            let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !sqlx::Postgres::database_exists(url).await? {
                // Two nodes may race to create it; losing the race is fine.
                if let Err(error) = sqlx::Postgres::create_database(url).await
                    && !sqlx::Postgres::database_exists(url).await?
                {
                    return Err(error.into());
                }
            }
            // A database that is down must fail a query quickly (it is then answered as a miss),
            // not hold it for sqlx's default 30 s.
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(3))
                .connect(url)
                .await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(MetadataError::UnsupportedUrl(database.clone()));
        };
        Ok(Metadata { pool })
    }

    /// Whether the database answers (`SELECT 1`): readiness probes.
    pub async fn ping(&self) -> Result<()> {
        let (_,): (i32,) = on_pool!(self, |pool| sqlx::query_as("SELECT 1").fetch_one(pool).await?);
        Ok(())
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// SQL for the database's clock in unix milliseconds: every node that shares the database
    /// measures removal delays by the same clock.
    pub(crate) fn now_ms_sql(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Pool::Postgres(_) => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Whether several nodes may share this database (PostgreSQL), so that work on one object —
    /// a fill — must be coordinated between them. A SQLite file belongs to one node.
    pub fn shared_by_nodes(&self) -> bool {
        match self.pool {
            Pool::Sqlite(_) => false,
            Pool::Postgres(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn a_new_sqlite_database_and_its_journal_are_not_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let metadata =
            Metadata::connect(&DatabaseUrl::new(format!("sqlite:{}", path.display()))).await.unwrap();
        metadata.ping().await.unwrap();
        let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o640);
        for journal in ["meta.db-wal", "meta.db-shm"] {
            let journal = dir.path().join(journal);
            assert_eq!(mode(&journal) & 0o007, 0, "{}", journal.display());
        }
    }
}
