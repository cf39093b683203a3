//! [`Gateway`]: one gateway node's shared state.

use std::sync::Arc;
use std::time::Duration;

use injector::RequestSigner;
use storage::BlobStore;
use supervisor::Supervisor;

use crate::control_channel::ControlChannel;
use crate::fill::{Admission, FillLimits, Fills};
use crate::metrics::Observability;
use crate::small_objects::{SmallObjectSettings, SmallObjects};

/// Timeouts, sizes and identity of a gateway node.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Identifies this node in fill leases and logs.
    pub node_id: String,
    /// Longest wait for the next chunk of an upstream body (not a total deadline: a 10 GB layer on
    /// a slow link must succeed).
    pub idle_timeout: Duration,
    /// Longest wait for upstream response headers.
    pub header_timeout: Duration,
    pub small_objects: SmallObjectSettings,
    /// Recent bytes one fill keeps in memory for its followers.
    pub fill_window: usize,
    /// Recent bytes all fills keep in memory together.
    pub fill_memory: usize,
    /// How many fills may run, and how long a miss waits for one.
    pub fill_limits: FillLimits,
    /// What the formats say about request paths, for what the gateway does before the control
    /// plane answers.
    pub paths: PathRules,
}

/// Request paths as the formats see them — given by the control plane's list of formats, so the
/// gateway knows none.
#[derive(Debug, Clone, Copy)]
pub struct PathRules {
    /// Whether a client may POST to a path (a token endpoint's form, an npm audit): the body, up
    /// to 64 KiB, is forwarded. Every other request is a GET or HEAD.
    pub form_posts: fn(&str) -> bool,
    /// What a path names, for the access log: the subject (an image) and its reference; `None`
    /// when it names none.
    pub describe: fn(&str) -> Option<(&str, String)>,
}

/// One HTTP client per configured upstream, by name: an upstream's CA is trusted for it only,
/// and its redirects follow its own `redirect_allow`.
#[derive(Clone, Default)]
pub struct UpstreamHttp {
    by_name: std::collections::HashMap<String, upstream::EgressClient>,
}

impl UpstreamHttp {
    pub fn new(by_name: std::collections::HashMap<String, upstream::EgressClient>) -> Self {
        UpstreamHttp { by_name }
    }

    pub fn client(&self, upstream: &str) -> Option<&upstream::EgressClient> {
        self.by_name.get(upstream)
    }
}

/// Shared state of one gateway.
pub struct Gateway {
    pub(crate) control: ControlChannel,
    pub(crate) signer: RequestSigner,
    pub(crate) store: BlobStore,
    pub(crate) upstream_http: UpstreamHttp,
    pub(crate) settings: GatewaySettings,
    pub(crate) fills: Fills,
    pub(crate) admission: Arc<Admission>,
    pub(crate) small_objects: SmallObjects,
    pub(crate) observability: Observability,
    pub(crate) readiness: crate::readiness::Readiness,
    /// Runs fills and their lease renewals, so shutdown can drain them.
    pub(crate) supervisor: Supervisor,
}

/// What a gateway is built from.
pub struct GatewayParts {
    pub control: ControlChannel,
    pub signer: RequestSigner,
    pub store: BlobStore,
    pub upstream_http: UpstreamHttp,
    pub settings: GatewaySettings,
    pub observability: Observability,
    pub supervisor: Supervisor,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Arc<Self> {
        let small_objects = SmallObjects::new(parts.settings.small_objects);
        let fills = Fills::new(parts.settings.fill_memory);
        let admission = Admission::new(parts.settings.fill_limits);
        Arc::new(Gateway {
            control: parts.control,
            signer: parts.signer,
            store: parts.store,
            upstream_http: parts.upstream_http,
            settings: parts.settings,
            fills,
            admission,
            small_objects,
            observability: parts.observability,
            readiness: crate::readiness::Readiness::default(),
            supervisor: parts.supervisor,
        })
    }

    /// Objects left the cache (purged or evicted by this process): drops them from the memory of
    /// small objects, so their bytes are not held for nothing (and are read afresh once stored
    /// again).
    pub async fn forget_objects(&self, digests: &[oci::Digest]) {
        for digest in digests {
            self.small_objects.forget(&injector::storage_key(digest)).await;
        }
    }

    /// Whether the memory of small objects holds `digest` (diagnostics, tests).
    pub fn holds_in_memory(&self, digest: &oci::Digest) -> bool {
        self.small_objects.contains(&injector::storage_key(digest))
    }

    /// Fills currently running on this node.
    pub fn fills_in_flight(&self) -> usize {
        self.fills.len()
    }

    /// Sends this node's live fills to the control plane (split mode: its admin API shows every
    /// node's fills).
    pub async fn report_fills(&self) -> Result<(), crate::error::GatewayError> {
        let mut fills = self.fills.snapshot();
        fills.sort_by_key(|fill| fill.started_at);
        fills.truncate(injector::MAX_REPORTED_FILLS);
        // Within what a control plane reads: the oldest fills, as many as fit.
        let mut report = injector::FillsReport { node: self.settings.node_id.clone(), fills };
        let body = loop {
            let body = serde_json::to_vec(&report).map_err(crate::error::GatewayError::EncodeCall)?;
            if body.len() <= injector::MAX_FILL_REPORT_BYTES || report.fills.is_empty() {
                break body;
            }
            report.fills.truncate(report.fills.len() / 2);
        };
        let mut request = http::Request::new(bytes::Bytes::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(injector::FILLS_REPORT_PATH);
        request
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        let (response, _) = self.control.call(&self.signer, injector::Purpose::Forward, request).await?;
        if !response.status().is_success() {
            return Err(crate::error::GatewayError::ControlRefused(response.status()));
        }
        Ok(())
    }

    /// The fills running on this node, with their progress.
    pub fn fills_snapshot(&self) -> Vec<injector::FillReport> {
        self.fills.snapshot()
    }

    /// Waits until every detached fill on this node has finished.
    pub async fn wait_fills_idle(&self) {
        self.fills.wait_idle().await;
    }
}
