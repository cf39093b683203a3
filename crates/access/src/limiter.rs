//! Failed authentications, limited per client address **and** per access token they name: past
//! the quota (e.g. 10 a minute) that pair is blocked until the quota refills. Blocked means
//! refused with 429 and `Retry-After` — for credentials that do not check out. Credentials that
//! are cheap to check and valid are still served (see `authority`), so one guesser, or one CI job
//! with a revoked token, behind a NAT or a cluster's SNAT does not lock out every other token
//! behind the same address. Failures naming no token we know count under the address alone
//! (`token_id` `None`): that bucket, blocked, also spares the database the lookups of made-up ids.
//! An address is an IPv4 address or an IPv6 /64 ([`crate::client::network_of`]). Successful
//! authentications never count.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client::network_of;

/// Who failed: an address (IPv6 by its /64) and the access token the credentials named, if known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FailureKey {
    network: IpAddr,
    token_id: Option<Arc<str>>,
}

impl FailureKey {
    fn new(client: IpAddr, token_id: Option<&str>) -> Self {
        FailureKey { network: network_of(client), token_id: token_id.map(Arc::from) }
    }
}

pub struct FailureLimiter {
    failures: DefaultKeyedRateLimiter<FailureKey>,
    blocked: moka::sync::Cache<FailureKey, Instant, foldhash::quality::RandomState>,
}

impl FailureLimiter {
    /// Allows `per_minute` failures a minute per address and token (at least one).
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

    /// How long failures from `client` naming `token_id` stay refused unchecked; `None` when
    /// they are checked.
    pub fn blocked_for(&self, client: IpAddr, token_id: Option<&str>) -> Option<Duration> {
        let until = self.blocked.get(&FailureKey::new(client, token_id))?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Counts a failure; past the quota, blocks the pair and says for how long.
    pub fn failed(&self, client: IpAddr, token_id: Option<&str>) -> Option<Duration> {
        let key = FailureKey::new(client, token_id);
        match self.failures.check_key(&key) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                let wait = wait.max(Duration::from_secs(1));
                self.blocked.insert(key, Instant::now() + wait);
                Some(wait)
            }
        }
    }

    /// Forgets pairs whose quota has refilled (called periodically: the map would grow).
    pub fn forget_idle(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_past_its_quota_is_blocked_and_others_are_not() {
        let limiter = FailureLimiter::new(10);
        let attacker = ip("192.0.2.1");
        let neighbour = ip("192.0.2.2");
        for attempt in 0..10 {
            assert_eq!(limiter.failed(attacker, None), None, "attempt {attempt} is within the quota");
        }
        assert_eq!(limiter.blocked_for(attacker, None), None);
        let wait = limiter.failed(attacker, None).expect("the 11th failure in a minute is over the quota");
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(7), "{wait:?}");
        assert!(limiter.blocked_for(attacker, None).is_some());
        assert!(
            limiter.blocked_for(ip("::ffff:192.0.2.1"), None).is_some(),
            "IPv4-mapped is the same address"
        );
        assert_eq!(limiter.blocked_for(neighbour, None), None);
        assert_eq!(limiter.failed(neighbour, None), None);
        limiter.forget_idle();
    }

    #[test]
    fn failures_are_keyed_on_address_and_token_and_ipv6_by_its_64() {
        let limiter = FailureLimiter::new(2);
        let runner = ip("198.51.100.10");
        for _ in 0..3 {
            limiter.failed(runner, Some("0123456789abcdef"));
        }
        assert!(limiter.blocked_for(runner, Some("0123456789abcdef")).is_some());
        assert_eq!(limiter.blocked_for(runner, Some("fedcba9876543210")), None, "another token");
        assert_eq!(limiter.blocked_for(runner, None), None, "unknown tokens from there");
        for host in 1..=3 {
            limiter.failed(ip(&format!("2001:db8:1:2::{host}")), None);
        }
        assert!(limiter.blocked_for(ip("2001:db8:1:2:ffff::1"), None).is_some(), "the same /64");
        assert_eq!(limiter.blocked_for(ip("2001:db8:1:3::1"), None), None, "another /64");
    }
}
