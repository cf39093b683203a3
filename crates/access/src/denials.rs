//! How often a denial or a 429 is logged: one line per client address (IPv6 by its /64) and
//! minute, carrying how many were held back since that address's last line. A client guessing, or
//! a CI job retrying with a revoked token, would otherwise write a line per request.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client::network_of;

/// One line per address per this.
const INTERVAL: Duration = Duration::from_secs(60);

pub struct DenialLog {
    windows: moka::sync::Cache<IpAddr, Arc<Mutex<Window>>, foldhash::quality::RandomState>,
}

struct Window {
    logged_at: Instant,
    held_back: u64,
}

impl Default for DenialLog {
    fn default() -> Self {
        DenialLog {
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(INTERVAL * 2)
                .build_with_hasher(foldhash::quality::RandomState::default()),
        }
    }
}

impl DenialLog {
    /// `Some(n)` when a denial of `client` is to be logged now, `n` being how many of its
    /// denials were not logged since its last line; `None` to stay quiet (it is counted).
    pub fn admit(&self, client: IpAddr) -> Option<u64> {
        self.admit_at(client, Instant::now())
    }

    fn admit_at(&self, client: IpAddr, now: Instant) -> Option<u64> {
        let mut first = false;
        let window = self.windows.get_with(network_of(client), || {
            first = true;
            Arc::new(Mutex::new(Window { logged_at: now, held_back: 0 }))
        });
        if first {
            return Some(0);
        }
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(window.logged_at) < INTERVAL {
            window.held_back += 1;
            return None;
        }
        window.logged_at = now;
        Some(std::mem::take(&mut window.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_address_and_minute_with_the_count_held_back() {
        let log = DenialLog::default();
        let start = Instant::now();
        let guesser: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(log.admit_at(guesser, start), Some(0), "the first denial is logged");
        for second in 1..60 {
            assert_eq!(log.admit_at(guesser, start + Duration::from_secs(second)), None);
        }
        assert_eq!(log.admit_at("::ffff:198.51.100.7".parse().unwrap(), start), None, "the same address");
        assert_eq!(log.admit_at(guesser, start + INTERVAL), Some(60), "then one line with the count");
        assert_eq!(log.admit_at(guesser, start + INTERVAL + Duration::from_secs(1)), None);
        assert_eq!(log.admit_at("198.51.100.8".parse().unwrap(), start), Some(0), "another address");
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert_eq!(log.admit_at(v6, start), Some(0));
        assert_eq!(log.admit_at("2001:db8:1:2::2".parse().unwrap(), start), None, "the same /64");
    }
}
