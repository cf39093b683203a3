//! `depproxy cache purge | stats`: the lifecycle from the command line, straight on the metadata
//! database and the object store (SQLite or PostgreSQL, disk or S3), with the server running or
//! not — running control planes forget removed rows within a second (at once on PostgreSQL), and a
//! purge deletes the objects only after `removal_notice` (2 s), so no server still serves them.

use std::time::Duration;

use lifecycle::{Lifecycle, LifecycleMetrics, PurgeRequest, StoreStats};
use metadata::Clock;
use oci::{GroupPath, RepositoryName};

use super::admin::PurgeOnly;
use crate::app;
use crate::config::Config;

async fn open(config: &Config) -> anyhow::Result<Lifecycle> {
    let metadata = super::token::connect(config).await?;
    let store = app::open_store(config).await?;
    let groups = app::build_groups(config, &upstream::UpstreamMetrics::default())?;
    Ok(app::lifecycle(
        config,
        metadata,
        store,
        app::lifecycle_groups(&groups),
        Clock::system(),
        LifecycleMetrics::default(),
    ))
}

/// Purges a group (or one image or package of it, or what was not read for `older_than`);
/// returns the summary line. Progress goes to stderr. An image of a package group, a package of
/// an image group, are refused before anything is done.
pub async fn purge(
    config: &Config,
    group: &str,
    only: PurgeOnly<'_>,
    older_than: Option<Duration>,
) -> anyhow::Result<String> {
    let group =
        GroupPath::parse(group).map_err(|error| anyhow::anyhow!("--group {group:?}: {}", error.message))?;
    let image = only
        .image
        .map(|name| {
            RepositoryName::parse(name)
                .map_err(|error| anyhow::anyhow!("--image {name:?}: {}", error.message))
        })
        .transpose()?;
    let lifecycle = open(config).await?;
    let request = PurgeRequest { group, image, package: only.package.map(str::to_owned), older_than };
    let job = lifecycle.create_purge_job(&request).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(request.describe());
    let report = lifecycle
        .run_purge(&request, &job, |objects, bytes| {
            let objects = telemetry::plural(objects, "object", "objects");
            bar.set_message(format!("{}: {objects}, {}", request.describe(), human_bytes(bytes)));
            bar.tick();
        })
        .await?;
    bar.finish_and_clear();
    // A package group has no tags: its documents are among the objects.
    let tags = if report.format.is_package() {
        String::new()
    } else {
        format!(" and {}", telemetry::plural(report.tags, "tag", "tags"))
    };
    Ok(format!(
        "{} ({} group, job {job}): removed {} ({}){tags}; {} deleted from storage",
        request.describe(),
        report.format,
        telemetry::plural(report.objects, "object", "objects"),
        human_bytes(report.bytes),
        telemetry::plural(report.deleted_objects, "object", "objects"),
    ))
}

/// Statistics as a table (or JSON: the lifecycle's figures, the hourly traffic included), with
/// what each upstream served each group.
pub async fn stats(config: &Config, group: Option<&str>, json: bool) -> anyhow::Result<String> {
    let lifecycle = open(config).await?;
    let stats = lifecycle.stats(group).await?;
    if json {
        return Ok(serde_json::to_string_pretty(&stats)?);
    }
    Ok(render(&stats))
}

fn render(stats: &StoreStats) -> String {
    let mut rows = vec![
        [
            "GROUP",
            "FORMAT",
            "SIZE",
            "QUOTA",
            "PINNED",
            "ARTIFACTS",
            "DOCUMENTS",
            "TAGS",
            "HITS 24H",
            "MISSES 24H",
            "SERVED 24H",
            "FETCHED 24H",
            "OLDEST READ",
        ]
        .map(str::to_owned),
    ];
    for group in &stats.groups {
        rows.push([
            group.group.clone(),
            group.format.to_string(),
            human_bytes(group.bytes),
            group.max_size.map_or("-".into(), human_bytes),
            human_bytes(group.pinned_bytes),
            group.artifacts.to_string(),
            group.documents.to_string(),
            group.tags.to_string(),
            group.last_24h.hits.to_string(),
            group.last_24h.misses.to_string(),
            human_bytes(group.last_24h.bytes_served),
            human_bytes(group.last_24h.bytes_fetched),
            group
                .oldest_read
                .map_or("-".into(), |at| access::format_rfc3339(u64::try_from(at / 1000).unwrap_or(0))),
        ]);
    }
    let mut out = vec![super::admin::table(&rows)];
    for group in stats.groups.iter().filter(|group| !group.by_upstream.is_empty()) {
        let shares: Vec<String> = group
            .by_upstream
            .iter()
            .map(|share| {
                let name = if share.upstream.is_empty() { "(not recorded)" } else { share.upstream.as_str() };
                let objects = telemetry::plural(share.objects, "object", "objects");
                format!("{name} {objects} ({})", human_bytes(share.bytes))
            })
            .collect();
        out.push(format!("{} served by: {}", group.group, shares.join(", ")));
    }
    out.push(format!(
        "store: {} in storage ({} awaiting deletion), quota {}",
        human_bytes(stats.physical_bytes),
        human_bytes(stats.pending_delete_bytes),
        stats.max_size.map_or("none".into(), human_bytes)
    ));
    out.join("\n")
}

/// Bytes in binary units, e.g. `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(200 << 30), "200.0 GiB");
    }
}
