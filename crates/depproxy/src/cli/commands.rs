//! What each command does with its arguments: the server roles start through `app` (as the
//! tests start them), the other commands are clients of a proxy's database or of a running proxy.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use injector::Secret;

use super::args::{AdminCommand, AdminTls, CacheCommand, Command, ListenerTls, TokenCommand};
use super::output;
use crate::app::{self, ListenOptions, StartedWith};
use crate::config::{self, Config, Overrides};

/// Runs `command` to its end: a server role until SIGTERM or SIGINT and its drain.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            let again = args.clone();
            let options = ListenOptions {
                tls: listener_certificate(&args.tls)?,
                admin_tls: admin_certificate(&args.admin_tls)?,
                metrics_listen: args.metrics_listen,
                started_with: StartedWith { config: args.config, data_dir: args.data_dir },
                reload: Some(Arc::new(move || again.resolve())),
            };
            let runtime = app::Runtime::default();
            app::run_serve(&config, options, runtime, app::shutdown_signal()).await?.finished().await
        }
        Command::Control { common: args, secret_file } => {
            let config = args.resolve()?;
            let secret = read_secret(&secret_file)?;
            let again = args.clone();
            let options = ListenOptions {
                tls: listener_certificate(&args.tls)?,
                admin_tls: admin_certificate(&args.admin_tls)?,
                metrics_listen: args.metrics_listen,
                started_with: StartedWith { config: args.config, data_dir: args.data_dir },
                reload: Some(Arc::new(move || again.resolve())),
            };
            let runtime = app::Runtime::default();
            let running =
                app::run_control(&config, &secret, options, runtime, app::shutdown_signal()).await?;
            running.finished().await
        }
        Command::Gateway { common: args, control_url, control_ca, secret_file } => {
            let config = args.resolve()?;
            let secret = read_secret(&secret_file)?;
            let options = ListenOptions {
                tls: listener_certificate(&args.tls)?,
                admin_tls: None,
                metrics_listen: args.metrics_listen,
                started_with: StartedWith { config: args.config, data_dir: args.data_dir },
                reload: None,
            };
            let control = app::ControlAddress { url: control_url, ca: control_ca };
            let runtime = app::Runtime::default();
            let running =
                app::run_gateway(&config, &control, &secret, options, runtime, app::shutdown_signal())
                    .await?;
            running.finished().await
        }
        Command::CheckConfig { file } => {
            let config = Config::resolve(config::read_file(&file)?, &Overrides::default())?;
            // What works, but probably not as meant (a rule another makes useless): on stderr,
            // and the file is still ok.
            for warning in config.warnings() {
                output::stderr(&format!("warning: {warning}"));
            }
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
                        super::token::create(&store.resolve()?, &name, &groups, admin, expires).await?;
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
                TokenCommand::List { store } => super::token::list(&store.resolve()?).await?,
                TokenCommand::Revoke { name, store } => {
                    super::token::revoke(&store.resolve()?, &name).await?
                }
            };
            output::stdout(&output)
        }
        Command::Admin { target, command } => {
            use super::admin as admin_cli;
            let token = target.token.context("an admin token is needed: --token or DEPPROXY_ADMIN_TOKEN")?;
            let client = admin_cli::AdminClient::new(&target.admin_url, &token)?;
            let json = target.json;
            let output = match command {
                AdminCommand::Status => {
                    let status = admin_cli::Status {
                        groups: client.get("/api/v1/groups").await?,
                        upstreams: client.get("/api/v1/upstreams").await?,
                    };
                    if json {
                        serde_json::to_string_pretty(&status)?
                    } else {
                        format!(
                            "{}\n\n{}",
                            admin_cli::groups_table(&status.groups),
                            admin_cli::upstreams_table(&status.upstreams)
                        )
                    }
                }
                AdminCommand::Groups => {
                    let groups: admin::StoreView = client.get("/api/v1/groups").await?;
                    if json {
                        serde_json::to_string_pretty(&groups)?
                    } else {
                        admin_cli::groups_table(&groups)
                    }
                }
                AdminCommand::Upstreams => {
                    let upstreams: Vec<admin::UpstreamView> = client.get("/api/v1/upstreams").await?;
                    if json {
                        serde_json::to_string_pretty(&upstreams)?
                    } else {
                        admin_cli::upstreams_table(&upstreams)
                    }
                }
                AdminCommand::Fills => {
                    let fills: Vec<injector::FillReport> = client.get("/api/v1/fills").await?;
                    if json { serde_json::to_string_pretty(&fills)? } else { admin_cli::fills_table(&fills) }
                }
                AdminCommand::Events { limit } => {
                    let events = admin_cli::Events {
                        errors: client
                            .get(&format!("/api/v1/events?kind=error,warning&limit={limit}"))
                            .await?,
                        denials: client.get(&format!("/api/v1/events?kind=denied&limit={limit}")).await?,
                    };
                    if json {
                        serde_json::to_string_pretty(&events)?
                    } else {
                        admin_cli::events_tables(&events.errors, &events.denials)
                    }
                }
                AdminCommand::Purge { group, image, package, older_than } => {
                    let only = admin_cli::PurgeOnly { image: image.as_deref(), package: package.as_deref() };
                    let job = admin_cli::purge(&client, &group, only, older_than.as_deref()).await?;
                    if json {
                        serde_json::to_string_pretty(&job)?
                    } else if job.state == "done" {
                        format!("purged {} object(s) of group {group}", job.done)
                    } else {
                        anyhow::bail!(
                            "purge of group {group} ended {:?}: {}",
                            job.state,
                            job.error
                                .as_deref()
                                .map_or_else(|| "null".to_owned(), |error| format!("{error:?}"))
                        );
                    }
                }
            };
            output::stdout(&output)
        }
        Command::Cache { command } => {
            let output = match command {
                CacheCommand::Purge { group, image, package, older_than, store } => {
                    let only =
                        super::admin::PurgeOnly { image: image.as_deref(), package: package.as_deref() };
                    super::cache::purge(&store.resolve()?, &group, only, older_than).await?
                }
                CacheCommand::Stats { group, json, store } => {
                    super::cache::stats(&store.resolve()?, group.as_deref(), json).await?
                }
                CacheCommand::Warm { group, now: true, admin_url, admin_token, json, .. } => {
                    let token = admin_token
                        .context("--now runs the schedule through the admin API: give --admin-token or DEPPROXY_ADMIN_TOKEN")?;
                    let client = super::admin::AdminClient::new(&admin_url, &token)?;
                    let job = super::admin::warm_now(&client, &group).await?;
                    let shown = if json {
                        serde_json::to_string_pretty(&job)?
                    } else {
                        super::admin::warm_job_text(&job)
                    };
                    if job.state != "done" {
                        output::stdout(&shown)?;
                        anyhow::bail!(
                            "warm run {} {}: {}",
                            job.id,
                            job.state,
                            job.error.as_deref().unwrap_or("no reason given")
                        );
                    }
                    shown
                }
                CacheCommand::Warm { group, images, proxy, listen, config, token, concurrency, .. } => {
                    let (proxy, proxy_origin) = match proxy {
                        Some(url) => (url, "--proxy".to_owned()),
                        None => {
                            let (listen, origin) = super::args::warm_listen(listen, config.as_deref())?;
                            (super::warm::default_proxy_url(listen), origin)
                        }
                    };
                    let options = super::warm::WarmOptions {
                        proxy,
                        group,
                        images,
                        token,
                        concurrency,
                        proxy_origin,
                        config,
                    };
                    super::warm::warm(&options).await?.to_string()
                }
            };
            output::stdout(&output)
        }
        Command::GenSecret { file } => {
            app::write_new_secret(&file).with_context(|| format!("cannot create {}", file.display()))
        }
    }
}

/// The main listener's certificate, when `--tls-cert` and `--tls-key` are given.
fn listener_certificate(tls: &ListenerTls) -> anyhow::Result<Option<crate::server::TlsCertificate>> {
    app::load_certificate(tls.tls_cert.as_deref(), tls.tls_key.as_deref(), "listener")
}

/// The admin API's certificate, when `--admin-tls-cert` and `--admin-tls-key` are given.
fn admin_certificate(tls: &AdminTls) -> anyhow::Result<Option<crate::server::TlsCertificate>> {
    app::load_certificate(tls.admin_tls_cert.as_deref(), tls.admin_tls_key.as_deref(), "admin API")
}

fn read_secret(path: &Path) -> anyhow::Result<Secret> {
    let contents =
        std::fs::read(path).with_context(|| format!("cannot read secret file {}", path.display()))?;
    Secret::from_file_contents(&contents).with_context(|| format!("secret file {}", path.display()))
}
