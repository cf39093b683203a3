//! The OCI format's decisions: manifests and blobs, tags and their freshness.
//!
//! - cached (and, for a tag, fresh or confirmed by a HEAD) → [`Decision::Serve`];
//! - not cached, GET → [`Decision::Fetch`] with the upstream URL and credentials;
//! - not cached, HEAD → one upstream HEAD, [`Decision::UpstreamHead`] (a HEAD never starts a fill);
//! - a stale tag whose upstream is down → the cached copy, marked stale; likewise one upstream
//!   deleted, when the group says so (`stale_on_404`);
//! - a tag the group declares immutable (`immutable_tags`) → never revalidated, as a digest;
//! - not cached, and upstream answered 404 for it within `negative_ttl` → 404 without asking.

use metadata::{BlobKey, ManifestKey, ManifestRecord};
use oci::{Digest, GroupPath, ObjectKind, Reference, RepositoryName};
use upstream::{ObjectHead, UpstreamError};

use crate::decision::{Decision, Fetch, Stale};
use crate::error::CacheError;
use crate::freshness::is_fresh;
use crate::groups::{GroupSettings, Resolved};
use crate::not_found::Missing;
use crate::state::Cache;

fn serve(record: &ManifestRecord, stale: Option<Stale>) -> Decision {
    Decision::Serve { object: record.into(), stale }
}

/// What a request for `reference` of `repository` in `group` names, as a remembered 404 knows it.
fn missing(
    group: &GroupSettings,
    kind: ObjectKind,
    repository: &RepositoryName,
    reference: &Reference,
) -> Missing {
    Missing { group: group.path.clone(), kind, repository: repository.clone(), reference: reference.clone() }
}

/// The single-flight key of a fill: the object's kind and digest when known, else what names it.
/// The kind is part of it: a `/manifests/<layer digest>` request must never join a blob's fill (the
/// manifest answer waits for verification and checks the media type; a layer is no manifest) nor
/// the reverse.
fn fill_key(
    group: &GroupPath,
    kind: ObjectKind,
    repository: &RepositoryName,
    reference: &Reference,
    expected: Option<&Digest>,
) -> String {
    match expected {
        Some(digest) => format!("{group}|{}|{digest}", kind.as_str()),
        None => format!("{group}|{}|{repository}:{reference}", kind.as_str()),
    }
}

impl Cache {
    /// A blob request asked again because the gateway could not read `unreadable`, the object
    /// the first answer served (deleted by hand, storage failing): see [`Cache::refetch_manifest`].
    pub async fn refetch_blob(
        &self,
        resolved: &Resolved,
        digest: &Digest,
        unreadable: &Digest,
    ) -> Result<Decision, CacheError> {
        let key = BlobKey { group: resolved.group.path.clone(), digest: digest.clone() };
        let served = match self.degraded(self.catalog.find_blob(&key).await) {
            Some(record) => Ok(Decision::Serve { object: record.into(), stale: None }),
            None => {
                let repository = resolved.group.upstream.upstream_repository(&resolved.image);
                let reference = Reference::Digest(digest.clone());
                Box::pin(self.fetch(&resolved.group, ObjectKind::Blob, &repository, &reference)).await
            }
        };
        self.refetch(resolved, ObjectKind::Blob, served, unreadable).await
    }

    /// A manifest request asked again because the gateway could not read `unreadable`, the object
    /// the first answer served: that hit never reached the client, so its count is taken back,
    /// and the object is fetched again by digest (a miss) — stored again if storage allows, which
    /// heals a row whose object went missing, and recorded under the requested tag too (the fill
    /// records under the request's path). Decided afresh, not noted as a read.
    pub async fn refetch_manifest(
        &self,
        resolved: &Resolved,
        reference: &Reference,
        unreadable: &Digest,
    ) -> Result<Decision, CacheError> {
        let group = &resolved.group;
        let key = ManifestKey {
            group: group.path.clone(),
            image: group.upstream.upstream_repository(&resolved.image),
            reference: reference.clone(),
        };
        let served = self.manifest_decision(group, &key, false).await;
        self.refetch(resolved, ObjectKind::Manifest, served, unreadable).await
    }

    async fn refetch(
        &self,
        resolved: &Resolved,
        kind: ObjectKind,
        served: Result<Decision, CacheError>,
        unreadable: &Digest,
    ) -> Result<Decision, CacheError> {
        let group = &resolved.group;
        match served {
            Ok(Decision::Serve { object, .. }) if &object.digest == unreadable => {
                tracing::warn!(digest = %object.digest, group = %group.path,
                    "stored object unreadable; fetching it again");
                self.reads.taken_back(&group.path, object.size);
                let repository = group.upstream.upstream_repository(&resolved.image);
                let reference = Reference::Digest(object.digest);
                Box::pin(self.fetch(group, kind, &repository, &reference)).await
            }
            other => {
                // Rows changed in between (the object was removed, or a tag moved): the first
                // answer's hit still did not happen; its bytes are unknown here.
                self.reads.taken_back(&group.path, 0);
                other
            }
        }
    }

    pub async fn blob(
        &self,
        resolved: &Resolved,
        digest: &Digest,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let group = &resolved.group;
        let key = BlobKey { group: group.path.clone(), digest: digest.clone() };
        if let Some(record) = self.degraded(self.catalog.find_blob(&key).await) {
            self.reads.blob_read(&key, self.clock.now_ms(), if head { 0 } else { record.size });
            return Ok(Decision::Serve { object: record.into(), stale: None });
        }
        let repository = group.upstream.upstream_repository(&resolved.image);
        let reference = Reference::Digest(digest.clone());
        self.answer_remembered_404(group, &missing(group, ObjectKind::Blob, &repository, &reference))?;
        // Misses are boxed, here and below: their futures (upstream calls, database writes) are
        // large, and inline they would make every hit's future as large.
        if head {
            let answer = Box::pin(group.upstream.head(&repository, ObjectKind::Blob, &reference)).await;
            let answer =
                self.noting_404(group, || missing(group, ObjectKind::Blob, &repository, &reference), answer)?;
            return Ok(Decision::UpstreamHead { head: answer, requested: Some(digest.clone()) });
        }
        Box::pin(self.fetch(group, ObjectKind::Blob, &repository, &reference)).await
    }

    pub async fn manifest(
        &self,
        resolved: &Resolved,
        reference: &Reference,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let group = &resolved.group;
        let repository = group.upstream.upstream_repository(&resolved.image);
        let key = ManifestKey {
            group: group.path.clone(),
            image: repository.clone(),
            reference: reference.clone(),
        };
        let decision = self.manifest_decision(group, &key, head).await;
        if let Ok(Decision::Serve { object, .. }) = &decision {
            let now = self.clock.now_ms();
            let bytes = if head { 0 } else { object.size };
            // A tag hit reads the tag and the manifest it points at.
            let points_at = matches!(key.reference, Reference::Tag(_)).then_some(&object.digest);
            self.reads.manifest_read(&key, points_at, now, bytes);
        }
        decision
    }

    async fn manifest_decision(
        &self,
        group: &GroupSettings,
        key: &ManifestKey,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let (repository, reference) = (&key.image, &key.reference);
        let cached = self.degraded(self.catalog.find_manifest(key).await);
        match (reference, cached) {
            // Digest references are immutable: a cached one never needs upstream.
            (Reference::Digest(_), Some(record)) => Ok(serve(&record, None)),
            (Reference::Tag(tag), Some(record)) => {
                if is_fresh(record.checked_at, self.clock.now_ms(), group.manifest_recheck)
                    || group
                        .policy
                        .with(|policy| policy.immutable_tags.matches(repository.as_str(), tag.as_str()))
                {
                    return self.serve_tag(group, repository, &record, None, head).await;
                }
                Box::pin(self.revalidate_tag(group, key, record, head)).await
            }
            (_, None) => {
                self.answer_remembered_404(
                    group,
                    &missing(group, ObjectKind::Manifest, repository, reference),
                )?;
                if head {
                    return Box::pin(self.remember_head(group, key, reference)).await;
                }
                Box::pin(self.fetch(group, ObjectKind::Manifest, repository, reference)).await
            }
        }
    }

    /// A HEAD of an uncached manifest: upstream's answer, and where a tag points remembered.
    async fn remember_head(
        &self,
        group: &GroupSettings,
        key: &ManifestKey,
        reference: &Reference,
    ) -> Result<Decision, CacheError> {
        let repository = &key.image;
        let answer = group.upstream.head(repository, ObjectKind::Manifest, reference).await;
        let answer =
            self.noting_404(group, || missing(group, ObjectKind::Manifest, repository, reference), answer)?;
        // containerd resolves a tag with HEAD, then GETs the digest. Remember where the tag
        // points, so the next resolve costs no upstream request and works while upstream is down.
        if let (Reference::Tag(_), Some(digest), Some(media_type), Some(size)) =
            (reference, &answer.digest, &answer.media_type, answer.size)
            && oci::media::is_manifest_type(media_type)
        {
            let now = self.clock.now_ms();
            let record = ManifestRecord {
                digest: digest.clone(),
                media_type: media_type.clone(),
                size,
                checked_at: now,
                stored: false,
            };
            // Remembering is an optimisation: without the database the answer still stands.
            let remembered = self.catalog.upsert_manifest(key, &record, now).await;
            self.degraded(remembered.map(Some));
        }
        Ok(Decision::UpstreamHead { head: answer, requested: reference.as_digest().cloned() })
    }

    /// A cached tag is older than the recheck interval: one HEAD decides whether it moved.
    async fn revalidate_tag(
        &self,
        group: &GroupSettings,
        key: &ManifestKey,
        cached: ManifestRecord,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let now = self.clock.now_ms();
        let timeout = self.settings.recheck_timeout;
        let answer = self
            .rechecks
            .run(key.clone(), || async {
                // A request that read the stale row just before another recheck finished must not
                // send a second HEAD: look again first.
                if let Ok(Some(current)) = self.catalog.metadata().find_manifest(key).await
                    && is_fresh(current.checked_at, self.clock.now_ms(), group.manifest_recheck)
                {
                    return Ok(ObjectHead {
                        digest: Some(current.digest),
                        media_type: Some(current.media_type),
                        size: Some(current.size),
                    });
                }
                let missing = || missing(group, ObjectKind::Manifest, &key.image, &key.reference);
                // Upstream answered 404 for it a moment ago: not asked again within the window.
                if self.answer_remembered_404(group, &missing()).is_err() {
                    return Err(UpstreamError::NotFound(ObjectKind::Manifest));
                }
                let head = group.upstream.head(&key.image, ObjectKind::Manifest, &key.reference);
                let answer = match tokio::time::timeout(timeout, head).await {
                    Ok(answer) => answer,
                    Err(_) => Err(UpstreamError::Timeout(format!("tag recheck took over {timeout:?}"))),
                };
                self.noting_404(group, missing, answer)
            })
            .await;
        if answer.is_ok() {
            self.gone.back(key);
        }
        match answer {
            Ok(ObjectHead { digest: Some(digest), .. }) if digest == cached.digest => {
                let marked = self.catalog.mark_manifest_checked(key, now).await;
                self.degraded(marked.map(Some));
                self.serve_tag(group, &key.image, &cached, None, head).await
            }
            Ok(answer) => {
                // The tag moved (or upstream did not say where): use the new digest if we hold it.
                if let Some(digest) = &answer.digest {
                    let by_digest =
                        ManifestKey { reference: Reference::Digest(digest.clone()), ..key.clone() };
                    if let Some(known) = self.degraded(self.catalog.find_manifest(&by_digest).await) {
                        let record = ManifestRecord { checked_at: now, ..known };
                        let repointed = self.catalog.upsert_manifest(key, &record, now).await;
                        self.degraded(repointed.map(Some));
                        return Ok(serve(&record, None));
                    }
                }
                if head {
                    return Ok(Decision::UpstreamHead { head: answer, requested: None });
                }
                self.fetch(group, ObjectKind::Manifest, &key.image, &key.reference).await
            }
            Err(error) if error.is_outage() => {
                tracing::warn!(group = %group.path, repository = %key.image, tag = %key.reference, %error,
                    "upstream unavailable; serving cached tag stale");
                self.serve_tag(group, &key.image, &cached, Some(Stale::UpstreamUnreachable), head).await
            }
            Err(UpstreamError::NotFound(_)) if group.policy.with(|policy| policy.stale_on_404) => {
                self.gone.served(key, &cached.digest, now);
                self.metrics.gone_served(&group.path);
                tracing::info!(group = %group.path, repository = %key.image, tag = %key.reference,
                    "upstream answers 404 for a cached tag; serving it stale (stale_on_404)");
                self.serve_tag(group, &key.image, &cached, Some(Stale::GoneUpstream), head).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Serves a tag's record. A HEAD needs the record only; a GET needs the manifest itself, which a
    /// tag learned from a HEAD may not have cached yet: then it is fetched by digest.
    async fn serve_tag(
        &self,
        group: &GroupSettings,
        repository: &RepositoryName,
        record: &ManifestRecord,
        stale: Option<Stale>,
        head: bool,
    ) -> Result<Decision, CacheError> {
        if head || record.stored {
            return Ok(serve(record, stale));
        }
        let reference = Reference::Digest(record.digest.clone());
        Box::pin(self.fetch(group, ObjectKind::Manifest, repository, &reference)).await
    }

    async fn fetch(
        &self,
        group: &GroupSettings,
        kind: ObjectKind,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Decision, CacheError> {
        let upstream = &group.upstream;
        let headers = upstream.request_headers(repository, kind).await?;
        self.reads.missed(&group.path);
        let expected_digest = reference.as_digest().cloned();
        Ok(Decision::Fetch(Fetch {
            kind,
            upstream: upstream.name().to_owned(),
            url: upstream.object_url(repository, kind, reference),
            headers,
            fill_key: fill_key(&group.path, kind, repository, reference, expected_digest.as_ref()),
            verify: expected_digest.as_ref().map(injector::Checksum::from),
            max_size: self.settings.limits.max_size(kind),
        }))
    }
}
