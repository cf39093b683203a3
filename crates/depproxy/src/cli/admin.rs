//! `depproxy admin …`: the admin API of a running proxy from the terminal — human tables by
//! default, the API's JSON with `--json`, a progress bar while a purge runs.

use std::time::Duration;

use admin::{ErrorEnvelope, EventView, JobStarted, JobView, StoreView, UpstreamView};
use anyhow::{Context as _, bail};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use injector::FillReport;
use serde::de::DeserializeOwned;

/// `depproxy admin status --json`: the groups and the upstreams.
#[derive(serde::Serialize)]
pub struct Status {
    pub groups: StoreView,
    pub upstreams: Vec<UpstreamView>,
}

/// `depproxy admin events --json`: errors and warnings, and denials, apart.
#[derive(serde::Serialize)]
pub struct Events {
    pub errors: Vec<EventView>,
    pub denials: Vec<EventView>,
}

/// Where the admin API is and the admin token to call it with.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("HTTP client")?;
        Ok(AdminClient { base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), http })
    }

    /// Sends `request` and reads the answer into the API's own type `T`.
    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let response = request.bearer_auth(&self.token).send().await.with_context(|| {
            format!("cannot reach the admin API at {} (is depproxy running? --admin-url)", self.base)
        })?;
        let status = response.status();
        let url = response.url().path().to_owned();
        let body = response.bytes().await.context("reading the admin API's answer")?;
        if !status.is_success() {
            let envelope = serde_json::from_slice::<ErrorEnvelope>(&body).ok();
            let message = envelope.as_ref().and_then(ErrorEnvelope::message).unwrap_or("no details");
            bail!("the admin API answered {}: {message}", status.as_u16());
        }
        serde_json::from_slice(&body).with_context(|| {
            format!("the admin API's answer to {url} is not what this depproxy reads (another version?)")
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base))).await
    }
}

fn text(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

fn bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |bytes| HumanBytes(bytes).to_string())
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0))
}

/// Columns padded to their widest cell: the one table renderer of the CLI's commands.
pub(crate) fn table<Row: AsRef<[String]>>(rows: &[Row]) -> String {
    let columns = rows.iter().map(|row| row.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            let cells = rows.iter().filter_map(|row| row.as_ref().get(column));
            cells.map(|cell| cell.chars().count()).max().unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            row.as_ref()
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The groups: format, size vs quota, artifacts and documents, hit ratio and bytes saved over 24 h.
pub fn groups_table(store: &StoreView) -> String {
    let mut rows = vec![
        [
            "GROUP",
            "FORMAT",
            "UPSTREAM",
            "ACCESS",
            "SIZE",
            "QUOTA",
            "ARTIFACTS",
            "DOCUMENTS",
            "HIT 24H",
            "SAVED 24H",
            "HIT 1H",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for group in &store.groups {
        rows.push(vec![
            group.group.clone(),
            text(Some(&group.format).filter(|format| !format.is_empty()).map(String::as_str)),
            group.upstream.clone(),
            group.access.clone(),
            bytes(Some(group.bytes)),
            bytes(group.max_size),
            group.artifacts.to_string(),
            group.documents.to_string(),
            ratio(group.last_24h.hit_ratio),
            bytes(Some(group.last_24h.bytes_served)),
            ratio(group.last_1h.hit_ratio),
        ]);
    }
    format!(
        "{}\n\nstore: {} of {}",
        table(&rows),
        bytes(Some(store.physical_bytes)),
        store.max_size.map_or_else(|| "no limit".to_owned(), |max| HumanBytes(max).to_string())
    )
}

/// The upstreams: reachable, latency, rate-limit budget, last error.
pub fn upstreams_table(upstreams: &[UpstreamView]) -> String {
    let mut rows = vec![
        ["UPSTREAM", "HOST", "REACHABLE", "LATENCY", "PULLS LEFT", "LAST ERROR"].map(str::to_owned).to_vec(),
    ];
    for upstream in upstreams {
        rows.push(vec![
            upstream.name.clone(),
            upstream.host.clone(),
            match upstream.reachable {
                Some(true) => "yes".to_owned(),
                Some(false) => "NO".to_owned(),
                None => "not asked yet".to_owned(),
            },
            upstream.latency_avg_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms")),
            upstream
                .rate_limit
                .as_ref()
                .map_or_else(|| "-".to_owned(), |budget| format!("{}/{}", budget.remaining, budget.limit)),
            text(upstream.last_error.as_ref().map(|error| error.message.as_str())),
        ]);
    }
    table(&rows)
}

/// The live fills with their progress.
pub fn fills_table(fills: &[FillReport]) -> String {
    if fills.is_empty() {
        return "no fill running".to_owned();
    }
    let mut rows =
        vec![["OBJECT", "UPSTREAM", "DONE", "OF", "RATE", "CLIENTS", "NODE"].map(str::to_owned).to_vec()];
    for fill in fills {
        rows.push(vec![
            fill.object.clone(),
            fill.upstream.clone(),
            HumanBytes(fill.bytes_done).to_string(),
            fill.bytes_total.map_or_else(|| "-".to_owned(), |total| HumanBytes(total).to_string()),
            format!("{}/s", HumanBytes(fill.rate)),
            fill.clients.to_string(),
            fill.node.clone(),
        ]);
    }
    table(&rows)
}

/// Recent errors and warnings, then recent denials: two tables (`GET /api/v1/events?kind=…`
/// answers `errors` and `denials`). Repeats are one row: its count, the client, the summary.
pub fn events_tables(errors: &[EventView], denials: &[EventView]) -> String {
    format!(
        "errors and warnings:\n{}\n\ndenials:\n{}",
        events_table(errors, "none lately"),
        events_table(denials, "none lately")
    )
}

fn events_table(events: &[EventView], nothing: &str) -> String {
    if events.is_empty() {
        return nothing.to_owned();
    }
    let mut rows =
        vec![["TIME", "KIND", "COUNT", "GROUP", "IMAGE", "CLIENT", "WHAT"].map(str::to_owned).to_vec()];
    for event in events {
        let summary = Some(event.summary.as_str()).filter(|summary| !summary.is_empty());
        rows.push(vec![
            access::format_rfc3339(event.at / 1000),
            event.kind.clone(),
            event.count.to_string(),
            text(event.group.as_deref()),
            text(event.image.as_deref()),
            text(event.client.as_deref()),
            summary.unwrap_or(&event.message).to_owned(),
        ]);
    }
    table(&rows)
}

/// Starts a purge and follows its job to the end with a progress bar (hidden when stderr is not
/// a terminal); returns the job as it ended.
/// What a purge is limited to: one image (of an image group) or one package (of a package
/// group); neither: the whole group.
#[derive(Debug, Clone, Copy, Default)]
pub struct PurgeOnly<'a> {
    pub image: Option<&'a str>,
    pub package: Option<&'a str>,
}

pub async fn purge(
    client: &AdminClient,
    group: &str,
    only: PurgeOnly<'_>,
    older_than: Option<&str>,
) -> anyhow::Result<JobView> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(image) = only.image {
        query.append_pair("image", image);
    }
    if let Some(package) = only.package {
        query.append_pair("package", package);
    }
    if let Some(older_than) = older_than {
        query.append_pair("older_than", older_than);
    }
    let query = query.finish();
    let path = format!(
        "/api/v1/groups/{group}/cache{}",
        if query.is_empty() { String::new() } else { format!("?{query}") }
    );
    let started: JobStarted = client.delete(&path).await?;
    follow(client, &started, "{spinner} purging {msg} [{bar:30}] {pos}/{len} objects", group).await
}

/// Runs `group`'s warm schedule now and follows its job to the end with a spinner (hidden when
/// stderr is not a terminal); returns the job as it ended.
pub async fn warm_now(client: &AdminClient, group: &str) -> anyhow::Result<JobView> {
    let started: JobStarted = client.post(&format!("/api/v1/groups/{group}/warm")).await?;
    follow(client, &started, "{spinner} warming {msg} [{bar:30}] {pos}/{len} tags", group).await
}

/// Follows a started job to its end with a progress bar (`template`, `{msg}` = `group`; hidden when
/// stderr is not a terminal); the job as it ended.
async fn follow(
    client: &AdminClient,
    started: &JobStarted,
    template: &str,
    group: &str,
) -> anyhow::Result<JobView> {
    let bar = ProgressBar::new(0);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(group.to_owned());
    loop {
        let job: JobView = client.get(&started.status).await?;
        bar.set_length(job.total);
        bar.set_position(job.done);
        if job.state != "running" {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A warm job as people read it: its report, tag by tag.
pub fn warm_job_text(job: &JobView) -> String {
    match &job.warm {
        Some(report) => report.to_string().trim_end().to_owned(),
        None => format!("job {} {}", job.id, job.progress()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn traffic(hit_ratio: Option<f64>, bytes_served: u64) -> serde_json::Value {
        json!({"hits": 0, "misses": 0, "bytes_served": bytes_served, "bytes_fetched": 0, "hit_ratio": hit_ratio})
    }

    fn event(fields: serde_json::Value) -> EventView {
        let mut event = json!({"at": 0, "first_at": 0, "count": 1, "kind": "error", "group": null,
            "image": null, "client": null, "message": "", "summary": ""});
        for (key, value) in fields.as_object().unwrap() {
            event[key] = value.clone();
        }
        serde_json::from_value(event).unwrap()
    }

    #[test]
    fn tables_show_what_operators_look_for() {
        // As the admin API answers: read into its own types, as `depproxy admin` does.
        let store: StoreView = serde_json::from_value(json!({"physical_bytes": 2048, "pending_delete_bytes": 0,
            "max_size": null, "groups": [
            {"group": "default", "format": "oci", "upstream": "hub", "access": "anonymous", "ttl_seconds": null,
             "bytes": 1_048_576, "max_size": null, "pins": [], "pinned_bytes": 0, "artifacts": 3, "documents": 1,
             "blobs": 3, "manifests": 1, "tags": 1, "oldest_read": null, "last_24h": traffic(Some(0.75), 4096),
             "last_1h": traffic(None, 0), "hourly": []}]}))
        .unwrap();
        let groups = groups_table(&store);
        assert!(
            groups.contains("default") && groups.contains("75%") && groups.contains("1.00 MiB"),
            "{groups}"
        );
        assert!(groups.ends_with("store: 2.00 KiB of no limit"), "{groups}");
        let header = groups.lines().next().unwrap();
        assert!(header.contains("FORMAT") && header.contains("ARTIFACTS") && header.contains("DOCUMENTS"));
        assert!(!header.contains("BLOBS") && !header.contains("MANIFESTS"), "words that fit every format");
        assert!(groups.lines().nth(1).unwrap().starts_with("default  oci "), "{groups}");
        let upstreams: Vec<UpstreamView> = serde_json::from_value(json!([{"name": "hub", "url": "https://hub.example.com",
            "host": "hub.example.com", "reachable": false, "last_answer_at": null, "latency_ms": null,
            "latency_avg_ms": 41.6, "rate_limit": {"limit": 100, "remaining": 76, "window_seconds": null, "at": 0},
            "last_error": {"at": 0, "message": "upstream registry unreachable"}}]))
        .unwrap();
        let upstreams = upstreams_table(&upstreams);
        assert!(
            upstreams.contains("NO") && upstreams.contains("76/100") && upstreams.contains("42 ms"),
            "{upstreams}"
        );
        assert_eq!(fills_table(&[]), "no fill running");
        let events = events_tables(
            &[event(
                json!({"at": 0, "kind": "error", "count": 1, "message": "fill failed", "summary": "fill failed"}),
            )],
            &[event(json!({"at": 0, "kind": "denied", "count": 12, "group": null, "image": null,
                "client": "10.0.0.7", "message": "failed login: client=10.0.0.7 reason=credentials not accepted",
                "summary": "12 × failed login from 10.0.0.7 within 41s"}))],
        );
        let (errors, denials) = events.split_once("denials:").unwrap();
        assert!(errors.contains("1970-01-01T00:00:00Z") && errors.contains("fill failed"), "{events}");
        assert!(!errors.contains("failed login"), "{events}");
        assert!(denials.contains("12 × failed login from 10.0.0.7 within 41s"), "{events}");
        assert!(denials.contains("10.0.0.7") && denials.contains(" 12 "), "{events}");
        assert!(events_tables(&[], &[]).contains("none lately"));
    }
}
