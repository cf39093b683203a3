//! Access tracking off the hit path: a hit notes "read now" (and its bytes) in memory; a
//! periodic flush writes the batch — `read_at` and hit counts, each group's hourly traffic — in a
//! few statements. The database sees one write per flush, not one per hit.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use metadata::{BlobKey, ManifestKey, Reads, Traffic};
use oci::GroupPath;

/// What a flush writes.
#[derive(Debug, Default)]
pub(crate) struct ReadBatch {
    pub blobs: HashMap<BlobKey, Reads>,
    pub manifests: HashMap<ManifestKey, Reads>,
    pub traffic: HashMap<GroupPath, Traffic>,
}

impl ReadBatch {
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.manifests.is_empty() && self.traffic.is_empty()
    }

    fn len(&self) -> usize {
        self.blobs.len() + self.manifests.len() + self.traffic.len()
    }

    /// Folds an older batch (one that failed to flush) into this one.
    fn absorb(&mut self, older: ReadBatch) {
        for (key, reads) in older.blobs {
            merge(self.blobs.entry(key).or_default(), reads);
        }
        for (key, reads) in older.manifests {
            merge(self.manifests.entry(key).or_default(), reads);
        }
        for (group, traffic) in older.traffic {
            self.traffic.entry(group).or_default().add(&traffic);
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

#[derive(Debug, Default)]
pub(crate) struct ReadLog {
    batch: Mutex<ReadBatch>,
}

impl ReadLog {
    fn with<T>(&self, update: impl FnOnce(&mut ReadBatch) -> T) -> T {
        update(&mut self.batch.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn blob_read(&self, key: &BlobKey, now: i64, bytes: u64) {
        self.with(|batch| {
            let full = batch.len() >= MAX_PENDING_ROWS;
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

    /// A manifest hit: the reference asked for and, for a tag, the digest row it points at.
    pub fn manifest_read(&self, keys: &[&ManifestKey], now: i64, bytes: u64) {
        self.with(|batch| {
            let full = batch.len() >= MAX_PENDING_ROWS;
            for key in keys {
                match batch.manifests.get_mut(*key) {
                    Some(reads) => merge(reads, Reads { last: now, count: 1 }),
                    None if !full => {
                        batch.manifests.insert((*key).clone(), Reads { last: now, count: 1 });
                    }
                    None => {}
                }
            }
            if let Some(key) = keys.first() {
                served(batch, &key.group, bytes);
            }
        });
    }

    pub fn missed(&self, group: &GroupPath) {
        self.with(|batch| traffic_of(batch, group).map(|traffic| traffic.misses += 1));
    }

    pub fn fetched(&self, group: &GroupPath, bytes: u64) {
        self.with(|batch| traffic_of(batch, group).map(|traffic| traffic.bytes_fetched += bytes));
    }

    pub fn take(&self) -> ReadBatch {
        self.with(std::mem::take)
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
        log.manifest_read(&[&tag, &digest], 20, 5);
        log.missed(&group);
        log.fetched(&group, 7);
        let batch = log.take();
        assert_eq!(batch.blobs[&blob], Reads { last: 30, count: 2 });
        assert_eq!(batch.manifests[&tag], Reads { last: 20, count: 1 });
        assert_eq!(batch.manifests[&digest], Reads { last: 20, count: 1 });
        assert_eq!(
            batch.traffic[&group],
            Traffic { hits: 3, misses: 1, bytes_served: 205, bytes_fetched: 7 }
        );
        assert!(log.take().is_empty());
        log.blob_read(&blob, 40, 1);
        log.restore(batch);
        let again = log.take();
        assert_eq!(again.blobs[&blob], Reads { last: 40, count: 3 });
        assert_eq!(again.traffic[&group].hits, 4);
    }
}
