//! Pass-through of the listing APIs: `GET /v2/<name>/tags/list` and the referrers API
//! (`/v2/<name>/referrers/<digest>`, with its `artifactType` filter), so signature and SBOM tools
//! work through the proxy. Both are small JSON documents, answered from upstream on every request
//! and never cached: a listing must be current, and a stale one is worse than an error.

use axum::body::Body;
use axum::response::Response;
use cache::Resolved;
use http::{HeaderValue, StatusCode, Uri};
use oci::{Digest, ErrorCode, ObjectKind, OciError};

use crate::error::ControlError;

pub(crate) async fn tags_list(resolved: &Resolved, uri: &Uri) -> Result<Response, ControlError> {
    let upstream = &resolved.group.upstream;
    let repository = upstream.upstream_repository(&resolved.image);
    let suffix = format!("tags/list{}", forwarded_query(uri.query(), &["n", "last"]));
    let document = upstream.get_metadata(&repository, &suffix, ObjectKind::Manifest).await.map_err(
        |error| match error {
            upstream::UpstreamError::NotFound(_) => ControlError::Oci(OciError::new(
                ErrorCode::NameUnknown,
                "repository name not known to upstream",
            )),
            other => other.into(),
        },
    )?;
    let upstream_path = format!("/v2/{repository}/tags/list");
    let link =
        document.link.as_deref().map(|link| rewrite_link(link, &upstream_path, uri.path(), uri.query()));
    Ok(document_response(document.content_type.as_deref(), link, document.body))
}

pub(crate) async fn referrers(
    resolved: &Resolved,
    digest: &Digest,
    uri: &Uri,
) -> Result<Response, ControlError> {
    let upstream = &resolved.group.upstream;
    let repository = upstream.upstream_repository(&resolved.image);
    let suffix = format!("referrers/{digest}{}", forwarded_query(uri.query(), &["artifactType"]));
    let document = upstream.get_metadata(&repository, &suffix, ObjectKind::Manifest).await.map_err(
        |error| match error {
            // Upstreams without the referrers API answer 404; clients then fall back to the tag schema.
            upstream::UpstreamError::NotFound(_) => ControlError::Oci(OciError::new(
                ErrorCode::ManifestUnknown,
                "the upstream registry does not serve the referrers API for this manifest",
            )),
            other => other.into(),
        },
    )?;
    let upstream_path = format!("/v2/{repository}/referrers/{digest}");
    let link =
        document.link.as_deref().map(|link| rewrite_link(link, &upstream_path, uri.path(), uri.query()));
    let mut response = document_response(Some(oci::media::OCI_INDEX), link, document.body);
    // Only upstream knows whether it applied the `artifactType` filter we forwarded.
    if let Some(applied) = document.filters_applied
        && let Ok(value) = HeaderValue::try_from(applied)
    {
        response.headers_mut().insert("OCI-Filters-Applied", value);
    }
    Ok(response)
}

fn document_response(content_type: Option<&str>, link: Option<String>, body: axum::body::Bytes) -> Response {
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
/// the client's own routing parameters (`ns`) are kept.
fn rewrite_link(link: &str, upstream_path: &str, client_path: &str, client_query: Option<&str>) -> String {
    let Some(start) = link.find('<') else { return link.to_owned() };
    let Some(end) = link[start..].find('>').map(|end| start + end) else { return link.to_owned() };
    let target = &link[start + 1..end];
    let Some(at) = target.find(upstream_path) else { return link.to_owned() };
    let rest = &target[at + upstream_path.len()..];
    let namespace = oci::registry::namespace_parameter(client_query)
        .map(|ns| url::form_urlencoded::Serializer::new(String::new()).append_pair("ns", &ns).finish());
    let rest = match (namespace, rest.is_empty()) {
        (Some(ns), true) => format!("?{ns}"),
        (Some(ns), false) => format!("{rest}&{ns}"),
        (None, _) => rest.to_owned(),
    };
    format!("{}<{client_path}{rest}>{}", &link[..start], &link[end + 1..])
}

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
            "</v2/alpine/tags/list?last=3.19&n=2>; rel=\"next\""
        );
        assert_eq!(
            rewrite_link(
                "<https://up.example/v2/x/tags/list?n=1&last=a>; rel=\"next\"",
                "/v2/x/tags/list",
                "/v2/x/tags/list",
                Some("ns=up.example")
            ),
            "</v2/x/tags/list?n=1&last=a&ns=up.example>; rel=\"next\""
        );
    }

    #[test]
    fn only_allowed_parameters_are_forwarded() {
        assert_eq!(forwarded_query(Some("ns=docker.io&n=5&evil=1"), &["n", "last"]), "?n=5");
        assert_eq!(forwarded_query(Some("ns=docker.io"), &["n"]), "");
        assert_eq!(forwarded_query(None, &["n"]), "");
    }
}
