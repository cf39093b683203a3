//! What an operator sees through the admin API besides the lifecycle: the groups with their
//! policy and traffic, the upstreams' health and rate-limit budget, the live fills of every node,
//! the recent errors and denials, and the access tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use injector::FillReport;
use upstream::UpstreamStatus;

use crate::api::{LastErrorView, RateLimitView, StaleView, UpstreamView};

/// A configured group as operators see it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub path: String,
    /// Its upstreams, in the order it asks them.
    pub upstreams: Vec<String>,
    /// `token` or `anonymous`.
    pub access: String,
}

/// A configured upstream.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    pub name: String,
    /// Its base URL (never with credentials: those are refused in URLs).
    pub url: String,
    /// `host[:port]`, the key its health and metrics are kept under.
    pub host: String,
}

/// Where the live fills come from: this process's gateway (in `serve`), and the reports gateways
/// send (split mode), each kept for a few seconds.
pub struct FillBoard {
    local: OnceLock<(String, LocalFills)>,
    reported: Mutex<HashMap<String, (Instant, Vec<FillReport>)>>,
}

type LocalFills = Box<dyn Fn() -> Vec<FillReport> + Send + Sync>;

/// A node's report is dropped when it is older than this (the node stopped reporting).
pub const REPORT_LIFETIME: Duration = Duration::from_secs(5);
/// Fills kept per reporting node.
pub const MAX_FILLS_PER_NODE: usize = 10_000;
/// Nodes whose reports are kept at once: a report from one more is dropped until one stops.
pub const MAX_REPORTING_NODES: usize = 256;

impl FillBoard {
    pub fn new() -> Self {
        FillBoard { local: OnceLock::new(), reported: Mutex::default() }
    }

    /// Shows the fills of the gateway in this process, named `node` (once; later calls are ignored).
    pub fn attach_local(&self, node: String, snapshot: impl Fn() -> Vec<FillReport> + Send + Sync + 'static) {
        let _ = self.local.set((node, Box::new(snapshot)));
    }

    /// A gateway's latest list of its fills (its first [`MAX_FILLS_PER_NODE`]); `false` when it
    /// was dropped because [`MAX_REPORTING_NODES`] other nodes are reporting.
    pub fn report(&self, node: &str, fills: Vec<FillReport>) -> bool {
        self.report_at(node, fills, Instant::now())
    }

    fn report_at(&self, node: &str, mut fills: Vec<FillReport>, now: Instant) -> bool {
        fills.truncate(MAX_FILLS_PER_NODE);
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        if !reported.contains_key(node) && reported.len() >= MAX_REPORTING_NODES {
            reported.retain(|_, (at, _)| now.saturating_duration_since(*at) < REPORT_LIFETIME);
            if reported.len() >= MAX_REPORTING_NODES {
                return false;
            }
        }
        reported.insert(node.to_owned(), (now, fills));
        true
    }

    /// Forgets the reports of nodes that stopped reporting (run on a timer, so memory does not
    /// wait for someone to read the board).
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        reported.retain(|_, (at, _)| now.saturating_duration_since(*at) < REPORT_LIFETIME);
    }

    /// Nodes whose reports are kept.
    pub fn reporting_nodes(&self) -> usize {
        self.reported.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Every node's running fills, oldest first.
    pub fn all(&self) -> Vec<FillReport> {
        let mut all = Vec::new();
        if let Some((node, snapshot)) = self.local.get() {
            all.extend(snapshot().into_iter().map(|fill| FillReport { node: node.clone(), ..fill }));
        }
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        reported.retain(|_, (at, _)| at.elapsed() < REPORT_LIFETIME);
        for (node, (_, fills)) in reported.iter() {
            all.extend(fills.iter().cloned().map(|fill| FillReport { node: node.clone(), ..fill }));
        }
        all.sort_by_key(|fill| fill.started_at);
        all
    }
}

impl Default for FillBoard {
    fn default() -> Self {
        Self::new()
    }
}

/// A group's tags served although gone upstream (`stale_on_404`), by group path; `None` for a
/// group this node does not run.
pub type StaleSource = Box<dyn Fn(&str) -> Option<Vec<StaleView>> + Send + Sync>;

/// What the operator view is built from.
pub struct OperatorView {
    pub groups: Vec<GroupInfo>,
    pub upstreams: Vec<UpstreamInfo>,
    pub upstream_status: UpstreamStatus,
    pub fills: Arc<FillBoard>,
    pub stale: StaleSource,
}

impl OperatorView {
    /// Every configured upstream with how it has been answering.
    pub fn upstreams(&self) -> Vec<UpstreamView> {
        self.upstreams
            .iter()
            .map(|upstream| {
                let health = self.upstream_status.get(&upstream.host).unwrap_or_default();
                UpstreamView {
                    name: upstream.name.clone(),
                    url: upstream.url.clone(),
                    host: upstream.host.clone(),
                    reachable: health.reachable,
                    last_answer_at: health.last_answer_at,
                    last_error: health
                        .last_error
                        .map(|error| LastErrorView { at: error.at, message: error.message }),
                    latency_ms: health.latency_ms,
                    latency_avg_ms: health.latency_avg_ms,
                    rate_limit: health.rate_limit.map(|budget| RateLimitView {
                        limit: budget.limit,
                        remaining: budget.remaining,
                        window_seconds: budget.window_seconds,
                        at: budget.at,
                    }),
                    failovers: health.failovers,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fills(n: usize) -> Vec<FillReport> {
        (0..n)
            .map(|i| FillReport {
                upstream: "lab".into(),
                kind: "blob".into(),
                object: format!("app@sha256:{i:064x}"),
                phase: "streaming".into(),
                bytes_done: 1,
                bytes_total: None,
                rate: 1,
                clients: 1,
                started_at: i as u64,
                node: String::new(),
            })
            .collect()
    }

    #[test]
    fn reports_are_capped_and_pruned_without_being_read() {
        let board = FillBoard::new();
        let start = Instant::now();
        assert!(board.report_at("gateway-1", fills(MAX_FILLS_PER_NODE + 5), start));
        assert_eq!(board.all().len(), MAX_FILLS_PER_NODE, "a node's report is capped");
        for node in 1..MAX_REPORTING_NODES {
            assert!(board.report_at(&format!("gateway-{}", node + 1), fills(1), start));
        }
        assert!(!board.report_at("one-too-many", fills(1), start), "the nodes are capped");
        assert!(board.report_at("gateway-1", fills(1), start), "a known node still reports");
        // The timer's prune forgets nodes that stopped reporting; then a new node has room.
        board.prune_at(start + REPORT_LIFETIME);
        assert_eq!(board.reporting_nodes(), 0);
        assert!(board.report_at("one-too-many", fills(1), start + REPORT_LIFETIME));
    }
}
