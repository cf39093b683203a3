//! Repository names, tags, references and group paths, validated against the distribution grammar.

use std::fmt;

use crate::digest::Digest;
use crate::error::{ErrorCode, OciError};

/// Longest repository name the spec allows.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name such as `library/alpine` (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components
/// joined by `/`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn parse(input: &str) -> Result<Self, OciError> {
        let invalid = |why: &str| {
            OciError::new(ErrorCode::NameInvalid, format!("invalid repository name {input:?}: {why}"))
        };
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        if input.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        if !input.split('/').all(component_is_valid) {
            return Err(invalid("each path component must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"));
        }
        Ok(RepositoryName(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of `/`-separated components.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// `library/<name>` for a single-component name: how Docker Hub names official images.
    pub fn with_library_prefix(&self) -> RepositoryName {
        if self.depth() == 1 { RepositoryName(format!("library/{}", self.0)) } else { self.clone() }
    }

    /// The name without its first component, when it has more than one.
    pub fn strip_first_component(&self) -> Option<(&str, RepositoryName)> {
        let (first, rest) = self.0.split_once('/')?;
        Some((first, RepositoryName(rest.to_owned())))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn component_is_valid(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators: a single '.', one or two '_', or any run of '-'; never mixed, always between alnums.
    let mut index = 0;
    while index < bytes.len() {
        let b = bytes[index];
        if alnum(b) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !alnum(bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let ok =
            separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Tag(String);

impl Tag {
    pub fn parse(input: &str) -> Result<Self, OciError> {
        let bytes = input.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Tag(input.to_owned()))
        } else {
            Err(OciError::new(ErrorCode::TagInvalid, format!("invalid tag {input:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A manifest reference: a tag (mutable) or a digest (immutable).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, OciError> {
        if input.contains(':') {
            input.parse::<Digest>().map(Reference::Digest).map_err(|error| {
                OciError::new(ErrorCode::DigestInvalid, error.to_string())
                    .with_detail(serde_json::json!({ "reference": input }))
            })
        } else {
            Tag::parse(input).map(Reference::Tag)
        }
    }

    pub fn as_digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(digest) => Some(digest),
            Reference::Tag(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// A group path such as `acme` or `acme/platform`: segments of `[A-Za-z0-9_.-]`, never `.` or `..`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct GroupPath(String);

impl GroupPath {
    pub fn parse(input: &str) -> Result<Self, OciError> {
        let ok = !input.is_empty()
            && input.len() <= MAX_NAME_LEN
            && input.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            });
        if ok {
            Ok(GroupPath(input.to_owned()))
        } else {
            Err(OciError::new(ErrorCode::NameInvalid, format!("invalid group path {input:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in
            ["alpine", "library/alpine", "a/b/c", "foo.bar", "foo_bar", "foo__bar", "foo---bar", "a0/b1"]
        {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alpine",
            "/alpine",
            "alpine/",
            "a//b",
            "foo..bar",
            "foo___bar",
            "-foo",
            "foo-",
            "a/../b",
            "foo._bar",
        ] {
            assert_eq!(RepositoryName::parse(bad).unwrap_err().code, ErrorCode::NameInvalid, "{bad}");
        }
        assert!(RepositoryName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn library_prefix_only_for_single_component() {
        assert_eq!(RepositoryName::parse("alpine").unwrap().with_library_prefix().as_str(), "library/alpine");
        assert_eq!(RepositoryName::parse("foo/alpine").unwrap().with_library_prefix().as_str(), "foo/alpine");
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("v1.2-rc_3").unwrap(), Reference::Tag(_)));
        assert!(matches!(
            Reference::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            Reference::Digest(_)
        ));
        assert_eq!(Reference::parse("sha256:zz").unwrap_err().code, ErrorCode::DigestInvalid);
        assert_eq!(Reference::parse(".hidden").unwrap_err().code, ErrorCode::TagInvalid);
        assert_eq!(Reference::parse(&"a".repeat(129)).unwrap_err().code, ErrorCode::TagInvalid);
    }

    #[test]
    fn group_paths() {
        assert!(GroupPath::parse("acme/platform").is_ok());
        assert!(GroupPath::parse("Acme_1.x").is_ok());
        for bad in ["", "a/../b", "..", "a//b", "a b", "a/%2e"] {
            assert!(GroupPath::parse(bad).is_err(), "{bad}");
        }
    }
}
