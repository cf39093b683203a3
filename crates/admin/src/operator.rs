//! What an operator sees through the admin API besides the lifecycle: the groups with their
//! policy and traffic, the upstreams' health and rate-limit budget, the live fills of every node,
//! the recent errors and denials, and the access tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use gateway::FillReport;
use upstream::UpstreamStatus;

use crate::api::{LastErrorView, RateLimitView, UpstreamView};

/// A configured group as operators see it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub path: String,
    pub upstream: String,
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

impl FillBoard {
    pub fn new() -> Self {
        FillBoard { local: OnceLock::new(), reported: Mutex::default() }
    }

    /// Shows the fills of the gateway in this process, named `node` (once; later calls are ignored).
    pub fn attach_local(&self, node: String, snapshot: impl Fn() -> Vec<FillReport> + Send + Sync + 'static) {
        let _ = self.local.set((node, Box::new(snapshot)));
    }

    /// A gateway's latest list of its fills.
    pub fn report(&self, node: &str, fills: Vec<FillReport>) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        reported.insert(node.to_owned(), (Instant::now(), fills));
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

/// What the operator view is built from.
pub struct OperatorView {
    pub groups: Vec<GroupInfo>,
    pub upstreams: Vec<UpstreamInfo>,
    pub upstream_status: UpstreamStatus,
    pub fills: Arc<FillBoard>,
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
                }
            })
            .collect()
    }
}
