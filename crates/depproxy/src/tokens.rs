//! `depproxy token create | list | revoke`: access tokens, straight in the metadata database
//! (SQLite or PostgreSQL), with the server running or not — running control planes see a change
//! within `[auth] token_check_interval`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use metadata::{Clock, Metadata};
use oci::GroupPath;

use crate::config::Config;

/// Opens the configuration's database, creating a SQLite file's directory when missing.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Metadata> {
    if let Some(parent) = config
        .database_url
        .expose()
        .strip_prefix("sqlite:")
        .map(std::path::Path::new)
        .and_then(|path| path.parent())
        && !parent.as_os_str().is_empty()
    {
        crate::app::create_private_dir(parent)
            .await
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Metadata::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the metadata database {}", config.database_url))
}

/// Creates a token and returns what to print: the secret, shown this once.
pub async fn create(
    config: &Config,
    name: &str,
    groups: &[String],
    admin: bool,
    expires: Option<Duration>,
) -> anyhow::Result<String> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !name_ok {
        bail!("token name {name:?}: up to 64 letters, digits, '-', '_', '.', '@'");
    }
    let mut paths = Vec::new();
    for group in groups {
        let path = GroupPath::parse(group)
            .map_err(|error| anyhow::anyhow!("--group {group:?}: {}", error.message))?;
        if !config.groups.iter().any(|configured| configured.path == group.as_str()) {
            let known: Vec<&str> = config.groups.iter().map(|configured| configured.path.as_str()).collect();
            bail!("--group {group:?} is not configured (groups: {})", known.join(", "));
        }
        paths.push(path);
    }
    if paths.is_empty() && !admin {
        bail!("a token needs at least one --group (or --admin)");
    }
    let metadata = connect(config).await?;
    let clock = Clock::system();
    let expires_at = expires.map(|lifetime| {
        clock.now_ms().saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX))
    });
    let created = access::create_token(&metadata, &clock, name, paths, admin, expires_at).await?;
    let record = &created.record;
    let groups: Vec<&str> = record.groups.iter().map(GroupPath::as_str).collect();
    Ok(format!(
        "{}\n\ntoken {:?} created{}{}{}. The secret above is shown only this once: store it now.\n\
         Use it as the password of `docker login`, `podman login`, `skopeo login` (any username).",
        created.secret,
        record.name,
        if groups.is_empty() { String::new() } else { format!(" for group(s) {}", groups.join(", ")) },
        if record.admin { ", admin" } else { "" },
        record.expires_at.map(|at| format!(", expires {}", timestamp(at))).unwrap_or_default(),
    ))
}

/// Every token, revoked and expired ones too, as a table.
pub async fn list(config: &Config) -> anyhow::Result<String> {
    let metadata = connect(config).await?;
    let now = Clock::system().now_ms();
    let records = metadata.list_access_tokens().await?;
    let mut rows =
        vec![["NAME", "GROUPS", "ADMIN", "CREATED", "EXPIRES", "LAST USED", "STATUS"].map(str::to_owned)];
    for record in &records {
        rows.push([
            record.name.clone(),
            record.groups.iter().map(GroupPath::as_str).collect::<Vec<_>>().join(","),
            if record.admin { "yes".into() } else { "no".into() },
            timestamp(record.created_at),
            record.expires_at.map_or("never".into(), timestamp),
            record.last_used_at.map_or("never".into(), timestamp),
            access::token_status(record, now).into(),
        ]);
    }
    Ok(crate::admin_cli::table(&rows))
}

/// Revokes the active token named `name`.
pub async fn revoke(config: &Config, name: &str) -> anyhow::Result<String> {
    let metadata = connect(config).await?;
    if !metadata.revoke_access_token(name, Clock::system().now_ms()).await? {
        bail!("no active token is named {name:?}");
    }
    Ok(format!(
        "token {name:?} revoked; running control planes refuse it within {} (token_check_interval)",
        humantime_serde::re::humantime::format_duration(config.auth.token_check_interval)
    ))
}

fn timestamp(unix_ms: i64) -> String {
    access::format_rfc3339(u64::try_from(unix_ms / 1000).unwrap_or(0))
}
