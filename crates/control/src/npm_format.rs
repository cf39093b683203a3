//! The npm format: the registry API npm, yarn and pnpm speak, at `/npm/<group path>/`. A
//! packument (`/{name}`, `/@scope%2f{name}`, `/@scope/{name}`) is a document — full, or the
//! abbreviated form a client asks for with `Accept: application/vnd.npm.install-v1+json`, each
//! its own — whose `versions.*.dist.tarball` URLs the gateway rewrites to the proxy; a tarball
//! (`/{name}/-/{file}.tgz`) is a file verified against its version's `dist.integrity` (or
//! `shasum`). `npm ping`, `npm audit` and dist-tags pass through uncached; `npm whoami` answers
//! the access token's name. Names follow npm's rules (`npm` crate); a bad one is a 400 with
//! npm's `{"error": …}`, never an upstream request.

use axum::extract::Request;
use axum::response::Response;
use cache::{DocumentRequest, Format};
use http::StatusCode;
use injector::{References, VerifiedRequest};
use npm::{Endpoint, PackageName};
use upstream::UpstreamClient;

use crate::error::ControlError;
use crate::packages::{self, Listing, PackageFormat, Target};
use crate::plane::ControlPlane;

/// Audit bodies are a project's dependency list: capped at what the gateway forwards.
const MAX_AUDIT_BODY: usize = 64 * 1024;

pub(crate) const NPM: PackageFormat = PackageFormat {
    format: Format::Npm,
    target,
    locate: |upstream, document_url, file| packages::locate_by_url(upstream, document_url, file, file_path),
    prepare: packages::nothing_to_prepare,
    errors: injector::ErrorShape::JsonError,
    references: Some(References::NpmPackument),
    document_types: &[npm::JSON_MEDIA_TYPE, npm::ABBREVIATED_MEDIA_TYPE],
    document_default_type: npm::JSON_MEDIA_TYPE,
    extra_replacements: |_, _| Vec::new(),
};

/// Whether a POST to `path` carries a body the gateway forwards (`npm audit`).
pub(crate) fn is_form_post(path: &str) -> bool {
    Format::Npm.package_path(path).is_some_and(|(_, rest)| {
        matches!(npm::parse_path(rest), Ok(Endpoint::AuditBulk | Endpoint::AuditQuick))
    })
}

/// The package and version a path names, for the gateway's access log.
pub(crate) fn describe_path(path: &str) -> Option<(&str, String)> {
    let (_, rest) = Format::Npm.package_path(path)?;
    match npm::parse_path(rest).ok()? {
        Endpoint::Packument { .. } => Some((rest, "packument".to_owned())),
        Endpoint::Tarball { name, file } => {
            let version = npm::tarball_version(&name, &file).unwrap_or(file);
            let package = rest.split("/-/").next().unwrap_or(rest);
            Some((package, version))
        }
        _ => None,
    }
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    packages::decide(control, request, verified, &NPM).await
}

fn bad(error: impl std::fmt::Display) -> ControlError {
    ControlError::BadPackageRequest(error.to_string())
}

/// The packument of `name`, in the form the client asked for.
fn packument(name: &PackageName, abbreviated: bool) -> DocumentRequest {
    DocumentRequest {
        package: name.as_str().to_owned(),
        variant: if abbreviated { "abbreviated" } else { "full" }.to_owned(),
        upstream_path: name.upstream_path(),
        accept: Some(if abbreviated { npm::ABBREVIATED_MEDIA_TYPE } else { npm::JSON_MEDIA_TYPE }),
    }
}

fn target(
    rest: &str,
    _query: Option<&str>,
    headers: &http::HeaderMap,
    who: Option<&str>,
    _group: &cache::GroupSettings,
    _client: &str,
) -> Result<Target, ControlError> {
    let accept = headers.get(http::header::ACCEPT).and_then(|value| value.to_str().ok());
    Ok(match npm::parse_path(rest).map_err(bad)? {
        Endpoint::Packument { name } => {
            let document = packument(&name, npm::wants_abbreviated(accept));
            Target::Document { document, name: Some(name.as_str().to_owned()) }
        }
        Endpoint::Tarball { name, file } => {
            let version = npm::tarball_version(&name, &file);
            Target::File {
                path: format!("{}/-/{file}", name.as_str()),
                // The abbreviated packument lists every tarball and is the smaller read.
                listing: Listing::Document(packument(&name, true)),
                name: name.as_str().to_owned(),
                version,
                judged: true,
            }
        }
        Endpoint::VersionDocument { name, version } => {
            Target::PassThrough { upstream_path: format!("{}/{version}", name.upstream_path()), max_body: 0 }
        }
        Endpoint::DistTags { name } => Target::PassThrough {
            upstream_path: format!("-/package/{}/dist-tags", name.upstream_path()),
            max_body: 0,
        },
        Endpoint::Ping => Target::PassThrough { upstream_path: "-/ping".to_owned(), max_body: 0 },
        Endpoint::Search => Target::PassThrough { upstream_path: "-/v1/search".to_owned(), max_body: 0 },
        Endpoint::AuditBulk => Target::PassThrough {
            upstream_path: "-/npm/v1/security/advisories/bulk".to_owned(),
            max_body: MAX_AUDIT_BODY,
        },
        Endpoint::AuditQuick => Target::PassThrough {
            upstream_path: "-/npm/v1/security/audits/quick".to_owned(),
            max_body: MAX_AUDIT_BODY,
        },
        // Who the proxy knows the client as: its access token.
        Endpoint::Whoami => match who {
            Some(name) => Target::Local(packages::json(
                StatusCode::OK,
                serde_json::json!({ "username": name }).to_string(),
            )),
            None => Target::Local(packages::json(
                StatusCode::UNAUTHORIZED,
                npm::error_body("not logged in: this group takes anonymous clients, with no name"),
            )),
        },
    })
}

/// `<upstream>/lodash/-/lodash-4.17.21.tgz` → `lodash/-/lodash-4.17.21.tgz` (scoped names written
/// either way come out as `@scope/name/-/…`); a tarball elsewhere is not proxied.
fn file_path(upstream: &UpstreamClient, _document_url: &str, url: &str) -> Option<String> {
    let base = upstream.url().as_str().trim_end_matches('/');
    let rest = url.strip_prefix(base)?.strip_prefix('/')?;
    match npm::parse_path(rest).ok()? {
        Endpoint::Tarball { name, file } => Some(format!("{}/-/{file}", name.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_names_packages_and_versions() {
        assert_eq!(describe_path("/npm/js/lodash"), Some(("lodash", "packument".to_owned())));
        assert_eq!(
            describe_path("/npm/js/@dp/util/-/util-1.0.0.tgz"),
            Some(("@dp/util", "1.0.0".to_owned()))
        );
        assert_eq!(describe_path("/npm/js/-/ping"), None);
    }

    #[test]
    fn tarball_urls_map_under_the_group_and_audits_are_form_posts() {
        let upstream = crate::packages::test_upstream("https://npm.example.com", None);
        let document = "https://npm.example.com/@dp%2futil";
        for url in [
            "https://npm.example.com/@dp/util/-/util-1.0.0.tgz",
            "https://npm.example.com/@dp%2futil/-/util-1.0.0.tgz",
        ] {
            assert_eq!(
                file_path(&upstream, document, url).as_deref(),
                Some("@dp/util/-/util-1.0.0.tgz"),
                "{url}"
            );
        }
        assert_eq!(file_path(&upstream, document, "https://cdn.example.com/util-1.0.0.tgz"), None);
        assert!(is_form_post("/npm/js/-/npm/v1/security/advisories/bulk"));
        assert!(is_form_post("/npm/js/-/npm/v1/security/audits/quick"));
        assert!(!is_form_post("/npm/js/lodash"));
    }
}
