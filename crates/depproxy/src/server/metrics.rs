//! What the listeners count: connections open, connections the server closed on a timer or
//! refused, and requests it answered itself because a deadline or a rule was broken.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why a connection was closed on a timer: `idle` (no request in flight for the keep-alive
/// timeout), `write_idle` (the client stopped reading its response), `head` (an HTTP/2 header
/// block not finished within the header-read timeout).
const CLOSE_REASONS: [&str; 3] = ["idle", "write_idle", "head"];
/// Why a connection was refused at once: `per_client` (its address has its share open).
const CONNECTION_REFUSALS: [&str; 1] = ["per_client"];
/// Why a request was answered by the listener itself: `body` (`408`, its body was not received
/// within the body-read timeout), `answer` (`503`, no response head within the request timeout).
const REQUEST_TIMEOUTS: [&str; 2] = ["body", "answer"];
/// Why a request was refused by the listener: `host` (`421`/`400` on a loopback listener),
/// `per_client` (`503`, through a trusted proxy, its client has its share of requests in flight).
const REQUEST_REFUSALS: [&str; 2] = ["host", "per_client"];

/// The listeners' counters, shared by every listener of a process.
#[derive(Clone, Debug, Default)]
pub struct ServerMetrics {
    pub(crate) open: Gauge,
    closed: Family<ReasonLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    requests_timed_out: Family<ReasonLabels, Counter>,
    requests_refused: Family<ReasonLabels, Counter>,
}

impl ServerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ServerMetrics::default();
        // Every reason exists from the start (at 0), so rates and dashboards see no gaps.
        let families = [
            (&metrics.closed, &CLOSE_REASONS[..]),
            (&metrics.refused, &CONNECTION_REFUSALS[..]),
            (&metrics.requests_timed_out, &REQUEST_TIMEOUTS[..]),
            (&metrics.requests_refused, &REQUEST_REFUSALS[..]),
        ];
        for (family, reasons) in families {
            for reason in reasons {
                let _ = family.get_or_create(&ReasonLabels { reason });
            }
        }
        registry.register("depproxy_connections_open", "Client connections open", metrics.open.clone());
        registry.register(
            "depproxy_connections_timed_out",
            "Client connections closed by the server's idle, write-idle or HTTP/2 head timeout",
            metrics.closed.clone(),
        );
        registry.register(
            "depproxy_connections_refused",
            "Client connections closed at once: their address had max_connections_per_client open",
            metrics.refused.clone(),
        );
        registry.register(
            "depproxy_requests_timed_out",
            "Requests answered by the listener because their body (408) or their answer (503) took too long",
            metrics.requests_timed_out.clone(),
        );
        registry.register(
            "depproxy_requests_refused",
            "Requests refused by the listener: a Host a loopback listener does not answer, or a client \
             behind a trusted proxy with its share of requests in flight",
            metrics.requests_refused.clone(),
        );
        metrics
    }

    pub(crate) fn timed_out(&self, reason: &'static str) {
        self.closed.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn connection_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn request_timed_out(&self, reason: &'static str) {
        self.requests_timed_out.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn request_refused(&self, reason: &'static str) {
        self.requests_refused.get_or_create(&ReasonLabels { reason }).inc();
    }
}
