//! Counters of every request made to an upstream, by upstream host and kind — the figures that
//! show how much upstream quota the cache spares.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::status::UpstreamStatus;

/// What an upstream request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `GET /v2/` to discover the auth scheme.
    Ping,
    Token,
    HeadManifest,
    HeadBlob,
    GetManifest,
    GetBlob,
    TagsList,
    Referrers,
    /// A package format's document (packument, project page) asked by the control plane: a
    /// HEAD when it is revalidated, a GET when a file is asked for before its document.
    HeadDocument,
    GetDocument,
    /// A package format's request passed through uncached (`npm audit`, `npm ping`, …).
    PassThrough,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Ping => "ping",
            RequestKind::Token => "token",
            RequestKind::HeadManifest => "head_manifest",
            RequestKind::HeadBlob => "head_blob",
            RequestKind::GetManifest => "get_manifest",
            RequestKind::GetBlob => "get_blob",
            RequestKind::TagsList => "tags_list",
            RequestKind::Referrers => "referrers",
            RequestKind::HeadDocument => "head_document",
            RequestKind::GetDocument => "get_document",
            RequestKind::PassThrough => "pass_through",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    upstream: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

/// Shared handle; clones count into the same family.
#[derive(Clone, Debug, Default)]
pub struct UpstreamMetrics {
    requests: Family<Labels, Counter>,
    failovers: Family<UpstreamLabel, Counter>,
    status: UpstreamStatus,
}

impl UpstreamMetrics {
    /// Creates the counters and registers them (`depproxy_upstream_requests_total`,
    /// `depproxy_upstream_failovers_total`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = UpstreamMetrics::default();
        registry.register(
            "depproxy_upstream_requests",
            "Requests sent to upstream registries, by upstream host and kind",
            metrics.requests.clone(),
        );
        registry.register(
            "depproxy_upstream_failovers",
            "Requests a group with several upstreams moved past this upstream host on, because it failed (5xx, 429, timeout, no connection)",
            metrics.failovers.clone(),
        );
        metrics
    }

    /// A group moved past `upstream` (a host label) to its next upstream because it failed.
    pub fn failed_over(&self, upstream: &str) {
        self.failovers.get_or_create(&UpstreamLabel { upstream: upstream.to_owned() }).inc();
        self.status.failed_over(upstream);
    }

    /// Failovers counted so far past `upstream`.
    pub fn failovers(&self, upstream: &str) -> u64 {
        self.failovers.get_or_create(&UpstreamLabel { upstream: upstream.to_owned() }).get()
    }

    pub fn count(&self, upstream: &str, kind: RequestKind) {
        self.requests.get_or_create(&Labels { upstream: upstream.to_owned(), kind: kind.as_str() }).inc();
    }

    /// How each upstream host has been answering (for the admin API).
    pub fn status(&self) -> &UpstreamStatus {
        &self.status
    }

    /// Requests counted so far for `upstream` and `kind`.
    pub fn get(&self, upstream: &str, kind: RequestKind) -> u64 {
        self.requests.get_or_create(&Labels { upstream: upstream.to_owned(), kind: kind.as_str() }).get()
    }
}

/// [`host_label`] of a URL given as text (empty when it is not a URL).
pub fn host_label_of(url: &str) -> String {
    url::Url::parse(url).map(|parsed| host_label(&parsed)).unwrap_or_default()
}

/// `host[:port]` of a URL, the label upstreams are counted under.
pub fn host_label(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}
