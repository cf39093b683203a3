//! Hearing of removals as they happen: on PostgreSQL every removal's transaction sends a
//! notification on [`REMOVALS_CHANNEL`], which a control plane listens to so it forgets removed
//! rows at once; SQLite has no such thing (and one node), so there the generation is polled only.

use sqlx::postgres::PgListener;

use crate::error::Result;
use crate::pool::{Metadata, Pool};

/// The PostgreSQL notification channel of removals.
pub(crate) const REMOVALS_CHANNEL: &str = "depproxy_removals";

/// A listener for removal notifications (nothing to hear on SQLite).
pub struct RemovalWatch {
    listener: Option<PgListener>,
}

impl Metadata {
    /// Starts listening for removals (a connection of its own on PostgreSQL).
    pub async fn watch_removals(&self) -> Result<RemovalWatch> {
        let listener = match &self.pool {
            Pool::Sqlite(_) => None,
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(REMOVALS_CHANNEL).await?;
                Some(listener)
            }
        };
        Ok(RemovalWatch { listener })
    }
}

impl RemovalWatch {
    /// Waits for the next removal notification; never returns without a listener. After an
    /// error the next call reconnects (notifications sent meanwhile are lost: callers poll the
    /// generation too, and should pause before calling again).
    pub async fn notified(&mut self) -> Result<()> {
        match &mut self.listener {
            None => std::future::pending().await,
            Some(listener) => {
                listener.recv().await?;
                Ok(())
            }
        }
    }

    /// Whether notifications arrive at all (PostgreSQL).
    pub fn listens(&self) -> bool {
        self.listener.is_some()
    }
}
