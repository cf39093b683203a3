//! The gateway's counters, and what it exposes for monitoring (rendered at `/metrics` by
//! [`telemetry::render_registry`]).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DecisionLabels {
    /// `hit` (send-blob), `miss` (send-dependency) or `relay` (answered by the control plane).
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FillLabels {
    /// `stored`, `passthrough` (streamed uncached: another node held the lease) or `failed`.
    pub outcome: &'static str,
}

/// Counters the gateway keeps.
#[derive(Clone, Debug, Default)]
pub struct GatewayMetrics {
    pub(crate) responses: Family<DecisionLabels, Counter>,
    pub(crate) fills: Family<FillLabels, Counter>,
    pub(crate) fill_bytes: Counter,
    pub(crate) unreadable_hits: Counter,
    pub(crate) storage_errors: Counter,
    pub(crate) fills_refused: Counter,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = GatewayMetrics::default();
        // Every label value exists from the start (at 0), so rates and dashboards see no gaps.
        for decision in ["hit", "miss", "relay"] {
            let _ = metrics.responses.get_or_create(&DecisionLabels { decision });
        }
        for outcome in ["stored", "passthrough", "failed"] {
            let _ = metrics.fills.get_or_create(&FillLabels { outcome });
        }
        registry.register(
            "depproxy_gateway_responses",
            "Client requests answered, by the control plane's decision",
            metrics.responses.clone(),
        );
        registry.register(
            "depproxy_fills",
            "Upstream fetches run by this gateway, by outcome",
            metrics.fills.clone(),
        );
        registry.register(
            "depproxy_fill_bytes",
            "Bytes fetched from upstreams by fills",
            metrics.fill_bytes.clone(),
        );
        registry.register(
            "depproxy_fills_refused",
            "Misses answered 503 because no fill slot freed up within the queue timeout",
            metrics.fills_refused.clone(),
        );
        registry.register(
            "depproxy_storage_write_errors",
            "Fills whose storage failed (they streamed on uncached)",
            metrics.storage_errors.clone(),
        );
        registry.register(
            "depproxy_unreadable_hits",
            "Hits whose stored object could not be read (fetched from upstream instead)",
            metrics.unreadable_hits.clone(),
        );
        metrics
    }

    pub(crate) fn fill_finished(&self, outcome: &'static str, bytes: u64) {
        self.fills.get_or_create(&FillLabels { outcome }).inc();
        self.fill_bytes.inc_by(bytes);
    }

    pub(crate) fn fill_refused(&self) {
        self.fills_refused.inc();
    }

    pub(crate) fn storage_failed(&self) {
        self.storage_errors.inc();
    }

    pub(crate) fn unreadable_hit(&self) {
        self.unreadable_hits.inc();
    }

    pub(crate) fn decided(&self, decision: &'static str) {
        self.responses.get_or_create(&DecisionLabels { decision }).inc();
    }
}

/// Everything the gateway exposes for monitoring.
#[derive(Clone, Default)]
pub struct Observability {
    pub gateway: GatewayMetrics,
    pub upstream: upstream::UpstreamMetrics,
    /// Rendered at `/metrics`; `None` renders nothing.
    pub registry: Option<Arc<Registry>>,
}
