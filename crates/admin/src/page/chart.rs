//! A group's last 24 hours as a small chart on the status page: per hour, hits and misses as
//! stacked bars, and below them the bytes answered from the cache (saved upstream). Inline SVG
//! drawn here, on the server: no script and no library, so it shows without JavaScript and
//! under the page's CSP. Each hour is a group with a `<title>` (a tooltip, and what a screen
//! reader reads), both axes are labelled, and a sentence under the chart says the same in words.
//!
//! Colours come from the stylesheet (`.chart .hit` …, so dark mode follows); the `fill`
//! attributes are what shows if it does not load.

use std::fmt::Write as _;

use super::text::{bytes, esc, percent, ratio};
use crate::api::{GroupView, HourView};

/// Width of one hour's slot, and of its bar within it.
const SLOT: u32 = 14;
const BAR: u32 = 10;
/// Room left of the bars for the value labels.
const LEFT: u32 = 56;
const RIGHT: u32 = 6;
/// The requests panel: its top and height.
const REQUESTS_TOP: u32 = 18;
const REQUESTS_HEIGHT: u32 = 70;
/// The bytes-saved panel.
const SAVED_TOP: u32 = 112;
const SAVED_HEIGHT: u32 = 40;
/// Length of the hour ticks under the requests panel.
const TICK: u32 = 4;
/// Baseline of the hour labels.
const HOURS_BASELINE: u32 = 166;
const HEIGHT: u32 = 172;

const HIT_FILL: &str = "#1b7f3b";
const MISS_FILL: &str = "#a15c00";
const SAVED_FILL: &str = "#2458c6";

/// `14:00`: an hour's start (unix ms), UTC.
fn clock(hour: i64) -> String {
    let text = access::format_rfc3339(u64::try_from(hour / 1000).unwrap_or(0));
    text.get(11..16).unwrap_or("").to_owned()
}

/// Height of `value` on a panel `height` high whose top is `max`: at least 1 when not zero, so
/// a quiet hour beside a busy one still shows.
fn scaled(value: u64, max: u64, height: u32) -> u32 {
    if value == 0 || max == 0 {
        return 0;
    }
    let scaled = (u128::from(value) * u128::from(height) / u128::from(max)) as u32;
    scaled.clamp(1, height)
}

/// `14:00–15:00 UTC: 3 hits, 1 miss, 2.0 MiB saved`.
fn hour_title(hour: &HourView) -> String {
    format!(
        "{}–{} UTC: {}, {}, {} saved",
        clock(hour.hour),
        clock(hour.hour + 3_600_000),
        telemetry::plural(hour.hits, "hit", "hits"),
        telemetry::plural(hour.misses, "miss", "misses"),
        bytes(hour.bytes_served)
    )
}

/// The chart's sentence: totals, hit ratio, bytes saved, the busiest hour.
fn summary(group: &GroupView) -> String {
    let (hits, misses): (u64, u64) =
        group.hourly.iter().fold((0, 0), |(hits, misses), hour| (hits + hour.hits, misses + hour.misses));
    if hits + misses == 0 {
        return "No requests in the last 24 hours.".to_owned();
    }
    let saved: u64 = group.hourly.iter().map(|hour| hour.bytes_served).sum();
    let mut text = format!(
        "Last 24 hours: {}, {} (hit ratio {}), {} saved.",
        telemetry::plural(hits, "hit", "hits"),
        telemetry::plural(misses, "miss", "misses"),
        percent(ratio(hits, misses)),
        bytes(saved)
    );
    if let Some(busiest) = group.hourly.iter().max_by_key(|hour| (hour.hits + hour.misses, hour.hour)) {
        let _ = write!(
            text,
            " Busiest hour: {} UTC, {}.",
            clock(busiest.hour),
            telemetry::plural(busiest.hits + busiest.misses, "request", "requests")
        );
    }
    text
}

/// The SVG of `group`'s hourly traffic; `id` names its title and description.
fn svg(id: &str, group: &GroupView) -> String {
    let hours = &group.hourly;
    let width = LEFT + SLOT * hours.len().max(1) as u32 + RIGHT;
    let max_requests = hours.iter().map(|hour| hour.hits + hour.misses).max().unwrap_or(0);
    let max_saved = hours.iter().map(|hour| hour.bytes_served).max().unwrap_or(0);
    let mut out = String::with_capacity(8 << 10);
    let _ = write!(
        out,
        "<svg class=\"traffic\" viewBox=\"0 0 {width} {HEIGHT}\" \
         width=\"{width}\" height=\"{HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         shape-rendering=\"crispEdges\">\
         <title id=\"{id}-title\">Traffic of group {name}, last 24 hours, per hour</title>\
         <desc id=\"{id}-desc\">{summary}</desc>",
        name = esc(&group.group),
        summary = esc(&summary(group)),
    );
    // Legends and value axes: the top of each panel is labelled with its largest value.
    let right = width - RIGHT;
    let requests_bottom = REQUESTS_TOP + REQUESTS_HEIGHT;
    let saved_bottom = SAVED_TOP + SAVED_HEIGHT;
    let _ = write!(
        out,
        "<g class=\"legend\" font-size=\"10\" fill=\"currentColor\">\
         <text class=\"label\" x=\"{LEFT}\" y=\"11\">requests per hour:</text>\
         <rect class=\"hit\" fill=\"{HIT_FILL}\" x=\"{hit_key}\" y=\"3\" width=\"8\" height=\"8\"/>\
         <text class=\"label\" x=\"{hit_text}\" y=\"11\">hits</text>\
         <rect class=\"miss\" fill=\"{MISS_FILL}\" x=\"{miss_key}\" y=\"3\" width=\"8\" height=\"8\"/>\
         <text class=\"label\" x=\"{miss_text}\" y=\"11\">misses</text>\
         <text class=\"label\" x=\"{LEFT}\" y=\"{saved_legend}\">bytes saved per hour</text></g>",
        hit_key = LEFT + 100,
        hit_text = LEFT + 111,
        miss_key = LEFT + 140,
        miss_text = LEFT + 151,
        saved_legend = SAVED_TOP - 6,
    );
    let _ = write!(
        out,
        "<g class=\"axis\" stroke=\"#8a94a3\" stroke-width=\"1\">\
         <line x1=\"{LEFT}\" y1=\"{requests_bottom}\" x2=\"{right}\" y2=\"{requests_bottom}\"/>\
         <line x1=\"{LEFT}\" y1=\"{saved_bottom}\" x2=\"{right}\" y2=\"{saved_bottom}\"/>{ticks}</g>\
         <g class=\"values\" font-size=\"10\" text-anchor=\"end\" fill=\"currentColor\">\
         <text class=\"label\" x=\"{axis}\" y=\"{requests_max_y}\">{max_requests}</text>\
         <text class=\"label\" x=\"{axis}\" y=\"{requests_bottom}\">0</text>\
         <text class=\"label\" x=\"{axis}\" y=\"{saved_max_y}\">{saved_max}</text>\
         <text class=\"label\" x=\"{axis}\" y=\"{saved_bottom}\">0</text></g>",
        // A tick at every hour's edge under the requests, so the 24 hours show when quiet too.
        ticks = (0..=hours.len() as u32)
            .map(|edge| {
                let x = LEFT + SLOT * edge;
                format!(
                    "<line x1=\"{x}\" y1=\"{requests_bottom}\" x2=\"{x}\" y2=\"{}\"/>",
                    requests_bottom + TICK
                )
            })
            .collect::<String>(),
        axis = LEFT - 4,
        requests_max_y = REQUESTS_TOP + 8,
        saved_max_y = SAVED_TOP + 8,
        saved_max = esc(&bytes(max_saved)),
    );
    for (index, hour) in hours.iter().enumerate() {
        let slot = LEFT + SLOT * index as u32;
        let x = slot + (SLOT - BAR) / 2;
        let _ = write!(
            out,
            "<g class=\"hour\" data-hits=\"{}\" data-misses=\"{}\" data-saved=\"{}\"><title>{}</title>\
             <rect class=\"slot\" fill=\"transparent\" x=\"{slot}\" y=\"{REQUESTS_TOP}\" width=\"{SLOT}\" height=\"{}\"/>",
            hour.hits,
            hour.misses,
            hour.bytes_served,
            esc(&hour_title(hour)),
            saved_bottom - REQUESTS_TOP,
        );
        // Hits at the bottom, misses stacked on them: together the hour's requests.
        let hit_height = scaled(hour.hits, max_requests, REQUESTS_HEIGHT);
        let all_height = scaled(hour.hits + hour.misses, max_requests, REQUESTS_HEIGHT);
        let miss_height = all_height.saturating_sub(hit_height);
        if hit_height > 0 {
            let _ = write!(
                out,
                "<rect class=\"hit\" fill=\"{HIT_FILL}\" x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{hit_height}\"/>",
                requests_bottom - hit_height
            );
        }
        if miss_height > 0 {
            let _ = write!(
                out,
                "<rect class=\"miss\" fill=\"{MISS_FILL}\" x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{miss_height}\"/>",
                requests_bottom - all_height
            );
        }
        let saved_height = scaled(hour.bytes_served, max_saved, SAVED_HEIGHT);
        if saved_height > 0 {
            let _ = write!(
                out,
                "<rect class=\"saved\" fill=\"{SAVED_FILL}\" x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{saved_height}\"/>",
                saved_bottom - saved_height
            );
        }
        out.push_str("</g>");
    }
    // Hour labels every six hours, under their bar.
    out.push_str("<g class=\"hours\" font-size=\"10\" text-anchor=\"middle\" fill=\"currentColor\">");
    for (index, hour) in hours.iter().enumerate().filter(|(index, _)| index % 6 == 0) {
        let _ = write!(
            out,
            "<text class=\"label\" x=\"{}\" y=\"{HOURS_BASELINE}\">{}</text>",
            LEFT + SLOT * index as u32 + SLOT / 2,
            clock(hour.hour)
        );
    }
    if !hours.is_empty() {
        let _ = write!(
            out,
            "<text class=\"label\" x=\"{}\" y=\"{HOURS_BASELINE}\" text-anchor=\"end\">now</text>",
            width - RIGHT + 2
        );
    }
    out.push_str("</g></svg>");
    out
}

/// The figure of group number `index` of the page: its name and format, the chart, and the
/// chart's sentence.
pub(crate) fn traffic_figure(index: usize, group: &GroupView) -> String {
    let id = format!("traffic-{index}");
    format!(
        "<figure class=\"card chart\" id=\"{id}\" data-group=\"{name}\"><figcaption><strong>{name}</strong> \
         <span class=\"muted small\">{format}</span></figcaption>{svg}\
         <p class=\"small muted summary\">{summary}</p></figure>\n",
        name = esc(&group.group),
        format = esc(&group.format),
        svg = svg(&id, group),
        summary = esc(&summary(group)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// 2027-01-15 08:00 UTC.
    const NOW_HOUR: i64 = 1_800_000_000_000;

    fn group_with(traffic: &[(usize, u64, u64, u64)]) -> GroupView {
        let hourly = (0..24)
            .map(|index| {
                let (hits, misses, saved) = traffic
                    .iter()
                    .find(|(at, ..)| *at == index)
                    .map_or((0, 0, 0), |(_, hits, misses, saved)| (*hits, *misses, *saved));
                HourView {
                    hour: NOW_HOUR - (23 - index as i64) * HOUR,
                    hits,
                    misses,
                    bytes_served: saved,
                    bytes_fetched: 0,
                }
            })
            .collect();
        let quiet = crate::api::TrafficView {
            hits: 0,
            misses: 0,
            bytes_served: 0,
            bytes_fetched: 0,
            hit_ratio: None,
        };
        GroupView {
            group: "lab/<team>".into(),
            format: "oci".into(),
            upstream: "hub".into(),
            upstreams: vec!["hub".into()],
            access: "token".into(),
            ttl_seconds: None,
            max_size: None,
            pins: Vec::new(),
            bytes: 0,
            pinned_bytes: 0,
            artifacts: 0,
            documents: 0,
            unverified_artifacts: 0,
            blobs: 0,
            manifests: 0,
            tags: 0,
            oldest_read: None,
            last_1h: quiet.clone(),
            last_24h: quiet,
            hourly,
            by_upstream: Vec::new(),
        }
    }

    #[test]
    fn every_hour_is_a_bar_with_its_title_and_the_axes_and_a_sentence_say_the_figures() {
        let group = group_with(&[(23, 6, 2, 3 << 20), (20, 0, 1, 0), (5, 3, 0, 1024)]);
        let html = traffic_figure(0, &group);
        assert_eq!(html.matches("<g class=\"hour\"").count(), 24, "{html}");
        assert_eq!(html.matches("<title").count(), 25, "one per hour and the chart's own");
        assert!(html.contains("<title>08:00–09:00 UTC: 6 hits, 2 misses, 3.0 MiB saved</title>"), "{html}");
        assert!(html.contains("<title>05:00–06:00 UTC: 0 hits, 1 miss, 0 B saved</title>"), "{html}");
        assert!(html.contains("<title>09:00–10:00 UTC: 0 hits, 0 misses, 0 B saved</title>"), "{html}");
        // The busiest hour's bars fill the panel: 6 of 8 requests are hits.
        let hits = format!(
            "<rect class=\"hit\" fill=\"{HIT_FILL}\" x=\"{}\" y=\"{}\"",
            LEFT + 23 * SLOT + 2,
            18 + 70 - 52
        );
        assert!(html.contains(&format!("{hits} width=\"10\" height=\"52\"/>")), "{html}");
        assert!(html.contains("height=\"18\"/>"), "the misses stacked on top: 70 − 52: {html}");
        // Axes: the largest value of each panel at its top, hour labels every six hours.
        assert!(html.contains(">8</text>") && html.contains(">3.0 MiB</text>"), "{html}");
        for label in [">09:00<", ">15:00<", ">21:00<", ">03:00<", ">now<"] {
            assert!(html.contains(label), "{label}: {html}");
        }
        assert!(
            html.contains("Last 24 hours: 9 hits, 3 misses (hit ratio 75.0 %), 3.0 MiB saved."),
            "{html}"
        );
        assert!(html.contains("Busiest hour: 08:00 UTC, 8 requests."), "{html}");
        assert!(html.contains("lab/&lt;team&gt;") && !html.contains("lab/<team>"), "escaped");
        assert!(!html.contains("<script") && !html.contains("style="), "no script, no inline style (CSP)");
        assert_eq!(html.matches("y1=\"88\" x2=").count(), 25 + 1, "a tick at each hour's edge, and the axis");
    }

    #[test]
    fn a_quiet_hour_still_shows_and_no_traffic_says_so() {
        assert_eq!(scaled(1, 1000, 70), 1, "a quiet hour beside a busy one");
        assert_eq!(scaled(0, 1000, 70), 0);
        assert_eq!(scaled(1000, 1000, 70), 70);
        assert_eq!(scaled(u64::MAX, u64::MAX, 70), 70);
        let html = traffic_figure(3, &group_with(&[]));
        assert!(html.contains("id=\"traffic-3\"") && html.contains("aria-labelledby=\"traffic-3-title"));
        assert!(html.contains("No requests in the last 24 hours."), "{html}");
        assert_eq!(html.matches("<rect class=\"hit\"").count(), 1, "the legend's key, no bar: {html}");
        assert_eq!(html.matches("<rect class=\"miss\"").count(), 1, "the legend's key, no bar: {html}");
        assert_eq!(html.matches("<g class=\"hour\"").count(), 24);
    }
}
