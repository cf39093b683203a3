//! The one parser from a Cargo sparse registry request path to an [`Endpoint`]: `config.json`, an
//! index file, a crate download through the proxy's own `dl`, or another `api/` path. Nothing
//! invalid gets past it to policy, storage or an upstream.
//!
//! The path given is what follows the group prefix, without the leading slash and the query, as
//! cargo sent it. Index paths are cargo's lower-case spelling only (cargo never asks another, and
//! one spelling per file keeps the cache from holding two copies); they never need a `%`. The
//! version of a download is percent-decoded once (a `+` may come as `%2B`).

use crate::name::{CrateName, NameError};

const MAX_PATH_LEN: usize = 1024;
const MAX_VERSION_LEN: usize = 128;

/// What a sparse registry request path asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `config.json`.
    Config,
    /// An index file path (`se/rd/serde`); the name is the file's, lower case.
    IndexFile { name: CrateName },
    /// `api/v1/crates/{name}/{version}/download`: a `.crate` through the proxy's own `dl`.
    Download { name: CrateName, version: String },
    /// Any other `api/…` path (publish, search, owners…), kept as given: not served by a
    /// read-only proxy.
    Api { path: String },
}

impl Endpoint {
    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Config => "config",
            Endpoint::IndexFile { .. } => "index",
            Endpoint::Download { .. } => "download",
            Endpoint::Api { .. } => "api",
        }
    }

    /// The crate the request is about, when it names one.
    pub fn crate_name(&self) -> Option<&CrateName> {
        match self {
            Endpoint::IndexFile { name } | Endpoint::Download { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Why a request path names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The crate name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The path has the wrong shape.
    #[error("invalid Cargo registry path /{path}: {reason}")]
    Invalid { path: String, reason: &'static str },
}

/// Parses the path after the group prefix (e.g. `se/rd/serde`, `api/v1/crates/serde/1.0.0/download`).
pub fn parse_path(rest: &str) -> Result<Endpoint, PathError> {
    let invalid = |reason| PathError::Invalid { path: rest.to_owned(), reason };
    if rest.is_empty() {
        return Err(invalid("empty path"));
    }
    if rest.len() > MAX_PATH_LEN {
        return Err(invalid("path too long"));
    }
    if rest == "config.json" {
        return Ok(Endpoint::Config);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return Err(invalid("empty path segment"));
    }
    if segments[0] == "api" {
        return parse_api(rest, &segments);
    }
    let (prefix, file) = match segments.as_slice() {
        [prefix @ .., file] => (prefix, *file),
        [] => return Err(invalid("empty path")),
    };
    if file.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("index paths are lower case"));
    }
    let name = CrateName::parse(file)?;
    if prefix.join("/") != name.prefix() {
        return Err(invalid("an index file is at 1/{n}, 2/{nn}, 3/{n}/{nnn} or {nn}/{nn}/{name}"));
    }
    Ok(Endpoint::IndexFile { name })
}

fn parse_api(rest: &str, segments: &[&str]) -> Result<Endpoint, PathError> {
    let invalid = |reason| PathError::Invalid { path: rest.to_owned(), reason };
    for segment in segments {
        let decoded = decode(segment).ok_or_else(|| invalid("bad percent-encoding"))?;
        if decoded == "." || decoded == ".." {
            return Err(invalid("dot segment"));
        }
        if decoded.chars().any(|c| matches!(c, '/' | '\\' | '%') || c.is_control() || c.is_whitespace()) {
            return Err(invalid("encoded separator, control character or space"));
        }
    }
    if let ["api", "v1", "crates", name, version, "download"] = segments {
        let name = CrateName::parse(name)?;
        let version = decode(version).ok_or_else(|| invalid("bad percent-encoding"))?;
        if !version_is_valid(&version) {
            return Err(invalid("a version has only ASCII letters, digits, '.', '-' and '+'"));
        }
        return Ok(Endpoint::Download { name, version });
    }
    Ok(Endpoint::Api { path: rest.to_owned() })
}

/// Semver's characters (`1.0.0-rc.1+build.5`), starting with a digit.
fn version_is_valid(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= MAX_VERSION_LEN
        && version.starts_with(|c: char| c.is_ascii_digit())
        && !version.contains("..")
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

/// Percent-decodes once; `None` for a malformed escape or a non-UTF-8 result.
fn decode(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = input.get(index + 1..index + 3)?;
            // from_str_radix alone would take a sign (`%+1`).
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(input: &str) -> CrateName {
        CrateName::parse(input).unwrap()
    }

    #[test]
    fn index_files() {
        for (path, expected) in [
            ("1/a", "a"),
            ("2/ab", "ab"),
            ("3/a/abc", "abc"),
            ("se/rd/serde", "serde"),
            ("to/ki/tokio-util", "tokio-util"),
        ] {
            assert_eq!(parse_path(path).unwrap(), Endpoint::IndexFile { name: name(expected) }, "{path}");
        }
        assert_eq!(parse_path("config.json").unwrap(), Endpoint::Config);
    }

    #[test]
    fn downloads() {
        assert_eq!(
            parse_path("api/v1/crates/serde/1.0.210/download").unwrap(),
            Endpoint::Download { name: name("serde"), version: "1.0.210".into() }
        );
        assert_eq!(
            parse_path("api/v1/crates/Inflector/0.11.4/download").unwrap(),
            Endpoint::Download { name: name("Inflector"), version: "0.11.4".into() }
        );
        for path in
            ["api/v1/crates/x/1.0.0-rc.1+build.5/download", "api/v1/crates/x/1.0.0-rc.1%2Bbuild.5/download"]
        {
            assert_eq!(
                parse_path(path).unwrap(),
                Endpoint::Download { name: name("x"), version: "1.0.0-rc.1+build.5".into() },
                "{path}"
            );
        }
    }

    #[test]
    fn other_api_paths() {
        for path in [
            "api/v1/crates",
            "api/v1/crates/new",
            "api/v1/crates/serde/owners",
            "api/v1/crates/serde/1.0.0/yank",
        ] {
            assert_eq!(parse_path(path).unwrap(), Endpoint::Api { path: path.into() }, "{path}");
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "/",
            "config.json/",
            "1/ab",
            "2/a",
            "3/b/abc",
            "3/abc",
            "ab/cd/abce",
            "se/rd/Serde",
            "Se/rd/serde",
            "se/rd/serde/",
            "se//serde",
            "se/rd",
            "serde",
            "se/rd/ser%64e",
            "1/1",
            "x/y/../serde",
            "api/v1/crates/serde/1.0.0/../../x",
            "api/v1/crates/serde/%2e%2e/download",
            "api/v1/crates/serde/1.0%2f0/download",
            "api/v1/crates/serde/1.0%252f0/download",
            "api/v1/crates/serde/1.0%zz/download",
            "api/v1/crates/serde/1.0\\0/download",
            "api/v1/crates/serde/1.0%00/download",
            "api/v1/crates/serde/1 0/download",
            "api/v1/crates/serde/v1.0/download",
            "api/v1/crates/serde/1..0/download",
            "api/v1/crates/se.rde/1.0.0/download",
            "api//v1",
            "api/",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?}: {:?}", parse_path(bad));
        }
        assert!(matches!(parse_path("api/v1/crates/1x/1.0.0/download"), Err(PathError::Name(_))));
        assert_eq!(
            parse_path("se/rd/Serde").unwrap_err().to_string(),
            "invalid Cargo registry path /se/rd/Serde: index paths are lower case"
        );
    }

    #[test]
    fn endpoint_helpers() {
        let download = parse_path("api/v1/crates/serde/1.0.0/download").unwrap();
        assert_eq!(
            (download.kind(), download.crate_name().map(CrateName::as_str)),
            ("download", Some("serde"))
        );
        assert_eq!((Endpoint::Config.kind(), Endpoint::Config.crate_name()), ("config", None));
    }

    proptest! {
        #[test]
        fn never_panics(path in "[-a-zA-Z0-9._~+%/\\\\ ]{0,60}") {
            let _ = parse_path(&path);
        }

        #[test]
        fn index_paths_round_trip(input in "[a-zA-Z][a-zA-Z0-9_-]{0,20}") {
            let crate_name = name(&input);
            let lower = name(&input.to_ascii_lowercase());
            prop_assert_eq!(parse_path(&crate_name.index_path()).unwrap(), Endpoint::IndexFile { name: lower });
        }
    }
}
