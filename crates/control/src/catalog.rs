//! The control plane's view of the metadata database: the same queries, with positive answers
//! remembered in memory so hits cost no database round trip.
//!
//! Only what cannot go wrong by being remembered is cached: blob rows and digest rows are
//! immutable; a tag row is served from memory only while it is fresh (the caller checks
//! `checked_at` against the recheck window, as it would for a row just read), and is replaced when
//! this node revalidates it. A row written by another node is seen at the latest when the cached
//! copy's window ends — the same staleness the recheck window already allows. Absent rows are never
//! cached, so an object another node just finalized is found at once. Rows whose manifest is not
//! stored yet (tags learned from a HEAD) are not cached either: they change soon.

use std::time::Duration;

use metadata::{BlobRecord, ManifestRecord, Metadata, MetadataError};
use oci::Digest;

/// How long an entry may stay in memory at most.
const ENTRY_LIFETIME: Duration = Duration::from_secs(600);
/// Entries per kind.
const CAPACITY: u64 = 100_000;

type ManifestKey = (String, String, String);

pub(crate) struct Catalog {
    metadata: Metadata,
    blobs: moka::sync::Cache<(String, Digest), BlobRecord>,
    manifests: moka::sync::Cache<ManifestKey, ManifestRecord>,
}

fn manifest_key(group: &str, image: &str, reference: &str) -> ManifestKey {
    (group.to_owned(), image.to_owned(), reference.to_owned())
}

impl Catalog {
    pub(crate) fn new(metadata: Metadata) -> Self {
        let blobs = moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(ENTRY_LIFETIME).build();
        let manifests =
            moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(ENTRY_LIFETIME).build();
        Catalog { metadata, blobs, manifests }
    }

    /// The database itself, for what must not be cached (leases, re-reads).
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub(crate) async fn find_blob(
        &self,
        group: &str,
        digest: &Digest,
    ) -> Result<Option<BlobRecord>, MetadataError> {
        let key = (group.to_owned(), digest.clone());
        if let Some(record) = self.blobs.get(&key) {
            return Ok(Some(record));
        }
        let found = self.metadata.find_blob(group, digest).await?;
        if let Some(record) = &found {
            self.blobs.insert(key, record.clone());
        }
        Ok(found)
    }

    pub(crate) async fn upsert_blob(
        &self,
        group: &str,
        record: &BlobRecord,
        now: i64,
    ) -> Result<(), MetadataError> {
        self.metadata.upsert_blob(group, record, now).await?;
        self.blobs.insert((group.to_owned(), record.digest.clone()), record.clone());
        Ok(())
    }

    pub(crate) async fn find_manifest(
        &self,
        group: &str,
        image: &str,
        reference: &str,
    ) -> Result<Option<ManifestRecord>, MetadataError> {
        let key = manifest_key(group, image, reference);
        if let Some(record) = self.manifests.get(&key) {
            return Ok(Some(record));
        }
        let found = self.metadata.find_manifest(group, image, reference).await?;
        if let Some(record) = found.as_ref().filter(|record| record.stored) {
            self.manifests.insert(key, record.clone());
        }
        Ok(found)
    }

    /// Records a manifest reference. `record.stored` must say whether the manifest itself is
    /// cached, since the cache cannot join rows.
    pub(crate) async fn upsert_manifest(
        &self,
        group: &str,
        image: &str,
        reference: &str,
        record: &ManifestRecord,
        now: i64,
    ) -> Result<(), MetadataError> {
        self.metadata.upsert_manifest(group, image, reference, record, now).await?;
        let key = manifest_key(group, image, reference);
        if record.stored {
            self.manifests.insert(key, record.clone());
        } else {
            self.manifests.invalidate(&key);
        }
        Ok(())
    }

    pub(crate) async fn mark_manifest_checked(
        &self,
        group: &str,
        image: &str,
        reference: &str,
        now: i64,
    ) -> Result<(), MetadataError> {
        self.metadata.mark_manifest_checked(group, image, reference, now).await?;
        let key = manifest_key(group, image, reference);
        if let Some(record) = self.manifests.get(&key) {
            self.manifests.insert(key, ManifestRecord { checked_at: now, ..record });
        }
        Ok(())
    }
}
