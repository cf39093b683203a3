//! `depproxy admin …`: the admin API of a running proxy from the terminal — human tables by
//! default, the API's JSON with `--json`, a progress bar while a purge runs.

use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use injector::FillReport;
use serde_json::Value;

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

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.token).send().await.with_context(|| {
            format!("cannot reach the admin API at {} (is depproxy running? --admin-url)", self.base)
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["errors"][0]["message"].as_str().unwrap_or("no details");
            bail!("the admin API answered {}: {message}", status.as_u16());
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn bytes(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".to_owned(), |bytes| HumanBytes(bytes).to_string())
}

fn ratio(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0))
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

fn rows_of(items: &Value) -> &[Value] {
    items.as_array().map_or(&[], Vec::as_slice)
}

/// The groups: size vs quota, objects, hit ratio and bytes saved over 24 h.
pub fn groups_table(store: &Value) -> String {
    let mut rows = vec![
        ["GROUP", "UPSTREAM", "ACCESS", "SIZE", "QUOTA", "BLOBS", "HIT 24H", "SAVED 24H", "HIT 1H"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for group in rows_of(&store["groups"]) {
        rows.push(vec![
            text(&group["group"]),
            text(&group["upstream"]),
            text(&group["access"]),
            bytes(&group["bytes"]),
            bytes(&group["max_size"]),
            text(&group["blobs"]),
            ratio(&group["last_24h"]["hit_ratio"]),
            bytes(&group["last_24h"]["bytes_served"]),
            ratio(&group["last_1h"]["hit_ratio"]),
        ]);
    }
    format!(
        "{}\n\nstore: {} of {}",
        table(&rows),
        bytes(&store["physical_bytes"]),
        store["max_size"].as_u64().map_or_else(|| "no limit".to_owned(), |max| HumanBytes(max).to_string())
    )
}

/// The upstreams: reachable, latency, rate-limit budget, last error.
pub fn upstreams_table(upstreams: &Value) -> String {
    let mut rows = vec![
        ["UPSTREAM", "HOST", "REACHABLE", "LATENCY", "PULLS LEFT", "LAST ERROR"].map(str::to_owned).to_vec(),
    ];
    for upstream in rows_of(upstreams) {
        let budget = &upstream["rate_limit"];
        rows.push(vec![
            text(&upstream["name"]),
            text(&upstream["host"]),
            match upstream["reachable"].as_bool() {
                Some(true) => "yes".to_owned(),
                Some(false) => "NO".to_owned(),
                None => "not asked yet".to_owned(),
            },
            upstream["latency_avg_ms"].as_f64().map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms")),
            match (budget["remaining"].as_u64(), budget["limit"].as_u64()) {
                (Some(remaining), Some(limit)) => format!("{remaining}/{limit}"),
                _ => "-".to_owned(),
            },
            text(&upstream["last_error"]["message"]),
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
pub fn events_tables(errors: &Value, denials: &Value) -> String {
    format!(
        "errors and warnings:\n{}\n\ndenials:\n{}",
        events_table(errors, "none lately"),
        events_table(denials, "none lately")
    )
}

fn events_table(events: &Value, nothing: &str) -> String {
    if rows_of(events).is_empty() {
        return nothing.to_owned();
    }
    let mut rows =
        vec![["TIME", "KIND", "COUNT", "GROUP", "IMAGE", "CLIENT", "WHAT"].map(str::to_owned).to_vec()];
    for event in rows_of(events) {
        let at = event["at"].as_u64().map_or_else(|| "-".to_owned(), |ms| access::format_rfc3339(ms / 1000));
        let summary = event["summary"].as_str().filter(|summary| !summary.is_empty());
        rows.push(vec![
            at,
            text(&event["kind"]),
            text(&event["count"]),
            text(&event["group"]),
            text(&event["image"]),
            text(&event["client"]),
            summary.map_or_else(|| text(&event["message"]), str::to_owned),
        ]);
    }
    table(&rows)
}

/// Starts a purge and follows its job to the end with a progress bar (hidden when stderr is not
/// a terminal); returns the job as it ended.
pub async fn purge(
    client: &AdminClient,
    group: &str,
    image: Option<&str>,
    older_than: Option<&str>,
) -> anyhow::Result<Value> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(image) = image {
        query.append_pair("image", image);
    }
    if let Some(older_than) = older_than {
        query.append_pair("older_than", older_than);
    }
    let query = query.finish();
    let path = format!(
        "/api/v1/groups/{group}/cache{}",
        if query.is_empty() { String::new() } else { format!("?{query}") }
    );
    let started = client.delete(&path).await?;
    let status = started["status"].as_str().context("the admin API answered no job")?.to_owned();
    let bar = ProgressBar::new(0);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} purging {msg} [{bar:30}] {pos}/{len} objects")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(group.to_owned());
    loop {
        let job = client.get(&status).await?;
        bar.set_length(job["total"].as_u64().unwrap_or(0));
        bar.set_position(job["done"].as_u64().unwrap_or(0));
        if job["state"] != "running" {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_what_operators_look_for() {
        let store = serde_json::json!({"physical_bytes": 2048, "max_size": null, "groups": [
            {"group": "default", "upstream": "hub", "access": "anonymous", "bytes": 1_048_576, "max_size": null,
             "blobs": 3, "last_24h": {"hit_ratio": 0.75, "bytes_served": 4096}, "last_1h": {"hit_ratio": null}}]});
        let groups = groups_table(&store);
        assert!(
            groups.contains("default") && groups.contains("75%") && groups.contains("1.00 MiB"),
            "{groups}"
        );
        assert!(groups.ends_with("store: 2.00 KiB of no limit"), "{groups}");
        let upstreams = serde_json::json!([{"name": "hub", "host": "registry-1.docker.io", "reachable": false,
            "latency_avg_ms": 41.6, "rate_limit": {"limit": 100, "remaining": 76}, "last_error": {"message": "upstream registry unreachable"}}]);
        let upstreams = upstreams_table(&upstreams);
        assert!(
            upstreams.contains("NO") && upstreams.contains("76/100") && upstreams.contains("42 ms"),
            "{upstreams}"
        );
        assert_eq!(fills_table(&[]), "no fill running");
        let events = events_tables(
            &serde_json::json!([{"at": 0, "kind": "error", "count": 1, "message": "fill failed", "summary": "fill failed"}]),
            &serde_json::json!([{"at": 0, "kind": "denied", "count": 12, "group": null, "image": null,
                "client": "10.0.0.7", "message": "failed login: client=10.0.0.7 reason=credentials not accepted",
                "summary": "12 × failed login from 10.0.0.7 within 41s"}]),
        );
        let (errors, denials) = events.split_once("denials:").unwrap();
        assert!(errors.contains("1970-01-01T00:00:00Z") && errors.contains("fill failed"), "{events}");
        assert!(!errors.contains("failed login"), "{events}");
        assert!(denials.contains("12 × failed login from 10.0.0.7 within 41s"), "{events}");
        assert!(denials.contains("10.0.0.7") && denials.contains(" 12 "), "{events}");
        assert!(events_tables(&serde_json::json!([]), &serde_json::json!([])).contains("none lately"));
    }
}
