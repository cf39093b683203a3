//! `depproxy token create | list | revoke`: access tokens, straight in the metadata database
//! (SQLite or PostgreSQL), with the server running or not — running control planes see a change
//! within `[auth] token_check_interval`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use metadata::{Clock, Metadata};
use oci::GroupPath;

use crate::config::Config;

/// Opens the server's database. A SQLite file that does not exist is not created: a command
/// run from the wrong directory, or without the server's configuration, would otherwise make a
/// new empty database, "succeed", and leave the server without the token. Only `serve` and
/// `control` create a database.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Metadata> {
    // Only a file known to be missing: one we may not look at (the service's directory, run as
    // another user) is for the driver to report.
    if let Some(file) = sqlite_file(config.database_url.expose())
        && matches!(file.try_exists(), Ok(false))
    {
        bail!(
            "no database at {}; pass --config FILE (the server's configuration) or --data-dir DIR (its \
             data directory): this command does not create one, the server does when it starts",
            file.display()
        );
    }
    Metadata::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the metadata database {}", config.database_url))
}

/// The file of a `sqlite:` database URL (none for an in-memory one).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// A token just created, with its secret (shown this once; no `Debug`, so it is never logged).
#[derive(serde::Serialize)]
pub struct CreatedToken {
    pub name: String,
    pub secret: String,
    pub groups: Vec<String>,
    pub admin: bool,
    /// RFC 3339, or none: it never expires.
    pub expires: Option<String>,
}

impl CreatedToken {
    /// What to do with the secret: for stderr, next to the secret on stdout.
    pub fn advice(&self) -> String {
        format!(
            "token {:?} created{}{}{}. Its secret (on stdout) is shown only this once: store it now.\n\
             Use it as the password of docker, podman or skopeo login (any username; --password-stdin \
             reads it from a file or a pipe).",
            self.name,
            if self.groups.is_empty() {
                String::new()
            } else {
                format!(" for group(s) {}", self.groups.join(", "))
            },
            if self.admin { ", admin" } else { "" },
            self.expires.as_ref().map(|at| format!(", expires {at}")).unwrap_or_default(),
        )
    }
}

/// Creates a token; its secret is in the answer, and nowhere else.
pub async fn create(
    config: &Config,
    name: &str,
    groups: &[String],
    admin: bool,
    expires: Option<Duration>,
) -> anyhow::Result<CreatedToken> {
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
    let record = created.record;
    Ok(CreatedToken {
        name: record.name,
        secret: created.secret,
        groups: record.groups.iter().map(|group| group.as_str().to_owned()).collect(),
        admin: record.admin,
        expires: record.expires_at.map(timestamp),
    })
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
    Ok(super::admin::table(&rows))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_sqlite_url() {
        assert_eq!(
            sqlite_file("sqlite:./depproxy-data/depproxy.db"),
            Some("./depproxy-data/depproxy.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/depproxy/depproxy.db?mode=rwc"),
            Some("/var/lib/depproxy/depproxy.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://depproxy@db.internal/depproxy"), None);
    }
}
