//! What scheduled warming asks the cache before it pulls anything: a repository's tags, from the
//! group's first upstream that answers, and whether a tag still points where the group's cached
//! copy does — one HEAD, of the upstream that served the tag first. A tag that moved (or is new)
//! is recorded at its new digest, so the pull that follows goes through the ordinary decision
//! path (single-flight, verification, recording) and fetches exactly what changed; one that did
//! not move is confirmed fresh and not pulled at all.

use metadata::{ManifestKey, ManifestRecord};
use oci::{Digest, ObjectKind, Reference, RepositoryName, Tag};

use crate::error::CacheError;
use crate::groups::GroupSettings;
use crate::state::Cache;
use crate::upstreams::first_answer;

/// A repository's tags as one of the group's upstreams lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTags {
    pub tags: Vec<String>,
    /// The upstream that answered (the group's first that knows the repository).
    pub upstream: String,
    /// The listing had more pages than are read: only its first tags are here.
    pub truncated: bool,
}

/// Where a tag points upstream, against the group's cached copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCheck {
    /// The digest upstream names for the tag (none when its HEAD did not say).
    pub digest: Option<Digest>,
    /// The digest the group's cached tag pointed at before, if it had one.
    pub previous: Option<Digest>,
    /// Whether it must be pulled: new, moved, or its manifest not cached.
    pub changed: bool,
}

impl Cache {
    /// The tags of `image` (named as the group's clients name it), from the group's upstreams in
    /// their order: the first that lists the repository answers.
    pub async fn upstream_tags(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
    ) -> Result<ListedTags, CacheError> {
        let order = group.upstreams.in_order(None);
        let (listed, upstream) = first_answer(&order, |upstream| {
            let repository = upstream.upstream_repository(image);
            async move { upstream.list_tags(&repository).await }
        })
        .await?;
        Ok(ListedTags {
            tags: listed.tags,
            upstream: upstream.name().to_owned(),
            truncated: listed.truncated,
        })
    }

    /// Asks upstream where `tag` of `image` points and compares with the group's cached tag. An
    /// unmoved tag whose manifest is cached is confirmed (fresh again, no pull needed); an
    /// immutable one (`immutable_tags`) is not even asked about. Otherwise the tag is recorded at
    /// upstream's digest — or, when upstream's HEAD does not say enough to record it, marked for
    /// a recheck — so that pulling the tag next fetches the new manifest.
    pub async fn check_tag_for_warming(
        &self,
        group: &GroupSettings,
        image: &RepositoryName,
        tag: &Tag,
    ) -> Result<TagCheck, CacheError> {
        let repository = group.upstreams.repository(image);
        let reference = Reference::Tag(tag.clone());
        let key = ManifestKey {
            group: group.path.clone(),
            image: repository.clone(),
            reference: reference.clone(),
        };
        let cached = self.catalog.metadata().find_manifest(&key).await?;
        let immutable =
            group.policy.with(|policy| policy.immutable_tags.matches(repository.as_str(), tag.as_str()));
        if let Some(record) = cached.as_ref().filter(|record| record.stored && immutable) {
            return Ok(TagCheck { digest: Some(record.digest.clone()), previous: None, changed: false });
        }
        let order = group.upstreams.in_order(cached.as_ref().map(|record| record.upstream.as_str()));
        let (head, upstream) = first_answer(&order, |upstream| {
            let repository = upstream.upstream_repository(image);
            let reference = &reference;
            async move { upstream.head(&repository, ObjectKind::Manifest, reference).await }
        })
        .await?;
        let now = self.clock.now_ms();
        let upstream = upstream.name().to_owned();
        let previous = cached.as_ref().map(|record| record.digest.clone());
        let Some(digest) = head.digest else {
            if cached.is_some() {
                self.catalog.mark_manifest_checked(&key, 0).await?;
            }
            return Ok(TagCheck { digest: None, previous, changed: true });
        };
        if let Some(record) = cached.as_ref().filter(|record| record.digest == digest && record.stored) {
            if record.upstream == upstream {
                self.catalog.mark_manifest_checked(&key, now).await?;
            } else {
                let moved = ManifestRecord { checked_at: now, upstream, ..record.clone() };
                self.catalog.upsert_manifest(&key, &moved, now).await?;
            }
            return Ok(TagCheck { digest: Some(digest), previous, changed: false });
        }
        let by_digest = ManifestKey { reference: Reference::Digest(digest.clone()), ..key.clone() };
        let known = self.catalog.metadata().find_manifest(&by_digest).await?;
        let described = match (&known, head.media_type, head.size) {
            (Some(known), _, _) => Some((known.media_type.clone(), known.size, known.stored)),
            (None, Some(media_type), Some(size)) if oci::media::is_manifest_type(&media_type) => {
                Some((media_type, size, false))
            }
            _ => None,
        };
        match described {
            Some((media_type, size, stored)) => {
                let record = ManifestRecord {
                    digest: digest.clone(),
                    media_type,
                    size,
                    checked_at: now,
                    stored,
                    upstream,
                };
                self.catalog.upsert_manifest(&key, &record, now).await?;
            }
            // Upstream named the digest but not what it is: the pull rechecks the tag itself.
            None if cached.is_some() => self.catalog.mark_manifest_checked(&key, 0).await?,
            None => {}
        }
        Ok(TagCheck { digest: Some(digest), previous, changed: true })
    }
}
