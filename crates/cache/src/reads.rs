//! Access tracking off the hit path: a hit notes "read now" (and its bytes) in memory; a
//! periodic flush writes the batch — `read_at` and hit counts, each group's hourly traffic — in a
//! few statements. The database sees one write per flush, not one per hit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use metadata::{BlobKey, ManifestKey, Reads, Traffic};
use oci::{Digest, GroupPath, Reference};

/// Maps hashed on every hit: a fast non-cryptographic hasher (the keys are our own rows).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The reads of a manifest reference; a tag also remembers the digest it pointed at, whose row
/// the flush updates too (one map entry per hit instead of two).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ManifestReads {
    pub reads: Reads,
    pub points_at: Option<Digest>,
}

/// What a flush writes.
#[derive(Debug, Default)]
pub(crate) struct ReadBatch {
    pub blobs: FastMap<BlobKey, Reads>,
    pub manifests: FastMap<ManifestKey, ManifestReads>,
    pub traffic: FastMap<GroupPath, Traffic>,
    /// Hits (and bytes served) counted that never reached the client: taken back at the flush.
    pub taken_back: FastMap<GroupPath, Traffic>,
}

impl ReadBatch {
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
            && self.manifests.is_empty()
            && self.traffic.is_empty()
            && self.taken_back.is_empty()
    }

    fn len(&self) -> usize {
        self.blobs.len() + self.manifests.len() + self.traffic.len() + self.taken_back.len()
    }

    /// Folds an older batch (one that failed to flush) into this one.
    fn absorb(&mut self, older: ReadBatch) {
        for (key, reads) in older.blobs {
            merge(self.blobs.entry(key).or_default(), reads);
        }
        for (key, older_reads) in older.manifests {
            let entry = self.manifests.entry(key).or_default();
            merge(&mut entry.reads, older_reads.reads);
            if entry.points_at.is_none() {
                entry.points_at = older_reads.points_at;
            }
        }
        for (group, traffic) in older.traffic {
            self.traffic.entry(group).or_default().add(&traffic);
        }
        for (group, traffic) in older.taken_back {
            self.taken_back.entry(group).or_default().add(&traffic);
        }
    }
}

fn merge(into: &mut Reads, reads: Reads) {
    into.last = into.last.max(reads.last);
    into.count += reads.count;
}

/// Reads kept for a flush that keeps failing (database down): beyond this, new rows are dropped —
/// losing a `read_at` update only makes an object look older than it is.
const MAX_PENDING_ROWS: usize = 200_000;
/// The same per shard, for new reads.
const SHARD_PENDING_ROWS: usize = MAX_PENDING_ROWS / SHARDS;

/// Shards of the log: each runtime thread notes its hits in its own shard, so hits on different
/// threads never wait for one another's lock.
const SHARDS: usize = 16;

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

#[derive(Debug, Default)]
pub(crate) struct ReadLog {
    shards: [Mutex<ReadBatch>; SHARDS],
}

impl ReadLog {
    /// Updates this thread's shard. A row is counted against the pending limit per shard.
    fn with<T>(&self, update: impl FnOnce(&mut ReadBatch) -> T) -> T {
        let shard = SHARD.with(|shard| *shard);
        update(&mut self.shards[shard].lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn blob_read(&self, key: &BlobKey, now: i64, bytes: u64) {
        self.with(|batch| {
            let full = batch.len() >= SHARD_PENDING_ROWS;
            match batch.blobs.get_mut(key) {
                Some(reads) => merge(reads, Reads { last: now, count: 1 }),
                None if !full => {
                    batch.blobs.insert(key.clone(), Reads { last: now, count: 1 });
                }
                None => {}
            }
            served(batch, &key.group, bytes);
        });
    }

    /// A manifest hit: the reference asked for and, for a tag, the digest it points at (whose row
    /// is read too).
    pub fn manifest_read(&self, key: &ManifestKey, points_at: Option<&Digest>, now: i64, bytes: u64) {
        self.with(|batch| {
            let full = batch.len() >= SHARD_PENDING_ROWS;
            match batch.manifests.get_mut(key) {
                Some(entry) => {
                    merge(&mut entry.reads, Reads { last: now, count: 1 });
                    if let Some(digest) = points_at
                        && entry.points_at.as_ref() != Some(digest)
                    {
                        entry.points_at = Some(digest.clone());
                    }
                }
                None if !full => {
                    let entry =
                        ManifestReads { reads: Reads { last: now, count: 1 }, points_at: points_at.cloned() };
                    batch.manifests.insert(key.clone(), entry);
                }
                None => {}
            }
            served(batch, &key.group, bytes);
        });
    }

    pub fn missed(&self, group: &GroupPath) {
        self.with(|batch| traffic_of(batch, group).map(|traffic| traffic.misses += 1));
    }

    /// A hit of `bytes` noted earlier never reached the client (its object could not be read).
    pub fn taken_back(&self, group: &GroupPath, bytes: u64) {
        self.with(|batch| {
            let taken = batch.taken_back.entry(group.clone()).or_default();
            taken.hits += 1;
            taken.bytes_served += bytes;
        });
    }

    pub fn fetched(&self, group: &GroupPath, bytes: u64) {
        self.with(|batch| traffic_of(batch, group).map(|traffic| traffic.bytes_fetched += bytes));
    }

    /// Takes every shard's reads, as one batch.
    pub fn take(&self) -> ReadBatch {
        let mut all = ReadBatch::default();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            all.absorb(taken);
        }
        all
    }

    /// Puts back a batch that could not be written, to go with the next flush.
    pub fn restore(&self, batch: ReadBatch) {
        self.with(|current| {
            if current.len() + batch.len() <= MAX_PENDING_ROWS {
                current.absorb(batch);
            }
        });
    }
}

impl ReadBatch {
    /// The manifest rows to update: each reference read, and each digest a tag pointed at, with
    /// the reads of one row added up.
    pub fn manifest_rows(&self) -> Vec<(ManifestKey, Reads)> {
        let mut rows: FastMap<ManifestKey, Reads> = FastMap::default();
        for (key, entry) in &self.manifests {
            merge(rows.entry(key.clone()).or_default(), entry.reads);
            if let Some(digest) = &entry.points_at {
                let by_digest = ManifestKey { reference: Reference::Digest(digest.clone()), ..key.clone() };
                merge(rows.entry(by_digest).or_default(), entry.reads);
            }
        }
        rows.into_iter().collect()
    }
}

fn traffic_of<'a>(batch: &'a mut ReadBatch, group: &GroupPath) -> Option<&'a mut Traffic> {
    if !batch.traffic.contains_key(group) {
        batch.traffic.insert(group.clone(), Traffic::default());
    }
    batch.traffic.get_mut(group)
}

fn served(batch: &mut ReadBatch, group: &GroupPath, bytes: u64) {
    if let Some(traffic) = traffic_of(batch, group) {
        traffic.hits += 1;
        traffic.bytes_served += bytes;
    }
}

#[cfg(test)]
mod tests {
    use oci::{Digest, Reference, RepositoryName};

    use super::*;

    #[test]
    fn hits_fold_into_one_row_each_and_a_failed_batch_comes_back() {
        let log = ReadLog::default();
        let group = GroupPath::parse("g").unwrap();
        let blob = BlobKey { group: group.clone(), digest: Digest::of(b"x") };
        log.blob_read(&blob, 10, 100);
        log.blob_read(&blob, 30, 100);
        let tag = ManifestKey {
            group: group.clone(),
            image: RepositoryName::parse("app").unwrap(),
            reference: Reference::parse("v1").unwrap(),
        };
        let digest = ManifestKey { reference: Reference::Digest(Digest::of(b"m")), ..tag.clone() };
        log.manifest_read(&tag, Some(&Digest::of(b"m")), 20, 5);
        log.manifest_read(&digest, None, 25, 5);
        log.missed(&group);
        log.fetched(&group, 7);
        let batch = log.take();
        assert_eq!(batch.blobs[&blob], Reads { last: 30, count: 2 });
        let rows: HashMap<ManifestKey, Reads> = batch.manifest_rows().into_iter().collect();
        assert_eq!(rows[&tag], Reads { last: 20, count: 1 });
        assert_eq!(rows[&digest], Reads { last: 25, count: 2 }, "read by the tag and by its digest");
        assert_eq!(
            batch.traffic[&group],
            Traffic { hits: 4, misses: 1, bytes_served: 210, bytes_fetched: 7 }
        );
        assert!(log.take().is_empty());
        log.blob_read(&blob, 40, 1);
        log.restore(batch);
        let again = log.take();
        assert_eq!(again.blobs[&blob], Reads { last: 40, count: 3 });
        assert_eq!(again.traffic[&group].hits, 5);
    }
}
