//! A group's lifecycle policy: how long an unread object stays (TTL), how much the group may hold
//! (quota, least recently read out first), and which tags are pinned (never evicted by TTL or
//! quota; a purge still removes them).

use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::format::Format;

/// What the sweeper enforces for one group.
#[derive(Debug, Clone, Default)]
pub struct LifecyclePolicy {
    /// Objects and tags not read for this long are removed; `None` keeps them.
    pub ttl: Option<Duration>,
    /// Logical bytes the group may hold (objects shared with other groups count in each).
    pub max_size: Option<u64>,
    pub pins: Pins,
}

/// What a group keeps whatever its TTL and quota say. For an image group, tag patterns
/// (`image:tag` globs, e.g. `library/node:*-slim`) whose images are kept; for a package group,
/// package patterns (`NAME` or `NAME@VERSION` globs, e.g. `lodash`, `@internal/*`,
/// `requests@2.32.*`) whose documents and stored files are kept (a pattern with a version keeps
/// the package's documents — they list the version — and that version's files).
#[derive(Debug, Clone, Default)]
pub struct Pins {
    patterns: Vec<String>,
    /// Over `image:tag`, or a package's `name@version` (a pattern without a version: any).
    matcher: Option<GlobSet>,
    /// Package groups: over names alone (which documents are kept).
    names: Option<GlobSet>,
}

/// A pin pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("pin pattern {pattern:?}: {reason}")]
pub struct PinError {
    pub pattern: String,
    pub reason: String,
}

/// `*` matches any run of characters (slashes too, so `library/*:latest` and `@internal/*`
/// work), `?` one.
fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(false).build()
}

const GLOB_CHARACTERS: &[char] = &['*', '?', '[', ']', '{', '}', ',', '!'];

impl Pins {
    /// An image group's pins: `IMAGE:TAG` globs.
    pub fn new(patterns: &[String]) -> Result<Self, PinError> {
        Self::for_format(patterns, Format::Oci)
    }

    /// A group's pins, its patterns checked for its format: `IMAGE:TAG` for images, `NAME` or
    /// `NAME@VERSION` for packages — a name without glob characters must be a valid name of the
    /// format (PyPI names are matched normalized: `Zope.Interface` pins `zope-interface`).
    pub fn for_format(patterns: &[String], format: Format) -> Result<Self, PinError> {
        if patterns.is_empty() {
            return Ok(Pins::default());
        }
        let mut set = GlobSetBuilder::new();
        let mut names = GlobSetBuilder::new();
        for pattern in patterns {
            let invalid = |reason: String| PinError { pattern: pattern.clone(), reason };
            let full = if format.is_package() {
                let (name, version) = package_pattern(pattern, format).map_err(invalid)?;
                names.add(glob(&name).map_err(|error| invalid(error.kind().to_string()))?);
                format!("{name}@{}", version.as_deref().unwrap_or("*"))
            } else {
                if !pattern.contains(':') {
                    return Err(invalid("expected IMAGE:TAG, e.g. \"library/alpine:3.*\"".into()));
                }
                pattern.clone()
            };
            set.add(glob(&full).map_err(|error| invalid(error.kind().to_string()))?);
        }
        let whole =
            |error: globset::Error| PinError { pattern: patterns.join(", "), reason: error.to_string() };
        let matcher = set.build().map_err(whole)?;
        let names = if format.is_package() { Some(names.build().map_err(whole)?) } else { None };
        Ok(Pins { patterns: patterns.to_vec(), matcher: Some(matcher), names })
    }

    /// Whether an image group keeps `image:tag`.
    pub fn matches(&self, image: &str, tag: &str) -> bool {
        self.matcher.as_ref().is_some_and(|matcher| matcher.is_match(format!("{image}:{tag}")))
    }

    /// Whether a package group keeps `package`'s documents (its name as the group's rows hold it).
    pub fn keeps_package(&self, package: &str) -> bool {
        self.names.as_ref().is_some_and(|names| names.is_match(package))
    }

    /// Whether a package group keeps the files of `package` at `version`.
    pub fn keeps_version(&self, package: &str, version: &str) -> bool {
        self.names.is_some()
            && self.matcher.as_ref().is_some_and(|matcher| matcher.is_match(format!("{package}@{version}")))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// A package pin pattern: its name part (as the group's rows hold names) and its version part.
fn package_pattern(pattern: &str, format: Format) -> Result<(String, Option<String>), String> {
    let example = match format {
        Format::Pypi => "e.g. \"requests\", \"requests@2.32.*\" or \"acme-*\"",
        Format::Maven => "e.g. \"org.example:app\", \"org.example:app@2.*\" or \"org.example:*\"",
        Format::Go => "e.g. \"example.com/mod\", \"example.com/mod@v1.*\" or \"example.com/*\"",
        Format::Cargo => "e.g. \"serde\", \"serde@1.*\" or \"acme-*\"",
        _ => "e.g. \"lodash\", \"lodash@4.*\" or \"@internal/*\"",
    };
    if pattern.trim() != pattern || pattern.is_empty() {
        return Err(format!("empty, or spaces around it: expected NAME or NAME@VERSION, {example}"));
    }
    if pattern.contains(':') && format != Format::Maven {
        return Err(format!(
            "a {format} group pins packages, not image tags: expected NAME or NAME@VERSION, {example}"
        ));
    }
    // A scope starts with `@` (`@types/node@*`): the first character never separates.
    let (name, version) = match pattern.char_indices().skip(1).filter(|(_, c)| *c == '@').last() {
        Some((at, _)) => (&pattern[..at], Some(&pattern[at + 1..])),
        None => (pattern, None),
    };
    if version == Some("") {
        return Err(format!("nothing after '@' (use \"{name}\" for every version)"));
    }
    if name.chars().skip(1).any(|c| c == '@') {
        return Err("more than one '@': NAME@VERSION has one".into());
    }
    let name = if name.contains(GLOB_CHARACTERS) {
        let allowed = |c: char| match format {
            Format::Pypi => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
            Format::Maven => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
            Format::Go => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '/'),
            Format::Cargo => c.is_ascii_alphanumeric() || matches!(c, '-' | '_'),
            _ => c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~!'()@/".contains(c),
        };
        if let Some(bad) = name.chars().find(|c| !allowed(*c) && !GLOB_CHARACTERS.contains(c)) {
            return Err(format!("{bad:?} is in no {format} package name: {example}"));
        }
        match format {
            // Names are held normalized: so is the pattern (a glob's own characters stay).
            Format::Pypi => pypi::normalize(name),
            Format::Cargo => name.to_ascii_lowercase(),
            _ => name.to_owned(),
        }
    } else {
        format.package_name(name).map_err(|error| error.to_string())?
    };
    Ok((name, version.map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_image_and_tag() {
        let pins = Pins::new(&["library/alpine:3.*".into(), "library/node:*-slim".into(), "*:stable".into()])
            .unwrap();
        assert!(pins.matches("library/alpine", "3.20"));
        assert!(!pins.matches("library/alpine", "edge"));
        assert!(pins.matches("library/node", "22-slim"));
        assert!(!pins.matches("library/node", "22"));
        assert!(pins.matches("acme/tools/builder", "stable"), "* crosses slashes");
        assert!(!Pins::default().matches("library/alpine", "3.20"));
        assert!(Pins::new(&["no-tag".into()]).is_err());
        assert!(Pins::new(&["a:[".into()]).is_err());
        assert!(!pins.keeps_package("library/alpine"), "an image group keeps no package");
    }

    fn package_pins(format: Format, patterns: &[&str]) -> Pins {
        let patterns: Vec<String> = patterns.iter().map(|pattern| (*pattern).to_owned()).collect();
        Pins::for_format(&patterns, format).unwrap()
    }

    #[test]
    fn package_patterns_keep_names_and_versions() {
        let pins = package_pins(Format::Npm, &["lodash", "@internal/*", "react@18.*"]);
        assert!(pins.keeps_package("lodash") && pins.keeps_version("lodash", "4.17.21"));
        assert!(pins.keeps_package("@internal/tools") && pins.keeps_version("@internal/tools", "0.1.0"));
        assert!(pins.keeps_package("react"), "a pinned version needs the document listing it");
        assert!(pins.keeps_version("react", "18.3.1"));
        assert!(!pins.keeps_version("react", "19.0.0"));
        assert!(!pins.keeps_package("lodash-es") && !pins.keeps_package("@other/tools"));
        assert!(!pins.matches("lodash", "4.17.21"), "no image tag matches a package pin");

        let python = package_pins(Format::Pypi, &["Zope.Interface", "requests@2.32.*", "acme_*"]);
        assert!(python.keeps_package("zope-interface"), "names are matched normalized");
        assert!(python.keeps_version("requests", "2.32.3") && !python.keeps_version("requests", "2.31.0"));
        assert!(python.keeps_package("acme-tools"));

        let java = package_pins(Format::Maven, &["com.example:app@1.*", "org.internal:*"]);
        assert!(
            java.keeps_version("com.example:app", "1.2") && !java.keeps_version("com.example:app", "2.0")
        );
        assert!(java.keeps_package("org.internal:tools") && !java.keeps_package("org.other:tools"));
        let go = package_pins(Format::Go, &["example.com/dp/*@v1.*"]);
        assert!(
            go.keeps_version("example.com/dp/alpha", "v1.1.0")
                && !go.keeps_version("example.com/dp/alpha", "v2.0.0")
        );
        let rust = package_pins(Format::Cargo, &["Dp-Mixed", "serde*@1.*"]);
        assert!(rust.keeps_package("dp-mixed"), "crate names are held lowercase");
        assert!(rust.keeps_version("serde_json", "1.0.1") && !rust.keeps_version("serde_json", "0.9.0"));
    }

    #[test]
    fn package_patterns_are_checked_for_their_format() {
        for (format, bad, why) in [
            (Format::Npm, "library/alpine:3.*", "not image tags"),
            (Format::Npm, "Lodash", "lowercase"),
            (Format::Npm, "lodash@", "nothing after"),
            (Format::Npm, "a@b@c", "more than one"),
            (Format::Npm, "Acme*", "'A'"),
            (Format::Pypi, "-requests", "start and end"),
            (Format::Pypi, "acme/*", "'/'"),
            (Format::Pypi, " requests", "spaces"),
            (Format::Npm, "lodash@[", "unclosed"),
            (Format::Maven, "com.example", "groupId:artifactId"),
            (Format::Cargo, "acme/*", "'/'"),
        ] {
            let error = Pins::for_format(&[bad.to_owned()], format).unwrap_err();
            assert!(error.to_string().to_lowercase().contains(&why.to_lowercase()), "{bad:?}: {error}");
        }
    }
}
