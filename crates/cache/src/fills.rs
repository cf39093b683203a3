//! The two records of a fill: may it be stored (and under which lease), and that it is stored.
//!
//! One fill per object across nodes: the first node to ask gets an expiring lease and stores;
//! others stream through uncached until it commits or its lease lapses. The lease also keeps the
//! sweeper away from the object while it is filled, and the commit claims it in the same
//! transaction as the row, so an eviction and a commit of one object never cross — on a single
//! node too (its gateway coalesces fills; the lease is for the sweeper).

use std::time::Duration;

use metadata::{BlobKey, BlobRecord, CommitLease, Committed, ManifestKey, ManifestRecord};
use oci::{Digest, GroupPath, ObjectKind, Reference};

use crate::decision::StoredObject;
use crate::error::CacheError;
use crate::groups::Resolved;
use crate::not_found::Missing;
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
    /// digest is known only at the end — small; its commit claims the object then). `renew`
    /// extends a lease the node already holds.
    pub async fn authorize_fill(
        &self,
        digest: Option<&Digest>,
        node: &str,
        renew: Option<&str>,
    ) -> Result<FillPermit, CacheError> {
        let Some(digest) = digest else { return Ok(FillPermit::Store { lease: None }) };
        let metadata = self.catalog.metadata();
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
        Ok(FillPermit::Passthrough { reason: format!("{digest} is being filled elsewhere or deleted") })
    }

    /// Records a stored blob for the resolved group (with the upstream that served it), releasing
    /// the fill's lease.
    pub async fn record_blob(
        &self,
        resolved: &Resolved,
        object: StoredObject,
        lease: Option<&str>,
    ) -> Result<(), CacheError> {
        let group = &resolved.group.path;
        let digest = object.digest.clone();
        if self.commit_group_blob(group, object, lease).await? {
            self.found(&Missing {
                group: group.clone(),
                kind: ObjectKind::Blob,
                repository: resolved.group.upstreams.repository(&resolved.image),
                reference: Reference::Digest(digest),
            });
        }
        Ok(())
    }

    /// Records a stored object as a blob row of `group` unless a sweeper is deleting it; says
    /// whether it is recorded.
    pub(crate) async fn commit_group_blob(
        &self,
        group: &GroupPath,
        object: StoredObject,
        lease: Option<&str>,
    ) -> Result<bool, CacheError> {
        let now = self.clock.now_ms();
        let record = BlobRecord {
            digest: object.digest,
            size: object.size,
            media_type: object.media_type,
            upstream: object.upstream,
        };
        let claim = self.commit_lease(lease);
        let epoch = self.catalog.epoch();
        match self.catalog.metadata().commit_blob(group, &record, claim, now).await? {
            Committed::Recorded => {
                self.committed(group, record.size);
                let key = BlobKey { group: group.clone(), digest: record.digest.clone() };
                self.catalog.remember_blob(epoch, key, record);
                Ok(true)
            }
            Committed::Refused => {
                refused(&record.digest);
                Ok(false)
            }
        }
    }

    /// Records a stored manifest under its digest and, when fetched by tag, under the tag too,
    /// with the digests it references (an index's manifests, an image's config and layers).
    pub async fn record_manifest(
        &self,
        resolved: &Resolved,
        reference: &Reference,
        object: StoredObject,
        references: &[Digest],
        lease: Option<&str>,
    ) -> Result<(), CacheError> {
        let now = self.clock.now_ms();
        let repository = resolved.group.upstreams.repository(&resolved.image);
        let record = ManifestRecord {
            digest: object.digest.clone(),
            media_type: object.media_type,
            size: object.size,
            checked_at: now,
            stored: true,
            upstream: object.upstream,
        };
        let by_digest = ManifestKey {
            group: resolved.group.path.clone(),
            image: repository,
            reference: Reference::Digest(object.digest),
        };
        let tag = matches!(reference, Reference::Tag(_)).then_some(reference);
        let claim = self.commit_lease(lease);
        let metadata = self.catalog.metadata();
        let epoch = self.catalog.epoch();
        match metadata.commit_manifest(&by_digest, tag, &record, references, claim, now).await? {
            Committed::Recorded => {
                self.committed(&by_digest.group, record.size);
                let missing = |reference: &Reference| Missing {
                    group: by_digest.group.clone(),
                    kind: ObjectKind::Manifest,
                    repository: by_digest.image.clone(),
                    reference: reference.clone(),
                };
                self.found(&missing(&by_digest.reference));
                if let Some(tag) = tag {
                    self.found(&missing(tag));
                    self.gone.back(&ManifestKey { reference: tag.clone(), ..by_digest.clone() });
                    let by_tag = ManifestKey { reference: tag.clone(), ..by_digest.clone() };
                    self.catalog.remember_manifest(epoch, by_tag, record.clone());
                }
                self.catalog.remember_manifest(epoch, by_digest, record);
            }
            Committed::Refused => refused(&record.digest),
        }
        Ok(())
    }

    fn commit_lease<'a>(&self, lease: Option<&'a str>) -> CommitLease<'a> {
        let ttl_ms = i64::try_from(self.settings.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        match lease {
            Some(id) => CommitLease::Held { id },
            None => CommitLease::Take { holder: "commit", ttl_ms },
        }
    }
}

/// A sweeper deleted (or is deleting) the object while it was filled: nothing is recorded, and
/// the next request fetches it again. Whatever the fill wrote is garbage the sweeper collects.
fn refused(digest: &Digest) {
    tracing::info!(%digest, "not recorded: the object was being deleted while it was filled");
}
