//! What operators see of each upstream host: whether it answers, its last error and when, how fast
//! it answers, and the pull budget it announces (`ratelimit-limit` / `ratelimit-remaining`, as
//! Docker Hub sends them on manifest requests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::error::UpstreamError;

/// The last error seen from an upstream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastError {
    /// Unix milliseconds.
    pub at: u64,
    /// What failed, in the client's terms (no URL or address).
    pub message: String,
}

/// The pull budget an upstream announced in its latest answer that carried one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// The window the budget is for (`;w=` in the header), in seconds.
    pub window_seconds: Option<u64>,
    /// Unix milliseconds of the answer.
    pub at: u64,
}

/// One upstream host as seen from this process.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamHealth {
    /// `None` until anything was asked.
    pub reachable: Option<bool>,
    /// Unix milliseconds of the last answer (any status).
    pub last_answer_at: Option<u64>,
    pub last_error: Option<LastError>,
    /// Time to response headers: the latest, and a moving average.
    pub latency_ms: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub rate_limit: Option<RateLimit>,
    /// Times a group with several upstreams moved past this one because it failed (5xx, 429,
    /// timeout, no connection): counted against its health.
    #[serde(default)]
    pub failovers: u64,
}

/// Shared handle; clones see the same table.
#[derive(Clone, Debug, Default)]
pub struct UpstreamStatus {
    hosts: Arc<Mutex<HashMap<String, UpstreamHealth>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// `76;w=21600` → (76, Some(21600)).
fn parse_budget(value: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = value.split(';');
    let count = parts.next()?.trim().parse().ok()?;
    let window = parts.find_map(|part| part.trim().strip_prefix("w=").and_then(|w| w.trim().parse().ok()));
    Some((count, window))
}

impl UpstreamStatus {
    fn update(&self, host: &str, change: impl FnOnce(&mut UpstreamHealth)) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        change(hosts.entry(host.to_owned()).or_default());
    }

    /// An answer (any status) came after `elapsed`.
    pub fn answered(&self, host: &str, headers: &HeaderMap, elapsed: Duration) {
        let at = now_ms();
        let header =
            |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).and_then(parse_budget);
        let budget = match (header("ratelimit-limit"), header("ratelimit-remaining")) {
            (Some((limit, window)), Some((remaining, remaining_window))) => {
                Some(RateLimit { limit, remaining, window_seconds: window.or(remaining_window), at })
            }
            _ => None,
        };
        let latency = elapsed.as_secs_f64() * 1000.0;
        self.update(host, |health| {
            health.reachable = Some(true);
            health.last_answer_at = Some(at);
            health.latency_ms = Some(latency);
            health.latency_avg_ms =
                Some(health.latency_avg_ms.map_or(latency, |average| average * 0.8 + latency * 0.2));
            if budget.is_some() {
                health.rate_limit = budget;
            }
        });
    }

    /// A request failed; an outage (no answer, 5xx, timeout) makes the host unreachable.
    pub fn failed(&self, host: &str, error: &UpstreamError) {
        if matches!(error, UpstreamError::NotFound(_)) {
            return;
        }
        let message = error.to_oci().message;
        let outage = error.is_outage() && !matches!(error, UpstreamError::RateLimited { .. });
        self.update(host, |health| {
            if outage {
                health.reachable = Some(false);
            }
            health.last_error = Some(LastError { at: now_ms(), message });
        });
    }

    /// A group moved past this host to its next upstream because it failed (see
    /// [`crate::failover`]).
    pub fn failed_over(&self, host: &str) {
        self.update(host, |health| health.failovers += 1);
    }

    pub fn get(&self, host: &str) -> Option<UpstreamHealth> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner).get(host).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_budget_headers_are_read() {
        let status = UpstreamStatus::default();
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        headers.insert("ratelimit-remaining", "76;w=21600".parse().unwrap());
        status.answered("registry-1.docker.io", &headers, Duration::from_millis(40));
        let health = status.get("registry-1.docker.io").unwrap();
        assert_eq!(health.reachable, Some(true));
        let budget = health.rate_limit.unwrap();
        assert_eq!((budget.limit, budget.remaining, budget.window_seconds), (100, 76, Some(21600)));
        assert_eq!(health.latency_ms, Some(40.0));

        // An answer without the headers keeps the last budget; an outage marks the host down.
        status.answered("registry-1.docker.io", &HeaderMap::new(), Duration::from_millis(60));
        assert!(status.get("registry-1.docker.io").unwrap().rate_limit.is_some());
        status.failed("registry-1.docker.io", &UpstreamError::Connect("tcp connect to 10.0.0.1".into()));
        let health = status.get("registry-1.docker.io").unwrap();
        assert_eq!(health.reachable, Some(false));
        let error = health.last_error.unwrap();
        assert!(error.message.contains("unreachable") && !error.message.contains("10.0.0.1"));
        assert_eq!(parse_budget("garbage"), None);
        status.failed_over("registry-1.docker.io");
        status.failed_over("registry-1.docker.io");
        assert_eq!(status.get("registry-1.docker.io").unwrap().failovers, 2);
    }
}
