//! The Cargo format: a sparse registry (RFC 2789) `cargo` reads, at `/cargo/<group path>/`.
//! `config.json` is answered here for the client that asked: downloads at this group
//! (`dl`: `<group>/api/v1/crates/{crate}/{version}/download`), `auth-required` for a token group
//! (RFC 3139: cargo then sends its token in `Authorization`). Index files (`1/{n}`, `2/{n}`,
//! `3/{c}/{n}`, `{ab}/{cd}/{n}`) are documents, fresh for `document_recheck`, revalidated by
//! cargo with `If-None-Match`/`If-Modified-Since`. A `.crate` is a file its index file lists,
//! verified against that line's `cksum` (sha256); it is fetched from where the upstream's own
//! `config.json` says (`dl`, often another host), which clients never see. The registry's web
//! API (publish, search, owners) is not served: this is a read-only proxy.

use axum::extract::Request;
use axum::response::Response;
use cache::{AccessMode, DocumentRequest, Format, GroupSettings};
use cargo_sparse::{CrateName, Endpoint, RegistryConfig};
use http::StatusCode;
use injector::{ListedFile, VerifiedRequest};
use upstream::UpstreamClient;

use crate::error::ControlError;
use crate::packages::{self, FileLocation, Listing, PackageFormat, Target};
use crate::plane::ControlPlane;

pub(crate) const CARGO: PackageFormat = PackageFormat {
    format: Format::Cargo,
    target,
    locate,
    prepare,
    errors: injector::ErrorShape::JsonErrors,
    references: Some(injector::References::CargoIndexFile),
    document_types: &[],
    document_default_type: "text/plain; charset=utf-8",
    extra_replacements: |_, _| Vec::new(),
};

/// A registry's `config.json` is a few keys.
const MAX_CONFIG: usize = 64 * 1024;

/// What a path names, for the gateway's access log: (crate, version or `index`).
pub(crate) fn describe_path(path: &str) -> Option<(&str, String)> {
    let (_, rest) = Format::Cargo.package_path(path)?;
    match cargo_sparse::parse_path(rest).ok()? {
        Endpoint::IndexFile { .. } => Some((rest.rsplit('/').next()?, "index".to_owned())),
        Endpoint::Download { version, .. } => {
            let name = rest.strip_prefix("api/v1/crates/")?.split('/').next()?;
            Some((name, version))
        }
        Endpoint::Config | Endpoint::Api { .. } => None,
    }
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    packages::decide(control, request, verified, &CARGO).await
}

fn index_file(name: &CrateName) -> DocumentRequest {
    DocumentRequest {
        package: name.as_str().to_ascii_lowercase(),
        variant: "index".to_owned(),
        upstream_path: name.index_path(),
        accept: None,
    }
}

fn target(
    rest: &str,
    _query: Option<&str>,
    _headers: &http::HeaderMap,
    _who: Option<&str>,
    group: &GroupSettings,
    client: &str,
) -> Result<Target, ControlError> {
    let endpoint =
        cargo_sparse::parse_path(rest).map_err(|error| ControlError::BadPackageRequest(error.to_string()))?;
    Ok(match endpoint {
        Endpoint::Config => Target::Local(config(group, client)),
        Endpoint::IndexFile { name } => {
            Target::Document { document: index_file(&name), name: Some(name.as_str().to_ascii_lowercase()) }
        }
        Endpoint::Download { name, version } => Target::File {
            path: rest.to_owned(),
            listing: Listing::Document(index_file(&name)),
            name: name.as_str().to_ascii_lowercase(),
            version: Some(version),
            judged: true,
        },
        Endpoint::Api { path } => Target::Local(packages::json(
            StatusCode::NOT_FOUND,
            cargo_sparse::error_body(&format!("/{path} is not served: this registry is a read-only proxy")),
        )),
    })
}

/// This group's `config.json`, for a client that reaches it at `client`.
fn config(group: &GroupSettings, client: &str) -> Response {
    let config = RegistryConfig {
        dl: format!("{client}/api/v1/crates"),
        api: Some(client.to_owned()),
        auth_required: group.access.mode == AccessMode::Token,
    };
    packages::json(StatusCode::OK, cargo_sparse::config_json(&config))
}

/// A crate an index file lists: under the group at the path its listing names; upstream where
/// the upstream's `dl` says.
fn locate(upstream: &UpstreamClient, _document_url: &str, file: &ListedFile) -> Option<FileLocation> {
    let Endpoint::Download { name, version } = cargo_sparse::parse_path(&file.url).ok()? else {
        return None;
    };
    let (dl, _) = upstream.download_template()?;
    let cksum = file.checksum.as_ref().map(|checksum| checksum.hex()).unwrap_or_default();
    let url = cargo_sparse::download_url(&dl, name.as_str(), &version, cksum);
    Some(FileLocation { path: file.url.clone(), url })
}

/// Reads each upstream's `config.json` for its `dl`, when not known or older than the group's
/// `document_recheck`. One that cannot be read keeps what was known; known nowhere, the files
/// cannot be located: the upstream's error.
fn prepare<'a>(
    _control: &'a ControlPlane,
    group: &'a GroupSettings,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ControlError>> + Send + 'a>> {
    Box::pin(async move {
        for upstream in group.upstreams.in_order(None) {
            let fresh = |known: &Option<(String, std::time::Duration)>| {
                known.as_ref().is_some_and(|(_, age)| *age < group.manifest_recheck)
            };
            if fresh(&upstream.download_template()) {
                continue;
            }
            // Concurrent first requests read it once: the others find it fresh.
            let _reading = upstream.reading_download_template().await;
            let known = upstream.download_template();
            if fresh(&known) {
                continue;
            }
            let url = upstream.package_url("config.json");
            let read = upstream.get_document(&url, upstream.package_headers(None), MAX_CONFIG).await;
            let learnt = read.map_err(ControlError::from).and_then(|answer| {
                cargo_sparse::parse_config(&answer.body).map_err(|error| {
                    ControlError::Upstream(upstream::UpstreamError::Protocol(format!(
                        "{url} is not a registry's config.json: {error}"
                    )))
                })
            });
            match (learnt, known) {
                (Ok(config), _) => upstream.learn_download_template(config.dl),
                (Err(error), Some(_)) => {
                    tracing::warn!(upstream = upstream.name(), %error, "cannot read the upstream's config.json: using its last dl");
                }
                (Err(error), None) => return Err(error),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_names_crates_and_versions() {
        assert_eq!(describe_path("/cargo/rust/3/d/dpx"), Some(("dpx", "index".to_owned())));
        assert_eq!(
            describe_path("/cargo/rust/api/v1/crates/dp-alpha/1.0.0/download"),
            Some(("dp-alpha", "1.0.0".to_owned()))
        );
        assert_eq!(describe_path("/cargo/rust/config.json"), None);
    }

    #[test]
    fn crates_are_fetched_where_the_upstream_says() {
        let upstream = crate::packages::test_upstream("https://index.example.com/", None);
        let file = ListedFile {
            url: injector::cargo_download_path("dp-alpha", "1.0.0"),
            version: "1.0.0".into(),
            checksum: None,
        };
        assert!(locate(&upstream, "", &file).is_none(), "its dl is not known yet");
        upstream.learn_download_template("https://cdn.example.com/crates".into());
        let located = locate(&upstream, "", &file).unwrap();
        assert_eq!(located.path, "api/v1/crates/dp-alpha/1.0.0/download");
        assert_eq!(located.url, "https://cdn.example.com/crates/dp-alpha/1.0.0/download");
        let other = ListedFile { url: "1/a".into(), version: String::new(), checksum: None };
        assert!(locate(&upstream, "", &other).is_none());
    }
}
