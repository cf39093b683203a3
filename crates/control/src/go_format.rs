//! The Go modules format: the GOPROXY protocol `go` speaks, at `/go/<group path>/`, with module
//! paths and versions `!`-case-encoded as the protocol writes them. `@v/list` and `@latest`
//! change: documents, fresh for `document_recheck`. `.info`, `.mod` and `.zip` never change:
//! files, fetched from the first upstream that has them and recorded as fetched — or, in a group
//! with `verify_sumdb`, the `.mod` and `.zip` verified first against the `h1:` hashes the group's
//! checksum database (`sumdb`) gives for them (the gateway hashes the zip's files as `go` does).
//! The checksum database itself is proxied at `sumdb/<name>/`: `supported`, `lookup/…` and
//! `latest` as documents, `tile/…` as immutable files — so `GOSUMDB` verification works where the
//! proxy is the only way out, and while the upstream is down. Not found is a 404, so `go` moves on to the next
//! `GOPROXY` entry; a bad path is a 400 in plain text, never an upstream request.

use axum::extract::Request;
use axum::response::Response;
use cache::{DocumentRequest, Format, GroupSettings, Probe};
use gomod::Endpoint;
use injector::VerifiedRequest;

use crate::error::ControlError;
use crate::packages::{self, Listing, PackageFormat, Target};
use crate::plane::ControlPlane;
use crate::sumdb::{Hashed, SumDbLookup};

pub(crate) const GO: PackageFormat = PackageFormat {
    format: Format::Go,
    target,
    // `list` and `@latest` name versions, not files.
    locate: |_, _, _| None,
    prepare: packages::nothing_to_prepare,
    errors: injector::ErrorShape::Text,
    references: None,
    document_types: &[],
    document_default_type: "text/plain; charset=utf-8",
    extra_replacements: |_, _| Vec::new(),
};

/// What a path names, for the gateway's access log: (module, version or the document's name).
pub(crate) fn describe_path(path: &str) -> Option<(&str, String)> {
    let (_, rest) = Format::Go.package_path(path)?;
    let (subject, version) = match gomod::parse_path(rest).ok()? {
        Endpoint::List { .. } => ("list", String::from("list")),
        Endpoint::Latest { .. } => ("@latest", String::from("latest")),
        Endpoint::Info { version, .. } | Endpoint::Mod { version, .. } | Endpoint::Zip { version, .. } => {
            ("/@v/", version)
        }
        Endpoint::SumdbSupported { .. }
        | Endpoint::SumdbLookup { .. }
        | Endpoint::SumdbTile { .. }
        | Endpoint::SumdbLatest { .. } => return None,
    };
    // The module as the path writes it (escaped), borrowed from the path.
    let module = rest.split(if subject == "@latest" { "/@latest" } else { "/@v/" }).next()?;
    Some((module, version))
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    packages::decide(control, request, verified, &GO).await
}

fn bad(error: impl std::fmt::Display) -> ControlError {
    ControlError::BadPackageRequest(error.to_string())
}

fn document(package: String, variant: String, path: String) -> DocumentRequest {
    DocumentRequest { package, variant, upstream_path: path, accept: None }
}

/// A module version's file in the one spelling the proxy keys it by (and asks upstreams for):
/// the `!`-case encoding, unescaped of the percent-escapes the go command adds.
fn file_path(module: &str, version: &str, extension: &str) -> Result<String, ControlError> {
    let module = gomod::escape_path(module).map_err(bad)?;
    let version = gomod::escape_version(version).map_err(bad)?;
    Ok(format!("{module}/@v/{version}.{extension}"))
}

fn target(
    rest: &str,
    _query: Option<&str>,
    _headers: &http::HeaderMap,
    _who: Option<&str>,
    group: &GroupSettings,
    _client: &str,
) -> Result<Target, ControlError> {
    let sumdb = group.policy.with(|policy| policy.verify_sumdb.clone());
    let endpoint = gomod::parse_path(rest).map_err(bad)?;
    let module_file = |module: String, version: String, extension: &str, hashed: Option<Hashed>| {
        let path = file_path(&module, &version, extension)?;
        if !gomod::is_canonical_version(&version) {
            // `@v/master.info` is a query the upstream resolves: its answer changes.
            let variant = format!("{version}.{extension}");
            return Ok(Target::Document {
                document: document(module.clone(), variant, path),
                name: Some(module),
            });
        }
        let listing = match (&sumdb, hashed) {
            (Some(sumdb), Some(hashed)) => Listing::SumDb(SumDbLookup {
                sumdb: sumdb.clone(),
                module: module.clone(),
                version: version.clone(),
                hashed,
            }),
            _ => Listing::Probe(Probe::Unverified),
        };
        Ok::<_, ControlError>(Target::File {
            path,
            listing,
            name: module,
            version: Some(version),
            judged: true,
        })
    };
    let escaped = |module: &str| gomod::escape_path(module).map_err(bad);
    Ok(match endpoint {
        Endpoint::List { module } => {
            let path = format!("{}/@v/list", escaped(&module)?);
            Target::Document {
                document: document(module.clone(), "list".to_owned(), path),
                name: Some(module),
            }
        }
        Endpoint::Latest { module } => {
            let path = format!("{}/@latest", escaped(&module)?);
            Target::Document {
                document: document(module.clone(), "latest".to_owned(), path),
                name: Some(module),
            }
        }
        Endpoint::Info { module, version } => module_file(module, version, "info", None)?,
        Endpoint::Mod { module, version } => module_file(module, version, "mod", Some(Hashed::Mod))?,
        Endpoint::Zip { module, version } => module_file(module, version, "zip", Some(Hashed::Zip))?,
        // A document, not a pass-through: `go` asks it before every verification, so it must be
        // answered while the upstream is down, as the lookups and tiles it leads to are.
        Endpoint::SumdbSupported { name } => Target::Document {
            document: document(format!("sumdb/{name}"), "supported".to_owned(), rest.to_owned()),
            name: None,
        },
        Endpoint::SumdbLookup { name, module, version } => {
            let path = format!(
                "sumdb/{name}/lookup/{}@{}",
                escaped(&module)?,
                gomod::escape_version(&version).map_err(bad)?
            );
            Target::Document {
                document: document(module.clone(), format!("sumdb {name} lookup {version}"), path),
                name: Some(module),
            }
        }
        Endpoint::SumdbLatest { name } => Target::Document {
            document: document(format!("sumdb/{name}"), "latest".to_owned(), rest.to_owned()),
            name: None,
        },
        // Tiles hash the whole log: no module's rules judge them.
        Endpoint::SumdbTile { name, .. } => Target::File {
            path: rest.to_owned(),
            listing: Listing::Probe(Probe::Unverified),
            name: format!("sumdb/{name}"),
            version: None,
            judged: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_in(group: &GroupSettings, rest: &str) -> Result<Target, ControlError> {
        target(rest, None, &http::HeaderMap::new(), None, group, "http://proxy/go/g")
    }

    fn group(verify_sumdb: Option<&str>) -> GroupSettings {
        let policy = cache::PullPolicy {
            verify_sumdb: verify_sumdb.map(str::to_owned),
            ..cache::PullPolicy::open(std::time::Duration::ZERO)
        };
        crate::packages::test_group(Format::Go, policy)
    }

    #[test]
    fn module_files_are_keyed_in_one_spelling_and_verified_as_the_group_says() {
        let plain = group(None);
        // The go command percent-escapes the `!` of the case encoding in file paths.
        for rest in ["example.com/dp/%21beta/@v/v1.0.0.zip", "example.com/dp/!beta/@v/v1.0.0.zip"] {
            match target_in(&plain, rest).unwrap() {
                Target::File { path, listing: Listing::Probe(Probe::Unverified), name, version, .. } => {
                    assert_eq!(path, "example.com/dp/!beta/@v/v1.0.0.zip");
                    assert_eq!((name.as_str(), version.as_deref()), ("example.com/dp/Beta", Some("v1.0.0")));
                }
                _ => panic!("{rest}: a zip is a file"),
            }
        }
        let verifying = group(Some("sum.example.com"));
        match target_in(&verifying, "example.com/dp/alpha/@v/v1.0.0.mod").unwrap() {
            Target::File { listing: Listing::SumDb(lookup), .. } => {
                assert_eq!(
                    (lookup.sumdb.as_str(), lookup.module.as_str()),
                    ("sum.example.com", "example.com/dp/alpha")
                );
                assert!(matches!(lookup.hashed, Hashed::Mod));
            }
            _ => panic!("a .mod in a verifying group is checked against the database"),
        }
        assert!(
            matches!(
                target_in(&verifying, "example.com/dp/alpha/@v/v1.0.0.info").unwrap(),
                Target::File { listing: Listing::Probe(Probe::Unverified), .. }
            ),
            "the database has no hash for .info"
        );
    }

    #[test]
    fn lists_queries_and_the_database_are_documents_tiles_files() {
        let plain = group(None);
        for (rest, variant) in [
            ("example.com/dp/alpha/@v/list", "list"),
            ("example.com/dp/alpha/@latest", "latest"),
            ("example.com/dp/alpha/@v/master.info", "master.info"),
        ] {
            match target_in(&plain, rest).unwrap() {
                Target::Document { document, name: Some(name) } => {
                    assert_eq!((document.variant.as_str(), name.as_str()), (variant, "example.com/dp/alpha"));
                }
                _ => panic!("{rest} is a document"),
            }
        }
        assert!(matches!(
            target_in(&plain, "sumdb/sum.example.com/supported").unwrap(),
            Target::Document { name: None, .. }
        ));
        assert!(matches!(
            target_in(&plain, "sumdb/sum.example.com/tile/8/0/000").unwrap(),
            Target::File { judged: false, .. }
        ));
        assert!(matches!(
            target_in(&plain, "example.com/dp/%41/@v/list"),
            Err(ControlError::BadPackageRequest(_))
        ));
    }

    #[test]
    fn the_access_log_names_modules_and_versions() {
        assert_eq!(
            describe_path("/go/golang/example.com/!beta/@v/v1.0.0.zip"),
            Some(("example.com/!beta", "v1.0.0".to_owned()))
        );
        assert_eq!(
            describe_path("/go/golang/example.com/a/@v/list"),
            Some(("example.com/a", "list".to_owned()))
        );
        assert_eq!(
            describe_path("/go/golang/example.com/a/@latest"),
            Some(("example.com/a", "latest".to_owned()))
        );
    }
}
