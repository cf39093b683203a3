//! Wiring: builds the control plane and the gateway from a resolved [`Config`], with the
//! background work each runs under the process's supervisor.

use std::collections::HashMap;
use std::sync::Arc;

use access::{Access, AccessSettings, JwtKeys, TokenRegistry, TrustedProxies};
use anyhow::Context as _;
use axum::Router;
use cache::{Cache, CacheMetrics, Clock, GroupSettings, Groups, UpstreamRoute, Upstreams};
use control::{ControlParts, ControlPlane};
use gateway::{
    ControlChannel, Gateway, GatewayMetrics, GatewayParts, GatewaySettings, Observability, UpstreamHttp,
};
use injector::{RequestSigner, RequestVerifier, Secret};
use lifecycle::{GroupPolicy, Lifecycle, LifecycleMetrics, SweepSettings, WarmGroup, WarmPuller, Warming};
use metadata::Metadata;
use prometheus_client::registry::Registry;
use storage::{BlobStore, FsStore, S3Store};
use supervisor::Supervisor;
use upstream::{Credentials, HttpOptions, UpstreamClient, UpstreamConfig, UpstreamMetrics};

use super::warming::ProxyPuller;
use crate::config::{Config, ResolvedUpstream, StorageConfig};
use crate::defaults;

/// What a process runs with besides its configuration: its clock, its metrics, and the
/// supervisor its background work runs under.
pub struct Runtime {
    pub clock: Clock,
    pub registry: Registry,
    pub upstream_metrics: UpstreamMetrics,
    pub cache_metrics: CacheMetrics,
    pub lifecycle_metrics: LifecycleMetrics,
    pub server_metrics: crate::server::ServerMetrics,
    pub supervisor: Supervisor,
}

impl Runtime {
    pub fn new(clock: Clock) -> Self {
        let mut registry = Registry::default();
        let upstream_metrics = UpstreamMetrics::register(&mut registry);
        let cache_metrics = CacheMetrics::register(&mut registry);
        let server_metrics = crate::server::ServerMetrics::register(&mut registry);
        let lifecycle_metrics = LifecycleMetrics::register(&mut registry);
        Runtime {
            clock,
            registry,
            upstream_metrics,
            cache_metrics,
            lifecycle_metrics,
            server_metrics,
            supervisor: Supervisor::new(),
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(Clock::system())
    }
}

fn http_options(config: &Config, upstream: &ResolvedUpstream) -> HttpOptions {
    HttpOptions {
        connect_timeout: config.connect_timeout,
        header_timeout: config.header_timeout,
        extra_ca_pem: upstream.ca_pem.iter().cloned().collect(),
        redirect_allow: upstream.redirect_allow.clone(),
        realm_allow: upstream.realm_allow.clone(),
        proxy: config.egress_proxy.clone(),
    }
}

/// A control plane: its router, and what operators reach through the admin API and the CLI.
pub struct ControlNode {
    pub router: Router,
    pub cache: Arc<Cache>,
    pub lifecycle: Arc<Lifecycle>,
    pub access: Arc<Access>,
    /// What the admin API shows of groups, upstreams and fills.
    pub view: Arc<admin::OperatorView>,
    /// Who hears of this process's removals (a gateway in the same process joins it).
    pub removals: Arc<ForgetRemoved>,
    /// The groups' `warm` entries, run when due ([`start_warming`] starts them).
    pub warming: Arc<Warming>,
}

/// Starts scheduled warming on `node`, pulling with `puller` (none: runs fail, saying why).
pub fn start_warming(node: &ControlNode, supervisor: &Supervisor, puller: Option<Arc<dyn WarmPuller>>) {
    if let Some(puller) = puller {
        node.warming.attach_puller(puller);
    }
    if node.warming.has_schedules() {
        let warming = node.warming.clone();
        supervisor.spawn("warming", "lifecycle", move |signal| warming.run(signal));
    }
}

/// The admin API of a control plane; purges run under `supervisor`.
pub fn admin_router(node: &ControlNode, supervisor: &Supervisor) -> Router {
    admin::router(admin::AdminState {
        access: node.access.clone(),
        lifecycle: node.lifecycle.clone(),
        supervisor: supervisor.clone(),
        view: node.view.clone(),
        warming: node.warming.clone(),
    })
}

/// The operator's view of this configuration: groups with their upstream and policy, upstreams
/// with the health `status` records, a board for live fills, and the tags `cache` serves
/// although gone upstream.
fn operator_view(
    config: &Config,
    cache: &Arc<Cache>,
    status: upstream::UpstreamStatus,
) -> admin::OperatorView {
    let groups = cache
        .groups()
        .all()
        .map(|group| admin::GroupInfo {
            path: group.path.as_str().to_owned(),
            upstreams: group.upstreams.names(),
            access: match group.access.mode {
                cache::AccessMode::Anonymous => "anonymous",
                cache::AccessMode::Token => "token",
            }
            .to_owned(),
        })
        .collect();
    let upstreams = config
        .upstreams
        .iter()
        .map(|upstream| admin::UpstreamInfo {
            name: upstream.name.clone(),
            url: upstream.url.to_string(),
            host: upstream::host_label(&upstream.url),
        })
        .collect();
    admin::OperatorView {
        groups,
        upstreams,
        upstream_status: status,
        fills: Arc::new(admin::FillBoard::new()),
        stale: stale_source(cache.clone()),
    }
}

/// A group's tags served although gone upstream, as the admin API shows them.
fn stale_source(cache: Arc<Cache>) -> admin::StaleSource {
    Box::new(move |path: &str| {
        let group = cache.groups().get(path)?;
        let entries = cache.gone_upstream(&group.path).into_iter().map(|entry| admin::StaleView {
            image: entry.image,
            tag: entry.tag,
            digest: entry.digest.to_string(),
            since: entry.since,
            last_served: entry.last_served,
            served: entry.served,
        });
        Some(entries.collect())
    })
}

/// The groups as the lifecycle sees them (configured and implicit).
pub fn lifecycle_groups(groups: &Groups) -> Vec<GroupPolicy> {
    groups
        .all()
        .map(|group| GroupPolicy {
            path: group.path.clone(),
            format: group.format,
            policy: group.lifecycle.clone(),
        })
        .collect()
}

/// The lifecycle over this configuration's database and storage (the CLI's too).
pub fn lifecycle(
    config: &Config,
    metadata: Metadata,
    store: BlobStore,
    groups: Vec<GroupPolicy>,
    clock: Clock,
    metrics: LifecycleMetrics,
) -> Lifecycle {
    let settings = SweepSettings {
        max_size: config.lifecycle.max_size,
        high_watermark: config.lifecycle.high_watermark,
        low_watermark: config.lifecycle.low_watermark,
        delete_delay: config.lifecycle.delete_delay,
        orphan_grace: config.lifecycle.orphan_grace,
        upload_grace: config.lifecycle.upload_grace,
        lease_ttl: config.lease_ttl,
        removal_notice: defaults::REMOVAL_NOTICE,
        keep_recent: defaults::KEEP_RECENT,
        node: config.node_id.clone(),
    };
    Lifecycle::new(metadata, store, groups, settings, clock, metrics)
}

/// Hears of the removals this process makes (sweeps, purges) and tells, at once, its control
/// plane's catalog and — in `serve` — its gateway's memory of small objects. Other processes learn
/// through the database (`Cache::watch_removals`).
pub struct ForgetRemoved {
    cache: Arc<Cache>,
    gateway: std::sync::OnceLock<Arc<Gateway>>,
}

impl ForgetRemoved {
    /// The gateway in the same process (`serve`).
    pub fn attach_gateway(&self, gateway: Arc<Gateway>) {
        let _ = self.gateway.set(gateway);
    }
}

impl lifecycle::RemovalObserver for ForgetRemoved {
    fn removed<'a>(
        &'a self,
        objects: &'a [oci::Digest],
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            self.cache.forget_removed_rows();
            if let Some(gateway) = self.gateway.get() {
                gateway.forget_objects(objects).await;
            }
        })
    }
}

/// The configured object store. Local storage lives in the data directory, created here when
/// missing; an S3 store needs none (a gateway's fill spools make their directory on first use).
pub async fn open_store(config: &Config) -> anyhow::Result<BlobStore> {
    Ok(match &config.storage {
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
    })
}

/// Builds a control plane and starts its background work: access-token reloads, the flush of
/// reads and traffic, and the sweeper.
pub async fn control_node(
    config: &Config,
    secret: &Secret,
    runtime: &Runtime,
) -> anyhow::Result<ControlNode> {
    let metadata = Metadata::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the metadata database {}", config.database_url))?;
    tracing::info!(backend = metadata.backend(), "metadata database ready");
    let groups = build_groups(config, &runtime.upstream_metrics)?;
    let access = access_control(config, &metadata, runtime).await?;
    let store = open_store(config).await?;
    let lifecycle = Arc::new(lifecycle(
        config,
        metadata.clone(),
        store,
        lifecycle_groups(&groups),
        runtime.clock.clone(),
        runtime.lifecycle_metrics.clone(),
    ));
    let cache = Arc::new(Cache::new(
        metadata,
        groups,
        config.cache_settings(),
        runtime.clock.clone(),
        runtime.cache_metrics.clone(),
    ));
    let view = Arc::new(operator_view(config, &cache, runtime.upstream_metrics.status().clone()));
    cache.observe_commits(lifecycle.clone());
    // Knowing the removal generation before the first request, the first check forgets nothing
    // (a control plane that does not know it forgets everything at its first check).
    if let Err(error) = cache.notice_removals().await {
        tracing::warn!(%error, "cannot read the removal generation yet");
    }
    let removals = Arc::new(ForgetRemoved { cache: cache.clone(), gateway: std::sync::OnceLock::new() });
    lifecycle.observe_removals(removals.clone());
    for warning in lifecycle.sizing_warnings(config.limits.max_blob_size) {
        tracing::warn!("{warning}");
    }
    // The size gauges from the start (commits keep them current, sweeps measure again).
    if let Err(error) = lifecycle.publish_usage().await {
        tracing::warn!(%error, "cannot measure the cache's size yet; the first sweep will");
    }
    let watcher = cache.clone();
    runtime.supervisor.spawn("removal-watch", "cache", move |signal| async move {
        watcher.watch_removals(defaults::REMOVAL_CHECK_INTERVAL, signal.draining()).await;
    });
    let flushed = cache.clone();
    runtime.supervisor.spawn_periodic(
        "access-flush",
        config.lifecycle.access_flush_interval,
        move |_signal| {
            let cache = flushed.clone();
            async move {
                if let Err(error) = cache.flush_reads().await {
                    tracing::warn!(%error, "cannot record reads; keeping them for the next flush");
                }
            }
        },
    );
    let sweeper = lifecycle.clone();
    let every = config.lifecycle.sweep_interval;
    runtime.supervisor.spawn("sweeper", "lifecycle", move |signal| sweeper.run(every, signal));
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    // Reports of gateways that stopped reporting go on a timer, not only when someone reads them.
    let board = view.fills.clone();
    runtime.supervisor.spawn_periodic("fill-report-prune", admin::REPORT_LIFETIME, move |_signal| {
        let board = board.clone();
        async move { board.prune() }
    });
    let control = ControlPlane::new(ControlParts {
        cache: cache.clone(),
        verifier: RequestVerifier::new(secret),
        access: access.clone(),
        public_url: config.public_url.clone(),
        trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
        fill_reports: Some(fill_report_sink(view.fills.clone())),
    });
    let warming = Arc::new(Warming::new(
        cache.clone(),
        warm_groups(config)?,
        config.node_id.clone(),
        config.lease_ttl,
        runtime.clock.clone(),
        runtime.supervisor.clone(),
    ));
    Ok(ControlNode { router: control.router(), cache, lifecycle, access, view, removals, warming })
}

/// Each configured group's `warm` entries.
fn warm_groups(config: &Config) -> anyhow::Result<Vec<WarmGroup>> {
    config
        .groups
        .iter()
        .filter(|group| !group.warm.is_empty())
        .map(|group| {
            let path = oci::GroupPath::parse(&group.path).map_err(|error| anyhow::anyhow!(error.message))?;
            Ok(WarmGroup { path, schedules: group.warm.clone() })
        })
        .collect()
}

/// Puts gateways' fill reports on `board`.
fn fill_report_sink(board: Arc<admin::FillBoard>) -> control::FillReportSink {
    Arc::new(move |body: &[u8]| match serde_json::from_slice::<injector::FillsReport>(body) {
        Ok(report) => {
            if !board.report(&report.node, report.fills)
                && let Some(held_back) = FILL_REPORTS.admit()
            {
                tracing::warn!(node = %report.node, held_back, "too many gateways report fills; this one's is dropped");
            }
        }
        Err(error) => tracing::warn!(%error, "a gateway's fill report is not what it should be"),
    })
}

/// Every group (configured, and the implicit mirror group of each upstream no group uses), with
/// its upstream clients in the order it asks them.
pub fn build_groups(config: &Config, metrics: &UpstreamMetrics) -> anyhow::Result<Groups> {
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
            http: http_options(config, upstream),
            metrics: metrics.clone(),
            files_url: upstream.files_url.clone(),
        })
        .with_context(|| format!("upstream {:?}", upstream.name))?;
        routes.push(UpstreamRoute {
            upstream: client.clone(),
            format: upstream.format,
            path_prefix: upstream.path_prefix,
            implicit_access: Config::implicit_access(upstream),
        });
        clients.insert(upstream.name.clone(), client);
    }
    let mut groups = Vec::new();
    for group in &config.groups {
        let asked = group
            .upstreams
            .iter()
            .map(|name| clients.get(name).cloned().with_context(|| format!("group {:?}", group.path)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let upstreams = Upstreams::new(asked).with_context(|| format!("group {:?}", group.path))?;
        groups.push(GroupSettings {
            path: oci::GroupPath::parse(&group.path).map_err(|error| anyhow::anyhow!(error.message))?,
            format: group.format,
            upstreams,
            manifest_recheck: group.manifest_recheck.unwrap_or(defaults::MANIFEST_RECHECK),
            access: group.access.clone(),
            lifecycle: group.lifecycle.clone(),
            policy: cache::PolicyCell::new(group.policy.clone()),
        });
    }
    Ok(Groups::new(
        groups,
        routes,
        defaults::MANIFEST_RECHECK,
        config.implicit_lifecycle(),
        cache::PullPolicy::open(defaults::NEGATIVE_TTL),
    )?)
}

/// Access control: the token snapshot (loaded now, so the first hits need no query, then
/// reloaded periodically), the signing key, and the periodic jobs that keep them current.
async fn access_control(
    config: &Config,
    metadata: &Metadata,
    runtime: &Runtime,
) -> anyhow::Result<Arc<Access>> {
    let key = signing_key(config).await?;
    let tokens = TokenRegistry::new(metadata.clone(), runtime.clock.clone());
    let count = tokens.reload().await.context("cannot load access tokens")?;
    tracing::info!(tokens = count, "access tokens loaded");
    let settings = AccessSettings {
        token_ttl: config.auth.token_ttl,
        refresh_token_ttl: config.auth.refresh_token_ttl,
        failed_logins_per_minute: config.auth.failed_logins_per_minute,
    };
    let access = Arc::new(Access::new(tokens, JwtKeys::new(&key), settings));
    let every = config.auth.token_check_interval;
    let job = access.clone();
    runtime.supervisor.spawn_periodic("access-tokens", every, move |_signal| {
        let access = job.clone();
        async move {
            if let Err(error) = access.tokens().reload().await {
                tracing::warn!(%error, "cannot reload access tokens; keeping the last snapshot");
            }
            if let Err(error) = access.tokens().flush_uses().await {
                tracing::warn!(%error, "cannot record when access tokens were last used");
            }
            access.forget_idle();
        }
    });
    Ok(access)
}

/// The key registry tokens are signed with: `[auth] signing_key_file`; without it, when no group
/// takes access tokens, a key in memory (no registry token is ever checked then, so nothing needs
/// to outlive the process or be shared); else one kept in the data directory (created on first
/// start: `serve`'s case, as `depproxy control` refuses to start without a shared key).
async fn signing_key(config: &Config) -> anyhow::Result<Secret> {
    let path = match &config.auth.signing_key_file {
        Some(path) => path.clone(),
        None if !config.uses_tokens() => return Ok(Secret::from_bytes(rand::random())),
        None => {
            let path = config.data_dir.join(defaults::SIGNING_KEY_FILE);
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                write_new_secret(&path).with_context(|| format!("cannot create {}", path.display()))?;
                tracing::info!(path = %path.display(), "created the registry-token signing key");
            }
            path
        }
    };
    let contents = tokio::fs::read(&path)
        .await
        .with_context(|| format!("cannot read signing key {}", path.display()))?;
    Secret::from_file_contents(&contents).with_context(|| format!("signing key {}", path.display()))
}

/// Creates `path` (and its missing parents) readable by the proxy's user and group only, whatever
/// the umask: it holds the cache's objects and database. An existing directory is left as it is.
pub async fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(0o750);
    builder.create(path).await
}

/// Writes a new random 32-byte secret (base64) to a new file only its owner can read.
pub fn write_new_secret(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let secret = Secret::from_bytes(rand::random());
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(file, "{}", secret.to_base64())
}

/// The gateway's HTTP clients, one pooled client per upstream: its CA is trusted for it alone (a
/// lab CA must not be able to impersonate Docker Hub), its redirects follow its own rules.
pub fn upstream_http(config: &Config) -> anyhow::Result<UpstreamHttp> {
    let mut clients = HashMap::new();
    for upstream in &config.upstreams {
        let options = http_options(config, upstream);
        let client = upstream::build_http_client(&options, &upstream.url)
            .with_context(|| format!("upstream {:?}: HTTP client", upstream.name))?;
        clients.insert(upstream.name.clone(), client);
    }
    Ok(UpstreamHttp::new(clients))
}

/// The gateway, reaching the control plane through `channel`. Takes the runtime's registry
/// (rendered at `/metrics`), so call it last.
pub async fn gateway(
    config: &Config,
    channel: ControlChannel,
    secret: &Secret,
    mut runtime: Runtime,
) -> anyhow::Result<Arc<Gateway>> {
    let store = open_store(config).await?;
    tracing::info!(storage = store.kind(), "object storage ready");
    let orphans = store.remove_orphans().await.context("cannot clean up temp data")?;
    if orphans > 0 {
        tracing::info!(orphans, "removed temp data left by an earlier run");
    }
    let upstream_http = upstream_http(config)?;
    let settings = GatewaySettings {
        node_id: config.node_id.clone(),
        idle_timeout: config.idle_timeout,
        header_timeout: config.header_timeout,
        small_objects: config.small_objects,
        fill_window: usize::try_from(config.fill_window).unwrap_or(usize::MAX),
        fill_memory: usize::try_from(config.fill_memory).unwrap_or(usize::MAX),
        fill_limits: config.fill_limits,
        paths: gateway::PathRules { form_posts: control::is_form_post, describe: control::describe_path },
    };
    let gateway_metrics = GatewayMetrics::register(&mut runtime.registry);
    let observability = Observability {
        gateway: gateway_metrics,
        upstream: runtime.upstream_metrics.clone(),
        registry: Some(Arc::new(runtime.registry)),
    };
    let split = matches!(channel, ControlChannel::Http { .. });
    let supervisor = runtime.supervisor.clone();
    let gateway = Gateway::new(GatewayParts {
        control: channel,
        signer: RequestSigner::new(secret),
        store,
        upstream_http,
        settings,
        observability,
        supervisor: runtime.supervisor,
    });
    if split {
        // The control plane's admin API shows every gateway's live fills: each reports its own.
        let reporter = gateway.clone();
        supervisor.spawn_periodic("fill-report", defaults::FILL_REPORT_INTERVAL, move |_signal| {
            let gateway = reporter.clone();
            async move {
                if let Err(error) = gateway.report_fills().await
                    && let Some(held_back) = FILL_REPORTS.admit()
                {
                    tracing::warn!(%error, held_back, "cannot report live fills to the control plane");
                }
            }
        });
    }
    Ok(gateway)
}

/// Reports failed fill reports once a minute.
static FILL_REPORTS: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(60));

/// The HTTP channel of a gateway to a control plane at `control_url`; with `control_ca` (a PEM
/// file), an `https://` URL whose certificate must chain to that CA.
pub fn control_channel(
    config: &Config,
    control_url: &str,
    control_ca: Option<&std::path::Path>,
) -> anyhow::Result<ControlChannel> {
    let ca_pem = match control_ca {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read control-plane CA {}", path.display()))?,
        ),
        None => None,
    };
    Ok(ControlChannel::http(
        control_url,
        config.control_connect_timeout,
        config.control_request_timeout,
        ca_pem.as_deref(),
    )?)
}

/// Both roles in one process: the gateway calls the control plane's router directly; with the
/// control plane (for the admin API).
pub async fn serve_node(config: &Config, runtime: Runtime) -> anyhow::Result<(Arc<Gateway>, ControlNode)> {
    let secret = Secret::from_bytes(rand::random());
    create_private_dir(&config.data_dir)
        .await
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let control = control_node(config, &secret, &runtime).await?;
    let channel = ControlChannel::InProcess(gateway::InProcessControl::new(control.router.clone()));
    let supervisor = runtime.supervisor.clone();
    let gateway = gateway(config, channel, &secret, runtime).await?;
    control.removals.attach_gateway(gateway.clone());
    let puller = ProxyPuller::in_process(gateway.router(), control.access.clone());
    start_warming(&control, &supervisor, Some(Arc::new(puller)));
    let fills = gateway.clone();
    control.view.fills.attach_local(config.node_id.clone(), move || fills.fills_snapshot());
    Ok((gateway, control))
}

/// The `/metrics` endpoint alone, for a control plane in split mode (whose own listener only
/// answers signed gateway requests).
pub fn metrics_router(registry: Registry) -> Router {
    let registry = Arc::new(registry);
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move { telemetry::render_registry(Some(&registry)) }
        }),
    )
}
