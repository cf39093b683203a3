//! Pass-through of the listing APIs: `GET /v2/<name>/tags/list`, and the later pages of a
//! referrers list (`/v2/<name>/referrers/<digest>?n=…&last=…`; the first page is cached, see
//! `referrers`), so signature and SBOM tools work through the proxy. Answered from upstream on
//! every request and never cached: a tag listing must be current, and a stale one is worse than an
//! error. A group with several upstreams asks them in order; the first that knows the repository
//! answers.

use axum::body::Body;
use axum::response::Response;
use cache::Resolved;
use http::{HeaderValue, StatusCode, Uri};
use oci::{Digest, ErrorCode, ObjectKind, OciError, RepositoryName};
use upstream::MetadataDocument;

use crate::error::ControlError;

pub(crate) async fn tags_list(resolved: &Resolved, uri: &Uri) -> Result<Response, ControlError> {
    let suffix = format!("tags/list{}", forwarded_query(uri.query(), &["n", "last"]));
    let (document, repository) = metadata_document(resolved, &suffix).await.map_err(|error| match error {
        upstream::UpstreamError::NotFound(_) => {
            ControlError::Oci(OciError::new(ErrorCode::NameUnknown, "repository name not known to upstream"))
        }
        other => other.into(),
    })?;
    let upstream_path = format!("/v2/{repository}/tags/list");
    let link =
        document.link.as_deref().and_then(|link| rewrite_link(link, &upstream_path, uri.path(), uri.query()));
    Ok(document_response(document.content_type.as_deref(), link, document.body))
}

/// The query parameters that ask for a later page of a listing.
const PAGE_PARAMETERS: [&str; 2] = ["n", "last"];

/// Whether a referrers request asks for a later page (passed through) rather than the list.
pub(crate) fn is_page_request(query: Option<&str>) -> bool {
    !forwarded_query(query, &PAGE_PARAMETERS).is_empty()
}

/// A later page of a referrers list, from upstream (its `artifactType` filter as upstream applies it).
pub(crate) async fn referrers_page(
    resolved: &Resolved,
    digest: &Digest,
    uri: &Uri,
) -> Result<Response, ControlError> {
    let allowed = [oci::referrers::ARTIFACT_TYPE_PARAMETER, PAGE_PARAMETERS[0], PAGE_PARAMETERS[1]];
    let suffix = format!("referrers/{digest}{}", forwarded_query(uri.query(), &allowed));
    let (document, repository) = metadata_document(resolved, &suffix).await.map_err(|error| match error {
        // Upstreams without the referrers API answer 404; clients then fall back to the tag schema.
        upstream::UpstreamError::NotFound(_) => not_served(),
        other => other.into(),
    })?;
    let upstream_path = format!("/v2/{repository}/referrers/{digest}");
    let link =
        document.link.as_deref().and_then(|link| rewrite_link(link, &upstream_path, uri.path(), uri.query()));
    let mut response = document_response(Some(oci::media::OCI_INDEX), link, document.body);
    // Only upstream knows whether it applied the `artifactType` filter we forwarded.
    if let Some(applied) = document.filters_applied
        && let Ok(value) = HeaderValue::try_from(applied)
    {
        response.headers_mut().insert(oci::referrers::FILTERS_APPLIED_HEADER, value);
    }
    Ok(response)
}

/// The answer when upstream serves no referrers API for a manifest.
pub(crate) fn not_served() -> ControlError {
    ControlError::Oci(OciError::new(
        ErrorCode::ManifestUnknown,
        "the upstream registry does not serve the referrers API for this manifest",
    ))
}

/// The document from the group's upstreams, asked in order (the first that has the repository
/// answers), with the repository name that upstream knows.
async fn metadata_document(
    resolved: &Resolved,
    suffix: &str,
) -> Result<(MetadataDocument, RepositoryName), upstream::UpstreamError> {
    let order = resolved.group.upstreams.in_order(None);
    let (answer, _) = cache::first_answer(&order, |upstream| {
        let repository = upstream.upstream_repository(&resolved.image);
        async move {
            let document = upstream.get_metadata(&repository, suffix, ObjectKind::Manifest).await?;
            Ok::<_, upstream::UpstreamError>((document, repository))
        }
    })
    .await?;
    Ok(answer)
}

pub(crate) fn document_response(
    content_type: Option<&str>,
    link: Option<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let content_type = content_type.unwrap_or("application/json");
    if let Ok(value) = HeaderValue::try_from(content_type) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    if let Some(link) = link
        && let Ok(value) = HeaderValue::try_from(link)
    {
        headers.insert(http::header::LINK, value);
    }
    headers.insert(oci::API_VERSION_HEADER, HeaderValue::from_static(oci::API_VERSION));
    response
}

/// The client's query parameters named in `allowed`, re-encoded (`?ns=` and anything else of ours
/// is not upstream's business).
fn forwarded_query(query: Option<&str>, allowed: &[&str]) -> String {
    let Some(query) = query else { return String::new() };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| allowed.contains(&key.as_ref()))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    if pairs.is_empty() {
        return String::new();
    }
    let encoded: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("?{encoded}")
}

/// Points a pagination `Link` at the proxy: upstream's path (and host) become the client's path;
/// the client's own routing parameters (`ns`) are kept. A link that is not the same listing's
/// next page is dropped: passed on, it would send clients to another host.
pub(crate) fn rewrite_link(
    link: &str,
    upstream_path: &str,
    client_path: &str,
    client_query: Option<&str>,
) -> Option<String> {
    let start = link.find('<')?;
    let end = link[start..].find('>').map(|end| start + end)?;
    let target = &link[start + 1..end];
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        let parsed = url::Url::parse(target).ok()?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return None;
        }
        let host_end = target.find("://")? + 3;
        let path_at = target[host_end..].find('/')? + host_end;
        &target[path_at..]
    };
    let rest = path_and_query.strip_prefix(upstream_path)?;
    if !(rest.is_empty() || rest.starts_with('?')) || rest.contains('#') {
        return None;
    }
    let namespace = oci::registry::namespace_parameter(client_query)
        .map(|ns| url::form_urlencoded::Serializer::new(String::new()).append_pair("ns", &ns).finish());
    let rest = match (namespace, rest.is_empty()) {
        (Some(ns), true) => format!("?{ns}"),
        (Some(ns), false) => format!("{rest}&{ns}"),
        (None, _) => rest.to_owned(),
    };
    Some(format!("{}<{client_path}{rest}>{}", &link[..start], &link[end + 1..]))
}

/// The request headers a package pass-through forwards: what says what the body is and what
/// the client takes. Never the client's `Authorization`: it is ours; the upstream gets its own.
const PACKAGE_FORWARDED: [http::header::HeaderName; 3] =
    [http::header::CONTENT_TYPE, http::header::ACCEPT, http::header::CONTENT_ENCODING];

/// A package request passed through to the group's first upstream uncached (`npm ping`,
/// `npm audit`, dist-tags): its status, content type and body, bounded.
pub(crate) async fn package(
    group: &cache::GroupSettings,
    method: &http::Method,
    upstream_path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ControlError> {
    let upstream = group.upstreams.first();
    let mut url = upstream.package_url(upstream_path);
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        url = format!("{url}?{query}");
    }
    let mut forwarded = upstream.package_headers(None);
    for name in PACKAGE_FORWARDED {
        if let Some(value) = headers.get(&name) {
            forwarded.insert(name, value.clone());
        }
    }
    let answer = upstream.pass_through(method.clone(), &url, forwarded, body, MAX_PASSED_THROUGH).await?;
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    if let Some(value) = answer.content_type.as_deref().and_then(|text| HeaderValue::from_str(text).ok()) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// Answers passed through are read whole: at most this much.
const MAX_PASSED_THROUGH: usize = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_point_back_at_the_proxy() {
        assert_eq!(
            rewrite_link(
                "</v2/library/alpine/tags/list?last=3.19&n=2>; rel=\"next\"",
                "/v2/library/alpine/tags/list",
                "/v2/alpine/tags/list",
                None
            ),
            Some("</v2/alpine/tags/list?last=3.19&n=2>; rel=\"next\"".to_owned())
        );
        assert_eq!(
            rewrite_link(
                "<https://up.example/v2/x/tags/list?n=1&last=a>; rel=\"next\"",
                "/v2/x/tags/list",
                "/v2/x/tags/list",
                Some("ns=up.example")
            ),
            Some("</v2/x/tags/list?n=1&last=a&ns=up.example>; rel=\"next\"".to_owned())
        );
    }

    #[test]
    fn links_that_are_not_the_next_page_are_dropped() {
        for link in [
            "<https://evil.example/steal>; rel=\"next\"",
            "<https://evil.example/x?/v2/x/tags/list>; rel=\"next\"",
            "</v2/x/tags/list/../../other>; rel=\"next\"",
            "</v2/y/tags/list?n=1>; rel=\"next\"",
            "<javascript:alert(1)>",
            "no brackets",
        ] {
            assert_eq!(rewrite_link(link, "/v2/x/tags/list", "/v2/x/tags/list", None), None, "{link}");
        }
    }

    #[test]
    fn only_allowed_parameters_are_forwarded() {
        assert_eq!(forwarded_query(Some("ns=docker.io&n=5&evil=1"), &["n", "last"]), "?n=5");
        assert_eq!(forwarded_query(Some("ns=docker.io"), &["n"]), "");
        assert_eq!(forwarded_query(None, &["n"]), "");
    }
}
