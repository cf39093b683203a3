//! npm package names (`lodash`, `@types/node`), validated before anything reaches policy, the
//! database, storage or an upstream.
//!
//! The rules are the npm registry's rules for names, with one deliberate choice about legacy names:
//! - at most [`MAX_NAME_LEN`] characters in all, scope included;
//! - each part (scope and bare name) is non-empty, does not start with `.` or `_`, and uses only
//!   lowercase ASCII letters, digits and `-._~`, plus the legacy `!*'()`. Those four are still
//!   URL-safe (`encodeURIComponent` leaves them alone) and old packages that use them still exist on
//!   registries; the npm CLI only refuses them for *new* packages, and a proxy must serve old ones.
//! - uppercase is refused: npm has not accepted it since 2014, and a case-insensitive lookup of the
//!   few legacy mixed-case packages is a policy question we do not answer here;
//! - names are given decoded: a `%` (left over from double encoding), spaces, control characters and
//!   anything non-ASCII are refused.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest package name npm accepts, scope included.
pub const MAX_NAME_LEN: usize = 214;

/// Why a package name was refused. The message names the input and says what is wrong in terms a
/// user of npm understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid package name {input:?}: {reason}")]
pub struct NameError {
    /// The name as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: NameErrorReason,
}

/// The rule a refused name breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameErrorReason {
    #[error("package names cannot be empty")]
    Empty,
    #[error("npm package names are at most 214 characters long")]
    TooLong,
    #[error("npm package names are lowercase")]
    Uppercase,
    #[error("npm package names cannot start with a period or an underscore")]
    LeadingDotOrUnderscore,
    #[error("npm package names cannot contain spaces")]
    Space,
    #[error("npm package names cannot contain %: the name looks encoded twice")]
    Percent,
    #[error("npm package names cannot contain control characters")]
    Control,
    #[error("npm package names can only contain URL-safe characters (a-z 0-9 - . _ ~)")]
    NotUrlSafe,
    #[error("a scoped package name has the form @scope/name")]
    BadScope,
    #[error("an unscoped package name cannot contain /")]
    Slash,
}

/// A validated npm package name, scoped (`@scope/name`) or not.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PackageName {
    /// `@scope/name` or `name`.
    full: String,
    /// Where the bare name starts in `full` (0 when unscoped).
    bare_start: usize,
}

impl PackageName {
    /// Validates a decoded name (`lodash`, `@types/node`).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let error = |reason| NameError { input: input.to_owned(), reason };
        if input.is_empty() {
            return Err(error(NameErrorReason::Empty));
        }
        if input.len() > MAX_NAME_LEN {
            return Err(error(NameErrorReason::TooLong));
        }
        // Checked first: a leftover `%2f` would otherwise read as a scope without its `/`.
        if input.contains('%') {
            return Err(error(NameErrorReason::Percent));
        }
        let bare_start = match input.strip_prefix('@') {
            Some(scoped) => {
                let (scope, bare) = scoped.split_once('/').ok_or_else(|| error(NameErrorReason::BadScope))?;
                if scope.is_empty() || bare.is_empty() || bare.contains('/') {
                    return Err(error(NameErrorReason::BadScope));
                }
                check_part(scope).map_err(error)?;
                check_part(bare).map_err(error)?;
                input.len() - bare.len()
            }
            None => {
                if input.contains('/') {
                    return Err(error(NameErrorReason::Slash));
                }
                check_part(input).map_err(error)?;
                0
            }
        };
        Ok(PackageName { full: input.to_owned(), bare_start })
    }

    /// `@scope/name` or `name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The scope without `@`, when the name has one.
    pub fn scope(&self) -> Option<&str> {
        if self.bare_start == 0 { None } else { Some(&self.full[1..self.bare_start - 1]) }
    }

    /// The name without its scope (`node` for `@types/node`): what tarball file names start with.
    pub fn bare(&self) -> &str {
        &self.full[self.bare_start..]
    }

    /// The path (after the registry's base URL, without a leading `/`) an upstream registry is
    /// asked for the packument: `name`, or `@scope%2fname` (the form every registry understands;
    /// some refuse a raw `/`).
    pub fn upstream_path(&self) -> String {
        match self.scope() {
            Some(scope) => format!("@{scope}%2f{}", self.bare()),
            None => self.full.clone(),
        }
    }

    /// The tarball file name of a version as registries publish it: `{bare}-{version}.tgz`.
    pub fn tarball_file(&self, version: &str) -> String {
        format!("{}-{version}.tgz", self.bare())
    }

    /// The path of a version's tarball: `name/-/name-1.0.0.tgz`, `@scope/name/-/name-1.0.0.tgz`.
    pub fn tarball_path(&self, version: &str) -> String {
        format!("{}/-/{}", self.full, self.tarball_file(version))
    }
}

fn check_part(part: &str) -> Result<(), NameErrorReason> {
    if part.starts_with('.') || part.starts_with('_') {
        return Err(NameErrorReason::LeadingDotOrUnderscore);
    }
    for c in part.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' | '!' | '*' | '\'' | '(' | ')' => {}
            'A'..='Z' => return Err(NameErrorReason::Uppercase),
            ' ' => return Err(NameErrorReason::Space),
            '%' => return Err(NameErrorReason::Percent),
            c if c.is_control() => return Err(NameErrorReason::Control),
            _ => return Err(NameErrorReason::NotUrlSafe),
        }
    }
    Ok(())
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for PackageName {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Self, NameError> {
        PackageName::parse(input)
    }
}

impl Serialize for PackageName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for PackageName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        PackageName::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_names() {
        for ok in [
            "lodash",
            "a",
            "react-dom",
            "lodash.merge",
            "left_pad",
            "socket.io",
            "7zip-bin",
            "abc~def",
            "@types/node",
            "@babel/core",
            "@a/b",
            "@my-org/pkg.name",
            "@scope/inner_underscore",
            "legacy!(name)*'",
        ] {
            let name = PackageName::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(name.as_str(), ok);
            assert_eq!(name.to_string(), ok);
        }
        assert!(PackageName::parse(&"a".repeat(214)).is_ok());
        assert!(PackageName::parse(&format!("@s/{}", "a".repeat(211))).is_ok());
    }

    #[test]
    fn invalid_names_say_why() {
        let cases = [
            ("", NameErrorReason::Empty),
            ("Foo", NameErrorReason::Uppercase),
            ("@Types/node", NameErrorReason::Uppercase),
            ("@types/Node", NameErrorReason::Uppercase),
            (".hidden", NameErrorReason::LeadingDotOrUnderscore),
            ("_private", NameErrorReason::LeadingDotOrUnderscore),
            ("@_scope/name", NameErrorReason::LeadingDotOrUnderscore),
            ("@scope/.name", NameErrorReason::LeadingDotOrUnderscore),
            ("has space", NameErrorReason::Space),
            ("@types%2fnode", NameErrorReason::Percent),
            ("a%20b", NameErrorReason::Percent),
            ("tab\tname", NameErrorReason::Control),
            ("nul\0", NameErrorReason::Control),
            ("caf\u{e9}", NameErrorReason::NotUrlSafe),
            ("a+b", NameErrorReason::NotUrlSafe),
            ("a:b", NameErrorReason::NotUrlSafe),
            ("a\\b", NameErrorReason::NotUrlSafe),
            ("@scope", NameErrorReason::BadScope),
            ("@/name", NameErrorReason::BadScope),
            ("@scope/", NameErrorReason::BadScope),
            ("@scope/a/b", NameErrorReason::BadScope),
            ("a/b", NameErrorReason::Slash),
            ("..", NameErrorReason::LeadingDotOrUnderscore),
        ];
        for (input, reason) in cases {
            let error = PackageName::parse(input).unwrap_err();
            assert_eq!(error.reason, reason, "{input:?}");
        }
        assert_eq!(PackageName::parse(&"a".repeat(215)).unwrap_err().reason, NameErrorReason::TooLong);
        assert_eq!(
            PackageName::parse("Foo").unwrap_err().to_string(),
            r#"invalid package name "Foo": npm package names are lowercase"#
        );
    }

    #[test]
    fn parts_and_paths() {
        let scoped = PackageName::parse("@types/node").unwrap();
        assert_eq!(scoped.scope(), Some("types"));
        assert_eq!(scoped.bare(), "node");
        assert_eq!(scoped.upstream_path(), "@types%2fnode");
        assert_eq!(scoped.tarball_file("20.1.0"), "node-20.1.0.tgz");
        assert_eq!(scoped.tarball_path("20.1.0"), "@types/node/-/node-20.1.0.tgz");
        let plain = PackageName::parse("lodash").unwrap();
        assert_eq!(plain.scope(), None);
        assert_eq!(plain.bare(), "lodash");
        assert_eq!(plain.upstream_path(), "lodash");
        assert_eq!(plain.tarball_path("4.17.21"), "lodash/-/lodash-4.17.21.tgz");
    }

    #[test]
    fn serde_as_string() {
        let name = PackageName::parse("@babel/core").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""@babel/core""#);
        let back: PackageName = serde_json::from_str(r#""@babel/core""#).unwrap();
        assert_eq!(back, name);
        assert!(serde_json::from_str::<PackageName>(r#""Bad""#).is_err());
        assert!("@x/y".parse::<PackageName>().is_ok());
    }

    proptest! {
        #[test]
        fn valid_parts_round_trip(
            scope in proptest::option::of("[a-z0-9][a-z0-9._~-]{0,20}"),
            bare in "[a-z0-9][a-z0-9._~-]{0,40}",
        ) {
            let input = match &scope {
                Some(scope) => format!("@{scope}/{bare}"),
                None => bare.clone(),
            };
            let name = PackageName::parse(&input).unwrap();
            prop_assert_eq!(name.scope(), scope.as_deref());
            prop_assert_eq!(name.bare(), bare.as_str());
            prop_assert_eq!(name.as_str(), input.as_str());
        }

        #[test]
        fn never_panics_and_accepts_only_safe_text(input in "\\PC{0,30}") {
            if let Ok(name) = PackageName::parse(&input) {
                prop_assert!(name.as_str().bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
                prop_assert!(!name.as_str().contains('%'));
            }
        }
    }
}
