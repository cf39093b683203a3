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
        /// Serve the control listener over TLS with this certificate chain (PEM, leaf first);
        /// gateways then use an https:// --control-url (and --control-ca for a private CA).
        #[arg(long, env = "DEPPROXY_TLS_CERT", requires = "tls_key", value_name = "PEM")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, env = "DEPPROXY_TLS_KEY", requires = "tls_cert", value_name = "PEM")]
        tls_key: Option<PathBuf>,
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
    /// Recent errors and warnings, then recent denials, newest first (repeats on one row).
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
    /// Address of the admin API and status page (`serve`, `control`), or `off` [default: 127.0.0.1:5080].
    #[arg(long, env = "DEPPROXY_ADMIN_LISTEN", value_name = "ADDR|off")]
    admin_listen: Option<config::AdminListen>,
    /// Serve Prometheus metrics at this address instead of at /metrics of the public listener
    /// (`serve`, `gateway`); the control plane's metrics are only served here.
    #[arg(long, env = "DEPPROXY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
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
        if let Some(admin_listen) = self.admin_listen {
            config.admin_listen = admin_listen;
        }
        Ok(config)
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
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let server_metrics = runtime.server_metrics.clone();
            let (gateway, control) = app::serve_node(&config, runtime).await?;
            let admin = app::admin_router(&control, &supervisor);
            start_admin(&config, &common, admin, server_metrics.clone())?;
            let router = public_router(&gateway, &config, common.metrics_listen, &server_metrics).await?;
            listen("depproxy serve", &config, router, server_metrics, None, &supervisor).await
        }
        Command::Control { common, secret_file, tls_cert, tls_key } => {
            let config = common.resolve()?;
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
            let secret = read_secret(&secret_file)?;
            // Read before anything starts, so a bad certificate stops the start-up.
            let tls = match (&tls_cert, &tls_key) {
                (Some(cert), Some(key)) => Some(depproxy::server::tls_acceptor(cert, key)?),
                _ => None,
            };
            let runtime = app::Runtime::default();
            let node = app::control_node(&config, &secret, &runtime).await?;
            let router = node.router.clone();
            let server_metrics = runtime.server_metrics.clone();
            start_admin(
                &config,
                &common,
                app::admin_router(&node, &runtime.supervisor),
                server_metrics.clone(),
            )?;
            if let Some(address) = common.metrics_listen {
                let metrics = app::metrics_router(runtime.registry);
                start_metrics(address, metrics, &config, &server_metrics).await?;
            }
            listen("depproxy control", &config, router, server_metrics, tls, &runtime.supervisor).await
        }
        Command::Gateway { common, control_url, control_ca, secret_file } => {
            let config = common.resolve()?;
            let secret = read_secret(&secret_file)?;
            let channel = app::control_channel(&config, &control_url, control_ca.as_deref())?;
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let server_metrics = runtime.server_metrics.clone();
            let gateway = app::gateway(&config, channel, &secret, runtime).await?;
            let router = public_router(&gateway, &config, common.metrics_listen, &server_metrics).await?;
            listen("depproxy gateway", &config, router, server_metrics, None, &supervisor).await
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
                AdminCommand::Events { limit } => {
                    let errors =
                        client.get(&format!("/api/v1/events?kind=error,warning&limit={limit}")).await?;
                    let denials = client.get(&format!("/api/v1/events?kind=denied&limit={limit}")).await?;
                    if json {
                        serde_json::to_string_pretty(
                            &serde_json::json!({ "errors": errors, "denials": denials }),
                        )?
                    } else {
                        admin_cli::events_tables(&errors, &denials)
                    }
                }
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
    let limits = config.server;
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

/// Starts the admin API, saying where and how to get in. An address that cannot be bound stops
/// the start (a proxy running without the admin API would go unnoticed until it is needed):
/// `--admin-listen` moves it, `--admin-listen off` turns it off.
fn start_admin(
    config: &Config,
    common: &CommonArgs,
    router: axum::Router,
    metrics: depproxy::server::ServerMetrics,
) -> anyhow::Result<()> {
    let address = match config.admin_listen {
        config::AdminListen::At(address) => address,
        config::AdminListen::Off => {
            tracing::info!("admin API off (--admin-listen off)");
            return Ok(());
        }
    };
    let listener = depproxy::server::bind(address).with_context(|| {
        format!(
            "cannot listen on {address} for the admin API and status page: move it with --admin-listen ADDR \
             (DEPPROXY_ADMIN_LISTEN, admin_listen in the file), or turn it off with --admin-listen off"
        )
    })?;
    // The address bound (port 0 is a port of the system's choice).
    let address = listener.local_addr().unwrap_or(address);
    tracing::info!(
        %address,
        "admin API and status page at http://{address}/ — an admin token to log in with: {}",
        admin_token_command(common)
    );
    let limits = config.server;
    tokio::spawn(async move {
        let serving = depproxy::server::run_server(listener, router, limits, metrics, std::future::pending());
        if let Err(error) = serving.await {
            tracing::error!(%error, "admin listener failed");
        }
    });
    Ok(())
}

/// The command that creates an admin token for this process's database: with its `--config` and
/// `--data-dir` (from flags or environment), as absolute paths, so it works from any directory.
fn admin_token_command(common: &CommonArgs) -> String {
    let mut command = "depproxy token create --name ops --admin".to_owned();
    for (flag, path) in [("--config", &common.config), ("--data-dir", &common.data_dir)] {
        if let Some(path) = path {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            command.push_str(&format!(" {flag} {}", shell_word(&path.to_string_lossy())));
        }
    }
    command
}

/// `text` as one shell word: as it is when it needs no quoting, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Serves until SIGTERM or SIGINT, then drains within the configured grace period.
async fn listen(
    role: &str,
    config: &Config,
    router: axum::Router,
    server_metrics: depproxy::server::ServerMetrics,
    tls: Option<tokio_rustls::TlsAcceptor>,
    supervisor: &supervisor::Supervisor,
) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    tracing::info!(address = %config.listen, tls = tls.is_some(), "{role} listening");
    depproxy::server::serve_until(
        listener,
        router,
        config.server,
        server_metrics,
        tls,
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
