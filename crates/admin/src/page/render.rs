//! The status page's HTML, rendered from the admin API's JSON (the same figures a script or the
//! page's own polling sees). Every text from outside goes through [`esc`]; nothing here reads
//! state of its own.

use std::fmt::Write as _;

use injector::FillReport;
use serde_json::Value;

/// What one dashboard shows: each part is the API's answer, or why it is missing.
pub(crate) struct Dashboard {
    pub admin: String,
    pub csrf: String,
    pub groups: Result<Value, String>,
    pub upstreams: Result<Value, String>,
    pub fills: Result<Vec<FillReport>, String>,
    /// Recent errors and warnings.
    pub events: Result<Value, String>,
    /// Recent denials (kept apart: a flood of them does not hide an error).
    pub denials: Result<Value, String>,
    pub tokens: Result<Value, String>,
    /// A line about what was just done (a purge started, a token revoked).
    pub notice: Option<Notice>,
}

pub(crate) enum Notice {
    /// A purge job: its group, id and state now (the API's job JSON).
    Purge {
        group: String,
        job: String,
        state: Option<Value>,
    },
    Revoked {
        token: String,
    },
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// `1.5 GiB`.
pub(crate) fn bytes(value: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if value < 1024 {
        return format!("{value} B");
    }
    let mut size = value as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// `87.5 %`, or `–` for no traffic.
pub(crate) fn percent(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) if ratio.is_finite() => format!("{:.1} %", ratio * 100.0),
        _ => "–".to_owned(),
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn time(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => access::format_rfc3339(ms / 1000).replace('T', " ").replace('Z', " UTC"),
        None => "–".to_owned(),
    }
}

fn u64_of(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The page around `body`: one stylesheet and one script, both served by this binary.
pub(crate) fn page(title: &str, csrf: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    if let Some(csrf) = csrf {
        let _ = writeln!(out, "<meta name=\"csrf-token\" content=\"{}\">", esc(csrf));
    }
    let _ = writeln!(out, "<title>{} · depproxy</title>", esc(title));
    out.push_str("<link rel=\"stylesheet\" href=\"/ui/page.css\">\n");
    if csrf.is_some() {
        out.push_str("<script src=\"/ui/page.js\" defer></script>\n");
    }
    out.push_str("</head>\n<body>\n<header class=\"top\"><a class=\"brand\" href=\"/\">depproxy</a>");
    if let Some(csrf) = csrf {
        out.push_str("<form method=\"post\" action=\"/logout\" class=\"inline\">");
        out.push_str(&hidden("csrf", csrf));
        out.push_str("<button type=\"submit\" class=\"link\">Log out</button></form>");
    }
    out.push_str("</header>\n<main>\n");
    out.push_str(body);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(name), esc(value))
}

/// The login form (`message`: why the last try failed).
pub(crate) fn login(message: Option<&str>) -> String {
    let mut body = String::new();
    body.push_str("<section class=\"card narrow\"><h1>Log in</h1>");
    if let Some(message) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(message));
    }
    body.push_str(
        "<form method=\"post\" action=\"/login\" class=\"stack\">\
         <label for=\"token\">Admin access token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required \
         placeholder=\"dpp_…\">\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"muted\">Create one on the server with <code>depproxy token create --name ops --admin</code>.</p></section>\n",
    );
    page("Log in", None, &body)
}

/// A page that says what went wrong, with a way back.
pub(crate) fn problem(title: &str, message: &str, csrf: Option<&str>) -> String {
    let body = format!(
        "<section class=\"card narrow\"><h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p><a href=\"/\">Back to the status page</a></p></section>\n",
        esc(title),
        esc(message)
    );
    page(title, csrf, &body)
}

/// The confirmation step before a purge.
pub(crate) fn confirm_purge(csrf: &str, group: &str, stats: Option<&Value>) -> String {
    let mut body = String::new();
    let _ = write!(body, "<section class=\"card narrow\"><h1>Purge group <code>{}</code>?</h1>", esc(group));
    if let Some(stats) = stats {
        let _ = write!(
            body,
            "<p>It holds {} in {} and {} ({}).</p>",
            esc(&bytes(u64_of(stats, "bytes"))),
            telemetry::plural(u64_of(stats, "blobs"), "blob", "blobs"),
            telemetry::plural(u64_of(stats, "manifests"), "manifest", "manifests"),
            telemetry::plural(u64_of(stats, "tags"), "tag", "tags"),
        );
    }
    body.push_str(
        "<p>Every cached image of the group is deleted (objects other groups still use stay); the next \
         pull fetches from the upstream again.</p>",
    );
    body.push_str("<form method=\"post\" action=\"/ui/purge/confirm\" class=\"actions\">");
    body.push_str(&hidden("csrf", csrf));
    body.push_str(&hidden("group", group));
    body.push_str(
        "<button type=\"submit\" class=\"danger\" id=\"confirm\">Purge</button> \
         <a href=\"/\" class=\"button\">Cancel</a></form></section>\n",
    );
    page("Confirm purge", Some(csrf), &body)
}

/// The confirmation step before a token is revoked.
pub(crate) fn confirm_revoke(csrf: &str, token: &str, own: bool) -> String {
    let mut body = String::new();
    let _ = write!(body, "<section class=\"card narrow\"><h1>Revoke token <code>{}</code>?</h1>", esc(token));
    body.push_str("<p>Clients using it are refused from now on; this cannot be undone.</p>");
    if own {
        body.push_str(
            "<p class=\"error\">This is the token you are logged in with: you will be logged out.</p>",
        );
    }
    body.push_str("<form method=\"post\" action=\"/ui/revoke/confirm\" class=\"actions\">");
    body.push_str(&hidden("csrf", csrf));
    body.push_str(&hidden("name", token));
    body.push_str(
        "<button type=\"submit\" class=\"danger\" id=\"confirm\">Revoke</button> \
         <a href=\"/\" class=\"button\">Cancel</a></form></section>\n",
    );
    page("Confirm revocation", Some(csrf), &body)
}

fn unavailable(out: &mut String, why: &str) {
    let _ = write!(out, "<p class=\"error\">Not available: {}</p>", esc(why));
}

/// The status page.
pub(crate) fn dashboard(view: &Dashboard) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p class=\"muted\">Logged in as <strong>{}</strong> · <span id=\"live\">figures as of the page \
         load</span></p>",
        esc(&view.admin)
    );
    if let Some(notice) = &view.notice {
        notice_html(&mut body, notice);
    }
    overview(&mut body, view);
    fills(&mut body, &view.fills);
    upstreams(&mut body, &view.upstreams);
    events(&mut body, EventList::Errors, &view.events);
    events(&mut body, EventList::Denials, &view.denials);
    tokens(&mut body, &view.csrf, &view.tokens);
    page("Status", Some(&view.csrf), &body)
}

fn notice_html(out: &mut String, notice: &Notice) {
    match notice {
        Notice::Purge { group, job, state } => {
            let state_text = state.as_ref().map_or_else(|| "unknown".to_owned(), job_text);
            let _ = writeln!(
                out,
                "<p class=\"notice\" role=\"status\">Purge of group <code>{}</code> started (job <code>{}</code>): \
                 <span id=\"job\" data-job=\"{}\">{}</span></p>",
                esc(group),
                esc(job),
                esc(job),
                esc(&state_text)
            );
        }
        Notice::Revoked { token } => {
            let _ = writeln!(
                out,
                "<p class=\"notice\" role=\"status\">Token <code>{}</code> revoked.</p>",
                esc(token)
            );
        }
    }
}

/// A job's state as a line: `running (1 of 2)`.
pub(crate) fn job_text(job: &Value) -> String {
    let state = str_of(job, "state");
    let state = if state.is_empty() { "unknown" } else { state };
    match (job.get("done").and_then(Value::as_u64), job.get("total").and_then(Value::as_u64)) {
        (Some(done), Some(total)) => format!("{state} ({done} of {total})"),
        _ => state.to_owned(),
    }
}

fn window(group: &Value, key: &str) -> (u64, u64, u64, u64) {
    let window = group.get(key).unwrap_or(&Value::Null);
    (
        u64_of(window, "hits"),
        u64_of(window, "misses"),
        u64_of(window, "bytes_served"),
        u64_of(window, "bytes_fetched"),
    )
}

fn ratio(hits: u64, misses: u64) -> Option<f64> {
    let total = hits + misses;
    (total > 0).then(|| hits as f64 / total as f64)
}

fn overview(out: &mut String, view: &Dashboard) {
    out.push_str("<section id=\"overview\"><h2>Overview</h2>\n");
    let stats = match &view.groups {
        Ok(stats) => stats,
        Err(why) => {
            unavailable(out, why);
            out.push_str("</section>\n");
            return;
        }
    };
    let groups = stats.get("groups").map(items).unwrap_or_default();
    let (mut hits, mut misses, mut served, mut fetched) = (0, 0, 0, 0);
    let (mut hits_1h, mut misses_1h) = (0, 0);
    for group in groups {
        let (h, m, s, f) = window(group, "last_24h");
        (hits, misses, served, fetched) = (hits + h, misses + m, served + s, fetched + f);
        let (h, m, _, _) = window(group, "last_1h");
        (hits_1h, misses_1h) = (hits_1h + h, misses_1h + m);
    }
    let physical = u64_of(stats, "physical_bytes");
    let pending = u64_of(stats, "pending_delete_bytes");
    let max_size = stats.get("max_size").and_then(Value::as_u64);
    out.push_str("<div class=\"cards\">");
    let _ = write!(
        out,
        "<div class=\"card figure\"><span class=\"label\">Bytes saved (24 h)</span>\
         <span class=\"value\" id=\"saved\">{}</span><span class=\"muted\">fetched upstream: {}</span></div>",
        esc(&bytes(served)),
        esc(&bytes(fetched))
    );
    let _ = write!(
        out,
        "<div class=\"card figure\"><span class=\"label\">Hit ratio (24 h)</span>\
         <span class=\"value\" id=\"hit-ratio\">{}</span><span class=\"muted\">last hour: {} · {} hits, {} misses</span></div>",
        esc(&percent(ratio(hits, misses))),
        esc(&percent(ratio(hits_1h, misses_1h))),
        hits,
        misses
    );
    let _ = write!(
        out,
        "<div class=\"card figure\"><span class=\"label\">Store</span>\
         <span class=\"value\" id=\"store-bytes\" data-bytes=\"{physical}\">{}</span>",
        esc(&bytes(physical))
    );
    match max_size {
        Some(max) => {
            let _ = write!(
                out,
                "<meter id=\"store-meter\" min=\"0\" max=\"{max}\" value=\"{}\" high=\"{}\">{}</meter>\
                 <span class=\"muted\">of {} quota{}</span>",
                physical.min(max),
                max / 10 * 9,
                esc(&percent(Some(physical as f64 / max.max(1) as f64))),
                esc(&bytes(max)),
                pending_text(pending)
            );
        }
        None => {
            let _ = write!(out, "<span class=\"muted\">no store quota{}</span>", pending_text(pending));
        }
    }
    out.push_str("</div></div>\n");

    out.push_str("<h3>Groups</h3>");
    if groups.is_empty() {
        out.push_str("<p class=\"muted\">No group configured.</p></section>\n");
        return;
    }
    // Without a group quota, a bar shows the group's share of the store.
    let scale = max_size.unwrap_or(physical).max(1);
    out.push_str(
        "<div class=\"scroll\"><table id=\"groups\"><thead><tr><th>Group</th><th>Size</th>\
         <th class=\"num\">Blobs</th><th class=\"num\">Manifests</th><th class=\"num\">Hit ratio 24 h</th>\
         <th class=\"num\">Saved 24 h</th><th></th></tr></thead><tbody>\n",
    );
    for group in groups {
        let name = str_of(group, "group");
        let size = u64_of(group, "bytes");
        let quota = group.get("max_size").and_then(Value::as_u64);
        let (h, m, s, _) = window(group, "last_24h");
        let (max, what) = match quota {
            Some(quota) => (quota.max(1), format!("of {} quota", bytes(quota))),
            None => (scale, "share of the store".to_owned()),
        };
        let _ = writeln!(
            out,
            "<tr data-group=\"{name}\"><td><strong>{name}</strong><br><span class=\"muted\">{about}</span></td>\
             <td class=\"size\"><span class=\"bytes\" data-bytes=\"{size}\">{size_text}</span>\
             <meter min=\"0\" max=\"{max}\" value=\"{value}\" title=\"{what}\">{what}</meter>\
             <span class=\"muted small\">{what}</span></td>\
             <td class=\"num blobs\">{blobs}</td><td class=\"num manifests\">{manifests}</td><td class=\"num\">{ratio}</td>\
             <td class=\"num\">{saved}</td><td>\
             <form method=\"post\" action=\"/ui/purge\" class=\"inline\">{csrf}{group_field}\
             <button type=\"submit\" class=\"danger small\">Purge…</button></form></td></tr>",
            name = esc(name),
            about = esc(&[str_of(group, "upstream"), str_of(group, "access")]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")),
            size_text = esc(&bytes(size)),
            value = size.min(max),
            what = esc(&what),
            blobs = u64_of(group, "blobs"),
            manifests = u64_of(group, "manifests"),
            ratio = esc(&percent(ratio(h, m))),
            saved = esc(&bytes(s)),
            csrf = hidden("csrf", &view.csrf),
            group_field = hidden("group", name),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn pending_text(pending: u64) -> String {
    if pending == 0 { String::new() } else { format!(" · {} awaiting deletion", esc(&bytes(pending))) }
}

/// One fill's table row; the page's script renders the same shape (`page.js`, `fillRow`).
pub(crate) fn fill_row(fill: &FillReport) -> String {
    let done = fill.bytes_done;
    let total = fill.bytes_total;
    let progress = match total {
        Some(total) => format!(
            "<progress max=\"{}\" value=\"{}\">{}</progress>",
            total.max(1),
            done.min(total),
            esc(&percent(Some(done as f64 / total.max(1) as f64)))
        ),
        // Unknown length: an indeterminate bar.
        None => "<progress></progress>".to_owned(),
    };
    let amount = match total {
        Some(total) => format!("{} of {}", bytes(done), bytes(total)),
        None => bytes(done),
    };
    format!(
        "<tr class=\"fill\"><td><code>{object}</code><br><span class=\"muted\">{kind} from {upstream}{node}</span></td>\
         <td class=\"progress\">{progress}<span class=\"small\">{amount} · {rate}/s</span></td>\
         <td>{phase}</td><td class=\"num\">{clients}</td><td class=\"small\">{started}</td></tr>",
        object = esc(&fill.object),
        kind = esc(&fill.kind),
        upstream = esc(&fill.upstream),
        node = match fill.node.as_str() {
            "" => String::new(),
            node => format!(" on {}", esc(node)),
        },
        amount = esc(&amount),
        rate = esc(&bytes(fill.rate)),
        phase = esc(&fill.phase),
        clients = fill.clients,
        started = esc(&time(Some(fill.started_at))),
    )
}

fn fills(out: &mut String, fills: &Result<Vec<FillReport>, String>) {
    out.push_str("<section id=\"fills\"><h2>Fills in progress</h2>\n");
    match fills {
        Err(why) => unavailable(out, why),
        Ok(fills) => {
            out.push_str(
                "<div class=\"scroll\"><table><thead><tr><th>Object</th><th>Progress</th><th>Phase</th>\
                 <th class=\"num\">Clients</th><th>Started</th></tr></thead><tbody id=\"fill-rows\">\n",
            );
            if fills.is_empty() {
                out.push_str(
                    "<tr class=\"empty\"><td colspan=\"5\" class=\"muted\">No fill running.</td></tr>\n",
                );
            }
            for fill in fills {
                out.push_str(&fill_row(fill));
                out.push('\n');
            }
            out.push_str("</tbody></table></div>\n");
        }
    }
    out.push_str("</section>\n");
}

fn upstreams(out: &mut String, upstreams: &Result<Value, String>) {
    out.push_str("<section id=\"upstreams\"><h2>Upstreams</h2>\n");
    let upstreams = match upstreams {
        Ok(upstreams) => items(upstreams),
        Err(why) => {
            unavailable(out, why);
            out.push_str("</section>\n");
            return;
        }
    };
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Upstream</th><th>Health</th><th class=\"num\">Latency</th>\
         <th>Rate-limit budget</th><th>Last error</th></tr></thead><tbody>\n",
    );
    if upstreams.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"muted\">No upstream configured.</td></tr>\n");
    }
    for upstream in upstreams {
        let (class, health) = match upstream.get("reachable").and_then(Value::as_bool) {
            Some(true) => ("ok", "reachable"),
            Some(false) => ("bad", "unreachable"),
            None => ("unknown", "not contacted yet"),
        };
        let latency = match (
            upstream.get("latency_ms").and_then(Value::as_f64),
            upstream.get("latency_avg_ms").and_then(Value::as_f64),
        ) {
            (Some(last), Some(avg)) => format!("{last:.0} ms (avg {avg:.0} ms)"),
            (Some(last), None) => format!("{last:.0} ms"),
            _ => "–".to_owned(),
        };
        let budget = match upstream.get("rate_limit").filter(|limit| limit.is_object()) {
            Some(limit) => {
                let max = u64_of(limit, "limit");
                let remaining = u64_of(limit, "remaining");
                let window = u64_of(limit, "window_seconds");
                format!(
                    "<meter min=\"0\" max=\"{}\" value=\"{}\" low=\"{}\" optimum=\"{}\">{remaining}</meter>\
                     <span class=\"small\">{remaining} of {max} per {}</span>",
                    max.max(1),
                    remaining.min(max),
                    max / 10,
                    max,
                    esc(&window_text(window)),
                )
            }
            None => "<span class=\"muted\">not announced</span>".to_owned(),
        };
        let error = match upstream.get("last_error").filter(|error| error.is_object()) {
            Some(error) => format!(
                "{}<br><span class=\"muted small\">{}</span>",
                esc(str_of(error, "message")),
                esc(&time(error.get("at").and_then(Value::as_u64)))
            ),
            None => "<span class=\"muted\">none</span>".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td><strong>{}</strong><br><span class=\"muted small\">{}</span></td>\
             <td><span class=\"status {class}\">{health}</span><br><span class=\"muted small\">last answer {}</span></td>\
             <td class=\"num\">{}</td><td>{budget}</td><td>{error}</td></tr>",
            esc(str_of(upstream, "name")),
            esc(str_of(upstream, "url")),
            esc(&time(upstream.get("last_answer_at").and_then(Value::as_u64))),
            esc(&latency),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn window_text(seconds: u64) -> String {
    match seconds {
        0 => "window".to_owned(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Which list of events a table shows.
#[derive(Clone, Copy)]
enum EventList {
    Errors,
    Denials,
}

fn events(out: &mut String, list: EventList, events: &Result<Value, String>) {
    let (id, title, nothing) = match list {
        EventList::Errors => ("events", "Recent errors", "Nothing went wrong lately."),
        EventList::Denials => ("denials", "Recent denials", "Nobody was refused lately."),
    };
    let _ = writeln!(out, "<section id=\"{id}\"><h2>{title}</h2>");
    let events = match events {
        Ok(events) => items(events),
        Err(why) => {
            unavailable(out, why);
            out.push_str("</section>\n");
            return;
        }
    };
    if events.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">{nothing}</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>When</th><th>Kind</th><th>Where</th><th>What</th></tr>\
         </thead><tbody>\n",
    );
    for event in events {
        let place = [str_of(event, "group"), str_of(event, "image"), str_of(event, "client")]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" · ");
        let kind = str_of(event, "kind");
        let summary = match str_of(event, "summary") {
            "" => str_of(event, "message"),
            summary => summary,
        };
        // Repeats: the row's line, then the latest occurrence in full.
        let latest = if u64_of(event, "count") > 1 {
            format!("<br><span class=\"small muted\">latest: {}</span>", esc(str_of(event, "message")))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"small\">{}</td><td><span class=\"status {}\">{}</span></td><td>{}</td><td>{}{latest}</td></tr>",
            esc(&time(event.get("at").and_then(Value::as_u64))),
            if kind == "error" { "bad" } else { "unknown" },
            esc(kind),
            esc(&place),
            esc(summary),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn tokens(out: &mut String, csrf: &str, tokens: &Result<Value, String>) {
    out.push_str("<section id=\"tokens\"><h2>Access tokens</h2>\n");
    let tokens = match tokens {
        Ok(tokens) => items(tokens),
        Err(why) => {
            unavailable(out, why);
            out.push_str("</section>\n");
            return;
        }
    };
    if tokens.is_empty() {
        out.push_str("<p class=\"muted\">No token.</p></section>\n");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Name</th><th>May</th><th>Status</th><th>Last used</th>\
         <th></th></tr></thead><tbody>\n",
    );
    for token in tokens {
        let name = str_of(token, "name");
        let groups = token.get("groups").map(items).unwrap_or_default();
        let groups = groups.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ");
        let may = if token.get("admin").and_then(Value::as_bool).unwrap_or(false) {
            "admin".to_owned()
        } else {
            format!("pull: {groups}")
        };
        let status = str_of(token, "status");
        let action = if status == "active" {
            format!(
                "<form method=\"post\" action=\"/ui/revoke\" class=\"inline\">{}{}\
                 <button type=\"submit\" class=\"danger small\">Revoke…</button></form>",
                hidden("csrf", csrf),
                hidden("name", name)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr data-token=\"{}\"><td><strong>{}</strong></td><td>{}</td><td><span class=\"status {}\">{}</span></td>\
             <td class=\"small\">{}</td><td>{action}</td></tr>",
            esc(name),
            esc(name),
            esc(&may),
            if status == "active" { "ok" } else { "unknown" },
            esc(status),
            esc(&time(token.get("last_used_at").and_then(Value::as_u64))),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(esc("plain"), "plain");
    }

    #[test]
    fn formats_sizes_ratios_and_times() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(percent(Some(0.875)), "87.5 %");
        assert_eq!(percent(None), "–");
        assert_eq!(time(Some(1_800_000_000_000)), "2027-01-15 08:00:00 UTC");
    }

    fn dashboard_with(fills: Vec<FillReport>, events: Value) -> String {
        dashboard_with_denials(fills, events, serde_json::json!([]))
    }

    fn dashboard_with_denials(fills: Vec<FillReport>, events: Value, denials: Value) -> String {
        let groups = serde_json::json!({
            "physical_bytes": 3 << 20, "pending_delete_bytes": 0, "max_size": 8 << 20,
            "groups": [{"group": "default", "upstream": "hub", "access": "anonymous", "bytes": 3 << 20,
                "max_size": null, "blobs": 2, "manifests": 1, "tags": 1,
                "last_24h": {"hits": 3, "misses": 1, "bytes_served": 5 << 20, "bytes_fetched": 3 << 20},
                "last_1h": {"hits": 1, "misses": 0, "bytes_served": 0, "bytes_fetched": 0}}]
        });
        let upstreams = serde_json::json!([{"name": "hub", "url": "https://registry-1.docker.io",
            "host": "registry-1.docker.io", "reachable": true, "last_answer_at": 1_800_000_000_000u64,
            "last_error": null, "latency_ms": 12.0, "latency_avg_ms": 20.5,
            "rate_limit": {"limit": 100, "remaining": 76, "window_seconds": 21600, "at": 1}}]);
        let tokens = serde_json::json!([
            {"id": "a", "name": "ops", "groups": [], "admin": true, "status": "active"},
            {"id": "b", "name": "old<ci>", "groups": ["default"], "admin": false, "status": "revoked"}]);
        dashboard(&Dashboard {
            admin: "ops".into(),
            csrf: "c5rf".into(),
            groups: Ok(groups),
            upstreams: Ok(upstreams),
            fills: Ok(fills),
            events: Ok(events),
            denials: Ok(denials),
            tokens: Ok(tokens),
            notice: None,
        })
    }

    #[test]
    fn the_dashboard_shows_every_part_with_bars_and_forms() {
        let fills = serde_json::json!([{"upstream": "hub", "kind": "blob", "object": "library/alpine@sha256:ab",
            "phase": "streaming", "bytes_done": 1 << 20, "bytes_total": 4 << 20, "rate": 1000, "clients": 2,
            "started_at": 1_800_000_000_000u64, "node": ""}]);
        let fills = serde_json::from_value(fills).unwrap();
        let events = serde_json::json!([{"at": 1_800_000_000_000u64, "kind": "error", "group": "default",
            "image": "<script>alert(1)</script>", "message": "upstream said \"no\""}]);
        let html = dashboard_with(fills, events);
        assert!(html.contains("<meta name=\"csrf-token\" content=\"c5rf\">"));
        assert!(html.contains("<progress max=\"4194304\" value=\"1048576\">25.0 %</progress>"), "{html}");
        assert!(html.contains("<tr data-group=\"default\">"));
        assert!(html.contains("action=\"/ui/purge\""));
        assert!(
            html.contains("<meter min=\"0\" max=\"8388608\" value=\"3145728\""),
            "group bar of the store quota"
        );
        assert!(html.contains("76 of 100 per 6 h"));
        assert!(html.contains("Bytes saved (24 h)") && html.contains("5.0 MiB"));
        assert!(html.contains("75.0 %"), "3 hits, 1 miss");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("upstream said &quot;no&quot;"));
        assert!(html.contains("old&lt;ci&gt;"));
        // Only active tokens get a revoke button.
        assert_eq!(html.matches("action=\"/ui/revoke\"").count(), 1);
        assert!(!html.contains("http://") && !html.contains("https://fonts"), "nothing from elsewhere");
    }

    #[test]
    fn a_fill_of_unknown_length_has_an_indeterminate_bar_and_missing_parts_say_why() {
        let fills = vec![FillReport {
            object: "a:b".into(),
            bytes_done: 10,
            bytes_total: None,
            ..FillReport::default()
        }];
        let html = dashboard_with(fills, serde_json::json!([]));
        assert!(html.contains("<progress></progress>"));
        let html = dashboard(&Dashboard {
            admin: "ops".into(),
            csrf: "x".into(),
            groups: Err("404 no such admin API route".into()),
            upstreams: Ok(serde_json::json!([])),
            fills: Ok(Vec::new()),
            events: Ok(serde_json::json!([])),
            denials: Err("500 boom".into()),
            tokens: Ok(serde_json::json!([])),
            notice: Some(Notice::Purge {
                group: "default".into(),
                job: "j1".into(),
                state: Some(serde_json::json!({"state": "running", "done": 1, "total": 2})),
            }),
        });
        assert!(html.contains("Not available: 404 no such admin API route"));
        assert!(html.contains("Not available: 500 boom"));
        assert!(html.contains("Nothing went wrong lately."));
        assert!(html.contains("No fill running."));
        assert!(html.contains("running (1 of 2)"));
    }

    #[test]
    fn denials_have_a_table_of_their_own_with_repeats_on_one_row() {
        let errors = serde_json::json!([{"at": 1_800_000_000_000u64, "kind": "error", "count": 1,
            "message": "fill failed: error=disk full", "summary": "fill failed: error=disk full"}]);
        let denials = serde_json::json!([{"at": 1_800_000_041_000u64, "first_at": 1_800_000_000_000u64,
            "count": 12, "kind": "denied", "client": "10.0.0.7",
            "message": "failed login: client=10.0.0.7 reason=too many failed logins from this address; retry in 1s",
            "summary": "12 × failed login from 10.0.0.7 within 41s"}]);
        let html = dashboard_with_denials(Vec::new(), errors, denials);
        let errors_table = &html
            [html.find("<h2>Recent errors</h2>").unwrap()..html.find("<h2>Recent denials</h2>").unwrap()];
        assert!(errors_table.contains("fill failed: error=disk full"), "{errors_table}");
        assert!(!errors_table.contains("failed login"), "{errors_table}");
        let denials_table = &html[html.find("<h2>Recent denials</h2>").unwrap()..];
        assert_eq!(denials_table.matches("<tr><td").count(), 1, "one row for 12 failed logins");
        assert!(denials_table.contains("12 × failed login from 10.0.0.7 within 41s"), "{denials_table}");
        assert!(
            denials_table.contains("latest: failed login: client=10.0.0.7 reason=too many"),
            "{denials_table}"
        );
        assert!(denials_table.contains("<td>10.0.0.7</td>"), "the client is where it came from");
    }

    #[test]
    fn confirmation_pages_carry_the_csrf_token_and_the_subject() {
        let html = confirm_purge("tok", "lab/team", Some(&serde_json::json!({"bytes": 2048, "blobs": 1})));
        assert!(html.contains("It holds 2.0 KiB in 1 blob and 0 manifests (0 tags)."), "{html}");
        assert!(html.contains("action=\"/ui/purge/confirm\""));
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
        assert!(html.contains("name=\"group\" value=\"lab/team\""));
        assert!(html.contains("2.0 KiB"));
        let html = confirm_revoke("tok", "ci\"x", true);
        assert!(html.contains("name=\"name\" value=\"ci&quot;x\""));
        assert!(html.contains("you will be logged out"));
        let login = login(Some("not <valid>"));
        assert!(login.contains("not &lt;valid&gt;") && login.contains("type=\"password\""));
        assert!(!login.contains("page.js"), "the login page needs no script");
    }
}
