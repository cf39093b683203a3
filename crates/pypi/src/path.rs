//! The one parser from a PyPI request path (after `/pypi/<group>/`) to an [`Endpoint`]: the simple
//! index root, a project page, or a distribution file. Nothing invalid gets past it to policy,
//! storage or an upstream.

use crate::name::{NameError, ProjectName};

/// Extensions of the distribution files an index lists. Each may also carry `.metadata` (PEP 658).
pub const FILE_EXTENSIONS: [&str; 6] = [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".egg"];

/// What a PyPI request path asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `simple/` (or `simple`): the root listing of every project.
    Root,
    /// `simple/{project}/` (or without the trailing slash). The caller redirects to the normalized,
    /// slash-terminated URL when the request was not already that.
    Project { name: ProjectName, trailing_slash: bool },
    /// Any other path: a distribution file (or its `.metadata`), relative to the group, as the
    /// rewritten index pointed the client at it (`packages/foo-1.0.tar.gz`,
    /// `files/packages/ab/cd/foo-1.0-py3-none-any.whl.metadata`). Kept as written (not decoded).
    File { path: String },
}

impl Endpoint {
    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Root => "root",
            Endpoint::Project { .. } => "project",
            Endpoint::File { .. } => "file",
        }
    }

    /// True for a project request the caller should redirect: the name is not normalized or the
    /// trailing slash is missing.
    pub fn needs_redirect(&self) -> bool {
        matches!(self, Endpoint::Project { name, trailing_slash } if !trailing_slash || !name.is_normalized())
    }
}

/// Why a request path names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `simple/{project}/` with an invalid project name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Neither the index nor a distribution file.
    #[error("not a distribution file: /{path} ({reason})")]
    NotAFile { path: String, reason: &'static str },
}

/// Parses the path after the group prefix, without the leading slash and the query.
pub fn parse_path(rest: &str) -> Result<Endpoint, PathError> {
    if rest == "simple" || rest == "simple/" {
        return Ok(Endpoint::Root);
    }
    if let Some(project) = rest.strip_prefix("simple/") {
        let (project, trailing_slash) = match project.strip_suffix('/') {
            Some(project) => (project, true),
            None => (project, false),
        };
        // `simple/foo-1.0.tar.gz` is read as a file: a project named like a file would only be
        // reachable with the slash, which is how every client asks for a project anyway.
        let looks_like_file = !trailing_slash && file_extension(project).is_some();
        if !project.contains('/') && !looks_like_file {
            return Ok(Endpoint::Project { name: ProjectName::parse(project)?, trailing_slash });
        }
    }
    check_file_path(rest)?;
    Ok(Endpoint::File { path: rest.to_owned() })
}

fn check_file_path(path: &str) -> Result<(), PathError> {
    let refuse = |reason| Err(PathError::NotAFile { path: path.to_owned(), reason });
    if path.is_empty() {
        return refuse("empty path");
    }
    if path.len() > 1024 {
        return refuse("path too long");
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return refuse("empty path segment");
        }
        // Decoded, a segment must still be a plain name: no `.`/`..` (also as `%2e`), no encoded
        // separator, nothing an upstream's decoding could turn into a traversal.
        let Some(decoded) = decode(segment) else { return refuse("bad percent-encoding") };
        if decoded == "." || decoded == ".." {
            return refuse("dot segment");
        }
        if decoded.chars().any(|c| matches!(c, '/' | '\\' | '%') || c.is_control()) {
            return refuse("encoded separator or control character");
        }
        if segment.chars().any(|c| c.is_whitespace() || matches!(c, '?' | '#')) {
            return refuse("character that is not URL-safe");
        }
    }
    let file = path.rsplit('/').next().unwrap_or(path);
    if file_extension(file).is_none() {
        return refuse("not a wheel, sdist or egg (nor its .metadata)");
    }
    Ok(())
}

/// The distribution extension a file name ends with (after removing a `.metadata` suffix).
pub(crate) fn file_extension(file: &str) -> Option<&'static str> {
    let file = file.strip_suffix(".metadata").unwrap_or(file);
    let lower = file.to_ascii_lowercase();
    FILE_EXTENSIONS.into_iter().find(|extension| lower.len() > extension.len() && lower.ends_with(extension))
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

    #[test]
    fn root() {
        assert_eq!(parse_path("simple").unwrap(), Endpoint::Root);
        assert_eq!(parse_path("simple/").unwrap(), Endpoint::Root);
    }

    #[test]
    fn projects() {
        match parse_path("simple/requests/").unwrap() {
            Endpoint::Project { name, trailing_slash: true } => assert_eq!(name.as_written(), "requests"),
            other => panic!("{other:?}"),
        }
        let endpoint = parse_path("simple/requests/").unwrap();
        assert!(!endpoint.needs_redirect());
        assert_eq!(endpoint.kind(), "project");
        let endpoint = parse_path("simple/requests").unwrap();
        assert!(matches!(endpoint, Endpoint::Project { trailing_slash: false, .. }));
        assert!(endpoint.needs_redirect());
        let endpoint = parse_path("simple/Zope.Interface/").unwrap();
        match &endpoint {
            Endpoint::Project { name, .. } => assert_eq!(name.normalized(), "zope-interface"),
            other => panic!("{other:?}"),
        }
        assert!(endpoint.needs_redirect());
        // A project whose name ends like a file is still a project when asked with the slash.
        assert!(matches!(parse_path("simple/foo.zip/").unwrap(), Endpoint::Project { .. }));
    }

    #[test]
    fn bad_project_names() {
        for bad in ["simple/-foo/", "simple/foo%2fbar/", "simple/foo bar/", "simple/_/", "simple//"] {
            assert!(matches!(parse_path(bad), Err(PathError::Name(_))), "{bad}: {:?}", parse_path(bad));
        }
    }

    #[test]
    fn files() {
        for ok in [
            "packages/foo-1.0.tar.gz",
            "packages/foo-1.0-py3-none-any.whl",
            "packages/foo-1.0-py3-none-any.whl.metadata",
            "files/packages/ab/cd/0123456789abcdef/foo-1.0-py3-none-any.whl",
            "files/packages/ab/cd/foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl.metadata",
            "root/pypi/+f/1a2/b3c4d5e6f7a8b/foo-1.0.zip",
            "packages/Foo-1.0.TAR.GZ",
            "packages/foo-1.0.tar.bz2",
            "packages/foo-1.0.tgz",
            "packages/foo-1.0-py2.7.egg",
            "packages/foo-1.0%2Blocal.tar.gz",
            "simple/foo/foo-1.0.tar.gz",
            "simple/foo-1.0.tar.gz",
            "foo-1.0.tar.gz",
        ] {
            assert_eq!(parse_path(ok).unwrap(), Endpoint::File { path: ok.into() }, "{ok}");
        }
    }

    #[test]
    fn refused_files() {
        for bad in [
            "",
            "/packages/foo-1.0.tar.gz",
            "packages//foo-1.0.tar.gz",
            "packages/../foo-1.0.tar.gz",
            "packages/./foo-1.0.tar.gz",
            "packages/%2e%2e/foo-1.0.tar.gz",
            "packages/%2E./foo-1.0.tar.gz",
            "packages%2ffoo-1.0.tar.gz",
            "packages%2Ffoo-1.0.tar.gz",
            "packages%5cfoo-1.0.tar.gz",
            "packages/%252e%252e/foo-1.0.tar.gz",
            "packages/foo-1.0.tar.gz/",
            "packages/foo-1.0.txt",
            "packages/foo-1.0.metadata",
            "packages/.whl",
            "packages/foo-1.0.tar.gz.asc",
            "packages/%zz/foo-1.0.tar.gz",
            "packages/foo 1.0.tar.gz",
            "packages/foo%00.tar.gz",
            "simple/foo/bar/",
            "index.html",
        ] {
            assert!(
                matches!(parse_path(bad), Err(PathError::NotAFile { .. })),
                "{bad}: {:?}",
                parse_path(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(path in "[-a-zA-Z0-9._%/ +]{0,40}") {
            if let Ok(Endpoint::File { path: file }) = parse_path(&path) {
                prop_assert!(!file.split('/').any(|s| s == ".." || s.is_empty()));
            }
        }
    }
}
