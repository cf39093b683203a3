//! The `depproxy` binary: `serve` (both roles, zero config), `control` and `gateway` (split mode),
//! `check-config` and `gen-secret`.

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
        /// Also serve Prometheus metrics (upstream requests by kind) at this address.
        #[arg(long, env = "DEPPROXY_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Run a gateway alone (split mode), deciding through the control plane at --control-url.
    Gateway {
        #[command(flatten)]
        common: CommonArgs,
        /// Base URL of the control plane, e.g. http://127.0.0.1:5100.
        #[arg(long, env = "DEPPROXY_CONTROL_URL")]
        control_url: String,
        /// File holding the 32-byte secret shared with the control plane (base64 or hex).
        #[arg(long, env = "DEPPROXY_SECRET_FILE")]
        secret_file: PathBuf,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Write a new random shared secret for split mode.
    GenSecret {
        /// Where to write it (created with mode 0600).
        file: PathBuf,
    },
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
        Config::resolve(file, &overrides)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // One crypto provider for rustls (upstream TLS, PostgreSQL TLS) and jsonwebtoken (internal tokens).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(common) => {
            let config = common.resolve()?;
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let gateway = app::serve(&config, runtime).await?;
            listen("depproxy serve", &config, gateway.router(), &supervisor).await
        }
        Command::Control { common, secret_file, metrics_listen } => {
            let config = common.resolve()?;
            let secret = read_secret(&secret_file)?;
            let runtime = app::Runtime::default();
            let router = app::control_router(&config, &secret, &runtime).await?;
            if let Some(address) = metrics_listen {
                let listener = bind(address).await?;
                let metrics = app::metrics_router(runtime.registry);
                tokio::spawn(async move {
                    if let Err(error) = app::run_server(listener, metrics, std::future::pending()).await {
                        tracing::error!(%error, "metrics listener failed");
                    }
                });
            }
            listen("depproxy control", &config, router, &runtime.supervisor).await
        }
        Command::Gateway { common, control_url, secret_file } => {
            let config = common.resolve()?;
            let secret = read_secret(&secret_file)?;
            let channel = app::control_channel(&config, &control_url)?;
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let gateway = app::gateway(&config, channel, &secret, runtime).await?;
            listen("depproxy gateway", &config, gateway.router(), &supervisor).await
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
        Command::GenSecret { file } => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let secret = Secret::from_bytes(rand::random());
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .with_context(|| format!("cannot create {}", file.display()))?;
            writeln!(out, "{}", secret.to_base64())?;
            Ok(())
        }
    }
}

fn read_secret(path: &PathBuf) -> anyhow::Result<Secret> {
    let contents =
        std::fs::read(path).with_context(|| format!("cannot read secret file {}", path.display()))?;
    Secret::from_file_contents(&contents).with_context(|| format!("secret file {}", path.display()))
}

async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))
}

/// Serves until SIGTERM or SIGINT, then drains within the configured grace period.
async fn listen(
    role: &str,
    config: &Config,
    router: axum::Router,
    supervisor: &supervisor::Supervisor,
) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    tracing::info!(address = %config.listen, "{role} listening");
    app::serve_until(listener, router, supervisor, config.shutdown_grace, shutdown_signal())
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
