//! The referrers API (`/v2/<name>/referrers/<digest>`) answered from the cached list
//! ([`cache::Referrers`]): the `artifactType` filter applied here, to the full list
//! (`OCI-Filters-Applied: artifactType`), the stale `Warning` when upstream could not confirm the
//! list, and a 404 when upstream serves no referrers API (clients then read the tag schema). A
//! later page (`n`, `last`) passes through uncached.

use axum::response::Response;
use cache::Resolved;
use http::{HeaderValue, Uri};
use oci::Digest;

use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{passthrough, render};

pub(crate) async fn referrers(
    control: &ControlPlane,
    resolved: &Resolved,
    subject: &Digest,
    uri: &Uri,
) -> Result<Response, ControlError> {
    if passthrough::is_page_request(uri.query()) {
        return passthrough::referrers_page(resolved, subject, uri).await;
    }
    let answer = control.cache.referrers(resolved, subject).await?;
    let Some(list) = answer.list else { return Err(passthrough::not_served()) };
    let wanted = artifact_types(uri.query());
    let (body, filtered) = if wanted.is_empty() {
        (list, false)
    } else {
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        match oci::referrers::filter_referrers(&list, &wanted) {
            Ok(filtered) => (filtered.into(), true),
            // Checked when it was recorded; should it not read now, the whole list still answers
            // (without the header, the client filters it itself, as the spec allows).
            Err(error) => {
                tracing::warn!(%subject, %error, "cached referrers list not filtered");
                (list, false)
            }
        }
    };
    let link = answer
        .link
        .as_deref()
        .and_then(|link| passthrough::rewrite_link(link, &answer.upstream_path, uri.path(), uri.query()));
    let mut response = passthrough::document_response(Some(oci::media::OCI_INDEX), link, body);
    let headers = response.headers_mut();
    if filtered {
        headers.insert(
            oci::referrers::FILTERS_APPLIED_HEADER,
            HeaderValue::from_static(oci::referrers::ARTIFACT_TYPE_PARAMETER),
        );
    }
    if let Some(stale) = answer.stale {
        headers.insert(http::header::WARNING, HeaderValue::from_static(render::stale_warning(stale)));
    }
    Ok(response)
}

/// The artifact types the client's query asks for (`artifactType`, possibly repeated).
fn artifact_types(query: Option<&str>) -> Vec<String> {
    let Some(query) = query else { return Vec::new() };
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, value)| key == oci::referrers::ARTIFACT_TYPE_PARAMETER && !value.is_empty())
        .map(|(_, value)| value.into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_reads_every_artifact_type_asked_for() {
        assert_eq!(
            artifact_types(Some("artifactType=application%2Fspdx%2Bjson&ns=up.example&artifactType=a%2Fb")),
            ["application/spdx+json", "a/b"]
        );
        assert!(artifact_types(Some("ns=up.example&artifactType=")).is_empty());
        assert!(artifact_types(None).is_empty());
        assert!(!passthrough::is_page_request(Some("artifactType=a&ns=x")));
        assert!(passthrough::is_page_request(Some("n=10&last=x")));
    }
}
