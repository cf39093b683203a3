//! Remembered 404s: an object the upstream answered 404 for (a manifest, a tag, a blob) is
//! answered 404 again from memory for its group's `negative_ttl`, without asking the upstream —
//! Renovate, cosign's `.sig` probes and CI retries ask for the same missing things again and
//! again. Per control plane, in memory, bounded: forgetting early only costs an upstream request.

use std::time::{Duration, Instant};

use oci::{GroupPath, ObjectKind, Reference, RepositoryName};

/// What was not found: in which group, what kind of object, under which name and reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Missing {
    pub group: GroupPath,
    pub kind: ObjectKind,
    pub repository: RepositoryName,
    pub reference: Reference,
}

#[derive(Debug, Clone, Copy)]
struct Remembered {
    /// By the cache's clock (tests move it by hand).
    until_ms: i64,
    /// The same, for the memory's own expiry (which runs on the real clock).
    ttl: Duration,
}

struct ExpireAtTtl;

/// What a package request named that was not found: in which group, which document or file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PackageMissing {
    pub group: GroupPath,
    /// `document <package> <variant>` or `file <path>`.
    pub what: String,
}

impl<K> moka::Expiry<K, Remembered> for ExpireAtTtl {
    fn expire_after_create(&self, _: &K, value: &Remembered, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &K,
        value: &Remembered,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub(crate) struct NotFoundMemory<K = Missing> {
    entries: moka::sync::Cache<K, Remembered>,
}

impl<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> NotFoundMemory<K> {
    /// Remembers at most `capacity` 404s at once.
    pub(crate) fn new(capacity: u64) -> Self {
        let entries = moka::sync::Cache::builder().max_capacity(capacity).expire_after(ExpireAtTtl).build();
        NotFoundMemory { entries }
    }

    /// Remembers that upstream answered 404 for `missing`, for `ttl` from `now_ms` (nothing for a
    /// zero `ttl`).
    pub(crate) fn remember(&self, missing: K, now_ms: i64, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let until_ms = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.entries.insert(missing, Remembered { until_ms, ttl });
    }

    /// Whether a 404 for `missing` is remembered at `now_ms` and still within `ttl` — the
    /// group's window now, which a reload may have shortened (or set to zero).
    pub(crate) fn is_remembered(&self, missing: &K, now_ms: i64, ttl: Duration) -> bool {
        if ttl.is_zero() {
            return false;
        }
        let Some(remembered) = self.entries.get(missing) else { return false };
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let recorded_at =
            remembered.until_ms.saturating_sub(i64::try_from(remembered.ttl.as_millis()).unwrap_or(i64::MAX));
        if now_ms < remembered.until_ms && now_ms < recorded_at.saturating_add(ttl_ms) {
            return true;
        }
        self.entries.invalidate(missing);
        false
    }

    /// The object was found after all (a fill stored it): forget its 404.
    pub(crate) fn forget(&self, missing: &K) {
        self.entries.invalidate(missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(reference: &str) -> Missing {
        Missing {
            group: GroupPath::parse("default").unwrap(),
            kind: ObjectKind::Manifest,
            repository: RepositoryName::parse("library/app").unwrap(),
            reference: Reference::parse(reference).unwrap(),
        }
    }

    #[test]
    fn a_404_is_remembered_for_its_window() {
        let memory = NotFoundMemory::new(100);
        let minute = Duration::from_secs(60);
        memory.remember(missing("v1"), 1_000, minute);
        assert!(memory.is_remembered(&missing("v1"), 1_000, minute));
        assert!(memory.is_remembered(&missing("v1"), 60_999, minute));
        assert!(!memory.is_remembered(&missing("v2"), 1_000, minute), "another tag");
        let blob = Missing { kind: ObjectKind::Blob, ..missing("v1") };
        assert!(!memory.is_remembered(&blob, 1_000, minute), "another kind");
        assert!(!memory.is_remembered(&missing("v1"), 61_000, minute), "the window ended");
        assert!(!memory.is_remembered(&missing("v1"), 2_000, minute), "and it was forgotten");
    }

    #[test]
    fn a_shorter_or_zero_window_applies_at_once_and_found_objects_are_forgotten() {
        let memory = NotFoundMemory::new(100);
        memory.remember(missing("v1"), 0, Duration::from_secs(600));
        assert!(!memory.is_remembered(&missing("v1"), 0, Duration::ZERO), "turned off");
        assert!(!memory.is_remembered(&missing("v1"), 20_000, Duration::from_secs(10)), "shortened");
        memory.remember(missing("v1"), 0, Duration::ZERO);
        assert!(!memory.is_remembered(&missing("v1"), 0, Duration::from_secs(10)), "zero remembers nothing");
        memory.remember(missing("v2"), 0, Duration::from_secs(10));
        memory.forget(&missing("v2"));
        assert!(!memory.is_remembered(&missing("v2"), 0, Duration::from_secs(10)));
    }
}
