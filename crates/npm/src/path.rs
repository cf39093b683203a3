//! The one parser from an npm request path to an [`Endpoint`]. Names, versions and tarball file
//! names are validated here, so nothing invalid reaches policy, the database, storage or an upstream.
//!
//! The path given is what follows the group prefix (`/npm/<group>/`), without the leading slash and
//! without the query. The name part is percent-decoded once (clients write `@scope%2fname`, some
//! `%40scope%2Fname`), then validated: a `%` still present after that one decoding is refused.

use crate::name::{NameError, PackageName};

/// What an npm request path asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `{name}`, `@scope%2fname`, `@scope/name`: the packument.
    Packument { name: PackageName },
    /// `{name}/-/{file}.tgz`: a version's tarball.
    Tarball { name: PackageName, file: String },
    /// `{name}/{version}`: one version's document (`version` may also be a dist-tag).
    VersionDocument { name: PackageName, version: String },
    /// `-/ping` (`npm ping`).
    Ping,
    /// `-/whoami` (`npm whoami`).
    Whoami,
    /// `-/npm/v1/security/advisories/bulk` (`npm audit`).
    AuditBulk,
    /// `-/npm/v1/security/audits/quick` (older `npm audit`).
    AuditQuick,
    /// `-/package/{name}/dist-tags` (`npm dist-tag ls`).
    DistTags { name: PackageName },
    /// `-/v1/search` (`npm search`).
    Search,
}

impl Endpoint {
    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Packument { .. } => "packument",
            Endpoint::Tarball { .. } => "tarball",
            Endpoint::VersionDocument { .. } => "version",
            Endpoint::Ping => "ping",
            Endpoint::Whoami => "whoami",
            Endpoint::AuditBulk => "audit_bulk",
            Endpoint::AuditQuick => "audit_quick",
            Endpoint::DistTags { .. } => "dist_tags",
            Endpoint::Search => "search",
        }
    }

    /// The package the request is about, when it names one.
    pub fn package(&self) -> Option<&PackageName> {
        match self {
            Endpoint::Packument { name }
            | Endpoint::Tarball { name, .. }
            | Endpoint::VersionDocument { name, .. }
            | Endpoint::DistTags { name } => Some(name),
            _ => None,
        }
    }
}

/// Why a request path names no endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The package name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A registry endpoint (`-/…`) this proxy does not serve.
    #[error("unsupported npm registry endpoint: /{path}")]
    Unsupported { path: String },
    /// The path has the wrong shape, or a version or tarball file name that cannot be valid.
    #[error("invalid npm request path /{path}: {reason}")]
    Invalid { path: String, reason: &'static str },
}

/// Parses the path after the group prefix (e.g. `@types%2fnode`, `lodash/-/lodash-4.17.21.tgz`).
pub fn parse_path(rest: &str) -> Result<Endpoint, PathError> {
    let invalid = |reason| PathError::Invalid { path: rest.to_owned(), reason };
    if let Some(special) = rest.strip_prefix("-/") {
        return match special {
            "ping" => Ok(Endpoint::Ping),
            "whoami" => Ok(Endpoint::Whoami),
            "npm/v1/security/advisories/bulk" => Ok(Endpoint::AuditBulk),
            "npm/v1/security/audits/quick" => Ok(Endpoint::AuditQuick),
            "v1/search" => Ok(Endpoint::Search),
            _ => match special.strip_prefix("package/").and_then(|p| p.strip_suffix("/dist-tags")) {
                Some(name) => {
                    let (name, remaining) = split_name(name)?;
                    if remaining.is_empty() {
                        Ok(Endpoint::DistTags { name })
                    } else {
                        Err(invalid("a dist-tags path names one package"))
                    }
                }
                None => Err(PathError::Unsupported { path: rest.to_owned() }),
            },
        };
    }
    if rest.is_empty() {
        return Err(invalid("no package name"));
    }
    let (name, remaining) = split_name(rest)?;
    match remaining.as_slice() {
        [] => Ok(Endpoint::Packument { name }),
        ["-", file] => {
            let file = decode(file).ok_or_else(|| invalid("bad percent-encoding"))?;
            if !file_is_valid(&file) {
                return Err(invalid("a tarball is a plain file name ending in .tgz"));
            }
            Ok(Endpoint::Tarball { name, file })
        }
        [version] => {
            let version = decode(version).ok_or_else(|| invalid("bad percent-encoding"))?;
            if !version_is_valid(&version) {
                return Err(invalid("invalid version"));
            }
            Ok(Endpoint::VersionDocument { name, version })
        }
        _ => Err(invalid("not a package, version or tarball path")),
    }
}

/// Splits a path into the package name (one segment, or two for an unencoded scope) and the
/// segments after it.
fn split_name(path: &str) -> Result<(PackageName, Vec<&str>), PathError> {
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or("");
    let bad_encoding = || PathError::Invalid { path: path.to_owned(), reason: "bad percent-encoding" };
    let mut name = decode(first).ok_or_else(bad_encoding)?;
    // `@scope/name` written raw spans two segments; `@scope%2fname` is one.
    if name.starts_with('@') && !name.contains('/') {
        let second = segments.next().unwrap_or("");
        name.push('/');
        name.push_str(&decode(second).ok_or_else(bad_encoding)?);
    }
    let name = PackageName::parse(&name)?;
    Ok((name, segments.collect()))
}

/// Percent-decodes once. `None` when a `%` is not followed by two hex digits or the result is not
/// UTF-8.
pub(crate) fn decode(input: &str) -> Option<String> {
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

fn file_is_valid(file: &str) -> bool {
    file.len() > ".tgz".len()
        && file.len() <= 512
        && file.ends_with(".tgz")
        && !file.contains("..")
        && !file.starts_with('.')
        && file.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '\\' | '%' | '?' | '#'))
}

/// Versions are semver in practice, but a dist-tag (`latest`, `next`) is asked for the same way:
/// accept printable ASCII without path or encoding characters.
fn version_is_valid(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 256
        && version != "-"
        && version != "."
        && version != ".."
        && version.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '\\' | '%' | '?' | '#'))
}

/// The version a tarball file name carries: `lodash-4.17.21.tgz` → `4.17.21`. For a scoped package
/// the file starts with the bare name (`node-20.1.0.tgz` for `@types/node`).
pub fn tarball_version(name: &PackageName, file: &str) -> Option<String> {
    let version = file.strip_suffix(".tgz")?.strip_prefix(name.bare())?.strip_prefix('-')?;
    if version.is_empty() { None } else { Some(version.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NameErrorReason;
    use proptest::prelude::*;

    fn name(input: &str) -> PackageName {
        PackageName::parse(input).unwrap()
    }

    #[test]
    fn packuments() {
        for (path, expected) in [
            ("lodash", "lodash"),
            ("@types%2fnode", "@types/node"),
            ("@types%2Fnode", "@types/node"),
            ("@types/node", "@types/node"),
            ("%40types%2fnode", "@types/node"),
            ("%40types/node", "@types/node"),
        ] {
            assert_eq!(parse_path(path).unwrap(), Endpoint::Packument { name: name(expected) }, "{path}");
        }
    }

    #[test]
    fn tarballs() {
        assert_eq!(
            parse_path("lodash/-/lodash-4.17.21.tgz").unwrap(),
            Endpoint::Tarball { name: name("lodash"), file: "lodash-4.17.21.tgz".into() }
        );
        for path in ["@scope/name/-/name-1.0.0.tgz", "@scope%2fname/-/name-1.0.0.tgz"] {
            assert_eq!(
                parse_path(path).unwrap(),
                Endpoint::Tarball { name: name("@scope/name"), file: "name-1.0.0.tgz".into() },
                "{path}"
            );
        }
        assert_eq!(
            parse_path("pkg/-/pkg-1.0.0-beta.1%2Bbuild.5.tgz").unwrap(),
            Endpoint::Tarball { name: name("pkg"), file: "pkg-1.0.0-beta.1+build.5.tgz".into() }
        );
        for bad in [
            "lodash/-/lodash-4.17.21.tar.gz",
            "lodash/-/.tgz",
            "lodash/-/..%2f..%2fetc.tgz",
            "lodash/-/a%2fb.tgz",
            "lodash/-/a..b.tgz",
            "lodash/-/a%252fb.tgz",
            "lodash/-/a b.tgz",
            "lodash/-/x/y.tgz",
            "lodash/-/",
            "lodash/-/%zz.tgz",
            "lodash/-/%+1.tgz",
        ] {
            assert!(
                matches!(parse_path(bad), Err(PathError::Invalid { .. })),
                "{bad}: {:?}",
                parse_path(bad)
            );
        }
    }

    #[test]
    fn version_documents() {
        assert_eq!(
            parse_path("lodash/4.17.21").unwrap(),
            Endpoint::VersionDocument { name: name("lodash"), version: "4.17.21".into() }
        );
        assert_eq!(
            parse_path("@scope/name/latest").unwrap(),
            Endpoint::VersionDocument { name: name("@scope/name"), version: "latest".into() }
        );
        assert_eq!(
            parse_path("@scope%2fname/1.0.0").unwrap(),
            Endpoint::VersionDocument { name: name("@scope/name"), version: "1.0.0".into() }
        );
        for bad in ["lodash/", "lodash/..", "lodash/-", "lodash/1.0%2f2", "lodash/1.0/extra", "@scope/name/"]
        {
            assert!(
                matches!(parse_path(bad), Err(PathError::Invalid { .. })),
                "{bad}: {:?}",
                parse_path(bad)
            );
        }
    }

    #[test]
    fn registry_endpoints() {
        assert_eq!(parse_path("-/ping").unwrap(), Endpoint::Ping);
        assert_eq!(parse_path("-/whoami").unwrap(), Endpoint::Whoami);
        assert_eq!(parse_path("-/npm/v1/security/advisories/bulk").unwrap(), Endpoint::AuditBulk);
        assert_eq!(parse_path("-/npm/v1/security/audits/quick").unwrap(), Endpoint::AuditQuick);
        assert_eq!(parse_path("-/v1/search").unwrap(), Endpoint::Search);
        for (path, expected) in [
            ("-/package/lodash/dist-tags", "lodash"),
            ("-/package/@types%2fnode/dist-tags", "@types/node"),
            ("-/package/@types/node/dist-tags", "@types/node"),
        ] {
            assert_eq!(parse_path(path).unwrap(), Endpoint::DistTags { name: name(expected) }, "{path}");
        }
        for unsupported in
            ["-/user/org.couchdb.user:me", "-/all", "-/v1/login", "-/", "-/package/x/collaborators"]
        {
            assert_eq!(
                parse_path(unsupported).unwrap_err(),
                PathError::Unsupported { path: unsupported.into() },
                "{unsupported}"
            );
        }
        assert!(matches!(parse_path("-/package/a/b/dist-tags"), Err(PathError::Invalid { .. })));
        assert!(matches!(parse_path("-/package/Bad/dist-tags"), Err(PathError::Name(_))));
    }

    #[test]
    fn bad_names() {
        let cases = [
            ("Lodash", NameErrorReason::Uppercase),
            ("@types%252fnode", NameErrorReason::Percent),
            (".bin", NameErrorReason::LeadingDotOrUnderscore),
            ("@types", NameErrorReason::BadScope),
            ("a%2fb", NameErrorReason::Slash),
            ("has%20space", NameErrorReason::Space),
        ];
        for (path, reason) in cases {
            match parse_path(path) {
                Err(PathError::Name(error)) => assert_eq!(error.reason, reason, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(matches!(parse_path(""), Err(PathError::Invalid { .. })));
        assert!(matches!(parse_path("%e9"), Err(PathError::Invalid { .. })));
        assert_eq!(
            parse_path("Foo").unwrap_err().to_string(),
            r#"invalid package name "Foo": npm package names are lowercase"#
        );
    }

    #[test]
    fn endpoint_helpers() {
        let endpoint = parse_path("@a/b/-/b-1.0.0.tgz").unwrap();
        assert_eq!(endpoint.kind(), "tarball");
        assert_eq!(endpoint.package().map(PackageName::as_str), Some("@a/b"));
        assert_eq!(Endpoint::Ping.package(), None);
    }

    #[test]
    fn tarball_versions() {
        assert_eq!(tarball_version(&name("lodash"), "lodash-4.17.21.tgz").as_deref(), Some("4.17.21"));
        assert_eq!(tarball_version(&name("@types/node"), "node-20.1.0.tgz").as_deref(), Some("20.1.0"));
        assert_eq!(
            tarball_version(&name("left-pad"), "left-pad-1.0.0-rc.1.tgz").as_deref(),
            Some("1.0.0-rc.1")
        );
        assert_eq!(tarball_version(&name("lodash"), "lodash.tgz"), None);
        assert_eq!(tarball_version(&name("lodash"), "lodash-.tgz"), None);
        assert_eq!(tarball_version(&name("lodash"), "underscore-1.0.0.tgz"), None);
        assert_eq!(tarball_version(&name("lodash"), "lodash-1.0.0.tar.gz"), None);
    }

    proptest! {
        #[test]
        fn never_panics(path in "[-@%/a-zA-Z0-9._~ ]{0,40}") {
            let _ = parse_path(&path);
        }

        #[test]
        fn tarball_paths_round_trip(
            scope in proptest::option::of("[a-z0-9][a-z0-9-]{0,10}"),
            bare in "[a-z0-9][a-z0-9.-]{0,20}",
            version in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9]{1,5})?",
        ) {
            let input = match &scope { Some(s) => format!("@{s}/{bare}"), None => bare.clone() };
            let package = PackageName::parse(&input).unwrap();
            let path = package.tarball_path(&version);
            prop_assume!(!path.contains(".."));
            match parse_path(&path).unwrap() {
                Endpoint::Tarball { name, file } => {
                    prop_assert_eq!(&name, &package);
                    prop_assert_eq!(tarball_version(&name, &file), Some(version));
                }
                other => prop_assert!(false, "{other:?}"),
            }
            prop_assert_eq!(parse_path(&package.upstream_path()).unwrap(), Endpoint::Packument { name: package });
        }
    }
}
