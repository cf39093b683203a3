//! The one way each role starts, for the binary and the tests alike: `serve` (both roles in one
//! process), `control` and `gateway` each build their node, bind every listener they have — the
//! main one, the admin API, a metrics endpoint — and serve them until `shutdown`, then drain them
//! all, with the background work, within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use gateway::Gateway;
use injector::Secret;
use supervisor::Supervisor;

use super::listeners::{StartedWith, bind_admin, bind_main, bind_metrics, reload_on_hangup};
use super::nodes::{self, ControlNode, Runtime};
use super::reload::{ConfigSource, reload_policies_on_hangup};
use super::warming::ProxyPuller;
use crate::config::Config;
use crate::server::{Served, ServerMetrics, TlsCertificate};

/// How a process's listeners start, besides its configuration (from its flags).
#[derive(Clone, Default)]
pub struct ListenOptions {
    /// TLS on the main listener.
    pub tls: Option<TlsCertificate>,
    /// TLS on the admin API (`serve`, `control`).
    pub admin_tls: Option<TlsCertificate>,
    /// `/metrics` on a listener of its own: `serve` and `gateway` then no longer answer it on the
    /// main listener; `control` answers it nowhere else.
    pub metrics_listen: Option<SocketAddr>,
    pub started_with: StartedWith,
    /// Reads the configuration again on SIGHUP, for the groups' pull policies (`serve`,
    /// `control`); none: SIGHUP reloads certificates only.
    pub reload: Option<ConfigSource>,
}

impl ListenOptions {
    fn certificates(&self) -> Vec<TlsCertificate> {
        self.tls.iter().chain(&self.admin_tls).cloned().collect()
    }
}

/// Where a gateway finds its control plane: its base URL, and the CA (a PEM file) its
/// certificate must chain to for an `https://` URL.
#[derive(Debug, Clone)]
pub struct ControlAddress {
    pub url: String,
    pub ca: Option<PathBuf>,
}

/// A started process: its node, the addresses its listeners are bound to, the supervisor of its
/// background work, and the serving, which ends once `shutdown` has come and the drain is over
/// (or when the main listener fails).
pub struct Running<N> {
    pub node: N,
    pub address: SocketAddr,
    pub admin_address: Option<SocketAddr>,
    pub metrics_address: Option<SocketAddr>,
    pub supervisor: Supervisor,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl<N> Running<N> {
    /// Waits until the serving ends: after the shutdown's drain, or with the main listener's error.
    pub async fn finished(self) -> anyhow::Result<()> {
        self.serving.await.context("the server task failed")?
    }
}

/// `serve`'s node: the gateway, calling its control plane in the same process.
pub struct ServeNode {
    pub gateway: Arc<Gateway>,
    pub control: ControlNode,
}

/// Both roles in one process: the registry API (with `/metrics` unless it has a listener of its
/// own), the admin API and status page.
pub async fn run_serve(
    config: &Config,
    options: ListenOptions,
    runtime: Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running<ServeNode>> {
    reload_on_hangup(options.certificates())?;
    let supervisor = runtime.supervisor.clone();
    let server_metrics = runtime.server_metrics.clone();
    let (gateway, control) = nodes::serve_node(config, runtime).await?;
    if let Some(source) = &options.reload {
        reload_policies_on_hangup(control.cache.clone(), source.clone())?;
    }
    let admin_router = nodes::admin_router(&control, &supervisor);
    let admin = bind_admin(
        config,
        &options.started_with,
        admin_router,
        server_metrics.clone(),
        options.admin_tls.as_ref(),
    )?;
    let (router, metrics) = public_router(&gateway, config, options.metrics_listen, &server_metrics)?;
    let main = bind_main("depproxy serve", config, router, server_metrics, options.tls.as_ref())?;
    Ok(serve(ServeNode { gateway, control }, main, [admin, metrics], config, supervisor, shutdown))
}

/// A control plane alone (split mode): the gateways' channel, requiring requests signed with
/// `secret`; the admin API and status page; `/metrics` only on a listener of its own.
pub async fn run_control(
    config: &Config,
    secret: &Secret,
    options: ListenOptions,
    runtime: Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running<ControlNode>> {
    require_shared_signing_key(config)?;
    reload_on_hangup(options.certificates())?;
    let node = nodes::control_node(config, secret, &runtime).await?;
    nodes::start_warming(&node, &runtime.supervisor, split_mode_puller(config, &node));
    if let Some(source) = &options.reload {
        reload_policies_on_hangup(node.cache.clone(), source.clone())?;
    }
    let server_metrics = runtime.server_metrics.clone();
    let admin_router = nodes::admin_router(&node, &runtime.supervisor);
    let admin = bind_admin(
        config,
        &options.started_with,
        admin_router,
        server_metrics.clone(),
        options.admin_tls.as_ref(),
    )?;
    let metrics = match options.metrics_listen {
        Some(address) => Some(bind_metrics(
            address,
            nodes::metrics_router(runtime.registry),
            config,
            server_metrics.clone(),
        )?),
        None => None,
    };
    let router = node.router.clone();
    let main = bind_main("depproxy control", config, router, server_metrics, options.tls.as_ref())?;
    Ok(serve(node, main, [admin, metrics], config, runtime.supervisor, shutdown))
}

/// A control plane alone pulls what it warms through the gateways at `public_url`.
fn split_mode_puller(config: &Config, node: &ControlNode) -> Option<Arc<dyn lifecycle::WarmPuller>> {
    if !node.warming.has_schedules() {
        return None;
    }
    let Some(public_url) = &config.public_url else {
        tracing::warn!(
            "groups have warm schedules, but a control plane pulls what it warms through the gateways at \
             public_url, which is not set: its warm runs will fail until it is"
        );
        return None;
    };
    match ProxyPuller::over_http(public_url, node.access.clone()) {
        Ok(puller) => Some(Arc::new(puller)),
        Err(error) => {
            tracing::warn!("scheduled warming cannot pull through public_url: {error:#}");
            None
        }
    }
}

/// Every control plane signs registry tokens with the same key when any group takes access tokens:
/// a token issued by one must work on all.
fn require_shared_signing_key(config: &Config) -> anyhow::Result<()> {
    let token_groups = config.token_groups();
    if !token_groups.is_empty() && config.auth.signing_key_file.is_none() {
        anyhow::bail!(
            "{} {} {} access tokens: set [auth] signing_key_file to a key shared by every control plane \
             (`depproxy gen-secret FILE` writes one), so a token issued by one works on all",
            if token_groups.len() == 1 { "group" } else { "groups" },
            token_groups.join(", "),
            if token_groups.len() == 1 { "needs" } else { "need" },
        );
    }
    Ok(())
}

/// A gateway alone (split mode), deciding through the control plane at `control`, signing its
/// requests with `secret`: the registry API (with `/metrics` unless it has a listener of its own).
pub async fn run_gateway(
    config: &Config,
    control: &ControlAddress,
    secret: &Secret,
    options: ListenOptions,
    runtime: Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running<Arc<Gateway>>> {
    reload_on_hangup(options.certificates())?;
    let channel = nodes::control_channel(config, &control.url, control.ca.as_deref())?;
    let supervisor = runtime.supervisor.clone();
    let server_metrics = runtime.server_metrics.clone();
    let gateway = nodes::gateway(config, channel, secret, runtime).await?;
    let (router, metrics) = public_router(&gateway, config, options.metrics_listen, &server_metrics)?;
    let main = bind_main("depproxy gateway", config, router, server_metrics, options.tls.as_ref())?;
    Ok(serve(gateway, main, [metrics], config, supervisor, shutdown))
}

/// The gateway's public router: with `/metrics`, or without it and with a metrics listener of its
/// own when one is asked for (metrics name upstream hosts and groups: not for every client to read).
fn public_router(
    gateway: &Arc<Gateway>,
    config: &Config,
    metrics_listen: Option<SocketAddr>,
    server_metrics: &ServerMetrics,
) -> anyhow::Result<(Router, Option<Served>)> {
    match metrics_listen {
        None => Ok((gateway.router(), None)),
        Some(address) => {
            let metrics = bind_metrics(address, gateway.metrics_router(), config, server_metrics.clone())?;
            Ok((gateway.router_without_metrics(), Some(metrics)))
        }
    }
}

/// Serves the bound listeners in the background until `shutdown`, then drains them.
fn serve<N, const M: usize>(
    node: N,
    main: Served,
    others: [Option<Served>; M],
    config: &Config,
    supervisor: Supervisor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Running<N> {
    let bound = |served: &Served| served.listener.local_addr().ok();
    let address = bound(&main).unwrap_or(config.listen);
    let others: Vec<Served> = others.into_iter().flatten().collect();
    let address_of = |name: &str| others.iter().find(|served| served.name == name).and_then(bound);
    let (admin_address, metrics_address) = (address_of("admin"), address_of("metrics"));
    let grace = config.shutdown_grace;
    let draining = supervisor.clone();
    let serving = tokio::spawn(async move {
        crate::server::serve_until(main, others, &draining, grace, shutdown).await.context("server failed")
    });
    Running { node, address, admin_address, metrics_address, supervisor, serving }
}
