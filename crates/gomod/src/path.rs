//! The one parser from a GOPROXY request path to an [`Endpoint`]: the module proxy protocol's
//! `@v/list`, `@latest`, `.info`, `.mod`, `.zip`, and the checksum-database proxy paths under
//! `sumdb/{name}/`. Nothing invalid gets past it to policy, storage or an upstream.
//!
//! The path given is what follows the group prefix, without the leading slash and the query, as
//! the client sent it. Module paths are written in the `!`-case encoding and never need a percent
//! escape, so a `%` in one is refused. The go command percent-escapes a version (`url.PathEscape`),
//! so a version segment is percent-decoded once and must then be a valid escaped version. Tile
//! paths must be in the one form golang.org/x/mod/sumdb/tlog writes, so two spellings of a tile
//! never reach the cache.

use crate::error::PathError;
use crate::escape::{unescape_path, unescape_version};

const MAX_PATH_LEN: usize = 2048;
/// tlog's limit on a tile's height.
const MAX_TILE_HEIGHT: u32 = 30;

/// What a GOPROXY request path asks for. Modules and versions are unescaped
/// (`github.com/Azure/x`, `v1.0.0-RC1`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `{module}/@v/list`: the known versions (a document).
    List { module: String },
    /// `{module}/@latest`: the latest version's info (a document).
    Latest { module: String },
    /// `{module}/@v/{version}.info`.
    Info { module: String, version: String },
    /// `{module}/@v/{version}.mod`.
    Mod { module: String, version: String },
    /// `{module}/@v/{version}.zip`.
    Zip { module: String, version: String },
    /// `sumdb/{name}/supported`: whether the proxy proxies that checksum database.
    SumdbSupported { name: String },
    /// `sumdb/{name}/lookup/{module}@{version}`.
    SumdbLookup { name: String, module: String, version: String },
    /// `sumdb/{name}/tile/{H}/{L}/{NNN…}[.p/{W}]` or `tile/{H}/data/…`: immutable, a partial
    /// `.p/W` tile too (a fuller tile has another path). `path` starts at `tile/`.
    SumdbTile { name: String, path: String },
    /// `sumdb/{name}/latest`: the signed tree head (a document).
    SumdbLatest { name: String },
}

impl Endpoint {
    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::List { .. } => "list",
            Endpoint::Latest { .. } => "latest",
            Endpoint::Info { .. } => "info",
            Endpoint::Mod { .. } => "mod",
            Endpoint::Zip { .. } => "zip",
            Endpoint::SumdbSupported { .. } => "sumdb_supported",
            Endpoint::SumdbLookup { .. } => "sumdb_lookup",
            Endpoint::SumdbTile { .. } => "sumdb_tile",
            Endpoint::SumdbLatest { .. } => "sumdb_latest",
        }
    }

    /// The module the request is about (unescaped), when it names one.
    pub fn module(&self) -> Option<&str> {
        match self {
            Endpoint::List { module }
            | Endpoint::Latest { module }
            | Endpoint::Info { module, .. }
            | Endpoint::Mod { module, .. }
            | Endpoint::Zip { module, .. }
            | Endpoint::SumdbLookup { module, .. } => Some(module),
            _ => None,
        }
    }

    /// The version the request names (unescaped), when it names one.
    pub fn version(&self) -> Option<&str> {
        match self {
            Endpoint::Info { version, .. }
            | Endpoint::Mod { version, .. }
            | Endpoint::Zip { version, .. }
            | Endpoint::SumdbLookup { version, .. } => Some(version),
            _ => None,
        }
    }

    /// True when the answer can change: the list, `@latest`, the sumdb's `supported` and `latest`,
    /// a lookup (its answer ends with the current signed tree head), and `.info`/`.mod`/`.zip` of a
    /// version that is not canonical (`@v/master.info` is a query the proxy resolves).
    pub fn is_mutable(&self) -> bool {
        match self {
            Endpoint::List { .. }
            | Endpoint::Latest { .. }
            | Endpoint::SumdbSupported { .. }
            | Endpoint::SumdbLatest { .. }
            | Endpoint::SumdbLookup { .. } => true,
            Endpoint::Info { version, .. }
            | Endpoint::Mod { version, .. }
            | Endpoint::Zip { version, .. } => !is_canonical_version(version),
            Endpoint::SumdbTile { .. } => false,
        }
    }
}

/// Parses the path after the group prefix (e.g. `github.com/!azure/x/@v/v1.0.0.zip`,
/// `sumdb/sum.example.com/lookup/example.com/m@v1.0.0`).
pub fn parse_path(rest: &str) -> Result<Endpoint, PathError> {
    let invalid = |reason| PathError::Invalid { path: rest.to_owned(), reason };
    if rest.is_empty() {
        return Err(invalid("empty path"));
    }
    if rest.len() > MAX_PATH_LEN {
        return Err(invalid("path too long"));
    }
    // A module's first element has a dot, so `sumdb/…` is never a module.
    if let Some(sumdb) = rest.strip_prefix("sumdb/") {
        return parse_sumdb(rest, sumdb);
    }
    // An escaped module path has no `@`.
    let Some((escaped_module, endpoint)) = rest.split_once("/@") else {
        return Err(invalid("not {module}/@v/… or {module}/@latest"));
    };
    let module = unescape_path(&decode_module(rest, escaped_module)?)?;
    if endpoint == "latest" {
        return Ok(Endpoint::Latest { module });
    }
    let Some(file) = endpoint.strip_prefix("v/") else {
        return Err(invalid("not {module}/@v/… or {module}/@latest"));
    };
    if file == "list" {
        return Ok(Endpoint::List { module });
    }
    let Some((version, extension)) = file.rsplit_once('.') else {
        return Err(invalid("not list, .info, .mod or .zip"));
    };
    let version = parse_version(rest, version)?;
    match extension {
        "info" => Ok(Endpoint::Info { module, version }),
        "mod" => Ok(Endpoint::Mod { module, version }),
        "zip" => Ok(Endpoint::Zip { module, version }),
        _ => Err(invalid("not list, .info, .mod or .zip")),
    }
}

fn parse_sumdb(rest: &str, sumdb: &str) -> Result<Endpoint, PathError> {
    let invalid = |reason| PathError::Invalid { path: rest.to_owned(), reason };
    let Some((name, endpoint)) = sumdb.split_once('/') else {
        return Err(invalid("not sumdb/{name}/…"));
    };
    if !sumdb_name_is_valid(name) {
        return Err(invalid("a checksum database's name is a host name"));
    }
    let name = name.to_owned();
    match endpoint {
        "supported" => return Ok(Endpoint::SumdbSupported { name }),
        "latest" => return Ok(Endpoint::SumdbLatest { name }),
        _ => {}
    }
    if let Some(lookup) = endpoint.strip_prefix("lookup/") {
        let Some((escaped_module, version)) = lookup.split_once('@') else {
            return Err(invalid("a lookup is lookup/{module}@{version}"));
        };
        let module = unescape_path(&decode_module(rest, escaped_module)?)?;
        let version = parse_version(rest, version)?;
        return Ok(Endpoint::SumdbLookup { name, module, version });
    }
    if endpoint.starts_with("tile/") {
        if !tile_path_is_valid(endpoint) {
            return Err(invalid("not a tile path as golang.org/x/mod/sumdb/tlog writes one"));
        }
        return Ok(Endpoint::SumdbTile { name, path: endpoint.to_owned() });
    }
    Err(invalid("not a checksum database endpoint (supported, latest, lookup/…, tile/…)"))
}

/// An escaped module path as the go command sends it: it percent-escapes the `!` of the case
/// encoding in file paths (`example.com/%21beta/@v/v1.0.0.zip`), nothing else. Decoded once; a
/// `%` left after that is refused.
fn decode_module(rest: &str, segment: &str) -> Result<String, PathError> {
    let decoded = segment.replace("%21", "!");
    if decoded.contains('%') {
        return Err(PathError::Invalid {
            path: rest.to_owned(),
            reason: "a module path escapes nothing but the '!' of its case encoding",
        });
    }
    Ok(decoded)
}

/// A version segment: percent-decoded once, then unescaped. A `%` left after decoding is double
/// encoding.
fn parse_version(rest: &str, segment: &str) -> Result<String, PathError> {
    let invalid = |reason| PathError::Invalid { path: rest.to_owned(), reason };
    let decoded = decode(segment).ok_or_else(|| invalid("bad percent-encoding"))?;
    if decoded.contains(['%', '/', '\\']) {
        return Err(invalid("a version has no '/', '\\' or '%'"));
    }
    unescape_version(&decoded)
}

fn sumdb_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'))
}

/// `tile/{H}/{L|data}/{x000/…/000}[.p/{W}]` in tlog's one spelling: decimals without leading
/// zeros, H in 1..=30, the index in three-digit groups (all but the last prefixed with `x`, the
/// first of several not `x000`), W in 1..2^H.
fn tile_path_is_valid(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let [_tile, height, level, index @ ..] = segments.as_slice() else { return false };
    let Some(height) = canonical_decimal(height) else { return false };
    if !(1..=u64::from(MAX_TILE_HEIGHT)).contains(&height) {
        return false;
    }
    if *level != "data" && canonical_decimal(level).is_none_or(|level| level > 63) {
        return false;
    }
    let index = match index {
        [groups @ .., last_group, width] if last_group.ends_with(".p") => {
            let Some(width) = canonical_decimal(width) else { return false };
            if width == 0 || width >= 1 << height {
                return false;
            }
            let mut groups = groups.to_vec();
            groups.push(&last_group[..last_group.len() - ".p".len()]);
            groups
        }
        groups => groups.to_vec(),
    };
    // An int64 index has at most seven groups.
    let Some((last, leading)) = index.split_last() else { return false };
    if index.len() > 7 || !is_three_digits(last) {
        return false;
    }
    if leading.first().is_some_and(|first| *first == "x000") {
        return false;
    }
    leading.iter().all(|group| group.strip_prefix('x').is_some_and(is_three_digits))
}

fn is_three_digits(group: &str) -> bool {
    group.len() == 3 && group.bytes().all(|b| b.is_ascii_digit())
}

/// A decimal as Go's `%d` writes it: digits, no leading zero (except `0` itself), fits in u64.
fn canonical_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

/// A canonical module version (golang.org/x/mod/semver's `Canonical` form, `+incompatible`
/// allowed): `vMAJOR.MINOR.PATCH[-prerelease][+incompatible]`. Only such versions name fixed
/// content; anything else (`master`, `v1`, a commit hash) is a query.
pub fn is_canonical_version(version: &str) -> bool {
    let version = version.strip_suffix("+incompatible").unwrap_or(version);
    let Some(version) = version.strip_prefix('v') else { return false };
    let (core, prerelease) = match version.split_once('-') {
        Some((core, prerelease)) => (core, Some(prerelease)),
        None => (version, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || !numbers.iter().all(|n| is_numeric_identifier(n)) {
        return false;
    }
    prerelease.is_none_or(|prerelease| {
        prerelease.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!id.bytes().all(|b| b.is_ascii_digit()) || is_numeric_identifier(id))
        })
    })
}

fn is_numeric_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'))
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
    use crate::escape::{escape_path, escape_version};
    use proptest::prelude::*;

    fn ok(path: &str) -> Endpoint {
        parse_path(path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[test]
    fn module_endpoints() {
        let module = || "github.com/Azure/azure-sdk-for-go".to_owned();
        assert_eq!(ok("github.com/!azure/azure-sdk-for-go/@v/list"), Endpoint::List { module: module() });
        assert_eq!(ok("github.com/!azure/azure-sdk-for-go/@latest"), Endpoint::Latest { module: module() });
        assert_eq!(
            ok("github.com/!azure/azure-sdk-for-go/@v/v1.0.0.info"),
            Endpoint::Info { module: module(), version: "v1.0.0".into() }
        );
        assert_eq!(
            ok("example.com/m/@v/v1.0.0-!r!c1.mod"),
            Endpoint::Mod { module: "example.com/m".into(), version: "v1.0.0-RC1".into() }
        );
        assert_eq!(
            ok("example.com/m/v2/@v/v2.0.0+incompatible.zip"),
            Endpoint::Zip { module: "example.com/m/v2".into(), version: "v2.0.0+incompatible".into() }
        );
        // The go command percent-escapes the version; a `+` may come either way.
        assert_eq!(
            ok("example.com/m/@v/v2.0.0%2Bincompatible.zip"),
            Endpoint::Zip { module: "example.com/m".into(), version: "v2.0.0+incompatible".into() }
        );
        assert_eq!(
            ok("example.com/m/@v/master.info"),
            Endpoint::Info { module: "example.com/m".into(), version: "master".into() }
        );
    }

    #[test]
    fn sumdb_endpoints() {
        let name = || "sum.example.com".to_owned();
        assert_eq!(ok("sumdb/sum.example.com/supported"), Endpoint::SumdbSupported { name: name() });
        assert_eq!(ok("sumdb/sum.example.com/latest"), Endpoint::SumdbLatest { name: name() });
        assert_eq!(
            ok("sumdb/sum.example.com/lookup/github.com/!azure/x@v1.2.3"),
            Endpoint::SumdbLookup {
                name: name(),
                module: "github.com/Azure/x".into(),
                version: "v1.2.3".into()
            }
        );
        for tile in [
            "tile/8/0/000",
            "tile/8/0/x001/234",
            "tile/8/1/x123/x456/789.p/255",
            "tile/8/data/x001/002.p/1",
            "tile/8/2/001",
            "tile/30/0/999",
        ] {
            assert_eq!(
                ok(&format!("sumdb/sum.example.com/{tile}")),
                Endpoint::SumdbTile { name: name(), path: tile.into() },
                "{tile}"
            );
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "example.com/m",
            "example.com/m/@v/",
            "example.com/m/@v/list/",
            "example.com/m/@v/v1.0.0",
            "example.com/m/@v/v1.0.0.tar",
            "example.com/m/@v/.info",
            "example.com/m/@v/..info",
            "example.com/m/@v/v1.0.0.info/x",
            "example.com/m/@v/v1%2f0.info",
            "example.com/m/@v/v1%252f0.info",
            "example.com/m/@v/v1%5c0.info",
            "example.com/m/@v/v1%00.info",
            "example.com/m/@v/v1%zz.info",
            "example.com/m/@v/v1.0.0-RC1.info",
            "example.com/m/@v/v1.0.0-!.info",
            "example.com/m/@latest/x",
            "example.com/m/@other",
            "example.com/Azure/@v/list",
            "example.com/a%2fb/@v/list",
            "example.com/../m/@v/list",
            "example.com//m/@v/list",
            "/example.com/m/@v/list",
            ".example.com/m/@v/list",
            "example.com/m\\x/@v/list",
            "nodot/m/@v/list",
            "@v/list",
            "sumdb",
            "sumdb/",
            "sumdb/sum.example.com",
            "sumdb/sum.example.com/",
            "sumdb/sum.example.com/other",
            "sumdb/../supported",
            "sumdb/Sum.Example.com/supported",
            "sumdb/sum.example.com/lookup/example.com/m",
            "sumdb/sum.example.com/lookup/example.com/m@",
            "sumdb/sum.example.com/lookup/example.com/!m!@v1",
            "sumdb/sum.example.com/tile/8/0",
            "sumdb/sum.example.com/tile/8/0/",
            "sumdb/sum.example.com/tile/0/0/000",
            "sumdb/sum.example.com/tile/31/0/000",
            "sumdb/sum.example.com/tile/08/0/000",
            "sumdb/sum.example.com/tile/8/00/000",
            "sumdb/sum.example.com/tile/8/0/00",
            "sumdb/sum.example.com/tile/8/0/0000",
            "sumdb/sum.example.com/tile/8/0/x000/001",
            "sumdb/sum.example.com/tile/8/0/001/002",
            "sumdb/sum.example.com/tile/8/0/x001",
            "sumdb/sum.example.com/tile/8/0/000.p/0",
            "sumdb/sum.example.com/tile/8/0/000.p/256",
            "sumdb/sum.example.com/tile/8/0/000.p/010",
            "sumdb/sum.example.com/tile/8/0/000.p",
            "sumdb/sum.example.com/tile/8/0/000.p/1/2",
            "sumdb/sum.example.com/tile/8/data/%30%30%30",
            "sumdb/sum.example.com/tile/+8/0/000",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?}: {:?}", parse_path(bad));
        }
        assert!(parse_path(&format!("example.com/{}/@v/list", "a/".repeat(1100))).is_err());
        assert_eq!(
            parse_path("example.com/Azure/@v/list").unwrap_err().to_string(),
            r#"invalid Go module path "example.com/Azure": bad !-case escaping"#
        );
    }

    #[test]
    fn mutability() {
        for (path, mutable) in [
            ("example.com/m/@v/list", true),
            ("example.com/m/@latest", true),
            ("example.com/m/@v/v1.0.0.info", false),
            ("example.com/m/@v/v1.0.0.mod", false),
            ("example.com/m/@v/v1.0.0-rc.1.zip", false),
            ("example.com/m/@v/v2.0.0+incompatible.zip", false),
            ("example.com/m/@v/v0.0.0-20240101120000-abcdef123456.zip", false),
            ("example.com/m/@v/master.info", true),
            ("example.com/m/@v/v1.info", true),
            ("example.com/m/@v/v1.0.0+meta.info", true),
            ("sumdb/sum.example.com/supported", true),
            ("sumdb/sum.example.com/latest", true),
            ("sumdb/sum.example.com/lookup/example.com/m@v1.0.0", true),
            ("sumdb/sum.example.com/tile/8/0/000.p/3", false),
        ] {
            assert_eq!(ok(path).is_mutable(), mutable, "{path}");
        }
    }

    #[test]
    fn canonical_versions() {
        for canonical in ["v0.0.0", "v1.2.3", "v1.2.3-rc.1", "v1.2.3-0.20240101-abc", "v2.0.0+incompatible"] {
            assert!(is_canonical_version(canonical), "{canonical}");
        }
        for other in
            ["1.2.3", "v1.2", "v01.2.3", "v1.2.3-", "v1.2.3-01", "v1.2.3+meta", "v1.2.3-a..b", "master"]
        {
            assert!(!is_canonical_version(other), "{other}");
        }
    }

    #[test]
    fn endpoint_helpers() {
        let zip = ok("example.com/!m/@v/v1.0.0.zip");
        assert_eq!((zip.kind(), zip.module(), zip.version()), ("zip", Some("example.com/M"), Some("v1.0.0")));
        let tile = ok("sumdb/sum.example.com/tile/8/0/000");
        assert_eq!((tile.kind(), tile.module(), tile.version()), ("sumdb_tile", None, None));
    }

    proptest! {
        #[test]
        fn never_panics(path in "[-a-zA-Z0-9._~+%/@!\\\\ ]{0,60}") {
            let _ = parse_path(&path);
        }

        #[test]
        fn module_paths_round_trip(
            host in "[a-z0-9]{1,8}\\.[a-z]{2,5}",
            rest in proptest::collection::vec("[a-zA-Z0-9_-]{1,10}", 0..4),
            version in "v[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-zA-Z0-9]{1,6})?",
            file in proptest::sample::select(vec!["info", "mod", "zip"]),
        ) {
            let module = std::iter::once(host).chain(rest).collect::<Vec<_>>().join("/");
            prop_assume!(crate::escape::check_path(&module).is_ok());
            let path = format!("{}/@v/{}.{file}", escape_path(&module).unwrap(), escape_version(&version).unwrap());
            let endpoint = parse_path(&path).unwrap();
            prop_assert_eq!(endpoint.kind(), file);
            prop_assert_eq!(endpoint.module(), Some(module.as_str()));
            prop_assert_eq!(endpoint.version(), Some(version.as_str()));
        }

        #[test]
        fn tile_paths_round_trip(height in 1u32..=30, level in proptest::option::of(0u64..10), index in 0u64..1_000_000_000_000, width in proptest::option::of(1u64..1 << 30)) {
            // tlog.Tile.Path's spelling.
            let mut groups = vec![format!("{:03}", index % 1000)];
            let mut rest = index / 1000;
            while rest > 0 {
                groups.insert(0, format!("x{:03}", rest % 1000));
                rest /= 1000;
            }
            let level = level.map_or("data".to_owned(), |level| level.to_string());
            let mut path = format!("tile/{height}/{level}/{}", groups.join("/"));
            if let Some(width) = width.filter(|width| *width < 1 << height) {
                path.push_str(&format!(".p/{width}"));
            }
            prop_assert_eq!(
                parse_path(&format!("sumdb/sum.example.com/{path}")).unwrap(),
                Endpoint::SumdbTile { name: "sum.example.com".into(), path }
            );
        }
    }
}
