//! Crate names (`serde`, `tokio-util`, `Inflector`), validated before anything reaches policy,
//! storage or an upstream, and the index path each one's file has.
//!
//! The rules are cargo's for a registry package: 1 to [`MAX_NAME_LEN`] ASCII characters, letters,
//! digits, `-` and `_`, starting with a letter. Case is kept as given (a few old crates have upper
//! case); the index path is always lower case.

use std::fmt;

/// Longest crate name registries accept.
pub const MAX_NAME_LEN: usize = 64;

/// Why a crate name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid crate name {input:?}: {reason}")]
pub struct NameError {
    /// The name as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A validated crate name.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct CrateName(String);

impl CrateName {
    /// Checks a name.
    pub fn parse(input: &str) -> Result<CrateName, NameError> {
        let refuse = |reason| Err(NameError { input: input.to_owned(), reason });
        if input.is_empty() {
            return refuse("crate names cannot be empty");
        }
        if input.len() > MAX_NAME_LEN {
            return refuse("crate names are at most 64 characters long");
        }
        if !input.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return refuse("crate names start with an ASCII letter");
        }
        if !input.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return refuse("crate names have only ASCII letters, digits, '-' and '_'");
        }
        Ok(CrateName(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directories of the name's index file, lower case: `1`, `2`, `3/a`, `ab/cd`.
    pub fn prefix(&self) -> String {
        crate::download::dep_prefix(&self.0).to_ascii_lowercase()
    }

    /// The index file's path, lower case: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`.
    pub fn index_path(&self) -> String {
        format!("{}/{}", self.prefix(), self.0.to_ascii_lowercase())
    }
}

impl fmt::Display for CrateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CrateName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in ["a", "serde", "tokio-util", "Inflector", "a_b-c1", &"x".repeat(64)] {
            assert_eq!(CrateName::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(CrateName::parse("Inflector").unwrap().to_string(), "Inflector");
    }

    #[test]
    fn invalid_names() {
        for name in
            ["", "1abc", "-a", "_a", "a.b", "a b", "a/b", "a%2fb", "caf\u{e9}", "a\n", &"x".repeat(65)]
        {
            assert!(CrateName::parse(name).is_err(), "{name:?}");
        }
        assert_eq!(
            CrateName::parse("a.b").unwrap_err().to_string(),
            r#"invalid crate name "a.b": crate names have only ASCII letters, digits, '-' and '_'"#
        );
    }

    #[test]
    fn index_paths() {
        for (name, path) in [
            ("a", "1/a"),
            ("ab", "2/ab"),
            ("abc", "3/a/abc"),
            ("Abc", "3/a/abc"),
            ("abcd", "ab/cd/abcd"),
            ("serde", "se/rd/serde"),
            ("Inflector", "in/fl/inflector"),
        ] {
            assert_eq!(CrateName::parse(name).unwrap().index_path(), path, "{name}");
        }
    }
}
