//! How the status page writes text and figures: HTML escaping, sizes, ratios, times.

/// hits / (hits + misses); `None` without requests.
pub(crate) fn ratio(hits: u64, misses: u64) -> Option<f64> {
    let total = hits + misses;
    (total > 0).then(|| hits as f64 / total as f64)
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

/// Unix milliseconds (signed, as the database keeps them) as [`time`] shows them.
pub(crate) fn time_i64(ms: Option<i64>) -> String {
    time(ms.and_then(|ms| u64::try_from(ms).ok()))
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
}
