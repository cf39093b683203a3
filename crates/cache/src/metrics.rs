//! What the cache's domain counts for the operator.

use oci::GroupPath;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    group: String,
    /// `allowed`, `denied`, `no_answer_allowed`, `no_answer_denied`.
    outcome: &'static str,
}

/// Counters of the cache's decisions; clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct CacheMetrics {
    /// Metadata lookups that failed (the request was answered as a miss).
    pub database_errors: Counter,
    /// Requests refused by a group's `allow`/`deny` rules.
    policy_refusals: Family<GroupLabels, Counter>,
    /// Requests answered 404 from a remembered upstream 404, without asking upstream.
    not_found_remembered: Family<GroupLabels, Counter>,
    /// Cached tags served although upstream answered 404 for them (`stale_on_404`).
    gone_served: Family<GroupLabels, Counter>,
    /// Admission hook calls by outcome (a verdict, or none and what `admission_on_timeout` made
    /// of it).
    admission_decisions: Family<VerdictLabels, Counter>,
    /// Requests (and held fills) refused by an admission verdict.
    admission_refusals: Family<GroupLabels, Counter>,
    /// Package files stored with no checksum published to verify them against.
    unverified_files: Family<GroupLabels, Counter>,
}

impl CacheMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = CacheMetrics::default();
        registry.register(
            "depproxy_metadata_errors",
            "Metadata database lookups that failed while deciding (answered as misses)",
            metrics.database_errors.clone(),
        );
        registry.register(
            "depproxy_policy_refusals",
            "Requests refused (403 DENIED) by a group's allow or deny rules",
            metrics.policy_refusals.clone(),
        );
        registry.register(
            "depproxy_not_found_remembered",
            "Requests answered 404 from a remembered upstream 404 (negative_ttl), without asking upstream",
            metrics.not_found_remembered.clone(),
        );
        registry.register(
            "depproxy_stale_on_404_served",
            "Cached tags served stale although upstream answered 404 for them (stale_on_404)",
            metrics.gone_served.clone(),
        );
        registry.register(
            "depproxy_admission_decisions",
            "Admission hook calls by outcome: allowed, denied, or no verdict (no_answer_allowed, \
             no_answer_denied, as admission_on_timeout says)",
            metrics.admission_decisions.clone(),
        );
        registry.register(
            "depproxy_admission_refusals",
            "Requests and held fills refused (403 DENIED) by a group's admission hook",
            metrics.admission_refusals.clone(),
        );
        registry.register(
            "depproxy_package_files_unverified",
            "Package files stored unverified: their upstream published no checksum for them \
             (recorded under the sha256 they arrived with)",
            metrics.unverified_files.clone(),
        );
        metrics
    }

    pub(crate) fn unverified_file_stored(&self, group: &GroupPath) {
        self.unverified_files.get_or_create(&labels(group)).inc();
    }

    pub(crate) fn admission_decided(&self, group: &GroupPath, outcome: &'static str) {
        self.admission_decisions
            .get_or_create(&VerdictLabels { group: group.as_str().to_owned(), outcome })
            .inc();
    }

    pub(crate) fn admission_refused(&self, group: &GroupPath) {
        self.admission_refusals.get_or_create(&labels(group)).inc();
    }

    /// Admission hook calls of `group` that ended with `outcome` (for tests and the operator).
    pub fn admission_decisions_count(&self, group: &GroupPath, outcome: &'static str) -> u64 {
        self.admission_decisions
            .get_or_create(&VerdictLabels { group: group.as_str().to_owned(), outcome })
            .get()
    }

    pub(crate) fn policy_refused(&self, group: &GroupPath) {
        self.policy_refusals.get_or_create(&labels(group)).inc();
    }

    pub(crate) fn not_found_remembered(&self, group: &GroupPath) {
        self.not_found_remembered.get_or_create(&labels(group)).inc();
    }

    pub(crate) fn gone_served(&self, group: &GroupPath) {
        self.gone_served.get_or_create(&labels(group)).inc();
    }

    /// Requests `group` answered 404 from memory so far (for tests and the operator).
    pub fn not_found_remembered_count(&self, group: &GroupPath) -> u64 {
        self.not_found_remembered.get_or_create(&labels(group)).get()
    }
}

fn labels(group: &GroupPath) -> GroupLabels {
    GroupLabels { group: group.as_str().to_owned() }
}
