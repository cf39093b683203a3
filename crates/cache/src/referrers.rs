//! The referrers API's lists (`/v2/<name>/referrers/<digest>`), cached like tags: a subject's list
//! is kept whole (in the metadata database — a small document the control plane answers itself)
//! and served without asking upstream for the group's `manifest_recheck`; after that upstream is
//! asked again (one GET, coalesced across concurrent requests, bounded by the recheck timeout);
//! while upstream is down the cached list is served, marked stale. Upstream's 404 (it serves no
//! referrers API for the subject) is kept the same way, so clients keep falling back to the tag
//! schema (`sha256-<hex>` tags, ordinary cached tags) while upstream is down. The full list is
//! kept; the `artifactType` filter is applied to it when answering.
//!
//! A group with several upstreams asks them in order: the one that answered before first; for a
//! subject not asked about yet, the one that served the subject's manifest (signatures and
//! attestations live beside their image), else the one that served the image. The first list that
//! names a referrer answers; an empty one only when no upstream has more (every upstream that
//! serves the API answers an empty list for a subject it does not hold).

use metadata::{ManifestKey, ReferrersAnswer, ReferrersKey, ReferrersRecord};
use oci::{Digest, ObjectKind, Reference, RepositoryName};
use upstream::{Attempts, MetadataDocument, UpstreamClient, UpstreamError};

use crate::decision::Stale;
use crate::error::CacheError;
use crate::freshness::is_fresh;
use crate::groups::{GroupSettings, Resolved};
use crate::state::Cache;
use crate::upstreams::moved_past;

/// A read moves a list's `read_at` (what its TTL counts from) at most this often.
const READ_NOTE_INTERVAL_MS: i64 = 60_000;

/// A subject's referrers, as the control plane answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// The full list as upstream sent it (an OCI image index); `None`: upstream serves no
    /// referrers API for the subject (404).
    pub list: Option<bytes::Bytes>,
    /// Upstream's pagination `Link`, as it sent it: relative to [`Referrers::upstream_path`].
    pub link: Option<String>,
    /// The path upstream answered at (`/v2/<repository as it names it>/referrers/<digest>`).
    pub upstream_path: String,
    /// Why upstream did not confirm the list, if it did not.
    pub stale: Option<Stale>,
}

impl Cache {
    /// The referrers of `subject` in `resolved`'s image: cached and fresh, asked again, or served
    /// stale while upstream cannot be asked.
    pub async fn referrers(&self, resolved: &Resolved, subject: &Digest) -> Result<Referrers, CacheError> {
        let group = &resolved.group;
        let key = ReferrersKey {
            group: group.path.clone(),
            image: group.upstreams.repository(&resolved.image),
            subject: subject.clone(),
        };
        let now = self.clock.now_ms();
        let cached = self.degraded(self.catalog.metadata().find_referrers(&key).await);
        if let Some(record) = &cached
            && is_fresh(record.checked_at, now, group.manifest_recheck)
        {
            self.note_referrers_read(&key, record, now).await;
            return Ok(self.answer(group, &resolved.image, subject, record, None));
        }
        let asked = Box::pin(self.ask_referrers(group, &resolved.image, &key, cached.as_ref())).await;
        match (asked, cached) {
            (Ok(record), _) => Ok(self.answer(group, &resolved.image, subject, &record, None)),
            (Err(error), Some(cached)) if error.is_outage() => {
                tracing::warn!(group = %group.path, repository = %key.image, %subject, %error,
                    "upstream unavailable; serving cached referrers stale");
                self.note_referrers_read(&key, &cached, now).await;
                Ok(self.answer(group, &resolved.image, subject, &cached, Some(Stale::UpstreamUnreachable)))
            }
            (Err(UpstreamError::NotFound(_)), Some(cached)) => {
                // Only when the group keeps what upstream deleted: otherwise a 404 is recorded.
                self.metrics.gone_served(&group.path);
                tracing::info!(group = %group.path, repository = %key.image, %subject,
                    "upstream answers 404 for cached referrers; serving them stale (stale_on_404)");
                self.note_referrers_read(&key, &cached, now).await;
                Ok(self.answer(group, &resolved.image, subject, &cached, Some(Stale::GoneUpstream)))
            }
            (Err(error), _) => Err(error.into()),
        }
    }

    /// Asks the group's upstreams for the list (once for concurrent requests) and records the
    /// answer: the list, or that every upstream answered 404 — unless the group serves a cached
    /// list upstream no longer has (`stale_on_404`): then the 404 is the caller's to handle.
    async fn ask_referrers(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        key: &ReferrersKey,
        cached: Option<&ReferrersRecord>,
    ) -> Result<ReferrersRecord, UpstreamError> {
        let preferred = match cached {
            Some(record) if !record.upstream.is_empty() => Some(record.upstream.clone()),
            _ => Box::pin(self.subject_upstream(group, key)).await,
        };
        let keep_on_404 =
            matches!(cached, Some(ReferrersRecord { answer: ReferrersAnswer::List { .. }, .. }))
                && group.policy.with(|policy| policy.stale_on_404);
        let holds_referrers = cached.is_some_and(|record| match &record.answer {
            ReferrersAnswer::List { body, .. } => {
                oci::referrers::referrers_count(body).is_ok_and(|count| count > 0)
            }
            ReferrersAnswer::NotServed => false,
        });
        let timeout = cached.is_some().then_some(self.settings.recheck_timeout);
        self.referrer_checks
            .run(key.clone(), || async {
                // A request that read the stale row just before another check finished must not
                // ask again: look first.
                if cached.is_some()
                    && let Ok(Some(current)) = self.catalog.metadata().find_referrers(key).await
                    && is_fresh(current.checked_at, self.clock.now_ms(), group.manifest_recheck)
                {
                    return Ok(current);
                }
                let order = group.upstreams.in_order(preferred.as_deref());
                let asked = first_list(&order, image, &key.subject, holds_referrers);
                let asked = match timeout {
                    Some(timeout) => tokio::time::timeout(timeout, asked).await.unwrap_or_else(|_| {
                        Err(UpstreamError::Timeout(format!("referrers recheck took over {timeout:?}")))
                    }),
                    None => asked.await,
                };
                let now = self.clock.now_ms();
                let record = match asked {
                    Ok((document, upstream)) => ReferrersRecord {
                        answer: ReferrersAnswer::List { body: document.body.to_vec(), link: document.link },
                        upstream: upstream.name().to_owned(),
                        checked_at: now,
                        read_at: now,
                    },
                    Err(UpstreamError::NotFound(kind)) if keep_on_404 => {
                        return Err(UpstreamError::NotFound(kind));
                    }
                    Err(UpstreamError::NotFound(_)) => ReferrersRecord {
                        answer: ReferrersAnswer::NotServed,
                        upstream: String::new(),
                        checked_at: now,
                        read_at: now,
                    },
                    Err(error) => return Err(error),
                };
                // Recording is what makes the next request cheap; the answer stands without it.
                let recorded = self.catalog.metadata().record_referrers(key, &record, now).await;
                self.degraded(recorded.map(Some));
                Ok(record)
            })
            .await
    }

    /// Moves a served list's `read_at` (its TTL counts from it), at most once a minute, so most
    /// reads of a cached list write nothing.
    async fn note_referrers_read(&self, key: &ReferrersKey, record: &ReferrersRecord, now: i64) {
        if now.saturating_sub(record.read_at) >= READ_NOTE_INTERVAL_MS {
            let noted = self.catalog.metadata().note_referrers_read(key, now).await;
            self.degraded(noted.map(Some));
        }
    }

    /// The upstream that served the subject's manifest, else the group's latest manifest of the
    /// image: asked first for a subject's referrers. Only for a group with several upstreams.
    async fn subject_upstream(&self, group: &GroupSettings, key: &ReferrersKey) -> Option<String> {
        if group.upstreams.count() < 2 {
            return None;
        }
        let subject = ManifestKey {
            group: key.group.clone(),
            image: key.image.clone(),
            reference: Reference::Digest(key.subject.clone()),
        };
        match self.degraded(self.catalog.find_manifest(&subject).await) {
            Some(record) if !record.upstream.is_empty() => Some(record.upstream),
            _ => self.degraded(self.catalog.metadata().image_upstream(&group.path, &key.image).await),
        }
    }

    fn answer(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        subject: &Digest,
        record: &ReferrersRecord,
        stale: Option<Stale>,
    ) -> Referrers {
        let repository = match group.upstreams.get(&record.upstream) {
            Some(upstream) => upstream.upstream_repository(image),
            None => group.upstreams.repository(image),
        };
        let (list, link) = match &record.answer {
            ReferrersAnswer::List { body, link } => (Some(bytes::Bytes::from(body.clone())), link.clone()),
            ReferrersAnswer::NotServed => (None, None),
        };
        Referrers { list, link, upstream_path: format!("/v2/{repository}/referrers/{subject}"), stale }
    }
}

/// Asks `order`'s upstreams for the subject's list: the first list that names a referrer answers.
/// An empty list answers only when no upstream has more: any upstream serving the referrers API
/// answers one for a subject it does not hold. Nor does it answer when an upstream that failed may
/// have held the referrers the cache `holds_referrers` for: then the failure answers, and the
/// cached list is served stale rather than replaced by an empty one.
async fn first_list<'a>(
    order: &[&'a UpstreamClient],
    image: &RepositoryName,
    subject: &Digest,
    holds_referrers: bool,
) -> Result<(MetadataDocument, &'a UpstreamClient), UpstreamError> {
    let suffix = format!("referrers/{subject}");
    let mut empty = None;
    let mut attempts = Attempts::default();
    let mut outage = false;
    for (index, upstream) in order.iter().copied().enumerate() {
        let repository = upstream.upstream_repository(image);
        let asked =
            upstream.get_metadata(&repository, &suffix, ObjectKind::Manifest).await.and_then(|document| {
                let count = oci::referrers::referrers_count(&document.body).map_err(|error| {
                    UpstreamError::Protocol(format!("{} answered referrers with {error}", upstream.name()))
                })?;
                Ok((document, count))
            });
        match asked {
            Ok((document, 0)) => {
                if empty.is_none() {
                    empty = Some((document, upstream));
                }
            }
            Ok((document, _)) => return Ok((document, upstream)),
            Err(error) => {
                if index + 1 < order.len() {
                    moved_past(upstream, &error);
                }
                outage |= error.is_outage();
                attempts.upstream_failed(error);
            }
        }
    }
    match empty {
        Some(answer) if !(outage && holds_referrers) => Ok(answer),
        _ => Err(attempts
            .into_error()
            .unwrap_or_else(|| UpstreamError::Protocol("the group has no upstream".into()))),
    }
}
