//! Statistics: per group, what it holds (logical bytes, objects, manifests, tags, pinned bytes,
//! the oldest read, which upstream served what) and serves (hits, misses, bytes from cache vs fetched over 24 h); for the
//! store, its physical bytes.

use metadata::Traffic;

use crate::core::Lifecycle;
use crate::error::LifecycleError;
use crate::pins::pinned;

const DAY_MS: i64 = 24 * 3_600_000;

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupStats {
    pub group: String,
    pub ttl_seconds: Option<u64>,
    pub max_size: Option<u64>,
    pub pins: Vec<String>,
    /// Bytes of the objects it holds (shared objects count in each group).
    pub bytes: u64,
    pub pinned_bytes: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub tags: u64,
    /// The least recent read of its objects (unix ms).
    pub oldest_read: Option<i64>,
    /// Since the start of the current hour (traffic is kept in hourly buckets).
    pub last_1h: Traffic,
    /// Over the last 24 hours.
    pub last_24h: Traffic,
    /// What each upstream served it (objects it holds, by the upstream recorded with them).
    pub by_upstream: Vec<UpstreamShare>,
}

/// The objects of a group one upstream served.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamShare {
    /// Its name; empty for objects recorded before upstreams were.
    pub upstream: String,
    pub objects: u64,
    pub bytes: u64,
}

/// The store's figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Bytes in storage, each object once (including deletions not yet due).
    pub physical_bytes: u64,
    pub pending_delete_bytes: u64,
    pub max_size: Option<u64>,
    pub groups: Vec<GroupStats>,
}

impl Lifecycle {
    /// Figures for every configured group, or one.
    pub async fn stats(&self, only: Option<&str>) -> Result<StoreStats, LifecycleError> {
        if let Some(path) = only
            && self.group(path).is_none()
        {
            return Err(LifecycleError::UnknownGroup(path.to_owned()));
        }
        let usage = self.metadata.group_usage().await?;
        let by_upstream = self.metadata.upstream_usage().await?;
        let now = self.clock.now_ms();
        let since = now - now.rem_euclid(3_600_000) - DAY_MS + 3_600_000;
        let traffic = self.metadata.traffic_since(since).await?;
        let this_hour = self.metadata.traffic_since(now - now.rem_euclid(3_600_000)).await?;
        let traffic_of = |traffic: &[(String, Traffic)], path: &str| {
            traffic.iter().find(|(group, _)| group == path).map(|(_, traffic)| *traffic).unwrap_or_default()
        };
        let mut groups = Vec::new();
        for group in self.groups.iter().filter(|group| only.is_none_or(|path| group.path.as_str() == path)) {
            let used =
                usage.iter().find(|entry| entry.group == group.path.as_str()).cloned().unwrap_or_default();
            let pins = pinned(&self.metadata, group).await?;
            let pinned_digests: Vec<String> = pins.digests.into_iter().collect();
            groups.push(GroupStats {
                group: group.path.as_str().to_owned(),
                ttl_seconds: group.policy.ttl.map(|ttl| ttl.as_secs()),
                max_size: group.policy.max_size,
                pins: group.policy.pins.patterns().to_vec(),
                bytes: used.bytes,
                pinned_bytes: self.metadata.bytes_among(&group.path, &pinned_digests).await?,
                blobs: used.blobs,
                manifests: used.manifests,
                tags: used.tags,
                oldest_read: used.oldest_read,
                last_1h: traffic_of(&this_hour, group.path.as_str()),
                last_24h: traffic_of(&traffic, group.path.as_str()),
                by_upstream: by_upstream
                    .iter()
                    .filter(|share| share.group == group.path.as_str())
                    .map(|share| UpstreamShare {
                        upstream: share.upstream.clone(),
                        objects: share.objects,
                        bytes: share.bytes,
                    })
                    .collect(),
            });
        }
        let pending = self.metadata.pending_bytes().await?;
        Ok(StoreStats {
            physical_bytes: self.metadata.referenced_bytes().await? + pending,
            pending_delete_bytes: pending,
            max_size: self.settings.max_size,
            groups,
        })
    }
}
