//! What a warm run found and did, tag by tag: kept with its job (`jobs.result`, JSON), answered
//! by the admin API and printed by `depproxy cache warm --now`.

use std::fmt;

/// What happened to one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WarmOutcome {
    /// New or moved upstream (or not cached yet): pulled through the proxy.
    Fetched,
    /// Upstream still names the digest the group holds: nothing fetched.
    Unchanged,
    /// It could not be checked or pulled (see its message).
    Failed,
    /// The group's `allow`/`deny` rules refuse it: not asked for.
    Denied,
}

impl WarmOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WarmOutcome::Fetched => "fetched",
            WarmOutcome::Unchanged => "unchanged",
            WarmOutcome::Failed => "failed",
            WarmOutcome::Denied => "denied",
        }
    }
}

/// One tag a pattern picked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmTagReport {
    pub tag: String,
    pub outcome: WarmOutcome,
    /// The digest upstream names for it.
    pub digest: Option<String>,
    /// The digest the group's cached tag pointed at before, when it moved.
    pub previous: Option<String>,
    /// Why it failed or was refused.
    pub message: Option<String>,
}

/// One pattern of a `warm` entry: what the listing held and which tags it picked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmPatternReport {
    /// As configured, e.g. `library/alpine:3.*`.
    pub pattern: String,
    /// Tags the upstream listed (none for an exact tag: no listing is needed).
    pub listed: Option<usize>,
    /// The upstream that listed them (the group's first that knows the repository).
    pub upstream: Option<String>,
    /// The listing was longer than is read: only its first pages were matched.
    #[serde(default)]
    pub truncated: bool,
    /// Why the pattern could not be resolved (the listing failed).
    pub error: Option<String>,
    /// The tags picked, newest first.
    pub tags: Vec<WarmTagReport>,
}

/// One `warm` entry of the group in this run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmEntryReport {
    /// The entry, e.g. `library/alpine:3.* every 6h, keep 3`.
    pub schedule: String,
    /// Why it was not run (another node is running it).
    pub skipped: Option<String>,
    pub patterns: Vec<WarmPatternReport>,
}

/// A warm run of a group: its entries and what it fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmReport {
    pub group: String,
    /// `schedule` (the entry came due) or `now` (asked for through the admin API).
    pub trigger: String,
    /// The node that ran it.
    pub node: String,
    pub entries: Vec<WarmEntryReport>,
    /// Tags pulled, tags unchanged, tags that failed, tags refused by the group's rules.
    pub fetched: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub denied: usize,
    /// Manifests and blobs the pulls read through the proxy, and their bytes (hits included: a
    /// client cannot tell a hit from a miss).
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
}

impl WarmReport {
    /// Whether every tag and listing succeeded.
    pub fn is_success(&self) -> bool {
        self.failed == 0
            && self.entries.iter().flat_map(|entry| &entry.patterns).all(|pattern| pattern.error.is_none())
    }

    /// Counts the tags' outcomes again (after a pull settled them).
    pub(crate) fn tally(&mut self) {
        let (mut fetched, mut unchanged, mut failed, mut denied) = (0, 0, 0, 0);
        for tag in self.entries.iter().flat_map(|entry| &entry.patterns).flat_map(|pattern| &pattern.tags) {
            match tag.outcome {
                WarmOutcome::Fetched => fetched += 1,
                WarmOutcome::Unchanged => unchanged += 1,
                WarmOutcome::Failed => failed += 1,
                WarmOutcome::Denied => denied += 1,
            }
        }
        (self.fetched, self.unchanged, self.failed, self.denied) = (fetched, unchanged, failed, denied);
    }

    /// The one-line summary, e.g. for a failed job's error.
    pub fn summary(&self) -> String {
        let listing_errors = self
            .entries
            .iter()
            .flat_map(|entry| &entry.patterns)
            .filter(|pattern| pattern.error.is_some())
            .count();
        let mut text = format!(
            "group {}: {} tag(s) fetched, {} unchanged, {} failed, {} denied; {} manifest(s), {} blob(s), {} through the proxy",
            self.group,
            self.fetched,
            self.unchanged,
            self.failed,
            self.denied,
            self.manifests,
            self.blobs,
            human_bytes(self.bytes)
        );
        if listing_errors > 0 {
            text.push_str(&format!("; {listing_errors} pattern(s) could not be listed"));
        }
        text
    }
}

impl fmt::Display for WarmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "warmed {}", self.summary())?;
        for entry in &self.entries {
            write!(f, "{}", entry.schedule)?;
            if let Some(skipped) = &entry.skipped {
                write!(f, ": skipped, {skipped}")?;
            }
            writeln!(f)?;
            for pattern in &entry.patterns {
                write!(f, "  {}", pattern.pattern)?;
                if let (Some(listed), Some(upstream)) = (pattern.listed, &pattern.upstream) {
                    write!(f, " ({listed} tag(s) listed by {upstream}")?;
                    if pattern.truncated {
                        write!(f, ", the first pages only")?;
                    }
                    write!(f, ")")?;
                }
                if let Some(error) = &pattern.error {
                    write!(f, ": {error}")?;
                } else if pattern.tags.is_empty() {
                    write!(f, ": no tag matches")?;
                }
                writeln!(f)?;
                for tag in &pattern.tags {
                    write!(f, "    {:<10} {}", tag.outcome.as_str(), tag.tag)?;
                    if let Some(digest) = &tag.digest {
                        write!(f, " {digest}")?;
                    }
                    if let Some(previous) = &tag.previous
                        && tag.outcome == WarmOutcome::Fetched
                    {
                        write!(f, " (was {previous})")?;
                    }
                    if let Some(message) = &tag.message {
                        write!(f, ": {message}")?;
                    }
                    writeln!(f)?;
                }
            }
        }
        Ok(())
    }
}

/// `1.5 MiB`: binary units, one decimal.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
