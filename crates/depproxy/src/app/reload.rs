//! A configuration reload on SIGHUP: the file is read and resolved again, and each group's pull
//! policy — `allow`, `deny`, `negative_ttl`, `immutable_tags`, `stale_on_404`, the admission hook
//! (`admission_hook`, `admission_timeout`, `admission_on_timeout`) — is put in force for
//! the requests that follow, without a restart. Everything else (groups, upstreams, listeners,
//! storage) needs a restart; a file that does not resolve changes nothing, and says why.

use std::sync::Arc;

use anyhow::Context as _;
use cache::Cache;

use crate::config::Config;

/// Reads and resolves the configuration again, as the process was started (its file, flags and
/// environment).
pub type ConfigSource = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Groups whose policy is now the file's.
    pub groups: usize,
    /// Groups in the file this process does not run (added since it started).
    pub unknown: Vec<String>,
}

/// Puts the pull policies of `config`'s groups in force on `cache`.
pub fn apply_policies(cache: &Cache, config: &Config) -> Reloaded {
    let mut reloaded = Reloaded { groups: 0, unknown: Vec::new() };
    for group in &config.groups {
        if cache.groups().replace_policy(&group.path, group.policy.clone()) {
            reloaded.groups += 1;
        } else {
            reloaded.unknown.push(group.path.clone());
        }
    }
    reloaded
}

/// On every SIGHUP, reloads the pull policies from `source` into `cache`.
pub(super) fn reload_policies_on_hangup(cache: Arc<Cache>, source: ConfigSource) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP (configuration reloads)")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Reading the file is blocking work: off the runtime's threads.
            let source = source.clone();
            let resolved = match tokio::task::spawn_blocking(move || source()).await {
                Ok(resolved) => resolved,
                Err(error) => Err(anyhow::anyhow!("the reload task failed: {error}")),
            };
            let config = match resolved {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"),
                        "configuration not reloaded; the groups keep their rules");
                    continue;
                }
            };
            let reloaded = apply_policies(&cache, &config);
            for group in &reloaded.unknown {
                tracing::warn!(group = %group, "group not running: groups are added by a restart");
            }
            for warning in config.warnings() {
                tracing::warn!("{warning}");
            }
            tracing::info!(
                groups = reloaded.groups,
                "configuration reloaded: allow, deny, negative_ttl, immutable_tags, stale_on_404 and the \
                 admission hook apply to the requests from now on; other changes need a restart"
            );
        }
    });
    Ok(())
}
