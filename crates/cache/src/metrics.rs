//! What the cache's domain counts for the operator.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of the cache's decisions; clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct CacheMetrics {
    /// Metadata lookups that failed (the request was answered as a miss).
    pub database_errors: Counter,
}

impl CacheMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = CacheMetrics::default();
        registry.register(
            "depproxy_metadata_errors",
            "Metadata database lookups that failed while deciding (answered as misses)",
            metrics.database_errors.clone(),
        );
        metrics
    }
}
