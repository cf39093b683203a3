//! The `depproxy` binary: `serve` (both roles, zero config), `control` and `gateway` (split mode),
//! `check-config`, `gen-secret` and `token` (access tokens).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use depproxy::app;
use depproxy::config::{self, Config, FileConfig, Overrides};
use injector::Secret;

#[derive(Parser)]
#[command(name = "depproxy", version, about = "A pull-through cache for container registries")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DEPPROXY_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run gateway and control plane in one process (SQLite + local disk by default).
    Serve(CommonArgs),
    /// Run the control plane alone (split mode).
    Control {
        #[command(flatten)]
        common: CommonArgs,
        /// File holding the 32-byte secret shared with the gateways (base64 or hex).
        #[arg(long, env = "DEPPROXY_SECRET_FILE")]
        secret_file: PathBuf,
    },
    /// Run a gateway alone (split mode), deciding through the control plane at --control-url.
    Gateway {
        #[command(flatten)]
        common: CommonArgs,
        /// Base URL of the control plane, e.g. http://127.0.0.1:5100 (https://… when it serves TLS).
        #[arg(long, env = "DEPPROXY_CONTROL_URL")]
        control_url: String,
        /// Trust only this CA (PEM) for the control plane's certificate; needs an https:// --control-url.
        #[arg(long, env = "DEPPROXY_CONTROL_CA", value_name = "PEM")]
        control_ca: Option<PathBuf>,
        /// File holding the 32-byte secret shared with the control plane (base64 or hex).
        #[arg(long, env = "DEPPROXY_SECRET_FILE")]
        secret_file: PathBuf,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Write a new random 32-byte secret (the internal secret of split mode, or the
    /// registry-token signing key of `[auth] signing_key_file`).
    GenSecret {
        /// Where to write it (created with mode 0600).
        file: PathBuf,
    },
    /// Manage access tokens (with the server running or not).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The cache's contents: purge, statistics, warming (with the server running or not).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// A running proxy through its admin API: groups, upstreams, live fills, errors, purges.
    Admin {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Args)]
struct AdminTarget {
    /// The admin API's base URL.
    #[arg(long, env = "DEPPROXY_ADMIN_URL", default_value = "http://127.0.0.1:5080", global = true)]
    admin_url: String,
    /// An admin access token (`depproxy token create --admin`).
    #[arg(long, env = "DEPPROXY_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Groups (size, quota, hit ratio, bytes saved) and upstreams (reachable, rate-limit budget).
    Status,
    /// Groups: policy, size vs quota, objects, traffic.
    Groups,
    /// Upstreams: reachable, latency, rate-limit budget, last error.
    Upstreams,
    /// Live fills on every node, with their progress.
    Fills,
    /// Recent errors and denials, newest first.
    Events {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Purge a group's cache (or one image of it), following the job with a progress bar.
    Purge {
        #[arg(long, value_name = "PATH")]
        group: String,
        #[arg(long, value_name = "NAME")]
        image: Option<String>,
        /// e.g. 30d.
        #[arg(long)]
        older_than: Option<String>,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Remove a group's cached objects and tags (pinned ones too); the next pull fetches them again.
    Purge {
        /// The group, e.g. `default` or `acme/platform`.
        #[arg(long, value_name = "PATH")]
        group: String,
        /// Only this image (as the upstream names it, e.g. library/alpine) and the blobs no other
        /// image of the group uses.
        #[arg(long, value_name = "NAME")]
        image: Option<String>,
        /// Only what was not read for this long, e.g. 30d.
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Per group: size, quota, pinned bytes, objects, manifests, tags, traffic over 24 h; the
    /// store's size.
    Stats {
        /// Only this group.
        #[arg(long, value_name = "PATH")]
        group: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Pull every platform of images into the cache ahead of time, through the running proxy.
    Warm {
        /// The group to warm (`default` is the mirror group).
        #[arg(long, value_name = "PATH")]
        group: String,
        /// IMAGE[:TAG|@DIGEST] (tag `latest` when neither is given).
        #[arg(required = true, value_name = "IMAGE[:TAG|@DIGEST]")]
        images: Vec<String>,
        /// Base URL of the proxy [default: http://<listen> of the configuration].
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// Access token, for a group with access = "token".
        #[arg(long, env = "DEPPROXY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Objects fetched at once.
        #[arg(long, default_value_t = depproxy::warm::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (once).
    Create {
        /// A name to list and revoke it by (unique among active tokens).
        #[arg(long)]
        name: String,
        /// A group it may pull from (repeat for several).
        #[arg(long = "group", value_name = "PATH")]
        groups: Vec<String>,
        /// May use the admin API (pulls nothing unless given groups too).
        #[arg(long)]
        admin: bool,
        /// Lifetime, e.g. 90d or 12h [default: never expires].
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens: name, groups, created, expires, last used, status.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token: every control plane refuses it, and the registry tokens issued for it,
    /// within [auth] token_check_interval.
    Revoke {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the tokens are: the configuration's database.
#[derive(Args, Clone)]
struct StoreArgs {
    /// TOML configuration file (its database_url and groups).
    #[arg(long, env = "DEPPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the default SQLite database [default: ./depproxy-data].
    #[arg(long, env = "DEPPROXY_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    fn resolve(&self) -> anyhow::Result<Config> {
        CommonArgs {
            listen: None,
            data_dir: self.data_dir.clone(),
            upstream: None,
            config: self.config.clone(),
            admin_listen: None,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            admin_tls_cert: None,
            admin_tls_key: None,
        }
        .resolve()
    }
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "DEPPROXY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite database and cached objects [default: ./depproxy-data].
    #[arg(long, env = "DEPPROXY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Upstream registry URL; replaces the upstream of the `default` group (Docker Hub by default).
    #[arg(long, env = "DEPPROXY_UPSTREAM")]
    upstream: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "DEPPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the admin API (`serve`, `control`) [default: 127.0.0.1:5080].
    #[arg(long, env = "DEPPROXY_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at this address instead of at /metrics of the public listener
    /// (`serve`, `gateway`); the control plane's metrics are only served here.
    #[arg(long, env = "DEPPROXY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Serve --listen over TLS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate chain (PEM,
    /// leaf first); re-read with --tls-key on SIGHUP. For `control`, gateways then use an
    /// https:// --control-url (and --control-ca for a private CA).
    #[arg(long, env = "DEPPROXY_TLS_CERT", requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "DEPPROXY_TLS_KEY", requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Serve the admin API over TLS with this certificate chain (PEM, leaf first; `serve`,
    /// `control`); re-read with --admin-tls-key on SIGHUP. The status page's session cookie is
    /// then `Secure`.
    #[arg(long, env = "DEPPROXY_ADMIN_TLS_CERT", requires = "admin_tls_key", value_name = "PEM")]
    admin_tls_cert: Option<PathBuf>,
    /// The private key of --admin-tls-cert (PEM).
    #[arg(long, env = "DEPPROXY_ADMIN_TLS_KEY", requires = "admin_tls_cert", value_name = "PEM")]
    admin_tls_key: Option<PathBuf>,
}

impl CommonArgs {
    fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => config::read_file(path)?,
            None => FileConfig::default(),
        };
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            upstream: self.upstream.clone(),
        };
        let mut config = Config::resolve(file, &overrides)?;
        config.admin_listen = self.admin_listen.or(config.admin_listen);
        Ok(config)
    }

    /// The certificates of the listener and of the admin API, read before anything starts so a
    /// bad file stops the start-up.
    fn certificates(&self) -> anyhow::Result<Certificates> {
        let load = |cert: &Option<PathBuf>, key: &Option<PathBuf>, role: &str| match (cert, key) {
            (Some(cert), Some(key)) => depproxy::server::TlsCertificate::load(cert, key)
                .map(Some)
                .with_context(|| format!("{role} TLS certificate")),
            _ => Ok(None),
        };
        Ok(Certificates {
            listener: load(&self.tls_cert, &self.tls_key, "listener")?,
            admin: load(&self.admin_tls_cert, &self.admin_tls_key, "admin API")?,
        })
    }
}

/// A process's TLS certificates, re-read on SIGHUP.
struct Certificates {
    listener: Option<depproxy::server::TlsCertificate>,
    admin: Option<depproxy::server::TlsCertificate>,
}

impl Certificates {
    /// Re-reads the certificate files on every SIGHUP: connections accepted afterwards get the new
    /// certificates; a pair that does not load leaves the current one (and says so).
    fn reload_on_hangup(&self) -> anyhow::Result<()> {
        let certificates: Vec<_> = self.listener.iter().chain(&self.admin).cloned().collect();
        if certificates.is_empty() {
            return Ok(());
        }
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP (TLS certificate reloads)")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                for certificate in &certificates {
                    let path = certificate.cert_path().display();
                    match certificate.reload() {
                        Ok(()) => tracing::info!(%path, "TLS certificate reloaded"),
                        Err(error) => {
                            tracing::warn!(%path, %error, "TLS certificate not reloaded; keeping the current one")
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Held to the end of `main`: dropping it writes out what the log thread still holds.
    let _log_writer = init_logging(cli.log_format);
    // One crypto provider for rustls (upstream TLS, PostgreSQL TLS) and jsonwebtoken (registry tokens).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(depproxy::defaults::BLOCKING_THREADS)
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run(cli.command))
}

/// Logs go to stderr (stdout is for what a command prints: a token's secret, a table), as text
/// or JSON lines; warnings, errors and denials are also kept for the admin API's `/events`.
/// Lines are written by a thread of their own: a request's access line costs the runtime a
/// queue push, not a `write(2)` on a worker thread; if the reader of stderr stalls and the queue
/// (32 768 lines) fills, lines are dropped rather than stalling the proxy.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(32_768)
        .lossy(true)
        .finish(std::io::stderr());
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(telemetry::text_log::TextLine)
            .fmt_fields(telemetry::text_log::PlainFields)
            .with_ansi(false)
            .with_writer(writer.clone())
    });
    let json = (format == LogFormat::Json)
        .then(|| tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(writer));
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(telemetry::events::EventsLayer)
        .init();
    guard
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(common) => {
            let config = common.resolve()?;
            let certificates = common.certificates()?;
            certificates.reload_on_hangup()?;
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let server_metrics = runtime.server_metrics.clone();
            let (gateway, control) = app::serve_node(&config, runtime).await?;
            let admin = app::admin_router(&control, &supervisor);
            start_admin(&config, admin, server_metrics.clone(), certificates.admin.as_ref())?;
            let router = public_router(&gateway, &config, common.metrics_listen, &server_metrics).await?;
            let tls = certificates.listener.as_ref();
            listen("depproxy serve", &config, router, server_metrics, tls, &supervisor).await
        }
        Command::Control { common, secret_file } => {
            let config = common.resolve()?;
            if config.uses_tokens() && config.auth.signing_key_file.is_none() {
                anyhow::bail!(
                    "a group needs access tokens: set [auth] signing_key_file to a key shared by every control \
                     plane (`depproxy gen-secret FILE` writes one), so a token issued by one works on all"
                );
            }
            let secret = read_secret(&secret_file)?;
            let certificates = common.certificates()?;
            certificates.reload_on_hangup()?;
            let runtime = app::Runtime::default();
            let node = app::control_node(&config, &secret, &runtime).await?;
            let router = node.router.clone();
            let server_metrics = runtime.server_metrics.clone();
            let admin = app::admin_router(&node, &runtime.supervisor);
            start_admin(&config, admin, server_metrics.clone(), certificates.admin.as_ref())?;
            if let Some(address) = common.metrics_listen {
                let metrics = app::metrics_router(runtime.registry);
                start_metrics(address, metrics, &config, &server_metrics).await?;
            }
            let tls = certificates.listener.as_ref();
            listen("depproxy control", &config, router, server_metrics, tls, &runtime.supervisor).await
        }
        Command::Gateway { common, control_url, control_ca, secret_file } => {
            let config = common.resolve()?;
            let secret = read_secret(&secret_file)?;
            let certificates = common.certificates()?;
            certificates.reload_on_hangup()?;
            let channel = app::control_channel(&config, &control_url, control_ca.as_deref())?;
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let server_metrics = runtime.server_metrics.clone();
            let gateway = app::gateway(&config, channel, &secret, runtime).await?;
            let router = public_router(&gateway, &config, common.metrics_listen, &server_metrics).await?;
            let tls = certificates.listener.as_ref();
            listen("depproxy gateway", &config, router, server_metrics, tls, &supervisor).await
        }
        Command::CheckConfig { file } => {
            let config = Config::resolve(config::read_file(&file)?, &Overrides::default())?;
            // The database URL prints with its password masked.
            println!(
                "{}: ok ({} upstream(s), {} group(s), database {})",
                file.display(),
                config.upstreams.len(),
                config.groups.len(),
                config.database_url
            );
            Ok(())
        }
        Command::Token { command } => {
            let output = match command {
                TokenCommand::Create { name, groups, admin, expires, store } => {
                    depproxy::tokens::create(&store.resolve()?, &name, &groups, admin, expires).await?
                }
                TokenCommand::List { store } => depproxy::tokens::list(&store.resolve()?).await?,
                TokenCommand::Revoke { name, store } => {
                    depproxy::tokens::revoke(&store.resolve()?, &name).await?
                }
            };
            println!("{output}");
            Ok(())
        }
        Command::Admin { target, command } => {
            use depproxy::admin_cli;
            let token = target.token.context("an admin token is needed: --token or DEPPROXY_ADMIN_TOKEN")?;
            let client = admin_cli::AdminClient::new(&target.admin_url, &token)?;
            let json = target.json;
            let show = |value: serde_json::Value,
                        table: fn(&serde_json::Value) -> String|
             -> anyhow::Result<String> {
                Ok(if json { serde_json::to_string_pretty(&value)? } else { table(&value) })
            };
            let output = match command {
                AdminCommand::Status => {
                    let groups = client.get("/api/v1/groups").await?;
                    let upstreams = client.get("/api/v1/upstreams").await?;
                    if json {
                        serde_json::to_string_pretty(
                            &serde_json::json!({ "groups": groups, "upstreams": upstreams }),
                        )?
                    } else {
                        format!(
                            "{}\n\n{}",
                            admin_cli::groups_table(&groups),
                            admin_cli::upstreams_table(&upstreams)
                        )
                    }
                }
                AdminCommand::Groups => show(client.get("/api/v1/groups").await?, admin_cli::groups_table)?,
                AdminCommand::Upstreams => {
                    show(client.get("/api/v1/upstreams").await?, admin_cli::upstreams_table)?
                }
                AdminCommand::Fills => show(client.get("/api/v1/fills").await?, admin_cli::fills_table)?,
                AdminCommand::Events { limit } => show(
                    client.get(&format!("/api/v1/events?limit={limit}")).await?,
                    admin_cli::events_table,
                )?,
                AdminCommand::Purge { group, image, older_than } => {
                    let job =
                        admin_cli::purge(&client, &group, image.as_deref(), older_than.as_deref()).await?;
                    if json {
                        serde_json::to_string_pretty(&job)?
                    } else if job["state"] == "done" {
                        format!("purged {} object(s) of group {group}", job["done"])
                    } else {
                        anyhow::bail!("purge of group {group} ended {}: {}", job["state"], job["error"]);
                    }
                }
            };
            println!("{output}");
            Ok(())
        }
        Command::Cache { command } => {
            let output = match command {
                CacheCommand::Purge { group, image, older_than, store } => {
                    depproxy::cache_cli::purge(&store.resolve()?, &group, image.as_deref(), older_than)
                        .await?
                }
                CacheCommand::Stats { group, json, store } => {
                    depproxy::cache_cli::stats(&store.resolve()?, group.as_deref(), json).await?
                }
                CacheCommand::Warm { group, images, proxy, token, concurrency, store } => {
                    // The configuration is read only to find the proxy: a CI client may not have
                    // the server's secrets.
                    let proxy = match proxy {
                        Some(url) => url,
                        None => depproxy::warm::default_proxy_url(store.resolve()?.listen),
                    };
                    let options = depproxy::warm::WarmOptions { proxy, group, images, token, concurrency };
                    depproxy::warm::warm(&options).await?.to_string()
                }
            };
            println!("{output}");
            Ok(())
        }
        Command::GenSecret { file } => {
            app::write_new_secret(&file).with_context(|| format!("cannot create {}", file.display()))
        }
    }
}

fn read_secret(path: &PathBuf) -> anyhow::Result<Secret> {
    let contents =
        std::fs::read(path).with_context(|| format!("cannot read secret file {}", path.display()))?;
    Secret::from_file_contents(&contents).with_context(|| format!("secret file {}", path.display()))
}

async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    depproxy::server::bind(address).with_context(|| format!("cannot listen on {address}"))
}

/// Serves `router` (the metrics endpoint) at `address`, in the background.
async fn start_metrics(
    address: SocketAddr,
    router: axum::Router,
    config: &Config,
    server_metrics: &depproxy::server::ServerMetrics,
) -> anyhow::Result<()> {
    let listener = bind(address).await.context("metrics listener")?;
    tracing::info!(%address, "metrics listening");
    let limits = config.server.clone();
    let counted = server_metrics.clone();
    tokio::spawn(async move {
        let serving = depproxy::server::run_server(listener, router, limits, counted, std::future::pending());
        if let Err(error) = serving.await {
            tracing::error!(%error, "metrics listener failed");
        }
    });
    Ok(())
}

/// The gateway's public router: with `/metrics`, or without it when a metrics listener of its
/// own is asked for (metrics name upstream hosts and groups: not for every client to read).
async fn public_router(
    gateway: &std::sync::Arc<gateway::Gateway>,
    config: &Config,
    metrics_listen: Option<SocketAddr>,
    server_metrics: &depproxy::server::ServerMetrics,
) -> anyhow::Result<axum::Router> {
    match metrics_listen {
        None => Ok(gateway.router()),
        Some(address) => {
            start_metrics(address, gateway.metrics_router(), config, server_metrics).await?;
            Ok(gateway.router_without_metrics())
        }
    }
}

/// Starts the admin API. The default address may be taken (another instance on this host): then
/// the proxy runs without it and says so; an address set explicitly must be bound.
fn start_admin(
    config: &Config,
    router: axum::Router,
    metrics: depproxy::server::ServerMetrics,
    tls: Option<&depproxy::server::TlsCertificate>,
) -> anyhow::Result<()> {
    let (address, explicit) = match config.admin_listen {
        Some(address) => (address, true),
        None => (depproxy::defaults::ADMIN_LISTEN.parse().context("default admin address")?, false),
    };
    let listener = match depproxy::server::bind(address) {
        Ok(listener) => listener,
        Err(error) if !explicit => {
            tracing::warn!(%address, %error, "admin API not started (set --admin-listen to another address)");
            return Ok(());
        }
        Err(error) => return Err(error).with_context(|| format!("cannot listen on {address} (admin API)")),
    };
    tracing::info!(%address, tls = tls.is_some(), "admin API listening");
    if tls.is_none() && !address.ip().to_canonical().is_loopback() {
        tracing::warn!(
            %address,
            "the admin API is reachable beyond this host without TLS: admin tokens and the status page's \
             session cookie cross the network in clear text (give --admin-tls-cert and --admin-tls-key, \
             or bind it to a loopback address)"
        );
    }
    let limits = config.server.clone();
    let acceptor = tls.map(depproxy::server::TlsCertificate::acceptor);
    tokio::spawn(async move {
        let pending = std::future::pending();
        let serving =
            depproxy::server::run_server_with_tls(listener, router, limits, metrics, acceptor, pending);
        if let Err(error) = serving.await {
            tracing::error!(%error, "admin listener failed");
        }
    });
    Ok(())
}

/// Serves until SIGTERM or SIGINT, then drains within the configured grace period.
async fn listen(
    role: &str,
    config: &Config,
    router: axum::Router,
    server_metrics: depproxy::server::ServerMetrics,
    tls: Option<&depproxy::server::TlsCertificate>,
    supervisor: &supervisor::Supervisor,
) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    tracing::info!(address = %config.listen, tls = tls.is_some(), "{role} listening");
    depproxy::server::serve_until(
        listener,
        router,
        config.server.clone(),
        server_metrics,
        tls.map(depproxy::server::TlsCertificate::acceptor),
        supervisor,
        config.shutdown_grace,
        shutdown_signal(),
    )
    .await
    .context("server failed")
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return interrupt.await.unwrap_or(()),
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
