//! What the lifecycle counts: each group's format, bytes, artifacts and documents, the store's
//! bytes, evictions by reason, sweeps.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupInfoLabels {
    group: String,
    /// `oci`, …
    format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// `ttl`, `quota`, `purge` or `gc`.
    reason: &'static str,
}

#[derive(Clone, Debug)]
pub struct LifecycleMetrics {
    group_info: Family<GroupInfoLabels, Gauge>,
    group_bytes: Family<GroupLabels, Gauge>,
    group_artifacts: Family<GroupLabels, Gauge>,
    group_documents: Family<GroupLabels, Gauge>,
    store_bytes: Gauge,
    evicted_objects: Family<ReasonLabels, Counter>,
    evicted_bytes: Family<ReasonLabels, Counter>,
    sweep_seconds: Histogram,
    sweep_errors: Counter,
}

impl Default for LifecycleMetrics {
    fn default() -> Self {
        LifecycleMetrics {
            group_info: Family::default(),
            group_bytes: Family::default(),
            group_artifacts: Family::default(),
            group_documents: Family::default(),
            store_bytes: Gauge::default(),
            evicted_objects: Family::default(),
            evicted_bytes: Family::default(),
            sweep_seconds: Histogram::new([0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]),
            sweep_errors: Counter::default(),
        }
    }
}

impl LifecycleMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = LifecycleMetrics::default();
        // Every reason exists from the start (at 0), so rates and dashboards see no gaps.
        for reason in ["ttl", "quota", "purge", "gc"] {
            let _ = metrics.evicted_objects.get_or_create(&ReasonLabels { reason });
            let _ = metrics.evicted_bytes.get_or_create(&ReasonLabels { reason });
        }
        registry.register(
            "depproxy_group_info",
            "Each group, with its format as a label (always 1): join it on `group` to split any group's series by format",
            metrics.group_info.clone(),
        );
        registry.register(
            "depproxy_cache_artifacts",
            "Artifacts (immutable files: OCI blobs, npm tarballs, PyPI files) each group holds, as of the last measurement",
            metrics.group_artifacts.clone(),
        );
        registry.register(
            "depproxy_cache_documents",
            "Documents (files naming artifacts: OCI manifests, npm packuments, PyPI project pages) each group holds, as of the last measurement",
            metrics.group_documents.clone(),
        );
        registry.register(
            "depproxy_cache_bytes",
            "Bytes of the objects each group holds (an object shared by groups counts in each)",
            metrics.group_bytes.clone(),
        );
        registry.register(
            "depproxy_store_bytes",
            "Bytes in the object store (each object once, deletions due included)",
            metrics.store_bytes.clone(),
        );
        registry.register(
            "depproxy_evicted_objects",
            "Objects removed from a group (ttl, quota, purge) or from storage as garbage (gc)",
            metrics.evicted_objects.clone(),
        );
        registry.register("depproxy_evicted_bytes", "Bytes of those objects", metrics.evicted_bytes.clone());
        registry.register(
            "depproxy_sweep_duration_seconds",
            "Duration of sweeps",
            metrics.sweep_seconds.clone(),
        );
        registry.register(
            "depproxy_sweep_errors",
            "Sweeps or deletions that failed",
            metrics.sweep_errors.clone(),
        );
        metrics
    }

    pub(crate) fn evicted(&self, reason: &'static str, objects: u64, bytes: u64) {
        self.evicted_objects.get_or_create(&ReasonLabels { reason }).inc_by(objects);
        self.evicted_bytes.get_or_create(&ReasonLabels { reason }).inc_by(bytes);
    }

    /// A group's format, and what it holds as measured from the database.
    pub(crate) fn group_measured(&self, group: &str, format: &'static str, artifacts: u64, documents: u64) {
        self.group_info.get_or_create(&GroupInfoLabels { group: group.to_owned(), format }).set(1);
        let labels = GroupLabels { group: group.to_owned() };
        self.group_artifacts.get_or_create(&labels).set(gauge(artifacts));
        self.group_documents.get_or_create(&labels).set(gauge(documents));
    }

    pub(crate) fn group_bytes(&self, group: &str, bytes: u64) {
        self.group_bytes.get_or_create(&GroupLabels { group: group.to_owned() }).set(gauge(bytes));
    }

    pub(crate) fn store_bytes(&self, bytes: u64) {
        self.store_bytes.set(gauge(bytes));
    }

    pub(crate) fn swept(&self, seconds: f64) {
        self.sweep_seconds.observe(seconds);
    }

    pub(crate) fn failed(&self) {
        self.sweep_errors.inc();
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
