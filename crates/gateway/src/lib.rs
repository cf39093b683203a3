//! The gateway (data plane): the public listener. It forwards every request to the control plane
//! and executes the injector it gets back — `send-blob` (serve a cached object) or
//! `send-dependency` (fetch from upstream once, stream to every waiting client while storing,
//! verify, finalize). It makes no policy decision of its own.

mod control_channel;
mod error;
mod fill;
mod forward;
mod metrics;
mod send_blob;
mod send_dependency;
mod small_objects;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use injector::RequestSigner;
use storage::BlobStore;

pub use control_channel::{ControlChannel, InProcessControl};
pub use error::GatewayError;
pub use fill::Fills;
pub use metrics::{GatewayMetrics, Observability};

/// Timeouts and identity of a gateway node.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Identifies this node in fill leases and logs.
    pub node_id: String,
    /// Longest wait for the next chunk of an upstream body (not a total deadline: a 10 GB layer on
    /// a slow link must succeed).
    pub idle_timeout: Duration,
    /// Longest wait for upstream response headers.
    pub header_timeout: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            node_id: format!("gateway-{}", std::process::id()),
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared state of one gateway.
pub struct Gateway {
    pub(crate) control: ControlChannel,
    pub(crate) signer: RequestSigner,
    pub(crate) store: BlobStore,
    pub(crate) upstream_http: reqwest::Client,
    pub(crate) settings: GatewaySettings,
    pub(crate) fills: Fills,
    pub(crate) small_objects: small_objects::SmallObjects,
    pub(crate) observability: Observability,
}

impl Gateway {
    pub fn new(
        control: ControlChannel,
        signer: RequestSigner,
        store: BlobStore,
        upstream_http: reqwest::Client,
        settings: GatewaySettings,
        observability: Observability,
    ) -> Arc<Self> {
        Arc::new(Gateway {
            control,
            signer,
            store,
            upstream_http,
            settings,
            fills: Fills::default(),
            small_objects: small_objects::SmallObjects::default(),
            observability,
        })
    }

    /// The public HTTP surface.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/metrics", axum::routing::get(metrics::render))
            .fallback(forward::handle)
            .with_state(self.clone())
    }

    /// Fills currently running on this node.
    pub fn fills_in_flight(&self) -> usize {
        self.fills.len()
    }

    /// Waits until every detached fill on this node has finished.
    pub async fn wait_fills_idle(&self) {
        self.fills.wait_idle().await;
    }
}
