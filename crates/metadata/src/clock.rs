//! Wall-clock time for database timestamps, replaceable in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds: the system clock, or a manual one tests move forward.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that stands still at `start_ms` until [`Clock::advance`].
    pub fn manual(start_ms: i64) -> Self {
        Clock { manual: Some(Arc::new(AtomicI64::new(start_ms))) }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(now) => now.load(Ordering::SeqCst),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: std::time::Duration) {
        if let Some(now) = &self.manual {
            now.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }
}
