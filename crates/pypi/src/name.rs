//! PyPI project names: PEP 508 validation and PEP 503 normalization.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest project name accepted. PEP 508 sets no limit; real names stay far below this, and a
/// bound keeps keys and log lines sane.
pub const MAX_NAME_LEN: usize = 200;

/// The PEP 503 normalized form: lowercase, every run of `-`, `_` and `.` turned into one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator_run {
                out.push('-');
            }
            in_separator_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator_run = false;
        }
    }
    out
}

/// Why a project name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid project name {input:?}: {reason}")]
pub struct NameError {
    /// The name as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A project name valid under PEP 508 (`^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`, any case), kept
/// as written and normalized.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProjectName {
    as_written: String,
    normalized: String,
}

impl ProjectName {
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let error = |reason| NameError { input: input.to_owned(), reason };
        let bytes = input.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return Err(error("project names cannot be empty"));
        };
        if input.len() > MAX_NAME_LEN {
            return Err(error("project names are at most 200 characters long"));
        }
        if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(error("project names contain only ASCII letters, digits, '.', '_' and '-'"));
        }
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(error("project names start and end with a letter or digit"));
        }
        Ok(ProjectName { as_written: input.to_owned(), normalized: normalize(input) })
    }

    /// The name as the request or document wrote it.
    pub fn as_written(&self) -> &str {
        &self.as_written
    }

    /// The PEP 503 normalized name: what the index URL and cache keys use.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// True when the name as written is already normalized (no redirect needed).
    pub fn is_normalized(&self) -> bool {
        self.as_written == self.normalized
    }
}

/// Two names are the same project when their normalized forms are equal; `PartialEq` compares as
/// written, this does not.
impl ProjectName {
    pub fn same_project(&self, other: &ProjectName) -> bool {
        self.normalized == other.normalized
    }
}

/// Displays the name as written.
impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_written)
    }
}

impl std::str::FromStr for ProjectName {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Self, NameError> {
        ProjectName::parse(input)
    }
}

impl Serialize for ProjectName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_written)
    }
}

impl<'de> Deserialize<'de> for ProjectName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        ProjectName::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalization() {
        for (input, expected) in [
            ("requests", "requests"),
            ("Django", "django"),
            ("zope.interface", "zope-interface"),
            ("Foo__Bar", "foo-bar"),
            ("foo-._bar", "foo-bar"),
            ("typing_extensions", "typing-extensions"),
            ("A", "a"),
            ("", ""),
        ] {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn valid_names() {
        let name = ProjectName::parse("Zope.Interface").unwrap();
        assert_eq!(name.as_written(), "Zope.Interface");
        assert_eq!(name.normalized(), "zope-interface");
        assert!(!name.is_normalized());
        assert_eq!(name.to_string(), "Zope.Interface");
        assert!(ProjectName::parse("requests").unwrap().is_normalized());
        assert!(ProjectName::parse("a").unwrap().is_normalized());
        assert!(ProjectName::parse("7z").is_ok());
        assert!(ProjectName::parse("foo-.bar").is_ok());
        assert!(ProjectName::parse(&"a".repeat(200)).is_ok());
        assert!(
            ProjectName::parse("Typing_Extensions")
                .unwrap()
                .same_project(&ProjectName::parse("typing-extensions").unwrap())
        );
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "",
            "-foo",
            "foo-",
            ".foo",
            "foo_",
            "foo bar",
            "foo/bar",
            "foo%2fbar",
            "caf\u{e9}",
            "a+b",
            "..",
            "_",
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad}");
        }
        assert!(ProjectName::parse(&"a".repeat(201)).is_err());
        assert_eq!(
            ProjectName::parse("-x").unwrap_err().to_string(),
            r#"invalid project name "-x": project names start and end with a letter or digit"#
        );
    }

    #[test]
    fn serde_as_string() {
        let name: ProjectName = serde_json::from_str(r#""Flask""#).unwrap();
        assert_eq!(name.normalized(), "flask");
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""Flask""#);
        assert!(serde_json::from_str::<ProjectName>(r#""-bad""#).is_err());
    }

    proptest! {
        #[test]
        fn normalized_is_idempotent_and_valid(input in "[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?") {
            let name = ProjectName::parse(&input).unwrap();
            let normalized = ProjectName::parse(name.normalized()).unwrap();
            prop_assert!(normalized.is_normalized());
            prop_assert_eq!(normalize(name.normalized()), name.normalized());
            prop_assert!(name.same_project(&normalized));
        }

        #[test]
        fn never_panics(input in "\\PC{0,40}") {
            let _ = ProjectName::parse(&input);
            let _ = normalize(&input);
        }
    }
}
