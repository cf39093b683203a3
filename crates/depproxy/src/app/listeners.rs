//! A process's listeners, bound before anything is served (an address that cannot be bound stops
//! the start): the main one, the admin API and a metrics endpoint; their TLS certificates, re-read
//! on SIGHUP; and the signal that starts their drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use axum::Router;

use crate::config::{AdminListen, Config};
use crate::server::{Served, ServerMetrics, TlsCertificate};

/// A certificate and its key (PEM files) for the listener `role` names, when both are given.
pub fn load_certificate(
    cert: Option<&Path>,
    key: Option<&Path>,
    role: &str,
) -> anyhow::Result<Option<TlsCertificate>> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            TlsCertificate::load(cert, key).map(Some).with_context(|| format!("{role} TLS certificate"))
        }
        _ => Ok(None),
    }
}

/// Re-reads the certificate files on every SIGHUP: connections accepted afterwards get the new
/// certificates; a pair that does not load leaves the current one (and says so).
pub(super) fn reload_on_hangup(certificates: Vec<TlsCertificate>) -> anyhow::Result<()> {
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

/// The main listener: the registry API (`serve`, `gateway`) or the gateways' channel (`control`).
pub(super) fn bind_main(
    role: &'static str,
    config: &Config,
    router: Router,
    metrics: ServerMetrics,
    tls: Option<&TlsCertificate>,
) -> anyhow::Result<Served> {
    let listener = bind(config.listen)?;
    let address = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(%address, tls = tls.is_some(), "{role} listening");
    Ok(Served {
        name: role,
        listener,
        router,
        limits: config.server.clone(),
        metrics,
        tls: tls.map(TlsCertificate::acceptor),
    })
}

/// The metrics endpoint at `address`, away from the main listener.
pub(super) fn bind_metrics(
    address: SocketAddr,
    router: Router,
    config: &Config,
    metrics: ServerMetrics,
) -> anyhow::Result<Served> {
    let listener = bind(address).context("metrics listener")?;
    let address = listener.local_addr().unwrap_or(address);
    tracing::info!(%address, "metrics listening");
    Ok(Served { name: "metrics", listener, router, limits: config.server.clone(), metrics, tls: None })
}

/// How the process was started, for the token command the admin listener's start-up line prints:
/// its `--config` and `--data-dir` (from flags or environment).
#[derive(Debug, Clone, Default)]
pub struct StartedWith {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

/// The admin API, saying where and how to get in; `None` when it is off. An address that cannot
/// be bound stops the start (a proxy running without the admin API would go unnoticed until it
/// is needed): `--admin-listen` moves it, `--admin-listen off` turns it off.
pub(super) fn bind_admin(
    config: &Config,
    started_with: &StartedWith,
    router: Router,
    metrics: ServerMetrics,
    tls: Option<&TlsCertificate>,
) -> anyhow::Result<Option<Served>> {
    let address = match config.admin_listen {
        AdminListen::At(address) => address,
        AdminListen::Off => {
            tracing::info!("admin API off (--admin-listen off)");
            return Ok(None);
        }
    };
    let listener = crate::server::bind(address).with_context(|| {
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
    Ok(Some(Served {
        name: "admin",
        listener,
        router,
        limits: config.server.clone(),
        metrics,
        tls: tls.map(TlsCertificate::acceptor),
    }))
}

fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    crate::server::bind(address).with_context(|| format!("cannot listen on {address}"))
}

/// The command that creates an admin token for this process's database: with its `--config` and
/// `--data-dir`, as absolute paths, so it works from any directory.
fn admin_token_command(started_with: &StartedWith) -> String {
    let mut command = "depproxy token create --name ops --admin".to_owned();
    for (flag, path) in [("--config", &started_with.config), ("--data-dir", &started_with.data_dir)] {
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

/// Completes on SIGTERM or SIGINT: the binary's shutdown.
pub async fn shutdown_signal() {
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
