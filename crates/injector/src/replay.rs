//! The control plane's memory of the internal tokens it accepted, so that none is accepted twice
//! within its lifetime. Memory is bounded: tokens are kept in one bucket per second of issue, a
//! bucket holds a bounded number of them, and a bucket is emptied when its second is reused — by
//! then every token in it has expired and would be refused as stale before it is looked up.

use std::collections::HashSet;
use std::sync::Mutex;

/// Seconds of issue a bucket ring covers: more than a token's whole acceptance window (its
/// lifetime plus the tolerated clock skew), so a bucket is only reused once its tokens expired.
const BUCKETS: u64 = 40;

/// Tokens accepted per second of issue (per control plane): far more than one control plane decides
/// (a hit costs ~60 µs of a core end to end). A full bucket takes ~2.4 MB (8-byte keys in a hash
/// table at most 7/8 full), so the cache never holds more than ~95 MB, and only under that load;
/// requests beyond it are refused (503) instead of growing memory without end.
pub const DEFAULT_PER_SECOND: usize = 1 << 17;

/// Why a token id was not remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// Already accepted within its lifetime.
    Replayed,
    /// The bucket of its second of issue is full.
    Full,
}

struct Bucket {
    /// The second of issue this bucket holds tokens of.
    second: u64,
    /// The ids' low 64 bits: half the memory, and two different ids sharing them (odds ~n/2⁶⁴)
    /// only make a genuine token look replayed — a replayed one always matches.
    ids: HashSet<u64, foldhash::fast::RandomState>,
}

/// Token ids accepted, by second of issue.
pub struct ReplayCache {
    buckets: Mutex<Vec<Bucket>>,
    per_second: usize,
}

impl ReplayCache {
    pub fn new(per_second: usize) -> Self {
        let buckets = (0..BUCKETS)
            .map(|_| Bucket { second: u64::MAX, ids: HashSet::with_hasher(Default::default()) })
            .collect();
        ReplayCache { buckets: Mutex::new(buckets), per_second }
    }

    /// Remembers `id`, issued at `issued` (unix seconds), unless it was accepted before. The caller
    /// has checked that the token is within its lifetime, so `issued` is within the ring's window.
    pub fn admit(&self, id: u128, issued: u64) -> Result<(), ReplayRefusal> {
        // A panic while holding the lock cannot leave a bucket half-updated (inserts are atomic),
        // so a poisoned lock is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = usize::try_from(issued % BUCKETS).unwrap_or(0);
        let Some(bucket) = buckets.get_mut(slot) else { return Err(ReplayRefusal::Full) };
        if bucket.second != issued {
            // Its tokens were issued at least BUCKETS seconds apart from this one: all expired.
            // The table keeps room for as many as it held (the load a ring ago), no more, so
            // memory follows the load down again.
            let held = bucket.ids.len();
            bucket.ids.clear();
            bucket.ids.shrink_to(held);
            bucket.second = issued;
        }
        // Truncation on purpose (see `Bucket::ids`).
        let key = id as u64;
        if bucket.ids.contains(&key) {
            return Err(ReplayRefusal::Replayed);
        }
        if bucket.ids.len() >= self.per_second {
            return Err(ReplayRefusal::Full);
        }
        bucket.ids.insert(key);
        Ok(())
    }

    /// Ids remembered (of every second still in the ring).
    pub fn len(&self) -> usize {
        let buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        buckets.iter().map(|bucket| bucket.ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(DEFAULT_PER_SECOND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_admitted_once_per_lifetime_and_memory_stays_bounded() {
        let cache = ReplayCache::new(3);
        cache.admit(1, 1000).unwrap();
        assert_eq!(cache.admit(1, 1000), Err(ReplayRefusal::Replayed));
        cache.admit(2, 1000).unwrap();
        cache.admit(3, 1000).unwrap();
        assert_eq!(cache.admit(4, 1000), Err(ReplayRefusal::Full), "a full second refuses");
        cache.admit(4, 1001).unwrap();
        assert_eq!(cache.len(), 4);
        // The second 1000 + BUCKETS reuses the bucket of 1000: its ids have expired and go.
        cache.admit(5, 1000 + BUCKETS).unwrap();
        assert_eq!(cache.len(), 2);
        // Every bucket full: never more than BUCKETS × per_second ids.
        for second in 2000..2000 + 2 * BUCKETS {
            for id in 0..5 {
                let _ = cache.admit(u128::from(second * 10 + id), second);
            }
        }
        assert!(cache.len() <= usize::try_from(BUCKETS).unwrap() * 3);
    }
}
