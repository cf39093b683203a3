//! Failed authentications, limited per client address: past the quota (e.g. 10 a minute) an
//! address gets 429 with `Retry-After` for any credentials — its guesses are not even checked —
//! until the quota refills. Successful authentications never count.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct FailureLimiter {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: moka::sync::Cache<IpAddr, Instant, foldhash::quality::RandomState>,
}

impl FailureLimiter {
    /// Allows `per_minute` failures a minute per address (at least one).
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        FailureLimiter {
            failures: RateLimiter::keyed(quota),
            blocked: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(60))
                .max_capacity(100_000)
                .build_with_hasher(foldhash::quality::RandomState::default()),
        }
    }

    /// How long `client` must wait before its credentials are checked again; `None` when they may be.
    pub fn blocked_for(&self, client: IpAddr) -> Option<Duration> {
        let until = self.blocked.get(&client)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Counts a failure; past the quota, blocks the address and says for how long.
    pub fn failed(&self, client: IpAddr) -> Option<Duration> {
        match self.failures.check_key(&client) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                let wait = wait.max(Duration::from_secs(1));
                self.blocked.insert(client, Instant::now() + wait);
                Some(wait)
            }
        }
    }

    /// Forgets addresses whose quota has refilled (called periodically: the map would grow).
    pub fn forget_idle(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_quota_is_blocked_and_others_are_not() {
        let limiter = FailureLimiter::new(10);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.2".parse().unwrap();
        for attempt in 0..10 {
            assert_eq!(limiter.failed(attacker), None, "attempt {attempt} is within the quota");
        }
        assert_eq!(limiter.blocked_for(attacker), None);
        let wait = limiter.failed(attacker).expect("the 11th failure in a minute is over the quota");
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(7), "{wait:?}");
        assert!(limiter.blocked_for(attacker).is_some());
        assert_eq!(limiter.blocked_for(neighbour), None);
        assert_eq!(limiter.failed(neighbour), None);
        limiter.forget_idle();
    }
}
