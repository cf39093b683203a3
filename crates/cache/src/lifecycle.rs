//! A group's lifecycle policy: how long an unread object stays (TTL), how much the group may hold
//! (quota, least recently read out first), and which tags are pinned (never evicted by TTL or
//! quota; a purge still removes them).

use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// What the sweeper enforces for one group.
#[derive(Debug, Clone, Default)]
pub struct LifecyclePolicy {
    /// Objects and tags not read for this long are removed; `None` keeps them.
    pub ttl: Option<Duration>,
    /// Logical bytes the group may hold (objects shared with other groups count in each).
    pub max_size: Option<u64>,
    pub pins: Pins,
}

/// Tag patterns (`image:tag` globs, e.g. `library/node:*-slim`) whose images are kept.
#[derive(Debug, Clone, Default)]
pub struct Pins {
    patterns: Vec<String>,
    matcher: Option<GlobSet>,
}

/// A pin pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("pin pattern {pattern:?}: {reason}")]
pub struct PinError {
    pub pattern: String,
    pub reason: String,
}

impl Pins {
    /// `*` matches any run of characters (slashes too, so `library/*:latest` works), `?` one.
    pub fn new(patterns: &[String]) -> Result<Self, PinError> {
        if patterns.is_empty() {
            return Ok(Pins::default());
        }
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            let invalid = |reason: String| PinError { pattern: pattern.clone(), reason };
            if !pattern.contains(':') {
                return Err(invalid("expected IMAGE:TAG, e.g. \"library/alpine:3.*\"".into()));
            }
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .map_err(|error| invalid(error.kind().to_string()))?;
            set.add(glob);
        }
        let matcher = set
            .build()
            .map_err(|error| PinError { pattern: patterns.join(", "), reason: error.to_string() })?;
        Ok(Pins { patterns: patterns.to_vec(), matcher: Some(matcher) })
    }

    pub fn matches(&self, image: &str, tag: &str) -> bool {
        self.matcher.as_ref().is_some_and(|matcher| matcher.is_match(format!("{image}:{tag}")))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
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
    }
}
