//! What a group warms on a schedule (`warm = [{ images = ["library/alpine:3.*"], every = "6h",
//! keep = 3 }]`): patterns of one artifact name each and, after the format's separator, a tag —
//! exact (`library/node:22-slim`) or a glob over the upstream's tag list (`library/alpine:3.*`) —
//! and which tags of a listing a pattern picks: those it matches, newest first, at most `keep`.
//!
//! "Newest" is read from the tags themselves (a registry's listing has no dates): a tag that
//! starts with a version (`3.20.1`, `v1.2`, `22-slim`, `2024-05-01`) ranks by that version, number
//! by number (`3.20` < `3.20.1` < `3.21`), above every tag that does not (`latest`, `edge`); on a
//! tie the tag with less after its version ranks first (`1.2.3` above `1.2.3-rc1`), then the rest
//! compares as text, descending — as do tags without a version among themselves.

use std::cmp::Ordering;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

use crate::format::Format;

/// The shortest `every`: a schedule asks the upstream for its tag lists and one HEAD per tag.
pub const MIN_WARM_EVERY: Duration = Duration::from_secs(60);

/// A `warm` entry or pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("warm pattern {pattern:?}: {reason}")]
pub struct WarmRuleError {
    pub pattern: String,
    pub reason: String,
}

/// One pattern: an artifact name, and an exact tag or a glob over its tags.
#[derive(Debug, Clone)]
pub struct WarmPattern {
    text: String,
    name: String,
    tag: WarmTag,
}

#[derive(Debug, Clone)]
enum WarmTag {
    Exact(String),
    Glob(GlobMatcher),
}

impl WarmPattern {
    /// `NAME[<separator>TAG]` for `format` (`:` for images); no tag means `latest`. Only the tag
    /// may be a pattern (`*`, `?`, `[…]`, `{a,b}`): names cannot be listed.
    pub fn parse(text: &str, format: Format) -> Result<WarmPattern, WarmRuleError> {
        let invalid = |reason: String| WarmRuleError { pattern: text.to_owned(), reason };
        if text.trim() != text || text.is_empty() {
            return Err(invalid("empty, or spaces around it".into()));
        }
        let separator = format.version_separator();
        if text.contains('@') && format == Format::Oci {
            return Err(invalid(
                "a digest never changes: warm it once (the `cache warm` command) and `pin` it to keep it"
                    .into(),
            ));
        }
        let (name, tag) = match text.char_indices().skip(1).filter(|(_, c)| *c == separator).last() {
            Some((at, _)) => (&text[..at], &text[at + separator.len_utf8()..]),
            None => (text, "latest"),
        };
        if name.contains(['*', '?', '[', ']', '{', '}']) {
            return Err(invalid(format!(
                "only the tag may be a pattern: {name:?} names one artifact (a registry cannot list its names)"
            )));
        }
        match format {
            Format::Oci => {
                oci::RepositoryName::parse(name).map_err(|error| invalid(error.message))?;
            }
            Format::Npm => {
                npm::PackageName::parse(name).map_err(|error| invalid(error.to_string()))?;
            }
            Format::Pypi | Format::Maven | Format::Go | Format::Cargo => {
                format.package_name(name).map_err(|error| invalid(error.to_string()))?;
            }
        }
        if tag.is_empty() {
            return Err(invalid(format!("nothing after {separator:?}")));
        }
        let tag = if tag.contains(['*', '?', '[', '{']) {
            let glob = GlobBuilder::new(tag)
                .literal_separator(false)
                .build()
                .map_err(|error| invalid(error.kind().to_string()))?;
            WarmTag::Glob(glob.compile_matcher())
        } else {
            match format {
                Format::Oci => {
                    oci::Tag::parse(tag).map_err(|error| invalid(error.message))?;
                }
                // A version is the upstream's own text: the document lists what exists.
                _ => {
                    if tag.contains(['/', ' ']) {
                        return Err(invalid(format!("{tag:?} is not a version")));
                    }
                }
            }
            WarmTag::Exact(tag.to_owned())
        };
        Ok(WarmPattern { text: text.to_owned(), name: name.to_owned(), tag })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The artifact it names.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, when the pattern names one exactly (no listing needed).
    pub fn exact_tag(&self) -> Option<&str> {
        match &self.tag {
            WarmTag::Exact(tag) => Some(tag),
            WarmTag::Glob(_) => None,
        }
    }

    /// The tags of `listed` the pattern picks: those it matches, newest first, at most `keep`.
    pub fn select(&self, listed: &[String], keep: usize) -> Vec<String> {
        let mut picked: Vec<&String> = match &self.tag {
            WarmTag::Exact(tag) => listed.iter().filter(|listed| *listed == tag).collect(),
            WarmTag::Glob(glob) => listed.iter().filter(|tag| glob.is_match(tag.as_str())).collect(),
        };
        picked.sort_by(|a, b| newest_first(a, b));
        picked.dedup();
        picked.into_iter().take(keep).cloned().collect()
    }
}

/// One `warm` entry of a group: its patterns, how often, how many tags per glob.
#[derive(Debug, Clone)]
pub struct WarmSchedule {
    pub patterns: Vec<WarmPattern>,
    pub every: Duration,
    /// Tags each glob pattern keeps, newest first (at least 1).
    pub keep: usize,
}

impl WarmSchedule {
    /// Checks an entry as written: its patterns for `format`, `every` at least [`MIN_WARM_EVERY`],
    /// `keep` at least 1.
    pub fn new(
        patterns: &[String],
        every: Duration,
        keep: usize,
        format: Format,
    ) -> Result<WarmSchedule, WarmRuleError> {
        let whole = |reason: String| WarmRuleError { pattern: patterns.join(", "), reason };
        if patterns.is_empty() {
            return Err(whole("the entry names nothing to warm".into()));
        }
        if every < MIN_WARM_EVERY {
            return Err(whole(format!(
                "every = \"{}\" is shorter than {}: each run lists tags and asks upstream about each one",
                telemetry::HumanDuration(every),
                telemetry::HumanDuration(MIN_WARM_EVERY)
            )));
        }
        if keep == 0 {
            return Err(whole(
                "keep = 0 would warm nothing: keep is how many tags a pattern warms (>= 1)".into(),
            ));
        }
        let patterns =
            patterns.iter().map(|text| WarmPattern::parse(text, format)).collect::<Result<Vec<_>, _>>()?;
        Ok(WarmSchedule { patterns, every, keep })
    }

    /// `library/node:22-slim, library/alpine:3.* every 6h, keep 3`.
    pub fn describe(&self) -> String {
        let patterns: Vec<&str> = self.patterns.iter().map(WarmPattern::as_str).collect();
        format!("{} every {}, keep {}", patterns.join(", "), telemetry::HumanDuration(self.every), self.keep)
    }
}

/// The version a tag starts with (a leading `v` skipped): its numbers, and what follows them.
fn version(tag: &str) -> Option<(Vec<&str>, &str)> {
    let rest = tag.strip_prefix(['v', 'V']).filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    let mut rest = rest.or_else(|| tag.starts_with(|c: char| c.is_ascii_digit()).then_some(tag))?;
    let mut numbers = Vec::new();
    loop {
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        numbers.push(rest[..end].trim_start_matches('0'));
        rest = &rest[end..];
        match rest.strip_prefix('.') {
            Some(next) if next.starts_with(|c: char| c.is_ascii_digit()) => rest = next,
            _ => return Some((numbers, rest)),
        }
    }
}

/// Numbers of any length, compared as numbers (leading zeros already gone).
fn compare_number(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The order [`WarmPattern::select`] picks tags in: newest first (see the module's rule).
pub fn newest_first(a: &str, b: &str) -> Ordering {
    match (version(a), version(b)) {
        (Some((numbers_a, rest_a)), Some((numbers_b, rest_b))) => {
            let mut by_number = Ordering::Equal;
            for (x, y) in numbers_a.iter().zip(&numbers_b) {
                by_number = compare_number(x, y);
                if by_number != Ordering::Equal {
                    break;
                }
            }
            by_number
                .then_with(|| numbers_a.len().cmp(&numbers_b.len()))
                .reverse()
                .then_with(|| rest_a.len().min(1).cmp(&rest_b.len().min(1)))
                .then_with(|| rest_b.cmp(rest_a))
                .then_with(|| b.cmp(a))
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => b.cmp(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|tag| (*tag).to_owned()).collect()
    }

    fn pattern(text: &str) -> WarmPattern {
        WarmPattern::parse(text, Format::Oci).unwrap()
    }

    #[test]
    fn versions_rank_number_by_number_above_words() {
        let mut listed = tags(&[
            "3.9",
            "3.20",
            "latest",
            "3.20.1",
            "edge",
            "3.19",
            "v3.21",
            "3.20.1-rc1",
            "20240501",
            "3.20.1-alpha",
        ]);
        listed.sort_by(|a, b| newest_first(a, b));
        assert_eq!(
            listed,
            tags(&[
                "20240501",
                "v3.21",
                "3.20.1",
                "3.20.1-rc1",
                "3.20.1-alpha",
                "3.20",
                "3.19",
                "3.9",
                "latest",
                "edge"
            ])
        );
        assert_eq!(newest_first("010", "9"), Ordering::Less, "numbers, not text: 10 > 9");
        assert_eq!(
            newest_first("99999999999999999999999", "99999999999999999999998"),
            Ordering::Less,
            "numbers longer than any integer type"
        );
        assert_eq!(newest_first("2024-06-01", "2024-05-01"), Ordering::Less, "date stamps");
    }

    #[test]
    fn a_glob_keeps_the_newest_matching_tags() {
        let listed = tags(&["3.18", "3.19", "3.20", "3.9", "latest", "edge", "3.20.3", "4.0"]);
        assert_eq!(pattern("library/alpine:3.*").select(&listed, 3), tags(&["3.20.3", "3.20", "3.19"]));
        assert_eq!(pattern("library/alpine:3.*").select(&listed, 100).len(), 5);
        assert_eq!(pattern("library/alpine:{latest,edge}").select(&listed, 3), tags(&["latest", "edge"]));
        assert_eq!(pattern("library/alpine:5.*").select(&listed, 3), Vec::<String>::new());
        let node = tags(&["22-slim", "22.11.0-slim", "22.9.0-slim", "22.11.0", "20-slim"]);
        assert_eq!(
            pattern("library/node:22.*-slim").select(&node, 2),
            tags(&["22.11.0-slim", "22.9.0-slim"])
        );
    }

    #[test]
    fn exact_tags_need_no_listing_and_names_are_never_patterns() {
        let exact = pattern("library/node:22-slim");
        assert_eq!((exact.name(), exact.exact_tag()), ("library/node", Some("22-slim")));
        assert_eq!(pattern("library/node").exact_tag(), Some("latest"), "no tag: latest");
        assert_eq!(pattern("library/alpine:3.*").exact_tag(), None);
        for (bad, why) in [
            ("library/*:3", "only the tag may be a pattern"),
            ("Library/alpine:3", "name"),
            ("library/alpine:", "nothing after"),
            (" library/alpine", "spaces"),
            ("library/alpine@sha256:abc", "digest never changes"),
            ("library/alpine:bad/tag", "tag"),
            ("library/alpine:[", "unclosed"),
        ] {
            let error = WarmPattern::parse(bad, Format::Oci).unwrap_err();
            assert!(error.to_string().to_lowercase().contains(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_schedule_needs_something_every_minute_or_more_and_a_keep() {
        let hour = Duration::from_secs(3600);
        let schedule = WarmSchedule::new(&tags(&["library/alpine:3.*"]), hour, 3, Format::Oci).unwrap();
        assert_eq!(schedule.describe(), "library/alpine:3.* every 1h, keep 3");
        let short = WarmSchedule::new(&tags(&["a"]), Duration::from_secs(59), 3, Format::Oci).unwrap_err();
        assert!(short.reason.contains("shorter than 1m"), "{short}");
        let none = WarmSchedule::new(&tags(&["a"]), hour, 0, Format::Oci).unwrap_err();
        assert!(none.reason.contains("keep = 0"), "{none}");
        assert!(WarmSchedule::new(&[], hour, 3, Format::Oci).is_err());
    }
}
