//! Statistics: per group, its format, what it holds (logical bytes, artifacts, documents, tags,
//! pinned bytes, the oldest read, which upstream served what) and serves (hits, misses, bytes
//! from cache vs fetched: the current hour, the last 24 hours, and those 24 hours one by one); for
//! the store, its physical bytes.
//!
//! Every format's groups are counted in the same words: an *artifact* is an immutable file named
//! by its checksum (an OCI blob: a layer or a config; an npm tarball, a PyPI wheel or sdist), a
//! *document* a file that names artifacts (an OCI manifest or index; an npm packument, a PyPI
//! project page); a *tag* is a mutable name for a document (package groups have none).

use cache::Format;
use metadata::Traffic;

use crate::core::Lifecycle;
use crate::error::LifecycleError;
use crate::pins::pinned;

const HOUR_MS: i64 = 3_600_000;
/// Hours in the hourly history of [`GroupStats::hourly`].
pub const HOURS: usize = 24;

/// One hour of a group's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HourTraffic {
    /// The hour's start (unix ms).
    pub hour: i64,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupStats {
    pub group: String,
    /// The protocol the group proxies (`oci`, …).
    pub format: Format,
    pub ttl_seconds: Option<u64>,
    pub max_size: Option<u64>,
    pub pins: Vec<String>,
    /// Bytes of the objects it holds (shared objects count in each group).
    pub bytes: u64,
    pub pinned_bytes: u64,
    /// Immutable files it holds (OCI: blobs; packages: the files stored).
    pub artifacts: u64,
    /// Documents it holds, each version once (OCI: manifests and indexes; packages: packuments
    /// and project pages stored, each variant once).
    pub documents: u64,
    /// Of `artifacts`, those stored unverified: their upstream published no checksum (a Maven
    /// repository without sidecars, a Go group without `verify_sumdb`).
    pub unverified_artifacts: u64,
    /// `artifacts` under the name it had before formats: kept for readers of `--json`.
    pub blobs: u64,
    /// `documents` under the name it had before formats: kept for readers of `--json`.
    pub manifests: u64,
    pub tags: u64,
    /// The least recent read of its objects (unix ms).
    pub oldest_read: Option<i64>,
    /// Since the start of the current hour (traffic is kept in hourly buckets).
    pub last_1h: Traffic,
    /// Over the last 24 hours.
    pub last_24h: Traffic,
    /// The last 24 hours one by one, oldest first, the current hour last ([`HOURS`] entries:
    /// hours without traffic are zeros).
    pub hourly: Vec<HourTraffic>,
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

/// The hours starting at `first`, one an hour, [`HOURS`] of them, with `group`'s traffic of
/// `rows` in each.
fn hours_of(rows: &[metadata::HourlyTraffic], group: &str, first: i64) -> Vec<HourTraffic> {
    let mut hours: Vec<HourTraffic> = (0..HOURS as i64)
        .map(|index| HourTraffic { hour: first + index * HOUR_MS, traffic: Traffic::default() })
        .collect();
    for row in rows.iter().filter(|row| row.group == group) {
        let index = (row.hour - first).div_euclid(HOUR_MS);
        if let Some(hour) = usize::try_from(index).ok().and_then(|index| hours.get_mut(index)) {
            hour.traffic.add(&row.traffic);
        }
    }
    hours
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
        let this_hour = now - now.rem_euclid(HOUR_MS);
        let first_hour = this_hour - (HOURS as i64 - 1) * HOUR_MS;
        let traffic = self.metadata.hourly_traffic_since(first_hour).await?;
        let mut groups = Vec::new();
        for group in self.groups.iter().filter(|group| only.is_none_or(|path| group.path.as_str() == path)) {
            let used =
                usage.iter().find(|entry| entry.group == group.path.as_str()).cloned().unwrap_or_default();
            let (artifacts, documents) = self.counts(group, &used).await?;
            let unverified_artifacts = if group.format.is_package() {
                self.metadata.count_unverified_files(&group.path).await?
            } else {
                0
            };
            let pins = pinned(&self.metadata, group).await?;
            let pinned_digests: Vec<String> = pins.digests.into_iter().collect();
            let hourly = hours_of(&traffic, group.path.as_str(), first_hour);
            let mut last_24h = Traffic::default();
            for hour in &hourly {
                last_24h.add(&hour.traffic);
            }
            groups.push(GroupStats {
                group: group.path.as_str().to_owned(),
                format: group.format,
                ttl_seconds: group.policy.ttl.map(|ttl| ttl.as_secs()),
                max_size: group.policy.max_size,
                pins: group.policy.pins.patterns().to_vec(),
                bytes: used.bytes,
                pinned_bytes: self.metadata.bytes_among(&group.path, &pinned_digests).await?,
                artifacts,
                documents,
                unverified_artifacts,
                blobs: artifacts,
                manifests: documents,
                tags: used.tags,
                oldest_read: used.oldest_read,
                last_1h: hourly.last().map(|hour| hour.traffic).unwrap_or_default(),
                last_24h,
                hourly,
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

impl Lifecycle {
    /// A group's artifacts and documents: an image group's blob and manifest rows; a package
    /// group's stored files and documents (its blob rows are both: its names tell which).
    pub(crate) async fn counts(
        &self,
        group: &crate::settings::GroupPolicy,
        used: &metadata::GroupUsage,
    ) -> Result<(u64, u64), LifecycleError> {
        if group.format.is_package() {
            let (documents, files) = self.metadata.package_counts(&group.path).await?;
            return Ok((files, documents));
        }
        Ok((used.blobs, used.manifests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, hour: i64, hits: u64) -> metadata::HourlyTraffic {
        metadata::HourlyTraffic {
            group: group.to_owned(),
            hour,
            traffic: Traffic { hits, ..Traffic::default() },
        }
    }

    #[test]
    fn every_hour_has_its_entry_and_traffic_lands_in_its_own() {
        let first = 100 * HOUR_MS;
        let rows =
            [row("a", first, 1), row("b", first, 7), row("a", first + 23 * HOUR_MS, 3), row("a", 0, 9)];
        let hours = hours_of(&rows, "a", first);
        assert_eq!(hours.len(), HOURS);
        assert_eq!(hours[0], HourTraffic { hour: first, traffic: Traffic { hits: 1, ..Traffic::default() } });
        assert_eq!(hours[23].hour, first + 23 * HOUR_MS);
        assert_eq!(hours[23].traffic.hits, 3);
        let total: u64 = hours.iter().map(|hour| hour.traffic.hits).sum();
        assert_eq!(total, 4, "b's traffic and hours before the first are not a's: {hours:?}");
    }
}
