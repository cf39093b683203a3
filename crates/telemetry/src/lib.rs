//! What depproxy tells its operator, shared by every crate that reports: [`Throttle`], which lets a
//! warning about a failing dependency (database, storage) through once per interval, however many
//! requests hit the failure, and counts the ones it held back; and [`events`], the ring of recent
//! errors and denials the admin API shows; [`text_log`], the format of text log lines;
//! [`wording`], how durations, counts and errors read in messages; [`metrics`], how a metrics
//! registry is served at `/metrics`.

pub mod events;
pub mod metrics;
pub mod text_log;
pub mod wording;

pub use metrics::render_registry;
pub use wording::{HumanDuration, error_chain, plural, retry_wait};

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// Lets one event through per interval; counts the rest.
pub struct Throttle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Self {
        Throttle { interval, state: Mutex::new(ThrottleState { last: None, held_back: 0 }) }
    }

    /// `Some(n)` when this event should be reported, `n` being how many were held back since the
    /// last report; `None` to stay quiet.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.held_back += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_interval_with_the_count_held_back() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.admit_at(start), Some(0));
        assert_eq!(throttle.admit_at(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(9)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(10)), Some(2));
        assert_eq!(throttle.admit_at(start + Duration::from_secs(11)), None);
    }
}
