//! When a cached document (an OCI tag, a package index) may be served without asking upstream:
//! for its window (`manifest_recheck`, `document_recheck`) after upstream last confirmed it.
//! Artifacts (digests, package files) are immutable and never asked about again.

use std::time::Duration;

/// Whether a document confirmed by upstream at `checked_at_ms` may still be served unasked at
/// `now_ms`.
pub(crate) fn is_fresh(checked_at_ms: i64, now_ms: i64, recheck: Duration) -> bool {
    let age_ms = now_ms.saturating_sub(checked_at_ms);
    age_ms < i64::try_from(recheck.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_strictly_inside_the_window() {
        let recheck = Duration::from_secs(300);
        assert!(is_fresh(1_000, 1_000, recheck));
        assert!(is_fresh(1_000, 300_999, recheck));
        assert!(!is_fresh(1_000, 301_000, recheck));
        assert!(is_fresh(5_000, 1_000, recheck), "a row from a clock ahead of ours is fresh");
        assert!(!is_fresh(0, 0, Duration::ZERO), "a zero window always rechecks");
    }
}
