//! The `depproxy` binary: `serve` (both roles, zero config), `control` and `gateway` (split mode),
//! `check-config`, `gen-secret`, `token`, `cache` and `admin`; the flags are in `cli.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser as _;
use depproxy::app;
use depproxy::cli::{AdminCommand, CacheCommand, Cli, Command, LogFormat, TokenCommand};
use depproxy::config::{self, Config, Overrides};
use depproxy::cli::output;
use injector::Secret;

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
    use tracing_subscriber::Layer as _;
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
            .with_filter(tracing_subscriber::filter::filter_fn(telemetry::events::printed_in_logs))
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .with_filter(tracing_subscriber::filter::filter_fn(telemetry::events::printed_in_logs))
    });
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
            let certificates = Certificates::load(&common.tls, Some(&common.admin_tls))?;
            certificates.reload_on_hangup()?;
            let runtime = app::Runtime::default();
            let supervisor = runtime.supervisor.clone();
            let server_metrics = runtime.server_metrics.clone();
            let (gateway, control) = app::serve_node(&config, runtime).await?;
            let admin = app::admin_router(&control, &supervisor);
            start_admin(
                &config,
                (common.config.as_deref(), common.data_dir.as_deref()),
                admin,
                server_metrics.clone(),
                certificates.admin.as_ref(),
            )?;
            let router = public_router(&gateway, &config, common.metrics_listen, &server_metrics).await?;
            let tls = certificates.listener.as_ref();
            listen("depproxy serve", &config, router, server_metrics, tls, &supervisor).await
        }
        Command::Control { common, secret_file } => {
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
            let certificates = Certificates::load(&common.tls, Some(&common.admin_tls))?;
            certificates.reload_on_hangup()?;
            let runtime = app::Runtime::default();
            let node = app::control_node(&config, &secret, &runtime).await?;
            let router = node.router.clone();
            let server_metrics = runtime.server_metrics.clone();
            start_admin(
                &config,
                (common.config.as_deref(), common.data_dir.as_deref()),
                app::admin_router(&node, &runtime.supervisor),
                server_metrics.clone(),
                certificates.admin.as_ref(),
            )?;
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
            let certificates = Certificates::load(&common.tls, None)?;
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
            output::stdout(&format!(
                "{}: ok ({} upstream(s), {} group(s), database {})",
                file.display(),
                config.upstreams.len(),
                config.groups.len(),
                config.database_url
            ))
        }
        Command::Token { command } => {
            let output = match command {
                TokenCommand::Create { name, groups, admin, expires, quiet, json, store } => {
                    let created =
                        depproxy::cli::token::create(&store.resolve()?, &name, &groups, admin, expires).await?;
                    // Only the secret on stdout: `… > token`, `TOKEN=$(…)` and `--password-stdin`
                    // must get the secret alone.
                    if json {
                        serde_json::to_string_pretty(&created)?
                    } else {
                        if !quiet {
                            output::stderr(&created.advice());
                        }
                        created.secret
                    }
                }
                TokenCommand::List { store } => depproxy::cli::token::list(&store.resolve()?).await?,
                TokenCommand::Revoke { name, store } => {
                    depproxy::cli::token::revoke(&store.resolve()?, &name).await?
                }
            };
            output::stdout(&output)
        }
        Command::Admin { target, command } => {
            use depproxy::cli::admin as admin_cli;
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
            output::stdout(&output)
        }
        Command::Cache { command } => {
            let output = match command {
                CacheCommand::Purge { group, image, older_than, store } => {
                    depproxy::cli::cache::purge(&store.resolve()?, &group, image.as_deref(), older_than)
                        .await?
                }
                CacheCommand::Stats { group, json, store } => {
                    depproxy::cli::cache::stats(&store.resolve()?, group.as_deref(), json).await?
                }
                CacheCommand::Warm { group, images, proxy, listen, config, token, concurrency } => {
                    let (proxy, proxy_origin) = match proxy {
                        Some(url) => (url, "--proxy".to_owned()),
                        None => {
                            let (listen, origin) = depproxy::cli::warm_listen(listen, config.as_deref())?;
                            (depproxy::cli::warm::default_proxy_url(listen), origin)
                        }
                    };
                    let options = depproxy::cli::warm::WarmOptions {
                        proxy,
                        group,
                        images,
                        token,
                        concurrency,
                        proxy_origin,
                        config,
                    };
                    depproxy::cli::warm::warm(&options).await?.to_string()
                }
            };
            output::stdout(&output)
        }
        Command::GenSecret { file } => {
            app::write_new_secret(&file).with_context(|| format!("cannot create {}", file.display()))
        }
    }
}

/// A process's TLS certificates, read before anything starts (a bad file stops the start-up) and
/// re-read on SIGHUP.
struct Certificates {
    listener: Option<depproxy::server::TlsCertificate>,
    admin: Option<depproxy::server::TlsCertificate>,
}

impl Certificates {
    fn load(
        listener: &depproxy::cli::ListenerTls,
        admin: Option<&depproxy::cli::AdminTls>,
    ) -> anyhow::Result<Self> {
        let load = |cert: &Option<PathBuf>, key: &Option<PathBuf>, role: &str| match (cert, key) {
            (Some(cert), Some(key)) => depproxy::server::TlsCertificate::load(cert, key)
                .map(Some)
                .with_context(|| format!("{role} TLS certificate")),
            _ => Ok(None),
        };
        Ok(Certificates {
            listener: load(&listener.tls_cert, &listener.tls_key, "listener")?,
            admin: match admin {
                Some(admin) => load(&admin.admin_tls_cert, &admin.admin_tls_key, "admin API")?,
                None => None,
            },
        })
    }

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

/// Starts the admin API, saying where and how to get in. An address that cannot be bound stops
/// the start (a proxy running without the admin API would go unnoticed until it is needed):
/// `--admin-listen` moves it, `--admin-listen off` turns it off. `started_with` is the process's
/// `--config` and `--data-dir`, for the token command it prints.
fn start_admin(
    config: &Config,
    started_with: (Option<&std::path::Path>, Option<&std::path::Path>),
    router: axum::Router,
    metrics: depproxy::server::ServerMetrics,
    tls: Option<&depproxy::server::TlsCertificate>,
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
        "admin API and status page at http://{address}/ — an admin token to log in with: `{}`",
        admin_token_command(started_with)
    );
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

/// The command that creates an admin token for this process's database: with its `--config` and
/// `--data-dir` (from flags or environment), as absolute paths, so it works from any directory.
fn admin_token_command((config, data_dir): (Option<&std::path::Path>, Option<&std::path::Path>)) -> String {
    let mut command = "depproxy token create --name ops --admin".to_owned();
    for (flag, path) in [("--config", config), ("--data-dir", data_dir)] {
        if let Some(path) = path {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
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
