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
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    upstream: String,
    kind: &'static str,
}

/// Shared handle; clones count into the same family.
#[derive(Clone, Debug, Default)]
pub struct UpstreamMetrics {
    requests: Family<Labels, Counter>,
    status: UpstreamStatus,
}

impl UpstreamMetrics {
    /// Creates the counters and registers them (`depproxy_upstream_requests_total`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = UpstreamMetrics::default();
        registry.register(
            "depproxy_upstream_requests",
            "Requests sent to upstream registries, by upstream host and kind",
            metrics.requests.clone(),
        );
        metrics
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

/// `host[:port]` of a URL, the label upstreams are counted under.
pub fn host_label(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}
