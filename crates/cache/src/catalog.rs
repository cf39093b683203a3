//! The cache's view of the metadata database: the same queries, with positive answers remembered
//! in memory so hits cost no database round trip.
//!
//! Only what cannot go wrong by being remembered is cached: blob rows and digest rows are
//! immutable while they exist; a tag row is served from memory only while it is fresh (the caller
//! checks `checked_at` against the recheck window, as it would for a row just read), and is
//! replaced when this node revalidates it. A row written by another node is seen at the latest when
//! the cached copy's window ends — the same staleness the recheck window already allows. Absent rows
//! are never cached, so an object another node just finalized is found at once. Rows whose manifest
//! is not stored yet (tags learned from a HEAD) are not cached either: they change soon.
//!
//! Admission verdicts (per group and digest) are remembered the same way: a verdict never changes
//! while its row exists, and forgetting one (an operator's request) is announced like a removal.
//!
//! Rows do go away (sweeps, purges): then everything remembered is forgotten ([`Catalog::forget_all`]).
//! A lookup that read a row just before its removal must not put it back afterwards, so every
//! insertion is checked against the count of forgets taken before its database call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metadata::{BlobKey, BlobRecord, ManifestKey, ManifestRecord, Metadata, MetadataError, VerdictRecord};
use oci::{Digest, GroupPath};

/// Size and lifetime of the in-memory copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogSettings {
    /// Entries kept per kind (blob rows, manifest rows).
    pub capacity: u64,
    /// Longest time an entry stays in memory.
    pub ttl: Duration,
}

pub(crate) struct Catalog {
    metadata: Metadata,
    blobs: moka::sync::Cache<BlobKey, BlobRecord>,
    manifests: moka::sync::Cache<ManifestKey, ManifestRecord>,
    /// Admission verdicts, by group and digest (only groups with an admission hook look).
    verdicts: moka::sync::Cache<(GroupPath, Digest), VerdictRecord>,
    /// How many times everything was forgotten.
    forgets: AtomicU64,
}

/// The catalog's forget count when a database call started: what that call read may be
/// remembered only if nothing was forgotten since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(u64);

impl Catalog {
    pub(crate) fn new(metadata: Metadata, settings: CatalogSettings) -> Self {
        let blobs = moka::sync::Cache::builder().max_capacity(settings.capacity).time_to_live(settings.ttl);
        let manifests =
            moka::sync::Cache::builder().max_capacity(settings.capacity).time_to_live(settings.ttl);
        let verdicts =
            moka::sync::Cache::builder().max_capacity(settings.capacity).time_to_live(settings.ttl);
        Catalog {
            metadata,
            blobs: blobs.build(),
            manifests: manifests.build(),
            verdicts: verdicts.build(),
            forgets: AtomicU64::new(0),
        }
    }

    /// Forgets every remembered row (rows were removed, by this process or another).
    pub(crate) fn forget_all(&self) {
        // Counted first: an insertion that checks the count after this sees it moved; one that
        // checked before inserted before the invalidation below, which then clears it.
        self.forgets.fetch_add(1, Ordering::AcqRel);
        self.blobs.invalidate_all();
        self.manifests.invalidate_all();
        self.verdicts.invalidate_all();
    }

    /// Take before a database call whose answer may be remembered.
    pub(crate) fn epoch(&self) -> Epoch {
        Epoch(self.forgets.load(Ordering::Acquire))
    }

    /// Whether rows were forgotten since `epoch`.
    fn forgot_since(&self, epoch: Epoch) -> bool {
        self.forgets.load(Ordering::Acquire) != epoch.0
    }

    /// Remembers a row read or written since `epoch`, unless rows were forgotten meanwhile.
    pub(crate) fn remember_blob(&self, epoch: Epoch, key: BlobKey, record: BlobRecord) {
        self.blobs.insert(key.clone(), record);
        if self.forgot_since(epoch) {
            self.blobs.invalidate(&key);
        }
    }

    pub(crate) fn remember_manifest(&self, epoch: Epoch, key: ManifestKey, record: ManifestRecord) {
        self.manifests.insert(key.clone(), record);
        if self.forgot_since(epoch) {
            self.manifests.invalidate(&key);
        }
    }

    /// The database itself, for what must not be cached (leases, re-reads).
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub(crate) async fn find_blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>, MetadataError> {
        if let Some(record) = self.blobs.get(key) {
            return Ok(Some(record));
        }
        let epoch = self.epoch();
        let found = self.metadata.find_blob(key).await?;
        if let Some(record) = &found {
            self.remember_blob(epoch, key.clone(), record.clone());
        }
        Ok(found)
    }

    pub(crate) async fn find_manifest(
        &self,
        key: &ManifestKey,
    ) -> Result<Option<ManifestRecord>, MetadataError> {
        if let Some(record) = self.manifests.get(key) {
            return Ok(Some(record));
        }
        let epoch = self.epoch();
        let found = self.metadata.find_manifest(key).await?;
        if let Some(record) = found.as_ref().filter(|record| record.stored) {
            self.remember_manifest(epoch, key.clone(), record.clone());
        }
        Ok(found)
    }

    /// Records a manifest reference. `record.stored` must say whether the manifest itself is
    /// cached, since the cache cannot join rows.
    pub(crate) async fn upsert_manifest(
        &self,
        key: &ManifestKey,
        record: &ManifestRecord,
        now: i64,
    ) -> Result<(), MetadataError> {
        let epoch = self.epoch();
        self.metadata.upsert_manifest(key, record, now).await?;
        if record.stored {
            self.remember_manifest(epoch, key.clone(), record.clone());
        } else {
            self.manifests.invalidate(key);
        }
        Ok(())
    }

    pub(crate) async fn mark_manifest_checked(
        &self,
        key: &ManifestKey,
        now: i64,
    ) -> Result<(), MetadataError> {
        let epoch = self.epoch();
        self.metadata.mark_manifest_checked(key, now).await?;
        if let Some(record) = self.manifests.get(key) {
            self.remember_manifest(epoch, key.clone(), ManifestRecord { checked_at: now, ..record });
        }
        Ok(())
    }

    /// `group`'s admission verdict on `digest`: from memory, else from the database.
    pub(crate) async fn find_verdict(
        &self,
        group: &GroupPath,
        digest: &Digest,
    ) -> Result<Option<VerdictRecord>, MetadataError> {
        let key = (group.clone(), digest.clone());
        if let Some(verdict) = self.verdicts.get(&key) {
            return Ok(Some(verdict));
        }
        let epoch = self.epoch();
        let found = self.metadata.find_verdict(group, digest).await?;
        if let Some(verdict) = &found {
            self.remember_verdict(epoch, key, verdict.clone());
        }
        Ok(found)
    }

    /// Records a verdict, and remembers it.
    pub(crate) async fn record_verdict(
        &self,
        group: &GroupPath,
        digest: &Digest,
        verdict: &VerdictRecord,
    ) -> Result<(), MetadataError> {
        let epoch = self.epoch();
        self.metadata.record_verdict(group, digest, verdict).await?;
        self.remember_verdict(epoch, (group.clone(), digest.clone()), verdict.clone());
        Ok(())
    }

    fn remember_verdict(&self, epoch: Epoch, key: (GroupPath, Digest), verdict: VerdictRecord) {
        self.verdicts.insert(key.clone(), verdict);
        if self.forgot_since(epoch) {
            self.verdicts.invalidate(&key);
        }
    }
}
