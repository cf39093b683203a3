//! Wiring: builds the control plane and the gateway from a resolved [`Config`].

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use control::{Clock, ControlPlane, ControlSettings, GroupSettings, Groups, UpstreamRoute};
use gateway::{ControlChannel, Gateway, GatewayMetrics, GatewaySettings, Observability};
use injector::{RequestSigner, RequestVerifier, Secret};
use metadata::Metadata;
use prometheus_client::registry::Registry;
use storage::{BlobStore, FsStore, S3Store};
use upstream::{Credentials, HttpOptions, UpstreamClient, UpstreamConfig, UpstreamMetrics};

use crate::config::{Config, StorageConfig};

/// What a process runs with besides its configuration: its clock and its metrics.
pub struct Runtime {
    pub clock: Clock,
    pub registry: Registry,
    pub upstream_metrics: UpstreamMetrics,
}

impl Runtime {
    pub fn new(clock: Clock) -> Self {
        let mut registry = Registry::default();
        let upstream_metrics = UpstreamMetrics::register(&mut registry);
        Runtime { clock, registry, upstream_metrics }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(Clock::system())
    }
}

fn http_options(config: &Config, ca_pem: Option<&Vec<u8>>) -> HttpOptions {
    HttpOptions {
        connect_timeout: config.connect_timeout,
        header_timeout: config.header_timeout,
        extra_ca_pem: ca_pem.into_iter().cloned().collect(),
    }
}

/// The control plane's router (no socket), requiring tokens signed with `secret`.
pub async fn control_router(config: &Config, secret: &Secret, runtime: &Runtime) -> anyhow::Result<Router> {
    let metadata = Metadata::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the metadata database {}", config.database_url))?;
    tracing::info!(backend = metadata.backend(), "metadata database ready");
    let mut clients = HashMap::new();
    let mut routes = Vec::new();
    for upstream in &config.upstreams {
        let credentials = match (&upstream.username, &upstream.password) {
            (Some(username), Some(password)) => {
                Some(Credentials { username: username.clone(), password: password.clone() })
            }
            _ => None,
        };
        let client = UpstreamClient::new(UpstreamConfig {
            name: upstream.name.clone(),
            url: upstream.url.clone(),
            credentials,
            http: http_options(config, upstream.ca_pem.as_ref()),
            metrics: runtime.upstream_metrics.clone(),
        })
        .with_context(|| format!("upstream {:?}", upstream.name))?;
        routes.push(UpstreamRoute { upstream: client.clone(), path_prefix: upstream.path_prefix });
        clients.insert(upstream.name.clone(), client);
    }
    let mut groups = Vec::new();
    for group in &config.groups {
        let upstream =
            clients.get(&group.upstream).cloned().with_context(|| format!("group {:?}", group.path))?;
        groups.push(GroupSettings {
            path: oci::GroupPath::parse(&group.path).map_err(|error| anyhow::anyhow!(error.message))?,
            upstream,
            manifest_recheck: group.manifest_recheck.unwrap_or(control::DEFAULT_MANIFEST_RECHECK),
        });
    }
    let settings = ControlSettings {
        max_blob_size: config.max_blob_size,
        max_manifest_size: config.max_manifest_size,
        recheck_timeout: config.recheck_timeout,
        lease_ttl: config.lease_ttl,
        coordinate_fills: metadata.backend() == "postgres",
    };
    let groups = Groups::new(groups, routes, control::DEFAULT_MANIFEST_RECHECK)
        .map_err(|error| anyhow::anyhow!(error.message))?;
    let control =
        ControlPlane::new(metadata, groups, settings, RequestVerifier::new(secret), runtime.clock.clone());
    Ok(control.router())
}

/// The gateway, reaching the control plane through `channel`. Takes the runtime's registry
/// (rendered at `/metrics`), so call it last.
pub async fn gateway(
    config: &Config,
    channel: ControlChannel,
    secret: &Secret,
    mut runtime: Runtime,
) -> anyhow::Result<Arc<Gateway>> {
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store = match &config.storage {
        StorageConfig::Filesystem => BlobStore::Filesystem(
            FsStore::open(&config.data_dir)
                .await
                .with_context(|| format!("cannot open storage under {}", config.data_dir.display()))?,
        ),
        StorageConfig::S3(settings) => BlobStore::S3(
            S3Store::open(settings.clone())
                .await
                .with_context(|| format!("cannot open S3 bucket {:?}", settings.bucket))?,
        ),
    };
    tracing::info!(storage = store.kind(), "object storage ready");
    let orphans = store.remove_orphans().await.context("cannot clean up temp data")?;
    if orphans > 0 {
        tracing::info!(orphans, "removed temp data left by an earlier run");
    }
    // One pooled client for all upstream object GETs, trusting every configured CA bundle.
    let all_cas: Vec<Vec<u8>> =
        config.upstreams.iter().filter_map(|upstream| upstream.ca_pem.clone()).collect();
    let options = HttpOptions { extra_ca_pem: all_cas, ..http_options(config, None) };
    let upstream_http = upstream::build_http_client(&options).context("upstream HTTP client")?;
    let settings = GatewaySettings {
        node_id: config.node_id.clone(),
        idle_timeout: config.idle_timeout,
        header_timeout: config.header_timeout,
    };
    let gateway_metrics = GatewayMetrics::register(&mut runtime.registry);
    let observability = Observability {
        gateway: gateway_metrics,
        upstream: runtime.upstream_metrics.clone(),
        registry: Some(Arc::new(runtime.registry)),
    };
    Ok(Gateway::new(channel, RequestSigner::new(secret), store, upstream_http, settings, observability))
}

/// Both roles in one process: the gateway calls the control plane's router directly.
pub async fn serve(config: &Config, runtime: Runtime) -> anyhow::Result<Arc<Gateway>> {
    let secret = Secret::from_bytes(rand::random());
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let control = control_router(config, &secret, &runtime).await?;
    let channel = ControlChannel::InProcess(gateway::InProcessControl::new(control));
    gateway(config, channel, &secret, runtime).await
}

/// The `/metrics` endpoint alone, for a control plane in split mode (whose own listener only
/// answers signed gateway requests).
pub fn metrics_router(registry: Registry) -> Router {
    let registry = Arc::new(registry);
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                    text.clear();
                }
                text
            }
        }),
    )
}

/// Serves `router` on `listener` until `shutdown` completes. Every accepted connection gets
/// `TCP_NODELAY`: responses are written as a header block and a streamed body, and with Nagle's
/// algorithm a small body (a manifest) would wait for the client's delayed ACK — 40 ms per
/// request on a kept-alive connection.
pub async fn run_server(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
