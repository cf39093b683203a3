//! The status page's HTML, rendered from the admin API's answers read back into its own types
//! (the same figures a script or the page's own polling sees). Every text from outside goes
//! through [`esc`]; nothing here reads state of its own.

use std::fmt::Write as _;

use injector::FillReport;

use super::chart;
use super::text::{bytes, esc, percent, ratio, time, time_i64};
use crate::api::{EventView, GroupView, JobView, StoreView, TokenView, TrafficView, UpstreamView};

/// What one dashboard shows: each part is the API's answer, or why it is missing.
pub(crate) struct Dashboard {
    pub admin: String,
    pub csrf: String,
    pub groups: Result<StoreView, String>,
    pub upstreams: Result<Vec<UpstreamView>, String>,
    pub fills: Result<Vec<FillReport>, String>,
    /// Recent errors and warnings.
    pub events: Result<Vec<EventView>, String>,
    /// Recent denials (kept apart: a flood of them does not hide an error).
    pub denials: Result<Vec<EventView>, String>,
    pub tokens: Result<Vec<TokenView>, String>,
    /// A line about what was just done (a purge started, a token revoked).
    pub notice: Option<Notice>,
}

pub(crate) enum Notice {
    /// A purge job: its group, id and state now.
    Purge {
        group: String,
        job: String,
        state: Option<JobView>,
    },
    Revoked {
        token: String,
    },
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

/// `3 artifacts and 1 document (1 tag)`: what a group holds, in the words of every format.
pub(crate) fn holdings(group: &GroupView) -> String {
    format!(
        "{} and {} ({})",
        telemetry::plural(group.artifacts, "artifact", "artifacts"),
        telemetry::plural(group.documents, "document", "documents"),
        telemetry::plural(group.tags, "tag", "tags"),
    )
}

/// The confirmation step before a purge.
pub(crate) fn confirm_purge(csrf: &str, group: &str, stats: Option<&GroupView>) -> String {
    let mut body = String::new();
    let _ = write!(body, "<section class=\"card narrow\"><h1>Purge group <code>{}</code>?</h1>", esc(group));
    if let Some(stats) = stats {
        let _ = write!(
            body,
            "<p>It holds {} in {}.</p><p class=\"muted small\">Format <code>{}</code>: artifacts are its \
             immutable files (OCI: blobs; npm: tarballs; PyPI: wheels and sdists), documents the files \
             that name them (OCI: manifests; npm: packuments; PyPI: project pages).</p>",
            esc(&bytes(stats.bytes)),
            esc(&holdings(stats)),
            esc(&stats.format),
        );
    }
    body.push_str(
        "<p>Everything the group caches is deleted (objects other groups still use stay); the next \
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
pub(crate) fn job_text(job: &JobView) -> String {
    if job.state.is_empty() { "unknown".to_owned() } else { job.progress() }
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
    let groups = &stats.groups;
    let mut last_24h = TrafficView { hits: 0, misses: 0, bytes_served: 0, bytes_fetched: 0, hit_ratio: None };
    let (mut hits_1h, mut misses_1h) = (0, 0);
    for group in groups {
        last_24h.hits += group.last_24h.hits;
        last_24h.misses += group.last_24h.misses;
        last_24h.bytes_served += group.last_24h.bytes_served;
        last_24h.bytes_fetched += group.last_24h.bytes_fetched;
        (hits_1h, misses_1h) = (hits_1h + group.last_1h.hits, misses_1h + group.last_1h.misses);
    }
    let TrafficView { hits, misses, bytes_served: served, bytes_fetched: fetched, .. } = last_24h;
    let physical = stats.physical_bytes;
    let pending = stats.pending_delete_bytes;
    let max_size = stats.max_size;
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
         <span class=\"value\" id=\"hit-ratio\">{}</span><span class=\"muted\">last hour: {} · {}, {}</span></div>",
        esc(&percent(ratio(hits, misses))),
        esc(&percent(ratio(hits_1h, misses_1h))),
        telemetry::plural(hits, "hit", "hits"),
        telemetry::plural(misses, "miss", "misses"),
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
        "<div class=\"scroll\"><table id=\"groups\"><thead><tr><th>Group</th><th>Format</th><th>Size</th>\
         <th class=\"num\" title=\"Immutable files (OCI: blobs; npm: tarballs; PyPI: wheels and sdists)\">Artifacts</th>\
         <th class=\"num\" title=\"Files that name artifacts (OCI: manifests; npm: packuments; PyPI: project pages)\">Documents</th>\
         <th class=\"num\">Hit ratio 24 h</th><th class=\"num\">Saved 24 h</th><th></th></tr></thead><tbody>\n",
    );
    for group in groups {
        let size = group.bytes;
        let (max, what) = match group.max_size {
            Some(quota) => (quota.max(1), format!("of {} quota", bytes(quota))),
            None => (scale, "share of the store".to_owned()),
        };
        let _ = writeln!(
            out,
            "<tr data-group=\"{name}\"><td><strong>{name}</strong><br><span class=\"muted\">{about}</span></td>\
             <td class=\"format\">{format}</td>\
             <td class=\"size\"><span class=\"bytes\" data-bytes=\"{size}\">{size_text}</span>\
             <meter min=\"0\" max=\"{max}\" value=\"{value}\" title=\"{what}\">{what}</meter>\
             <span class=\"muted small\">{what}</span></td>\
             <td class=\"num artifacts\">{artifacts}</td><td class=\"num documents\">{documents}</td>\
             <td class=\"num\">{ratio}</td><td class=\"num\">{saved}</td><td>\
             <form method=\"post\" action=\"/ui/purge\" class=\"inline\">{csrf}{group_field}\
             <button type=\"submit\" class=\"danger small\">Purge…</button></form></td></tr>",
            name = esc(&group.group),
            about = esc(&[group.upstream.as_str(), group.access.as_str()]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")),
            format = esc(&group.format),
            size_text = esc(&bytes(size)),
            value = size.min(max),
            what = esc(&what),
            artifacts = group.artifacts,
            documents = group.documents,
            ratio = esc(&percent(ratio(group.last_24h.hits, group.last_24h.misses))),
            saved = esc(&bytes(group.last_24h.bytes_served)),
            csrf = hidden("csrf", &view.csrf),
            group_field = hidden("group", &group.group),
        );
    }
    out.push_str("</tbody></table></div>\n");

    out.push_str(
        "<h3>Traffic, last 24 hours</h3><p class=\"muted small\">Per group and hour (UTC): hits and misses \
         stacked, and the bytes answered from the cache (saved upstream).</p><div class=\"charts\">\n",
    );
    for (index, group) in groups.iter().enumerate() {
        out.push_str(&chart::traffic_figure(index, group));
    }
    out.push_str("</div></section>\n");
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

fn upstreams(out: &mut String, upstreams: &Result<Vec<UpstreamView>, String>) {
    out.push_str("<section id=\"upstreams\"><h2>Upstreams</h2>\n");
    let upstreams = match upstreams {
        Ok(upstreams) => upstreams,
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
        let (class, health) = match upstream.reachable {
            Some(true) => ("ok", "reachable"),
            Some(false) => ("bad", "unreachable"),
            None => ("unknown", "not contacted yet"),
        };
        let latency = match (upstream.latency_ms, upstream.latency_avg_ms) {
            (Some(last), Some(avg)) => format!("{last:.0} ms (avg {avg:.0} ms)"),
            (Some(last), None) => format!("{last:.0} ms"),
            _ => "–".to_owned(),
        };
        let budget = match &upstream.rate_limit {
            Some(limit) => {
                let max = limit.limit;
                let remaining = limit.remaining;
                let window = limit.window_seconds.unwrap_or(0);
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
        let error = match &upstream.last_error {
            Some(error) => format!(
                "{}<br><span class=\"muted small\">{}</span>",
                esc(&error.message),
                esc(&time(Some(error.at)))
            ),
            None => "<span class=\"muted\">none</span>".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td><strong>{}</strong><br><span class=\"muted small\">{}</span></td>\
             <td><span class=\"status {class}\">{health}</span><br><span class=\"muted small\">last answer {}</span></td>\
             <td class=\"num\">{}</td><td>{budget}</td><td>{error}</td></tr>",
            esc(&upstream.name),
            esc(&upstream.url),
            esc(&time(upstream.last_answer_at)),
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

fn events(out: &mut String, list: EventList, events: &Result<Vec<EventView>, String>) {
    let (id, title, nothing) = match list {
        EventList::Errors => ("events", "Recent errors", "Nothing went wrong lately."),
        EventList::Denials => ("denials", "Recent denials", "Nobody was refused lately."),
    };
    let _ = writeln!(out, "<section id=\"{id}\"><h2>{title}</h2>");
    let events = match events {
        Ok(events) => events,
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
        let place = [&event.group, &event.image, &event.client]
            .into_iter()
            .filter_map(|part| part.as_deref().filter(|part| !part.is_empty()))
            .collect::<Vec<_>>()
            .join(" · ");
        let kind = event.kind.as_str();
        let summary = match event.summary.as_str() {
            "" => event.message.as_str(),
            summary => summary,
        };
        // Repeats: the row's line, then the latest occurrence in full.
        let latest = if event.count > 1 {
            format!("<br><span class=\"small muted\">latest: {}</span>", esc(&event.message))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"small\">{}</td><td><span class=\"status {}\">{}</span></td><td>{}</td><td>{}{latest}</td></tr>",
            esc(&time(Some(event.at))),
            if kind == "error" { "bad" } else { "unknown" },
            esc(kind),
            esc(&place),
            esc(summary),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn tokens(out: &mut String, csrf: &str, tokens: &Result<Vec<TokenView>, String>) {
    out.push_str("<section id=\"tokens\"><h2>Access tokens</h2>\n");
    let tokens = match tokens {
        Ok(tokens) => tokens,
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
        let name = token.name.as_str();
        let may = if token.admin { "admin".to_owned() } else { format!("pull: {}", token.groups.join(", ")) };
        let status = token.status.as_str();
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
            esc(&time_i64(token.last_used_at)),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::{Value, json};

    /// Events as the API sends them, from fixtures that give only the fields a test is about.
    fn events_of(fixtures: Value) -> Vec<EventView> {
        let rows = fixtures.as_array().cloned().unwrap_or_default();
        rows.into_iter()
            .map(|fixture| {
                let mut event = json!({"at": 0, "first_at": 0, "count": 1, "kind": "error", "group": null,
                    "image": null, "client": null, "message": "", "summary": ""});
                for (key, value) in fixture.as_object().unwrap() {
                    event[key] = value.clone();
                }
                serde_json::from_value(event).unwrap()
            })
            .collect()
    }

    fn traffic(hits: u64, misses: u64, bytes_served: u64, bytes_fetched: u64) -> Value {
        json!({"hits": hits, "misses": misses, "bytes_served": bytes_served, "bytes_fetched": bytes_fetched,
            "hit_ratio": null})
    }

    /// The default group as `GET /api/v1/groups` answers it: 3 MiB in 2 artifacts and a document,
    /// 3 hits and a miss over 24 h, the hits in the current hour.
    fn default_group() -> GroupView {
        // 2027-01-15 08:00 UTC: the current hour.
        let hour = 1_800_000_000_000i64;
        let hourly: Vec<Value> = (0..24)
            .map(|index| {
                let (hits, misses) = match index {
                    23 => (3, 0),
                    20 => (0, 1),
                    _ => (0, 0),
                };
                json!({"hour": hour - (23 - index) * 3_600_000, "hits": hits, "misses": misses,
                    "bytes_served": hits * (5 << 20) / 3, "bytes_fetched": misses * (3 << 20)})
            })
            .collect();
        serde_json::from_value(json!({"group": "default", "format": "oci", "upstream": "hub",
            "access": "anonymous", "ttl_seconds": null, "max_size": null, "pins": [], "bytes": 3 << 20,
            "pinned_bytes": 0, "artifacts": 2, "documents": 1, "blobs": 2, "manifests": 1, "tags": 1,
            "oldest_read": null, "last_24h": traffic(3, 1, 5 << 20, 3 << 20), "last_1h": traffic(1, 0, 0, 0),
            "hourly": hourly}))
        .unwrap()
    }

    fn dashboard_with(fills: Vec<FillReport>, events: Value) -> String {
        dashboard_with_denials(fills, events, json!([]))
    }

    fn dashboard_with_denials(fills: Vec<FillReport>, events: Value, denials: Value) -> String {
        let groups = StoreView {
            physical_bytes: 3 << 20,
            pending_delete_bytes: 0,
            max_size: Some(8 << 20),
            groups: vec![default_group()],
        };
        let upstreams = json!([{"name": "hub", "url": "https://hub.example.com",
            "host": "hub.example.com", "reachable": true, "last_answer_at": 1_800_000_000_000u64,
            "last_error": null, "latency_ms": 12.0, "latency_avg_ms": 20.5,
            "rate_limit": {"limit": 100, "remaining": 76, "window_seconds": 21600, "at": 1}}]);
        let token = |id: &str, name: &str, groups: Value, admin: bool, status: &str| {
            json!({"id": id, "name": name, "groups": groups, "admin": admin, "status": status,
                "created_at": 0, "expires_at": null, "revoked_at": null, "last_used_at": null})
        };
        let tokens = json!([
            token("a", "ops", json!([]), true, "active"),
            token("b", "old<ci>", json!(["default"]), false, "revoked")
        ]);
        dashboard(&Dashboard {
            admin: "ops".into(),
            csrf: "c5rf".into(),
            groups: Ok(groups),
            upstreams: Ok(serde_json::from_value(upstreams).unwrap()),
            fills: Ok(fills),
            events: Ok(events_of(events)),
            denials: Ok(events_of(denials)),
            tokens: Ok(serde_json::from_value(tokens).unwrap()),
            notice: None,
        })
    }

    #[test]
    fn the_dashboard_shows_every_part_with_bars_and_forms() {
        let fills = json!([{"upstream": "hub", "kind": "blob", "object": "library/alpine@sha256:ab",
            "phase": "streaming", "bytes_done": 1 << 20, "bytes_total": 4 << 20, "rate": 1000, "clients": 2,
            "started_at": 1_800_000_000_000u64, "node": ""}]);
        let fills = serde_json::from_value(fills).unwrap();
        let events = json!([{"at": 1_800_000_000_000u64, "kind": "error", "group": "default",
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
    fn groups_show_their_format_count_artifacts_and_documents_and_chart_their_day() {
        let html = dashboard_with(Vec::new(), json!([]));
        let groups = &html[html.find("<table id=\"groups\">").unwrap()..html.find("</table>").unwrap()];
        assert!(groups.contains("<th>Format</th>") && groups.contains(">Artifacts</th>"), "{groups}");
        assert!(groups.contains(">Documents</th>") && !groups.contains("Blobs"), "{groups}");
        assert!(groups.contains("<td class=\"format\">oci</td>"), "{groups}");
        assert!(
            groups.contains("<td class=\"num artifacts\">2</td><td class=\"num documents\">1</td>"),
            "{groups}"
        );
        let chart = &html[html.find("<figure class=\"card chart\"").unwrap()..];
        assert!(chart.contains("data-group=\"default\"") && chart.contains("<svg class=\"traffic\""));
        assert_eq!(chart.matches("<g class=\"hour\"").count(), 24, "{chart}");
        assert!(
            chart.contains("Last 24 hours: 3 hits, 1 miss (hit ratio 75.0 %), 5.0 MiB saved."),
            "{chart}"
        );
    }

    #[test]
    fn a_fill_of_unknown_length_has_an_indeterminate_bar_and_missing_parts_say_why() {
        let fills = vec![FillReport {
            object: "a:b".into(),
            bytes_done: 10,
            bytes_total: None,
            ..FillReport::default()
        }];
        let html = dashboard_with(fills, json!([]));
        assert!(html.contains("<progress></progress>"));
        let html = dashboard(&Dashboard {
            admin: "ops".into(),
            csrf: "x".into(),
            groups: Err("404 no such admin API route".into()),
            upstreams: Ok(Vec::new()),
            fills: Ok(Vec::new()),
            events: Ok(Vec::new()),
            denials: Err("500 boom".into()),
            tokens: Ok(Vec::new()),
            notice: Some(Notice::Purge {
                group: "default".into(),
                job: "j1".into(),
                state: Some(JobView {
                    id: "j1".into(),
                    kind: "purge".into(),
                    description: "purge group default".into(),
                    state: "running".into(),
                    done: 1,
                    total: 2,
                    bytes: 0,
                    error: None,
                    created_at: 0,
                    finished_at: None,
                    warm: None,
                }),
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
        let errors = json!([{"at": 1_800_000_000_000u64, "kind": "error", "count": 1,
            "message": "fill failed: error=disk full", "summary": "fill failed: error=disk full"}]);
        let denials = json!([{"at": 1_800_000_041_000u64, "first_at": 1_800_000_000_000u64,
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
        let group = GroupView {
            group: "lab/team".into(),
            bytes: 2048,
            artifacts: 1,
            documents: 0,
            tags: 0,
            ..default_group()
        };
        let html = confirm_purge("tok", "lab/team", Some(&group));
        // Before formats this said "1 blob and 0 manifests".
        assert!(html.contains("It holds 2.0 KiB in 1 artifact and 0 documents (0 tags)."), "{html}");
        assert!(html.contains("Format <code>oci</code>"), "{html}");
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
