//! The two records of a fill: may it be stored (and under which lease), and that it is stored.
//!
//! One fill per object across nodes: with a database that several nodes share, the first node to
//! ask gets an expiring lease and stores; others stream through uncached until it commits or its
//! lease lapses. A single node coalesces fills in its gateway and needs no lease.

use std::time::Duration;

use metadata::{BlobRecord, ManifestKey, ManifestRecord};
use oci::{Digest, Reference};

use crate::decide::StoredObject;
use crate::error::CacheError;
use crate::groups::Resolved;
use crate::state::Cache;

/// The answer to "may I store this fill?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillPermit {
    /// Store it; renew the lease (if any) while filling and hand it back when recording.
    Store { lease: Option<Lease> },
    /// Stream it without storing.
    Passthrough { reason: String },
}

/// A fill lease: the holder's id and how long it lasts without renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub ttl: Duration,
}

impl Cache {
    /// Decides whether `node` may store the object `digest` (`None`: a manifest by tag, whose
    /// digest is known only at the end — small, and nothing to coordinate on). `renew` extends a
    /// lease the node already holds.
    pub async fn authorize_fill(
        &self,
        digest: Option<&Digest>,
        node: &str,
        renew: Option<&str>,
    ) -> Result<FillPermit, CacheError> {
        let Some(digest) = digest else { return Ok(FillPermit::Store { lease: None }) };
        let metadata = self.catalog.metadata();
        if !metadata.shared_by_nodes() {
            return Ok(FillPermit::Store { lease: None });
        }
        let ttl = self.settings.lease_ttl;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.now_ms();
        let (held, id) = match renew {
            Some(id) => (metadata.renew_lease(digest, id, now, ttl_ms).await?, id.to_owned()),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                (metadata.acquire_lease(digest, node, &id, now, ttl_ms).await?, id)
            }
        };
        if held {
            return Ok(FillPermit::Store { lease: Some(Lease { id, ttl }) });
        }
        Ok(FillPermit::Passthrough { reason: format!("another node is filling {digest}") })
    }

    /// Records a stored blob for the resolved group, releasing the fill's lease.
    pub async fn record_blob(
        &self,
        resolved: &Resolved,
        object: StoredObject,
        lease: Option<&str>,
    ) -> Result<(), CacheError> {
        self.release(&object.digest, lease).await?;
        let record = BlobRecord { digest: object.digest, size: object.size, media_type: object.media_type };
        self.catalog.upsert_blob(&resolved.group.path, &record, self.clock.now_ms()).await?;
        Ok(())
    }

    /// Records a stored manifest under its digest and, when fetched by tag, under the tag too.
    pub async fn record_manifest(
        &self,
        resolved: &Resolved,
        reference: &Reference,
        object: StoredObject,
        lease: Option<&str>,
    ) -> Result<(), CacheError> {
        self.release(&object.digest, lease).await?;
        let now = self.clock.now_ms();
        let repository = resolved.group.upstream.upstream_repository(&resolved.image);
        let record = ManifestRecord {
            digest: object.digest.clone(),
            media_type: object.media_type,
            size: object.size,
            checked_at: now,
            stored: true,
        };
        let by_digest = ManifestKey {
            group: resolved.group.path.clone(),
            image: repository,
            reference: Reference::Digest(object.digest),
        };
        self.catalog.upsert_manifest(&by_digest, &record, now).await?;
        if let Reference::Tag(_) = reference {
            let by_tag = ManifestKey { reference: reference.clone(), ..by_digest };
            self.catalog.upsert_manifest(&by_tag, &record, now).await?;
        }
        Ok(())
    }

    async fn release(&self, digest: &Digest, lease: Option<&str>) -> Result<(), CacheError> {
        if let Some(lease) = lease {
            self.catalog.metadata().release_lease(digest, lease).await?;
        }
        Ok(())
    }
}
