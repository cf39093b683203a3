//! Cached tags served although their upstream now answers 404 (`stale_on_404`): the operator's
//! list of what builds still get only because the proxy kept it. Per control plane, in memory,
//! bounded; an entry goes when upstream has the tag again.

use metadata::ManifestKey;
use oci::{Digest, GroupPath};

/// A tag upstream no longer has, still served from the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GoneEntry {
    /// The image as upstream names it.
    pub image: String,
    pub tag: String,
    /// What the cached tag points at.
    pub digest: Digest,
    /// Unix milliseconds: when upstream was first seen answering 404 for it.
    pub since: i64,
    /// Unix milliseconds: the latest time it was served stale.
    pub last_served: i64,
    /// Times served since upstream lost it.
    pub served: u64,
}

pub(crate) struct GoneUpstream {
    entries: moka::sync::Cache<ManifestKey, GoneEntry>,
}

impl GoneUpstream {
    pub(crate) fn new(capacity: u64) -> Self {
        GoneUpstream { entries: moka::sync::Cache::builder().max_capacity(capacity).build() }
    }

    /// Notes that the tag `key` (pointing at `digest`) was served at `now_ms` although upstream
    /// answered 404 for it.
    pub(crate) fn served(&self, key: &ManifestKey, digest: &Digest, now_ms: i64) {
        let entry = match self.entries.get(key) {
            Some(entry) => {
                GoneEntry { last_served: now_ms, served: entry.served + 1, digest: digest.clone(), ..entry }
            }
            None => GoneEntry {
                image: key.image.to_string(),
                tag: key.reference.to_string(),
                digest: digest.clone(),
                since: now_ms,
                last_served: now_ms,
                served: 1,
            },
        };
        self.entries.insert(key.clone(), entry);
    }

    /// Upstream answered for the tag again.
    pub(crate) fn back(&self, key: &ManifestKey) {
        self.entries.invalidate(key);
    }

    /// The entries of `group`, most recently served first.
    pub(crate) fn of_group(&self, group: &GroupPath) -> Vec<GoneEntry> {
        let mut entries: Vec<GoneEntry> =
            self.entries.iter().filter(|(key, _)| &key.group == group).map(|(_, entry)| entry).collect();
        entries.sort_by(|a, b| b.last_served.cmp(&a.last_served).then_with(|| a.image.cmp(&b.image)));
        entries
    }
}

#[cfg(test)]
mod tests {
    use oci::{Reference, RepositoryName};

    use super::*;

    fn key(group: &str, tag: &str) -> ManifestKey {
        ManifestKey {
            group: GroupPath::parse(group).unwrap(),
            image: RepositoryName::parse("library/app").unwrap(),
            reference: Reference::parse(tag).unwrap(),
        }
    }

    #[test]
    fn entries_count_their_serves_until_upstream_has_the_tag_again() {
        let gone = GoneUpstream::new(100);
        let digest = Digest::of(b"manifest");
        gone.served(&key("default", "v1"), &digest, 1_000);
        gone.served(&key("default", "v1"), &digest, 5_000);
        gone.served(&key("other", "v1"), &digest, 6_000);
        let listed = gone.of_group(&GroupPath::parse("default").unwrap());
        assert_eq!(
            listed,
            vec![GoneEntry {
                image: "library/app".into(),
                tag: "v1".into(),
                digest: digest.clone(),
                since: 1_000,
                last_served: 5_000,
                served: 2,
            }]
        );
        gone.back(&key("default", "v1"));
        assert!(gone.of_group(&GroupPath::parse("default").unwrap()).is_empty());
        assert_eq!(gone.of_group(&GroupPath::parse("other").unwrap()).len(), 1);
    }
}
