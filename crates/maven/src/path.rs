//! The one parser from a Maven 2 repository request path to an [`Endpoint`]: a metadata document
//! or a file in a version directory (with its checksum sidecars). Nothing invalid gets past it to
//! policy, storage or an upstream.
//!
//! The path given is what follows the group prefix, without the leading slash and the query, as the
//! client sent it. Maven clients do not percent-encode (every character of a coordinate is URL-safe),
//! but an escape of an allowed character is decoded; whatever a segment decodes to must be made of
//! ASCII letters, digits and `.-_+~`, so an encoded separator, a `%` left by double encoding, a
//! backslash or a control character is refused.
//!
//! Two choices worth knowing:
//! - a group directory segment cannot contain `.`: the layout turns every dot of a groupId into a
//!   `/`, so `com/example.dp/…` would be a second spelling of `com.example.dp` — refusing it keeps
//!   [`ArtifactFile::path`] equal to the path asked;
//! - `archetype-catalog.xml` at the repository root (what `mvn archetype:generate` reads) is a
//!   [`Endpoint::Metadata`] with an empty `dir`: it changes like metadata, and `maven-metadata.xml`
//!   itself is never at the root, so the empty dir names it without a variant of its own.

use crate::sidecar::Sidecar;

/// The metadata document's file name in a directory.
pub const METADATA_FILE: &str = "maven-metadata.xml";
/// The archetype catalog's file name at the repository root.
pub const ARCHETYPE_CATALOG_FILE: &str = "archetype-catalog.xml";

const MAX_PATH_LEN: usize = 1024;
const MAX_SEGMENT_LEN: usize = 255;
const SNAPSHOT: &str = "-SNAPSHOT";

/// What a Maven request path asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `…/maven-metadata.xml` (or its sidecar) at artifact, group (plugin prefixes) or
    /// SNAPSHOT-version level: a mutable document. `dir` is the directory path (e.g.
    /// `org/apache/maven/plugins` or `com/example/app/1.0-SNAPSHOT`); empty for the root's
    /// `archetype-catalog.xml`.
    Metadata { dir: String, sidecar: Option<Sidecar> },
    /// A file in a version directory `{group/as/path}/{artifact}/{version}/{file}` (≥ 4 segments).
    Artifact(ArtifactFile),
}

/// A file in a version directory, named by its coordinates.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArtifactFile {
    /// Dotted: `com.example.dp`.
    pub group_id: String,
    pub artifact_id: String,
    /// The directory's version (`1.0`, `1.0-SNAPSHOT`).
    pub version: String,
    /// The file name without a sidecar extension (`app-1.0.jar`).
    pub file: String,
    pub sidecar: Option<Sidecar>,
    /// True for a non-timestamped file in a -SNAPSHOT directory (`app-1.0-SNAPSHOT.jar`): it
    /// changes, so it is a document. Timestamped snapshot files (`app-1.0-20240101.120000-3.jar`)
    /// and release files are immutable.
    pub mutable: bool,
}

impl ArtifactFile {
    /// `group:artifact`, e.g. `com.example.dp:app`.
    pub fn coordinates(&self) -> String {
        format!("{}:{}", self.group_id, self.artifact_id)
    }

    /// The file's path without the sidecar extension: `com/example/dp/app/1.0/app-1.0.jar`.
    pub fn path(&self) -> String {
        format!("{}/{}/{}/{}", self.group_id.replace('.', "/"), self.artifact_id, self.version, self.file)
    }
}

impl Endpoint {
    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Metadata { dir, .. } if dir.is_empty() => "archetype_catalog",
            Endpoint::Metadata { .. } => "metadata",
            Endpoint::Artifact(_) => "artifact",
        }
    }

    /// The sidecar asked for, if any.
    pub fn sidecar(&self) -> Option<Sidecar> {
        match self {
            Endpoint::Metadata { sidecar, .. } => *sidecar,
            Endpoint::Artifact(file) => file.sidecar,
        }
    }

    /// True when what the path names can change (metadata, a non-timestamped snapshot file, and
    /// their sidecars): a document, not an immutable file.
    pub fn is_mutable(&self) -> bool {
        match self {
            Endpoint::Metadata { .. } => true,
            Endpoint::Artifact(file) => file.mutable,
        }
    }

    /// The path of the document or file itself, without a sidecar extension.
    pub fn file_path(&self) -> String {
        match self {
            Endpoint::Metadata { dir, .. } if dir.is_empty() => ARCHETYPE_CATALOG_FILE.to_owned(),
            Endpoint::Metadata { dir, .. } => format!("{dir}/{METADATA_FILE}"),
            Endpoint::Artifact(file) => file.path(),
        }
    }

    /// The canonical path asked for, sidecar extension included (percent escapes decoded).
    pub fn path(&self) -> String {
        match self.sidecar() {
            Some(sidecar) => format!("{}.{}", self.file_path(), sidecar.extension()),
            None => self.file_path(),
        }
    }

    /// What the path names for an access log: (coordinates or dir, version or `metadata`).
    pub fn log_subject(&self) -> (String, String) {
        match self {
            Endpoint::Metadata { dir, .. } if dir.is_empty() => {
                (ARCHETYPE_CATALOG_FILE.to_owned(), "metadata".to_owned())
            }
            Endpoint::Metadata { dir, .. } => (dir.clone(), "metadata".to_owned()),
            Endpoint::Artifact(file) => (file.coordinates(), file.version.clone()),
        }
    }
}

/// Why a request path names nothing a Maven client asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Maven repository path /{path}: {reason}")]
pub struct PathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses the path after the group prefix (e.g. `com/example/app/1.0/app-1.0.jar.sha1`).
pub fn parse_path(rest: &str) -> Result<Endpoint, PathError> {
    let invalid = |reason| PathError { path: rest.to_owned(), reason };
    if rest.is_empty() {
        return Err(invalid("empty path"));
    }
    if rest.len() > MAX_PATH_LEN {
        return Err(invalid("path too long"));
    }
    let segments = rest
        .split('/')
        .map(|segment| decode_segment(segment).map_err(invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let Some((file, dirs)) = segments.split_last() else { return Err(invalid("empty path")) };

    let (name, sidecar) = match Sidecar::split(file) {
        Some((name, sidecar)) => (name, Some(sidecar)),
        None => (file.as_str(), None),
    };
    if name.is_empty() || Sidecar::split(name).is_some() {
        return Err(invalid("a sidecar belongs to a file, not to another sidecar"));
    }

    if name == METADATA_FILE {
        if dirs.is_empty() {
            return Err(invalid("maven-metadata.xml is not at the repository root"));
        }
        return Ok(Endpoint::Metadata { dir: dirs.join("/"), sidecar });
    }
    if name == ARCHETYPE_CATALOG_FILE && dirs.is_empty() {
        return Ok(Endpoint::Metadata { dir: String::new(), sidecar });
    }

    let [group @ .., artifact_id, version] = dirs else {
        return Err(invalid("a file is in {group}/{artifact}/{version}/"));
    };
    if group.is_empty() {
        return Err(invalid("a file is in {group}/{artifact}/{version}/"));
    }
    if group.iter().any(|segment| segment.contains('.')) {
        return Err(invalid("a groupId's dots are directory separators: a group directory has no '.'"));
    }
    if !name.strip_prefix(artifact_id.as_str()).is_some_and(|tail| tail.starts_with('-')) {
        return Err(invalid("a file in a version directory starts with {artifactId}-"));
    }
    let mutable = match version.strip_suffix(SNAPSHOT) {
        Some(base) => !is_timestamped(name, artifact_id, base),
        None => false,
    };
    Ok(Endpoint::Artifact(ArtifactFile {
        group_id: group.join("."),
        artifact_id: artifact_id.clone(),
        version: version.clone(),
        file: name.to_owned(),
        sidecar,
        mutable,
    }))
}

/// A deployed snapshot's file: `{artifact}-{base}-{yyyyMMdd.HHmmss}-{build}` then `.ext` or
/// `-classifier.ext`. Each deploy writes new ones, so they never change.
fn is_timestamped(file: &str, artifact_id: &str, base: &str) -> bool {
    let Some(tail) = file.strip_prefix(artifact_id).and_then(|t| t.strip_prefix('-')) else { return false };
    let Some(tail) = tail.strip_prefix(base).and_then(|t| t.strip_prefix('-')) else { return false };
    let bytes = tail.as_bytes();
    // yyyyMMdd.HHmmss-
    if bytes.len() < 16
        || !bytes[..8].iter().all(u8::is_ascii_digit)
        || bytes[8] != b'.'
        || !bytes[9..15].iter().all(u8::is_ascii_digit)
        || bytes[15] != b'-'
    {
        return false;
    }
    let build = &bytes[16..];
    let digits = build.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && matches!(build.get(digits), Some(b'.' | b'-'))
}

/// Decodes one segment and checks it is a plain name.
fn decode_segment(segment: &str) -> Result<String, &'static str> {
    if segment.is_empty() {
        return Err("empty path segment");
    }
    let decoded = decode(segment).ok_or("bad percent-encoding")?;
    if decoded.len() > MAX_SEGMENT_LEN {
        return Err("path segment too long");
    }
    if decoded.starts_with('.') {
        return Err("a path segment cannot start with '.'");
    }
    if !decoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'~')) {
        return Err("a path segment has only ASCII letters, digits and .-_+~");
    }
    Ok(decoded)
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

    fn artifact(path: &str) -> ArtifactFile {
        match parse_path(path) {
            Ok(Endpoint::Artifact(file)) => file,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn release_files() {
        let file = artifact("com/example/dp/app/1.0/app-1.0.jar");
        assert_eq!(
            file,
            ArtifactFile {
                group_id: "com.example.dp".into(),
                artifact_id: "app".into(),
                version: "1.0".into(),
                file: "app-1.0.jar".into(),
                sidecar: None,
                mutable: false,
            }
        );
        assert_eq!(file.coordinates(), "com.example.dp:app");
        assert_eq!(file.path(), "com/example/dp/app/1.0/app-1.0.jar");

        let pom = artifact("org/example/lib/2.3.1/lib-2.3.1.pom.sha1");
        assert_eq!((pom.file.as_str(), pom.sidecar), ("lib-2.3.1.pom", Some(Sidecar::Sha1)));
        assert!(!pom.mutable);
        let classified = artifact("org/example/lib/2.3.1/lib-2.3.1-sources.jar.sha512");
        assert_eq!(
            (classified.file.as_str(), classified.sidecar),
            ("lib-2.3.1-sources.jar", Some(Sidecar::Sha512))
        );
        // A one-segment group.
        assert_eq!(artifact("junit/junit/4.13.2/junit-4.13.2.jar").group_id, "junit");
    }

    #[test]
    fn signatures_are_files() {
        let asc = artifact("com/example/app/1.0/app-1.0.jar.asc");
        assert_eq!((asc.file.as_str(), asc.sidecar), ("app-1.0.jar.asc", None));
        let asc_sum = artifact("com/example/app/1.0/app-1.0.jar.asc.md5");
        assert_eq!((asc_sum.file.as_str(), asc_sum.sidecar), ("app-1.0.jar.asc", Some(Sidecar::Md5)));
    }

    #[test]
    fn snapshots() {
        let moving = artifact("com/example/app/1.0-SNAPSHOT/app-1.0-SNAPSHOT.jar");
        assert!(moving.mutable);
        assert_eq!(moving.version, "1.0-SNAPSHOT");
        assert!(artifact("com/example/app/1.0-SNAPSHOT/app-1.0-SNAPSHOT.pom.sha1").mutable);
        for immutable in [
            "com/example/app/1.0-SNAPSHOT/app-1.0-20240101.120000-3.jar",
            "com/example/app/1.0-SNAPSHOT/app-1.0-20240101.120000-3.pom.sha256",
            "com/example/app/1.0-SNAPSHOT/app-1.0-20240101.120000-12-sources.jar",
        ] {
            assert!(!artifact(immutable).mutable, "{immutable}");
        }
        // Near misses of the timestamp stay mutable (they are re-checked, never served stale for ever).
        for moving in [
            "com/example/app/1.0-SNAPSHOT/app-1.0-20240101.120000-.jar",
            "com/example/app/1.0-SNAPSHOT/app-1.0-20240101-120000-3.jar",
            "com/example/app/1.0-SNAPSHOT/app-1.0-2024010.120000-3.jar",
            "com/example/app/1.0-SNAPSHOT/app-1.0-20240101.120000-3",
            "com/example/app/1.0-SNAPSHOT/app-2.0-20240101.120000-3.jar",
        ] {
            assert!(artifact(moving).mutable, "{moving}");
        }
        assert!(!artifact("com/example/app/1.0/app-1.0-20240101.120000-3.jar").mutable);
    }

    #[test]
    fn metadata() {
        for (path, dir, sidecar) in [
            ("com/example/app/maven-metadata.xml", "com/example/app", None),
            (
                "org/apache/maven/plugins/maven-metadata.xml.sha1",
                "org/apache/maven/plugins",
                Some(Sidecar::Sha1),
            ),
            (
                "com/example/app/1.0-SNAPSHOT/maven-metadata.xml.md5",
                "com/example/app/1.0-SNAPSHOT",
                Some(Sidecar::Md5),
            ),
            ("com/example/my.app/maven-metadata.xml", "com/example/my.app", None),
            ("archetype-catalog.xml", "", None),
            ("archetype-catalog.xml.sha256", "", Some(Sidecar::Sha256)),
        ] {
            let endpoint = parse_path(path).unwrap();
            assert_eq!(endpoint, Endpoint::Metadata { dir: dir.into(), sidecar }, "{path}");
            assert!(endpoint.is_mutable());
            assert_eq!(endpoint.path(), path);
        }
        assert_eq!(parse_path("archetype-catalog.xml").unwrap().kind(), "archetype_catalog");
        assert_eq!(
            parse_path("org/apache/maven/plugins/maven-metadata.xml").unwrap().log_subject(),
            ("org/apache/maven/plugins".to_owned(), "metadata".to_owned())
        );
    }

    #[test]
    fn endpoint_helpers() {
        let endpoint = parse_path("com/example/app/1.0/app-1.0.jar.sha1").unwrap();
        assert_eq!(endpoint.kind(), "artifact");
        assert_eq!(endpoint.sidecar(), Some(Sidecar::Sha1));
        assert!(!endpoint.is_mutable());
        assert_eq!(endpoint.file_path(), "com/example/app/1.0/app-1.0.jar");
        assert_eq!(endpoint.path(), "com/example/app/1.0/app-1.0.jar.sha1");
        assert_eq!(endpoint.log_subject(), ("com.example:app".to_owned(), "1.0".to_owned()));
        // An escape of an allowed character is decoded; the canonical path has none.
        assert_eq!(
            parse_path("com/example/app/1.0%2Bb1/app-1.0%2bb1.jar").unwrap().path(),
            "com/example/app/1.0+b1/app-1.0+b1.jar"
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "/",
            "com/example/app/1.0/",
            "com//app/1.0/app-1.0.jar",
            "com/example/app/1.0/other-1.0.jar",
            "com/example/app/1.0/app.jar",
            "com/example/app/1.0/app",
            "app/1.0/app-1.0.jar",
            "app-1.0.jar",
            "maven-metadata.xml",
            "maven-metadata.xml.sha1",
            "com/example/app/1.0/app-1.0.jar.sha1.md5",
            "com/example/app/1.0/.sha1",
            "com/example.dp/app/1.0/app-1.0.jar",
            "com/example/../app/1.0/app-1.0.jar",
            "com/example/./app/1.0/app-1.0.jar",
            "com/example/%2e%2e/app/1.0/app-1.0.jar",
            "com/example/app/1.0/app-1.0%2fx.jar",
            "com/example/app/1.0/app-1.0%252fx.jar",
            "com/example/app/1.0/app-1.0%zz.jar",
            "com/example/app/1.0/app-1.0%+1.jar",
            "com/example/app/1.0/app-1.0%.jar",
            "com/example/app/1.0/app-1.0\\x.jar",
            "com/example/app/1.0/app-1.0\n.jar",
            "com/example/app/1.0/app-1.0 .jar",
            "com/example/app/1.0/app-1.0$x.jar",
            "com/example/app/1.0/app-1.0%e9.jar",
            "com/example/app/1.0/app-1.0.jar?x",
            "com/.example/app/1.0/app-1.0.jar",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?}: {:?}", parse_path(bad));
        }
        assert!(parse_path(&"a/".repeat(600)).is_err());
        assert_eq!(
            parse_path("x/a/1/b-1.jar").unwrap_err().to_string(),
            "invalid Maven repository path /x/a/1/b-1.jar: a file in a version directory starts with {artifactId}-"
        );
    }

    proptest! {
        #[test]
        fn never_panics(path in "[-a-zA-Z0-9._~+%/\\\\ ]{0,60}") {
            let _ = parse_path(&path);
        }

        #[test]
        fn artifact_paths_round_trip(
            group in proptest::collection::vec("[a-z][a-z0-9_-]{0,8}", 1..4),
            artifact_id in "[a-z][a-z0-9._-]{0,10}",
            version in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-SNAPSHOT)?",
            classifier in proptest::option::of("[a-z]{1,8}"),
            extension in "(jar|pom|war|module|jar\\.asc)",
            sidecar in proptest::option::of(proptest::sample::select(Sidecar::ALL.to_vec())),
        ) {
            prop_assume!(!artifact_id.contains(".."));
            let classifier = classifier.map(|c| format!("-{c}")).unwrap_or_default();
            let file = format!("{artifact_id}-{version}{classifier}.{extension}");
            let path = format!("{}/{artifact_id}/{version}/{file}", group.join("/"));
            let asked = match sidecar {
                Some(sidecar) => format!("{path}.{}", sidecar.extension()),
                None => path.clone(),
            };
            let endpoint = parse_path(&asked).unwrap();
            prop_assert_eq!(endpoint.path(), asked);
            let Endpoint::Artifact(parsed) = endpoint else { return Err(TestCaseError::fail("not an artifact")) };
            prop_assert_eq!(parsed.path(), path);
            prop_assert_eq!(parsed.group_id, group.join("."));
            prop_assert_eq!(parsed.mutable, version.ends_with(SNAPSHOT));
            prop_assert_eq!(parsed.sidecar, sidecar);
        }
    }
}
