//! The Maven format: the Maven 2 repository layout `mvn` and Gradle read, at
//! `/maven/<group path>/`. Release files (`{group/as/path}/{artifact}/{version}/{file}`) and
//! timestamped SNAPSHOT files are immutable artifacts, verified against the first checksum
//! sidecar the upstream that has them publishes (`.sha1`, else `.sha512`, `.sha256`) — or, when it
//! publishes none, recorded under their sha256 and counted unverified. `maven-metadata.xml` (at
//! artifact, group and SNAPSHOT-version level), the root's `archetype-catalog.xml` and a
//! SNAPSHOT directory's non-timestamped files change: they are documents, fresh for
//! `document_recheck`. A sidecar of an artifact is answered from what the artifact was verified
//! against (or its sha256) once that is known, else fetched and kept as a file of its own. A
//! group's upstreams are asked in order; the first that has a file serves it, and is recorded.

use axum::extract::Request;
use axum::response::Response;
use cache::{DocumentRequest, Format, GroupSettings, Probe};
use injector::{ChecksumAlgorithm, VerifiedRequest};
use maven::{ArtifactFile, Endpoint};

use crate::error::ControlError;
use crate::packages::{self, Listing, PackageFormat, Target};
use crate::plane::ControlPlane;

pub(crate) const MAVEN: PackageFormat = PackageFormat {
    format: Format::Maven,
    target,
    // Maven's documents (metadata) list versions, not files: files are found by their sidecars.
    locate: |_, _, _| None,
    prepare: packages::nothing_to_prepare,
    errors: injector::ErrorShape::Text,
    references: None,
    document_types: &[],
    document_default_type: "application/xml",
    extra_replacements: |_, _| Vec::new(),
};

/// The sidecars an artifact is verified against, the first asked first: every repository that
/// publishes checksums publishes `.sha1`; the stronger ones are asked only when it is missing.
const SIDECARS: &[ChecksumAlgorithm] =
    &[ChecksumAlgorithm::Sha1, ChecksumAlgorithm::Sha512, ChecksumAlgorithm::Sha256];

/// What a path names, for the gateway's access log: (coordinates or directory, version or
/// `metadata`).
pub(crate) fn describe_path(path: &str) -> Option<(&str, String)> {
    let (_, rest) = Format::Maven.package_path(path)?;
    let endpoint = maven::parse_path(rest).ok()?;
    let (_, version) = endpoint.log_subject();
    // The subject is borrowed from the path: the directory of the file.
    let subject = match &endpoint {
        Endpoint::Metadata { .. } => rest.rsplit_once('/').map_or(rest, |(dir, _)| dir),
        Endpoint::Artifact(_) => rest.rsplitn(3, '/').nth(2).unwrap_or(rest),
    };
    Some((subject, version))
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    packages::decide(control, request, verified, &MAVEN).await
}

/// A document at `path` (its upstream path): keyed by its directory (`package`) and file name.
fn document(package: String, path: &str) -> DocumentRequest {
    let variant = path.rsplit('/').next().unwrap_or(path).to_owned();
    DocumentRequest { package, variant, upstream_path: path.to_owned(), accept: None }
}

fn target(
    rest: &str,
    _query: Option<&str>,
    _headers: &http::HeaderMap,
    _who: Option<&str>,
    _group: &GroupSettings,
    _client: &str,
) -> Result<Target, ControlError> {
    let endpoint =
        maven::parse_path(rest).map_err(|error| ControlError::BadPackageRequest(error.to_string()))?;
    let path = endpoint.path();
    Ok(match endpoint {
        // Metadata lists versions: the rules judge the files it leads to, not it.
        Endpoint::Metadata { dir, .. } => Target::Document { name: None, document: document(dir, &path) },
        Endpoint::Artifact(file) if file.mutable => {
            Target::Document { name: Some(file.coordinates()), document: document(file.coordinates(), &path) }
        }
        Endpoint::Artifact(file) => match file.sidecar {
            None => artifact(&file, path, Listing::Probe(Probe::Sidecars(SIDECARS))),
            Some(sidecar) => {
                // A sidecar not known from its file is a file of its own, verified by nothing.
                let otherwise = Box::new(artifact(&file, path, Listing::Probe(Probe::Unverified)));
                Target::Checksum { file: file.path(), algorithm: sidecar.algorithm(), otherwise }
            }
        },
    })
}

fn artifact(file: &ArtifactFile, path: String, listing: Listing) -> Target {
    Target::File {
        path,
        listing,
        name: file.coordinates(),
        version: Some(file.version.clone()),
        judged: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(rest: &str) -> Result<Target, ControlError> {
        let group = packages::test_group(Format::Maven, cache::PullPolicy::open(std::time::Duration::ZERO));
        target(rest, None, &http::HeaderMap::new(), None, &group, "http://proxy/maven/g")
    }

    #[test]
    fn releases_are_probed_files_metadata_and_moving_snapshots_are_documents() {
        match target_of("com/example/dp/app/1.0/app-1.0.jar").unwrap() {
            Target::File {
                path,
                listing: Listing::Probe(Probe::Sidecars(sidecars)),
                name,
                version,
                judged,
            } => {
                assert_eq!(path, "com/example/dp/app/1.0/app-1.0.jar");
                assert_eq!(sidecars[0], ChecksumAlgorithm::Sha1, "the .sha1 is asked first");
                assert_eq!(
                    (name.as_str(), version.as_deref(), judged),
                    ("com.example.dp:app", Some("1.0"), true)
                );
            }
            _ => panic!("a release jar is a file verified by its sidecars"),
        }
        match target_of("com/example/dp/app/maven-metadata.xml").unwrap() {
            Target::Document { document, name: None } => {
                assert_eq!(document.upstream_path, "com/example/dp/app/maven-metadata.xml");
                assert_eq!(document.variant, "maven-metadata.xml");
            }
            _ => panic!("metadata is a document no rule judges"),
        }
        match target_of("com/example/dp/app/1.0-SNAPSHOT/app-1.0-SNAPSHOT.jar").unwrap() {
            Target::Document { name: Some(name), .. } => assert_eq!(name, "com.example.dp:app"),
            _ => panic!("a snapshot file without a timestamp changes: a document"),
        }
        assert!(matches!(
            target_of("com/example/dp/app/1.0-SNAPSHOT/app-1.0-20261207.120000-2.jar").unwrap(),
            Target::File { .. }
        ));
    }

    #[test]
    fn sidecars_are_answered_from_their_file_and_bad_paths_refused() {
        match target_of("com/example/dp/app/1.0/app-1.0.jar.sha1").unwrap() {
            Target::Checksum { file, algorithm, otherwise } => {
                assert_eq!((file.as_str(), algorithm), ("com/example/dp/app/1.0/app-1.0.jar", "sha1"));
                assert!(matches!(
                    *otherwise,
                    Target::File { listing: Listing::Probe(Probe::Unverified), .. }
                ));
            }
            _ => panic!("a .sha1 is answered from its file"),
        }
        // md5 is no algorithm the proxy verifies: known only as absent, else a file of its own.
        match target_of("com/example/dp/app/1.0/app-1.0.jar.md5").unwrap() {
            Target::Checksum { algorithm: "md5", otherwise, .. } => {
                assert!(matches!(
                    *otherwise,
                    Target::File { listing: Listing::Probe(Probe::Unverified), .. }
                ));
            }
            _ => panic!("an .md5 is answered from its file when that says it is absent"),
        }
        for bad in ["", "x", "com/example/../app/1.0/app-1.0.jar", "com/example/dp/app/1.0/other-1.0.jar"] {
            assert!(matches!(target_of(bad), Err(ControlError::BadPackageRequest(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_access_log_names_coordinates_and_versions() {
        assert_eq!(
            describe_path("/maven/java/com/example/dp/app/1.0/app-1.0.jar"),
            Some(("com/example/dp/app", "1.0".to_owned()))
        );
        assert_eq!(
            describe_path("/maven/java/com/example/dp/app/maven-metadata.xml"),
            Some(("com/example/dp/app", "metadata".to_owned()))
        );
        assert_eq!(describe_path("/maven/java/x"), None);
    }
}
