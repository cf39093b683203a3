//! The OCI format's decisions: manifests and blobs, tags and their freshness.
//!
//! - cached (and, for a tag, fresh or confirmed by a HEAD) → [`Decision::Serve`];
//! - not cached, GET → [`Decision::Fetch`] with the URL and credentials of each of the group's
//!   upstreams, in the order the fill tries them;
//! - not cached, HEAD → an upstream HEAD, [`Decision::UpstreamHead`] (a HEAD never starts a fill);
//! - a stale tag whose upstream is down → the cached copy, marked stale; likewise one upstream
//!   deleted, when the group says so (`stale_on_404`);
//! - a tag the group declares immutable (`immutable_tags`) → never revalidated, as a digest;
//! - not cached, and upstream answered 404 for it within `negative_ttl` → 404 without asking;
//! - a group with an `admission_hook`: a manifest is served only once the hook allowed its digest,
//!   and fetched held until it does (`crate::admission`).
//!
//! A group with several upstreams asks them in order; a tag it holds asks the upstream that served
//! it first, and an object by digest the upstream that served its image (any upstream that has a
//! digest has the same bytes, so only the number of requests depends on the order). A 404 is
//! remembered when every upstream answered 404.

use metadata::{BlobKey, ManifestKey, ManifestRecord};
use oci::{Digest, GroupPath, ObjectKind, Reference, RepositoryName};
use upstream::{Attempts, ObjectHead, UpstreamClient, UpstreamError};

use crate::decision::{Decision, Fetch, FetchSource, Stale};
use crate::error::CacheError;
use crate::freshness::is_fresh;
use crate::groups::{GroupSettings, Resolved};
use crate::not_found::Missing;
use crate::state::Cache;
use crate::upstreams::{first_answer, moved_past};

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
                let reference = Reference::Digest(digest.clone());
                let preferred = self.image_upstream(&resolved.group, &resolved.image).await;
                let fetch = self.fetch(
                    &resolved.group,
                    ObjectKind::Blob,
                    &resolved.image,
                    &reference,
                    preferred.as_deref(),
                );
                Box::pin(fetch).await
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
            image: group.upstreams.repository(&resolved.image),
            reference: reference.clone(),
        };
        let served = self.manifest_decision(group, &resolved.image, &key, false).await;
        let served = self.held_back(resolved, reference, served).await;
        self.refetch(resolved, ObjectKind::Manifest, served, unreadable).await
    }

    /// A manifest — an image or an index, what scanners judge — is held back by the group's
    /// admission hook until it allows it; blobs are not (a layer is useless without the manifest
    /// that names it, and a scanner judges the image, not a layer).
    async fn held_back(
        &self,
        resolved: &Resolved,
        reference: &Reference,
        decision: Result<Decision, CacheError>,
    ) -> Result<Decision, CacheError> {
        match decision {
            // Boxed, and only for a group with a hook: every other hit's future stays as small.
            Ok(decision) if resolved.group.policy.with(|policy| policy.admission.is_some()) => {
                Box::pin(self.screen(resolved, ObjectKind::Manifest, reference, decision)).await
            }
            other => other,
        }
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
                let reference = Reference::Digest(object.digest);
                let preferred = Some(object.upstream.as_str());
                Box::pin(self.fetch(group, kind, &resolved.image, &reference, preferred)).await
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
        let reference = Reference::Digest(digest.clone());
        let repository = group.upstreams.repository(&resolved.image);
        self.answer_remembered_404(group, &missing(group, ObjectKind::Blob, &repository, &reference))?;
        // Misses are boxed, here and below: their futures (upstream calls, database writes) are
        // large, and inline they would make every hit's future as large.
        let preferred = Box::pin(self.image_upstream(group, &resolved.image)).await;
        if head {
            let order = group.upstreams.in_order(preferred.as_deref());
            let head = first_answer(&order, |upstream| {
                let repository = upstream.upstream_repository(&resolved.image);
                let reference = &reference;
                async move { upstream.head(&repository, ObjectKind::Blob, reference).await }
            });
            let answer = Box::pin(head).await;
            let (answer, _) =
                self.noting_404(group, || missing(group, ObjectKind::Blob, &repository, &reference), answer)?;
            return Ok(Decision::UpstreamHead { head: answer, requested: Some(digest.clone()) });
        }
        let fetch = self.fetch(group, ObjectKind::Blob, &resolved.image, &reference, preferred.as_deref());
        Box::pin(fetch).await
    }

    pub async fn manifest(
        &self,
        resolved: &Resolved,
        reference: &Reference,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let group = &resolved.group;
        let key = ManifestKey {
            group: group.path.clone(),
            image: group.upstreams.repository(&resolved.image),
            reference: reference.clone(),
        };
        let decision = self.manifest_decision(group, &resolved.image, &key, head).await;
        let decision = self.held_back(resolved, reference, decision).await;
        if let Ok(Decision::Serve { object, .. }) = &decision {
            let now = self.clock.now_ms();
            let bytes = if head { 0 } else { object.size };
            // A tag hit reads the tag and the manifest it points at.
            let points_at = matches!(key.reference, Reference::Tag(_)).then_some(&object.digest);
            self.reads.manifest_read(&key, points_at, now, bytes);
        }
        decision
    }

    /// `image` is the name as requested: each upstream is asked for it by its own naming rule.
    async fn manifest_decision(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        key: &ManifestKey,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let reference = &key.reference;
        let cached = self.degraded(self.catalog.find_manifest(key).await);
        match (reference, cached) {
            // Digest references are immutable: a cached one never needs upstream.
            (Reference::Digest(_), Some(record)) => Ok(serve(&record, None)),
            (Reference::Tag(tag), Some(record)) => {
                if is_fresh(record.checked_at, self.clock.now_ms(), group.manifest_recheck)
                    || group
                        .policy
                        .with(|policy| policy.immutable_tags.matches(key.image.as_str(), tag.as_str()))
                {
                    return self.serve_tag(group, image, &record, None, head).await;
                }
                Box::pin(self.revalidate_tag(group, image, key, record, head)).await
            }
            (_, None) if head => {
                self.answer_remembered_404(
                    group,
                    &missing(group, ObjectKind::Manifest, &key.image, reference),
                )?;
                Box::pin(self.remember_head(group, image, key)).await
            }
            (Reference::Digest(_), None) => {
                self.answer_remembered_404(
                    group,
                    &missing(group, ObjectKind::Manifest, &key.image, reference),
                )?;
                let preferred = Box::pin(self.image_upstream(group, image)).await;
                let fetch = self.fetch(group, ObjectKind::Manifest, image, reference, preferred.as_deref());
                Box::pin(fetch).await
            }
            // A new tag is asked in the configured order: an earlier upstream's tag of the same
            // name shadows a later one's.
            (Reference::Tag(_), None) => {
                self.answer_remembered_404(
                    group,
                    &missing(group, ObjectKind::Manifest, &key.image, reference),
                )?;
                Box::pin(self.fetch(group, ObjectKind::Manifest, image, reference, None)).await
            }
        }
    }

    /// A HEAD of an uncached manifest: upstream's answer, and where a tag points remembered.
    async fn remember_head(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        key: &ManifestKey,
    ) -> Result<Decision, CacheError> {
        let reference = &key.reference;
        let preferred = match reference {
            Reference::Digest(_) => self.image_upstream(group, image).await,
            Reference::Tag(_) => None,
        };
        let order = group.upstreams.in_order(preferred.as_deref());
        let answer = first_answer(&order, |upstream| {
            let repository = upstream.upstream_repository(image);
            async move { upstream.head(&repository, ObjectKind::Manifest, reference).await }
        })
        .await;
        let (answer, upstream) =
            self.noting_404(group, || missing(group, ObjectKind::Manifest, &key.image, reference), answer)?;
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
                upstream: upstream.name().to_owned(),
            };
            // Remembering is an optimisation: without the database the answer still stands.
            let remembered = self.catalog.upsert_manifest(key, &record, now).await;
            self.degraded(remembered.map(Some));
        }
        Ok(Decision::UpstreamHead { head: answer, requested: reference.as_digest().cloned() })
    }

    /// A cached tag is older than the recheck interval: one HEAD decides whether it moved — of
    /// the upstream that served it first, then of the group's others.
    async fn revalidate_tag(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        key: &ManifestKey,
        cached: ManifestRecord,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let now = self.clock.now_ms();
        let timeout = self.settings.recheck_timeout;
        let order = group.upstreams.in_order(Some(cached.upstream.as_str()));
        let answer = self
            .rechecks
            .run(key.clone(), || async {
                // A request that read the stale row just before another recheck finished must not
                // send a second HEAD: look again first.
                if let Ok(Some(current)) = self.catalog.metadata().find_manifest(key).await
                    && is_fresh(current.checked_at, self.clock.now_ms(), group.manifest_recheck)
                {
                    let head = ObjectHead {
                        digest: Some(current.digest),
                        media_type: Some(current.media_type),
                        size: Some(current.size),
                    };
                    return Ok((head, current.upstream));
                }
                let missing = || missing(group, ObjectKind::Manifest, &key.image, &key.reference);
                // Upstream answered 404 for it a moment ago: not asked again within the window.
                if self.answer_remembered_404(group, &missing()).is_err() {
                    return Err(UpstreamError::NotFound(ObjectKind::Manifest));
                }
                let head = first_answer(&order, |upstream| {
                    let repository = upstream.upstream_repository(image);
                    async move { upstream.head(&repository, ObjectKind::Manifest, &key.reference).await }
                });
                let answer = match tokio::time::timeout(timeout, head).await {
                    Ok(answer) => answer.map(|(head, upstream)| (head, upstream.name().to_owned())),
                    Err(_) => Err(UpstreamError::Timeout(format!("tag recheck took over {timeout:?}"))),
                };
                self.noting_404(group, missing, answer)
            })
            .await;
        if answer.is_ok() {
            self.gone.back(key);
        }
        match answer {
            Ok((ObjectHead { digest: Some(digest), .. }, upstream)) if digest == cached.digest => {
                let confirmed = if upstream == cached.upstream {
                    self.catalog.mark_manifest_checked(key, now).await
                } else {
                    // Now from another of the group's upstreams: asked first from here on.
                    let record =
                        ManifestRecord { checked_at: now, upstream: upstream.clone(), ..cached.clone() };
                    self.catalog.upsert_manifest(key, &record, now).await
                };
                self.degraded(confirmed.map(Some));
                let record = ManifestRecord { upstream, ..cached };
                self.serve_tag(group, image, &record, None, head).await
            }
            Ok((answer, upstream)) => {
                // The tag moved (or upstream did not say where): use the new digest if we hold it.
                if let Some(digest) = &answer.digest {
                    let by_digest =
                        ManifestKey { reference: Reference::Digest(digest.clone()), ..key.clone() };
                    if let Some(known) = self.degraded(self.catalog.find_manifest(&by_digest).await) {
                        let record = ManifestRecord { checked_at: now, upstream, ..known };
                        let repointed = self.catalog.upsert_manifest(key, &record, now).await;
                        self.degraded(repointed.map(Some));
                        return Ok(serve(&record, None));
                    }
                }
                if head {
                    return Ok(Decision::UpstreamHead { head: answer, requested: None });
                }
                self.fetch(group, ObjectKind::Manifest, image, &key.reference, Some(upstream.as_str())).await
            }
            Err(error) if error.is_outage() => {
                tracing::warn!(group = %group.path, repository = %key.image, tag = %key.reference, %error,
                    "upstream unavailable; serving cached tag stale");
                self.serve_tag(group, image, &cached, Some(Stale::UpstreamUnreachable), head).await
            }
            Err(UpstreamError::NotFound(_)) if group.policy.with(|policy| policy.stale_on_404) => {
                self.gone.served(key, &cached.digest, now);
                self.metrics.gone_served(&group.path);
                tracing::info!(group = %group.path, repository = %key.image, tag = %key.reference,
                    "upstream answers 404 for a cached tag; serving it stale (stale_on_404)");
                self.serve_tag(group, image, &cached, Some(Stale::GoneUpstream), head).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Serves a tag's record. A HEAD needs the record only; a GET needs the manifest itself, which a
    /// tag learned from a HEAD may not have cached yet: then it is fetched by digest, from the
    /// upstream that answered for the tag first.
    async fn serve_tag(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        record: &ManifestRecord,
        stale: Option<Stale>,
        head: bool,
    ) -> Result<Decision, CacheError> {
        if head || record.stored {
            return Ok(serve(record, stale));
        }
        let reference = Reference::Digest(record.digest.clone());
        let preferred = Some(record.upstream.as_str());
        Box::pin(self.fetch(group, ObjectKind::Manifest, image, &reference, preferred)).await
    }

    /// The upstream that served the group's latest manifest of `image`: objects by digest are
    /// asked there first. Only for a group with several upstreams (one query on a miss); none
    /// when not known or the database is down.
    async fn image_upstream(&self, group: &GroupSettings, image: &RepositoryName) -> Option<String> {
        if group.upstreams.count() < 2 {
            return None;
        }
        let repository = group.upstreams.repository(image);
        self.degraded(self.catalog.metadata().image_upstream(&group.path, &repository).await)
    }

    /// A fill from the group's upstreams, `preferred` first: each one's URL for the object and the
    /// headers to fetch it with (a token when it wants one).
    async fn fetch(
        &self,
        group: &GroupSettings,
        kind: ObjectKind,
        image: &RepositoryName,
        reference: &Reference,
        preferred: Option<&str>,
    ) -> Result<Decision, CacheError> {
        let order = group.upstreams.in_order(preferred);
        let sources = sources(&order, kind, image, reference).await?;
        self.reads.missed(&group.path);
        let repository = group.upstreams.repository(image);
        let expected_digest = reference.as_digest().cloned();
        Ok(Decision::Fetch(Fetch {
            kind,
            sources,
            fill_key: fill_key(&group.path, kind, &repository, reference, expected_digest.as_ref()),
            verify: expected_digest.as_ref().map(injector::Checksum::from),
            max_size: self.settings.limits.max_size(kind),
            hold: None,
        }))
    }
}

/// The sources of a fill, in `order`. Each upstream's headers are asked for at once (a token
/// fetch, when cached tokens are gone, is one round trip however many upstreams there are). An
/// upstream whose token service fails is left out — moved past, if it came before the first that
/// answered; with none left, the fill's answer is that failure.
async fn sources(
    order: &[&UpstreamClient],
    kind: ObjectKind,
    image: &RepositoryName,
    reference: &Reference,
) -> Result<Vec<FetchSource>, UpstreamError> {
    let asked = order.iter().map(|upstream| async move {
        let repository = upstream.upstream_repository(image);
        let headers = upstream.request_headers(&repository, kind).await?;
        Ok::<_, UpstreamError>(FetchSource {
            upstream: upstream.name().to_owned(),
            url: upstream.object_url(&repository, kind, reference),
            headers,
        })
    });
    let answers = futures_util::future::join_all(asked).await;
    let mut sources = Vec::with_capacity(answers.len());
    let mut attempts = Attempts::default();
    for (index, (upstream, answer)) in order.iter().zip(answers).enumerate() {
        match answer {
            Ok(source) => sources.push(source),
            Err(error) => {
                if sources.is_empty() && index + 1 < order.len() {
                    moved_past(upstream, &error);
                } else {
                    tracing::debug!(upstream = upstream.name(), %error, "upstream left out of a fill");
                }
                attempts.upstream_failed(error);
            }
        }
    }
    match attempts.into_error() {
        Some(error) if sources.is_empty() => Err(error),
        _ => Ok(sources),
    }
}
