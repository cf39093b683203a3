//! When a cached tag may be served without asking upstream. Digest references are immutable and
//! always fresh; a tag is fresh for its group's `manifest_recheck` after upstream last confirmed it.

use std::time::Duration;

/// Whether a tag confirmed by upstream at `checked_at_ms` may still be served unasked at `now_ms`.
pub(crate) fn tag_is_fresh(checked_at_ms: i64, now_ms: i64, recheck: Duration) -> bool {
    let age_ms = now_ms.saturating_sub(checked_at_ms);
    age_ms < i64::try_from(recheck.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_strictly_inside_the_window() {
        let recheck = Duration::from_secs(300);
        assert!(tag_is_fresh(1_000, 1_000, recheck));
        assert!(tag_is_fresh(1_000, 300_999, recheck));
        assert!(!tag_is_fresh(1_000, 301_000, recheck));
        assert!(tag_is_fresh(5_000, 1_000, recheck), "a row from a clock ahead of ours is fresh");
        assert!(!tag_is_fresh(0, 0, Duration::ZERO), "a zero window always rechecks");
    }
}
