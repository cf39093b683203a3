//! Reading the files a stored npm document lists: every version's `dist` of a packument (full or
//! abbreviated), or the one `dist` of a version document.
//!
//! Only the fields needed are deserialized, into typed structs: serde skips everything else
//! (descriptions, readmes, dependency maps) without building it, which matters for packuments that
//! run to tens of megabytes.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::integrity::PublishedChecksum;

/// A file a document lists, with the checksum it publishes for it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublishedFile {
    /// `dist.tarball` as written in the document.
    pub url: String,
    /// The version the file belongs to.
    pub version: String,
    /// From `dist.integrity` when it has a usable entry, else `dist.shasum`.
    pub checksum: Option<PublishedChecksum>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("invalid npm document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid npm document: not a JSON object")]
    NotAnObject,
}

/// serde's derived structs also accept a JSON array (fields by position): a document that is not
/// an object is refused before that can happen.
fn require_object(document: &[u8]) -> Result<(), DocumentError> {
    match document.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => Ok(()),
        Some(_) => Err(DocumentError::NotAnObject),
    }
}

#[derive(Deserialize)]
struct Dist {
    tarball: String,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    shasum: Option<String>,
}

impl Dist {
    fn into_file(self, version: String) -> PublishedFile {
        let checksum = PublishedChecksum::from_dist(self.integrity.as_deref(), self.shasum.as_deref());
        PublishedFile { url: self.tarball, version, checksum }
    }
}

/// One entry of `versions`: only `dist` is read. A version without `dist` (seen in documents of
/// unpublished or broken versions) lists no file.
#[derive(Deserialize)]
struct VersionEntry {
    #[serde(default)]
    dist: Option<Dist>,
}

#[derive(Deserialize)]
struct Packument {
    #[serde(default)]
    versions: Versions,
}

/// `versions` read in document order into a list (a map type would sort or hash the keys).
#[derive(Default)]
struct Versions(Vec<PublishedFile>);

impl<'de> Deserialize<'de> for Versions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionsVisitor;

        impl<'de> Visitor<'de> for VersionsVisitor {
            type Value = Versions;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of versions")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Versions, A::Error> {
                let mut files = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(version) = map.next_key::<String>()? {
                    let entry: VersionEntry = map.next_value()?;
                    if let Some(dist) = entry.dist {
                        files.push(dist.into_file(version));
                    }
                }
                Ok(Versions(files))
            }

            // `"versions": null` lists nothing.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Versions, E> {
                Ok(Versions(Vec::new()))
            }
        }

        deserializer.deserialize_any(VersionsVisitor)
    }
}

/// Every file a packument lists (`versions.*.dist`), in document order. Works on the full and the
/// abbreviated (`application/vnd.npm.install-v1+json`) form alike; a packument without `versions`
/// (an unpublished package) lists none.
pub fn packument_files(document: &[u8]) -> Result<Vec<PublishedFile>, DocumentError> {
    require_object(document)?;
    let packument: Packument = serde_json::from_slice(document)?;
    Ok(packument.versions.0)
}

/// The file of a version document (`GET /{name}/{version}`: `version` and `dist` at top level).
pub fn version_file(document: &[u8]) -> Result<PublishedFile, DocumentError> {
    #[derive(Deserialize)]
    struct VersionDocument {
        version: String,
        dist: Dist,
    }
    require_object(document)?;
    let document: VersionDocument = serde_json::from_slice(document)?;
    Ok(document.dist.into_file(document.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::Algorithm;

    /// A full packument as Verdaccio 6 serves it for an unscoped package (trimmed readme).
    const VERDACCIO_FULL: &str = r##"{
  "_id": "left-pad",
  "_rev": "3-5a6f2b0d9c1e4f7a",
  "name": "left-pad",
  "description": "String left pad",
  "dist-tags": { "latest": "1.3.0", "beta": "1.4.0-beta.1" },
  "versions": {
    "1.1.3": {
      "name": "left-pad",
      "version": "1.1.3",
      "description": "String left pad",
      "main": "index.js",
      "scripts": { "test": "node test" },
      "license": "WTFPL",
      "_id": "left-pad@1.1.3",
      "_nodeVersion": "20.11.1",
      "_npmVersion": "10.2.4",
      "dist": {
        "integrity": "sha512-58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ==",
        "shasum": "f572d396fae9206628714fb2ce00f72e94f2258f",
        "tarball": "https://npm.example.com/left-pad/-/left-pad-1.1.3.tgz",
        "fileCount": 5,
        "unpackedSize": 9876,
        "signatures": [{ "keyid": "SHA256:abc", "sig": "MEUCIQ" }]
      },
      "contributors": [],
      "readme": "# left-pad\n\nPads \"strings\" \u2603",
      "readmeFilename": "README.md"
    },
    "1.3.0": {
      "name": "left-pad",
      "version": "1.3.0",
      "dependencies": {},
      "devDependencies": { "tape": "*" },
      "_id": "left-pad@1.3.0",
      "dist": {
        "shasum": "5B8A3A7765DFE001261DDE915589E782F8C94D1E",
        "tarball": "https://npm.example.com/left-pad/-/left-pad-1.3.0.tgz"
      }
    },
    "1.4.0-beta.1": {
      "name": "left-pad",
      "version": "1.4.0-beta.1",
      "dist": { "tarball": "https://npm.example.com/left-pad/-/left-pad-1.4.0-beta.1.tgz" }
    }
  },
  "time": {
    "modified": "2024-03-01T10:00:00.000Z",
    "created": "2016-03-23T12:00:00.000Z",
    "1.1.3": "2016-03-23T12:00:00.000Z",
    "1.3.0": "2018-04-09T12:00:00.000Z"
  },
  "users": {},
  "_distfiles": {},
  "_attachments": {},
  "_uplinks": { "upstream": { "etag": "W/\"abc\"", "fetched": 1709287200000 } },
  "readme": "# left-pad",
  "_cached": true
}"##;

    /// The abbreviated form Verdaccio 6 serves for a scoped package
    /// (`Accept: application/vnd.npm.install-v1+json`).
    const VERDACCIO_ABBREVIATED_SCOPED: &str = r#"{"name":"@acme/widgets","modified":"2024-05-02T08:30:00.000Z","dist-tags":{"latest":"2.0.0"},"versions":{"1.0.0":{"name":"@acme/widgets","version":"1.0.0","dependencies":{"left-pad":"^1.3.0"},"dist":{"integrity":"sha512-58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ==","shasum":"f572d396fae9206628714fb2ce00f72e94f2258f","tarball":"https://npm.example.com/@acme/widgets/-/widgets-1.0.0.tgz"},"engines":{"node":">=18"},"_hasShrinkwrap":false},"2.0.0":{"name":"@acme/widgets","version":"2.0.0","bin":{"widgets":"bin/cli.js"},"dist":{"integrity":"sha1-9XLTlvrpIGYocU+yzgD3LpTyJY8=","tarball":"https://npm.example.com/@acme%2fwidgets/-/widgets-2.0.0.tgz"},"deprecated":"use 3.x"}}}"#;

    #[test]
    fn full_packument() {
        let files = packument_files(VERDACCIO_FULL.as_bytes()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].version, "1.1.3");
        assert_eq!(files[0].url, "https://npm.example.com/left-pad/-/left-pad-1.1.3.tgz");
        let checksum = files[0].checksum.as_ref().unwrap();
        assert_eq!(checksum.algorithm, Algorithm::Sha512);
        assert!(checksum.hex.starts_with("e7c22b99"));
        assert_eq!(files[1].version, "1.3.0");
        assert_eq!(
            files[1].checksum,
            Some(PublishedChecksum {
                algorithm: Algorithm::Sha1,
                hex: "5b8a3a7765dfe001261dde915589e782f8c94d1e".into()
            })
        );
        assert_eq!(files[2].version, "1.4.0-beta.1");
        assert_eq!(files[2].checksum, None);
    }

    #[test]
    fn abbreviated_scoped_packument() {
        let files = packument_files(VERDACCIO_ABBREVIATED_SCOPED.as_bytes()).unwrap();
        let versions: Vec<_> = files.iter().map(|f| f.version.as_str()).collect();
        assert_eq!(versions, ["1.0.0", "2.0.0"]);
        assert_eq!(files[0].url, "https://npm.example.com/@acme/widgets/-/widgets-1.0.0.tgz");
        assert_eq!(files[0].checksum.as_ref().unwrap().algorithm, Algorithm::Sha512);
        assert_eq!(files[1].url, "https://npm.example.com/@acme%2fwidgets/-/widgets-2.0.0.tgz");
        // The sha1 SRI entry decodes to the same digest as the hex shasum.
        assert_eq!(
            files[1].checksum,
            Some(PublishedChecksum {
                algorithm: Algorithm::Sha1,
                hex: "f572d396fae9206628714fb2ce00f72e94f2258f".into()
            })
        );
    }

    #[test]
    fn packuments_without_versions() {
        let unpublished = br#"{"_id":"gone","name":"gone","time":{"unpublished":{"time":"2024-01-01T00:00:00.000Z","versions":["1.0.0"]}}}"#;
        assert!(packument_files(unpublished).unwrap().is_empty());
        assert!(packument_files(br#"{"name":"x","versions":{}}"#).unwrap().is_empty());
        assert!(packument_files(br#"{"name":"x","versions":null}"#).unwrap().is_empty());
        let no_dist = br#"{"versions":{"1.0.0":{"name":"x"},"1.0.1":{"dist":{"tarball":"https://npm.example.com/x/-/x-1.0.1.tgz"}}}}"#;
        let files = packument_files(no_dist).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].version, "1.0.1");
    }

    #[test]
    fn broken_documents_are_errors() {
        for bad in [
            &b""[..],
            b"not json",
            b"[]",
            br#"{"versions":[]}"#,
            br#"{"versions":{"1.0.0":{"dist":{"integrity":"sha512-x"}}}}"#,
            br#"{"versions":{"1.0.0":{"dist":{"tarball":42}}}}"#,
            br#"{"versions":{"1.0.0":"#,
        ] {
            let error = packument_files(bad).unwrap_err();
            assert!(error.to_string().starts_with("invalid npm document"), "{error}");
        }
    }

    #[test]
    fn version_documents() {
        let document = br#"{"name":"@acme/widgets","version":"1.0.0","description":"Widgets","main":"index.js","dist":{"shasum":"f572d396fae9206628714fb2ce00f72e94f2258f","tarball":"https://npm.example.com/@acme/widgets/-/widgets-1.0.0.tgz"},"_id":"@acme/widgets@1.0.0"}"#;
        let file = version_file(document).unwrap();
        assert_eq!(file.version, "1.0.0");
        assert_eq!(file.url, "https://npm.example.com/@acme/widgets/-/widgets-1.0.0.tgz");
        assert_eq!(file.checksum.unwrap().algorithm, Algorithm::Sha1);
        assert!(version_file(br#"{"version":"1.0.0"}"#).is_err());
        assert!(version_file(br#"{"dist":{"tarball":"https://npm.example.com/x.tgz"}}"#).is_err());
    }
}
