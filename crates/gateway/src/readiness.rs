//! The last readiness answer of a gateway, reused for a second: `/readyz` asks at most once a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a readiness answer is reused.
const REUSE: Duration = Duration::from_secs(1);

/// The last readiness answer.
#[derive(Default)]
pub(crate) struct Readiness {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub(crate) fn reused(&self) -> Option<Result<(), String>> {
        let last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.as_ref().filter(|(at, _)| at.elapsed() < REUSE).map(|(_, outcome)| outcome.clone())
    }

    pub(crate) fn remember(&self, outcome: Result<(), String>) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), outcome));
    }
}
