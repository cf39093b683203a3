//! The PyPI format: the simple repository API pip, uv and poetry speak, at `/pypi/<group path>/`.
//! A project page (`/simple/{project}/`, PEP 503 HTML or PEP 691 JSON as the client's `Accept`
//! chooses, each its own document) is served with its file URLs naming the proxy: relative links
//! stay relative (the proxy's paths mirror the upstream's), absolute ones on the upstream's `url`
//! or `files_url` are rewritten (`files_url` maps to `files/`). A file (`.whl`, `.tar.gz`, `.zip`,
//! and PEP 658's `.metadata`) is verified against the page's `sha256`. A project name that is
//! not normalised (PEP 503) redirects to the normalised URL; the root listing `/simple/` is not
//! served (404: proxying the whole index is not what a build needs). Bad names are a 400 in plain
//! text, never an upstream request.

use axum::extract::Request;
use axum::response::Response;
use cache::{DocumentRequest, Format};
use http::StatusCode;
use injector::{References, Replace, VerifiedRequest};
use pypi::Endpoint;
use upstream::UpstreamClient;

use crate::error::ControlError;
use crate::packages::{self, Listing, PackageFormat, Target};
use crate::plane::ControlPlane;

/// What pip asks for: JSON first, HTML as the fallback.
const JSON_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
const HTML_ACCEPT: &str = "application/vnd.pypi.simple.v1+html, text/html;q=0.9";

pub(crate) const PYPI: PackageFormat = PackageFormat {
    format: Format::Pypi,
    target,
    locate: |upstream, document_url, file| packages::locate_by_url(upstream, document_url, file, file_path),
    prepare: packages::nothing_to_prepare,
    errors: injector::ErrorShape::Text,
    references: Some(References::PypiProjectPage),
    document_types: &[pypi::JSON_MEDIA_TYPE, pypi::HTML_MEDIA_TYPE, "text/html", "application/json"],
    document_default_type: "text/html",
    extra_replacements,
};

/// `files_url` → `files/` under the group; and links relative to the upstream's root (pypiserver
/// writes `href="/packages/…"`), which would leave the group: `/<upstream path>/` → the group's
/// path, in HTML attributes and PEP 691 `url`s.
fn extra_replacements(upstream: &UpstreamClient, client: &str) -> Vec<Replace> {
    let mut replacements = Vec::new();
    if let Some(files) = files_base(upstream) {
        replacements.push(Replace {
            from: format!("{}/", files.as_str().trim_end_matches('/')),
            to: format!("{client}/files/"),
        });
    }
    let root = upstream.url().path().trim_end_matches('/');
    let group_path =
        url::Url::parse(client).map(|url| url.path().to_owned()).unwrap_or_else(|_| client.to_owned());
    for open in ["href=\"", "href='", "\"url\":\"", "\"url\": \""] {
        replacements.push(Replace {
            from: format!("{open}{root}/"),
            to: format!("{open}{}/", group_path.trim_end_matches('/')),
        });
    }
    replacements
}

/// What a path names, for the gateway's access log: a project page as (project, `simple`), a
/// file as (file name, version).
pub(crate) fn describe_path(path: &str) -> Option<(&str, String)> {
    let (_, rest) = Format::Pypi.package_path(path)?;
    match pypi::parse_path(rest).ok()? {
        Endpoint::Project { .. } => {
            Some((rest.trim_start_matches("simple/").trim_end_matches('/'), "simple".to_owned()))
        }
        Endpoint::File { .. } => {
            let file = rest.rsplit('/').next().unwrap_or(rest);
            Some((file, pypi::version_of_filename(file).unwrap_or_default()))
        }
        Endpoint::Root => None,
    }
}

pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    packages::decide(control, request, verified, &PYPI).await
}

/// The project page of `normalized`, in the form the client asked for.
fn project_page(normalized: &str, json: bool) -> DocumentRequest {
    DocumentRequest {
        package: normalized.to_owned(),
        variant: if json { "json" } else { "html" }.to_owned(),
        upstream_path: format!("simple/{normalized}/"),
        accept: Some(if json { JSON_ACCEPT } else { HTML_ACCEPT }),
    }
}

fn target(
    rest: &str,
    _query: Option<&str>,
    headers: &http::HeaderMap,
    _who: Option<&str>,
    _group: &cache::GroupSettings,
    _client: &str,
) -> Result<Target, ControlError> {
    let accept = headers.get(http::header::ACCEPT).and_then(|value| value.to_str().ok());
    let endpoint =
        pypi::parse_path(rest).map_err(|error| ControlError::BadPackageRequest(error.to_string()))?;
    Ok(match endpoint {
        Endpoint::Root => Target::Local(not_served()),
        Endpoint::Project { name, .. } => {
            if !name.is_normalized() || !rest.ends_with('/') {
                // Relative to the request: `simple/Dp.Gamma/` → `../dp-gamma/`, `simple/x` → `x/`.
                let up = if rest.ends_with('/') { "../" } else { "" };
                return Ok(Target::Local(packages::redirect(&format!("{up}{}/", name.normalized()))?));
            }
            let document = project_page(name.normalized(), pypi::wants_json(accept));
            Target::Document { document, name: Some(name.normalized().to_owned()) }
        }
        Endpoint::File { path } => {
            let file_name = path.rsplit('/').next().unwrap_or(&path);
            let project = pypi::project_of_filename(file_name).ok_or_else(|| {
                ControlError::BadPackageRequest(format!("{file_name:?} is not a distribution file name"))
            })?;
            let version = pypi::version_of_filename(file_name);
            Target::File {
                listing: Listing::Document(project_page(&project, true)),
                name: project,
                version,
                path,
                judged: true,
            }
        }
    })
}

fn not_served() -> Response {
    let mut response = Response::new(axum::body::Body::from(
        "the root listing /simple/ is not served by this proxy: ask for /simple/<project>/\n",
    ));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// The upstream's `files_url`, unless it is its `url` itself: then its files are the upstream's
/// own paths (a `files_url` naming the index's host changes nothing).
fn files_base(upstream: &UpstreamClient) -> Option<&url::Url> {
    let trimmed = |url: &url::Url| url.as_str().trim_end_matches('/').to_owned();
    upstream.files_url().filter(|files| trimmed(files) != trimmed(upstream.url()))
}

/// A file URL of a page at `document_url` (relative ones resolved against it) → its path under
/// the group: under the upstream's `url` as it is there, under its `files_url` below `files/`.
/// A file elsewhere is not proxied.
fn file_path(upstream: &UpstreamClient, document_url: &str, url: &str) -> Option<String> {
    let absolute = pypi::resolve_href(document_url, url)?;
    let absolute = absolute.split('#').next().unwrap_or(&absolute);
    let under = |base: &url::Url| -> Option<String> {
        let base = base.as_str().trim_end_matches('/');
        absolute.strip_prefix(base)?.strip_prefix('/').map(str::to_owned)
    };
    let path = match files_base(upstream).and_then(under) {
        Some(rest) => format!("files/{rest}"),
        None => under(upstream.url())?,
    };
    matches!(pypi::parse_path(&path), Ok(Endpoint::File { .. })).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_names_projects_and_file_versions() {
        assert_eq!(describe_path("/pypi/python/simple/dp-alpha/"), Some(("dp-alpha", "simple".to_owned())));
        assert_eq!(
            describe_path("/pypi/python/packages/dp_alpha-1.1-py3-none-any.whl"),
            Some(("dp_alpha-1.1-py3-none-any.whl", "1.1".to_owned()))
        );
        assert_eq!(describe_path("/pypi/python/simple/"), None);
        assert_eq!(describe_path("/v2/x/manifests/1"), None);
    }

    #[test]
    fn file_paths_map_under_the_group() {
        let upstream =
            |files: Option<&str>| crate::packages::test_upstream("http://index.example.com/root/", files);
        let page = "http://index.example.com/root/simple/dp-alpha/";
        let plain = upstream(None);
        assert_eq!(
            file_path(&plain, page, "../../packages/dp_alpha-1.0-py3-none-any.whl").as_deref(),
            Some("packages/dp_alpha-1.0-py3-none-any.whl")
        );
        assert_eq!(
            file_path(&plain, page, "/root/packages/dp-alpha-1.0.tar.gz#sha256=00").as_deref(),
            Some("packages/dp-alpha-1.0.tar.gz")
        );
        assert_eq!(file_path(&plain, page, "https://elsewhere.example.com/x-1.0.tar.gz"), None);
        assert_eq!(file_path(&plain, page, "../../simple/other/"), None, "not a file");
        let files = upstream(Some("https://files.example.com"));
        assert_eq!(
            file_path(&files, page, "https://files.example.com/ab/cd/dp-alpha-1.0.tar.gz").as_deref(),
            Some("files/ab/cd/dp-alpha-1.0.tar.gz")
        );
        let same = upstream(Some("http://index.example.com/root"));
        assert_eq!(
            file_path(&same, page, "/root/packages/dp-alpha-1.0.tar.gz").as_deref(),
            Some("packages/dp-alpha-1.0.tar.gz"),
            "a files_url naming the index itself changes nothing"
        );
        assert!(
            extra_replacements(&same, "http://proxy/pypi/python")
                .iter()
                .all(|replace| !replace.to.contains("/files/"))
        );
        let replacements = extra_replacements(&files, "http://proxy.example.com:5000/pypi/python");
        assert!(replacements.iter().any(|replace| replace.from == "https://files.example.com/"
            && replace.to == "http://proxy.example.com:5000/pypi/python/files/"));
        assert!(
            replacements
                .iter()
                .any(|replace| replace.from == "href=\"/root/" && replace.to == "href=\"/pypi/python/")
        );
    }
}
