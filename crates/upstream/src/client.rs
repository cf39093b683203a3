//! [`UpstreamClient`]: one configured upstream registry.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use oci::{Digest, ObjectKind, Reference, RepositoryName};
use telemetry::error_chain;
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::auth::{AuthScheme, CachedToken, Credentials, fetch_token};
use crate::error::UpstreamError;
use crate::http::{EgressClient, HttpOptions, build_http_client, check_status};
use crate::metrics::{RequestKind, UpstreamMetrics, host_label};

/// Static settings of one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The name it has in the configuration (used by the path-prefix URL form).
    pub name: String,
    /// Base URL, e.g. `https://registry-1.docker.io`.
    pub url: url::Url,
    pub credentials: Option<Credentials>,
    pub http: HttpOptions,
    pub metrics: UpstreamMetrics,
    /// For a PyPI upstream: where its index's download URLs point, when not at `url` (fetched
    /// through this upstream's client: it must be in `http.redirect_allow` when private).
    pub files_url: Option<url::Url>,
}

/// What a HEAD of a manifest or blob told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// A long-lived client of one upstream registry; cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

/// The discovered auth scheme is asked again after this long (and after a 401), so a registry
/// that changes its token service is followed without a restart.
const AUTH_SCHEME_TTL: Duration = Duration::from_secs(600);

struct Inner {
    config: UpstreamConfig,
    base: String,
    http: EgressClient,
    /// The scheme and when it was discovered.
    scheme: RwLock<Option<(AuthScheme, Instant)>>,
    /// The host of the last token realm discovered, kept across a forgotten scheme: a realm that
    /// moves to another host is worth an operator's look.
    realm_host: std::sync::Mutex<Option<String>>,
    tokens: moka::future::Cache<String, Arc<CachedToken>>,
    docker_hub: bool,
    /// Where the upstream says its files are, as it last said (a Cargo registry's `dl` template,
    /// read from its `config.json`), and when that was read.
    download_template: std::sync::RwLock<Option<(String, std::time::Instant)>>,
    /// Held while the template is read from the upstream, so concurrent requests read it once.
    download_template_read: tokio::sync::Mutex<()>,
}

impl UpstreamClient {
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        let http = build_http_client(&config.http, &config.url)?;
        let base = config.url.as_str().trim_end_matches('/').to_owned();
        let docker_hub = config.url.host_str().is_some_and(oci::registry::is_docker_hub_host);
        let tokens = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(3600))
            .build();
        Ok(UpstreamClient {
            inner: Arc::new(Inner {
                config,
                base,
                http,
                scheme: RwLock::new(None),
                realm_host: std::sync::Mutex::new(None),
                tokens,
                docker_hub,
                download_template: std::sync::RwLock::new(None),
                download_template_read: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    pub fn url(&self) -> &url::Url {
        &self.inner.config.url
    }

    /// Where a PyPI upstream's download URLs point, when not at its URL.
    pub fn files_url(&self) -> Option<&url::Url> {
        self.inner.config.files_url.as_ref()
    }

    /// Where the upstream said its files are (a Cargo registry's `dl`), and how long ago it said
    /// so; none until [`Self::learn_download_template`].
    pub fn download_template(&self) -> Option<(String, Duration)> {
        let known = self.inner.download_template.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.as_ref().map(|(template, at)| (template.clone(), at.elapsed()))
    }

    /// Taken while the download template is read from the upstream: whoever waited for it finds
    /// the template fresh and reads nothing.
    pub async fn reading_download_template(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.download_template_read.lock().await
    }

    /// Records where the upstream says its files are, as just read from it.
    pub fn learn_download_template(&self, template: String) {
        let mut known =
            self.inner.download_template.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *known = Some((template, std::time::Instant::now()));
    }

    /// `host[:port]` of the upstream, as containerd's `?ns=` names registries.
    pub fn host_port(&self) -> String {
        host_label(&self.inner.config.url)
    }

    /// A group moved past this upstream to its next one because it failed.
    pub fn failed_over(&self) {
        self.inner.config.metrics.failed_over(&self.host_port());
    }

    fn count(&self, kind: RequestKind) {
        self.inner.config.metrics.count(&self.host_port(), kind);
    }

    pub fn is_docker_hub(&self) -> bool {
        self.inner.docker_hub
    }

    /// The repository name upstream knows: Docker Hub official images live under `library/`.
    pub fn upstream_repository(&self, image: &RepositoryName) -> RepositoryName {
        if self.inner.docker_hub { image.with_library_prefix() } else { image.clone() }
    }

    /// Absolute URL of a manifest or blob (`repository` already mapped by
    /// [`Self::upstream_repository`]).
    pub fn object_url(&self, repository: &RepositoryName, kind: ObjectKind, reference: &Reference) -> String {
        let segment = match kind {
            ObjectKind::Manifest => "manifests",
            ObjectKind::Blob => "blobs",
        };
        format!("{}/v2/{}/{}/{}", self.inner.base, repository, segment, reference)
    }

    async fn discover_scheme(&self) -> Result<AuthScheme, UpstreamError> {
        if let Some((scheme, discovered)) = self.inner.scheme.read().await.clone()
            && discovered.elapsed() < AUTH_SCHEME_TTL
        {
            return Ok(scheme);
        }
        let url = format!("{}/v2/", self.inner.base);
        let timeout = self.inner.config.http.header_timeout;
        self.count(RequestKind::Ping);
        let response = self.send(http::Method::GET, &url, HeaderMap::new(), timeout).await?;
        let scheme = match response.status() {
            status if status.is_success() => AuthScheme::Anonymous,
            StatusCode::UNAUTHORIZED => {
                let values: Vec<String> = response
                    .headers()
                    .get_all(http::header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|value| value.to_str().ok().map(str::to_owned))
                    .collect();
                AuthScheme::from_challenges(&values)?
            }
            status => {
                return Err(UpstreamError::from_status(
                    status,
                    ObjectKind::Manifest,
                    None,
                    format!("GET /v2/ answered {status}"),
                ));
            }
        };
        if let AuthScheme::Bearer { realm, .. } = &scheme {
            self.note_realm_host(realm);
        }
        *self.inner.scheme.write().await = Some((scheme.clone(), Instant::now()));
        Ok(scheme)
    }

    /// Warns (an event for operators) when the realm's host is not the one discovered before: a
    /// token service that moved, or a challenge someone rewrote.
    fn note_realm_host(&self, realm: &str) {
        let host = url::Url::parse(realm).ok().and_then(|url| url.host_str().map(str::to_ascii_lowercase));
        let mut last = self.inner.realm_host.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some(before), Some(now)) = (last.as_deref(), host.as_deref())
            && before != now
        {
            tracing::warn!(
                upstream = %self.name(),
                before,
                now,
                "the upstream's token realm moved to another host; credentials go there only if it is the upstream's own host or in realm_allow"
            );
        }
        if host.is_some() {
            *last = host;
        }
    }

    /// After a 401 with our credentials: the scheme, realm or token may have changed upstream,
    /// so the next call discovers them again.
    async fn forget_auth(&self, repository: &RepositoryName) {
        *self.inner.scheme.write().await = None;
        self.inner.tokens.invalidate(&format!("repository:{repository}:pull")).await;
    }

    /// `result`, having forgotten the auth state if it is a 401, and noted any failure for
    /// operators.
    async fn note_refusal<T>(
        &self,
        repository: &RepositoryName,
        result: Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        if let Err(error) = &result {
            self.inner.config.metrics.status().failed(&self.host_port(), error);
            if let UpstreamError::Refused { status: StatusCode::UNAUTHORIZED, .. } = error {
                self.forget_auth(repository).await;
            }
        }
        result
    }

    /// Sends `method url` and waits at most `timeout` for the response headers; notes how the
    /// upstream answered (latency, its rate-limit budget) or that it did not.
    async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = self.inner.http.send(method.clone(), url, headers);
        self.timed(&method, url, timeout, request).await
    }

    /// Waits at most `timeout` for `request`'s answer and notes how the upstream answered.
    async fn timed(
        &self,
        method: &http::Method,
        url: &str,
        timeout: Duration,
        request: impl Future<Output = Result<reqwest::Response, UpstreamError>>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let started = std::time::Instant::now();
        let outcome = match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(UpstreamError::Timeout(format!("{method} {url} took over {timeout:?}"))),
            Ok(outcome) => outcome,
        };
        let status = self.inner.config.metrics.status();
        match &outcome {
            Ok(response) => status.answered(&self.host_port(), response.headers(), started.elapsed()),
            Err(error) => status.failed(&self.host_port(), error),
        }
        outcome
    }

    /// Sends `method url` (redirects followed as the rules allow), waiting at most `timeout` for
    /// the answer's headers, noted as [`Self::send`] notes it.
    pub(crate) async fn send_request(
        &self,
        method: http::Method,
        url: &str,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.send(method, url, headers, timeout).await
    }

    /// Sends `method url` with a body, once (no redirect followed).
    pub(crate) async fn send_with_body(
        &self,
        method: http::Method,
        url: &str,
        headers: HeaderMap,
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = self.inner.http.send_body(method.clone(), url, headers, body);
        self.timed(&method, url, timeout, request).await
    }

    pub(crate) fn count_request(&self, kind: RequestKind) {
        self.count(kind);
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        self.inner.config.http.header_timeout
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.inner.config.credentials.as_ref()
    }

    /// The `Authorization` header value for pulling `repository`, if the upstream wants one.
    /// Fetches (and caches) a token when needed: only misses and rechecks call this, never hits.
    pub async fn authorization(&self, repository: &RepositoryName) -> Result<Option<String>, UpstreamError> {
        match self.discover_scheme().await? {
            AuthScheme::Anonymous => Ok(None),
            AuthScheme::Basic => match &self.inner.config.credentials {
                Some(credentials) => Ok(Some(credentials.basic_header())),
                None => Err(UpstreamError::Refused {
                    status: StatusCode::UNAUTHORIZED,
                    message: "upstream requires Basic credentials and none are configured".into(),
                }),
            },
            AuthScheme::Bearer { realm, service } => {
                let scope = format!("repository:{repository}:pull");
                if let Some(token) = self.inner.tokens.get(&scope).await {
                    if Instant::now() < token.refresh_at {
                        return Ok(Some(token.header.clone()));
                    }
                    self.inner.tokens.invalidate(&scope).await;
                }
                let http = self.inner.http.clone();
                let credentials = self.inner.config.credentials.clone();
                let client = self.clone();
                let timeout = self.inner.config.http.header_timeout;
                let token = self
                    .inner
                    .tokens
                    .try_get_with(scope.clone(), async move {
                        client.count(RequestKind::Token);
                        fetch_token(&http, &realm, service.as_deref(), &scope, credentials.as_ref(), timeout)
                            .await
                    })
                    .await
                    .map_err(|error| (*error).clone())?;
                Ok(Some(token.header.clone()))
            }
        }
    }

    /// Request headers for fetching an object of `repository`.
    pub async fn request_headers(
        &self,
        repository: &RepositoryName,
        kind: ObjectKind,
    ) -> Result<HeaderMap, UpstreamError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = self.authorization(repository).await? {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| UpstreamError::Token("token is not a valid header value".into()))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if kind == ObjectKind::Manifest {
            let accept = HeaderValue::from_str(&oci::media::manifest_accept_header())
                .map_err(|_| UpstreamError::Protocol("bad Accept header".into()))?;
            headers.insert(http::header::ACCEPT, accept);
        }
        Ok(headers)
    }

    /// HEAD of a manifest or blob: digest, media type and size without the body. Free of Docker
    /// Hub's pull rate limit for manifests.
    pub async fn head(
        &self,
        repository: &RepositoryName,
        kind: ObjectKind,
        reference: &Reference,
    ) -> Result<ObjectHead, UpstreamError> {
        let headers = self.request_headers(repository, kind).await?;
        let url = self.object_url(repository, kind, reference);
        let timeout = self.inner.config.http.header_timeout;
        self.count(match kind {
            ObjectKind::Manifest => RequestKind::HeadManifest,
            ObjectKind::Blob => RequestKind::HeadBlob,
        });
        let response = self.send(http::Method::HEAD, &url, headers, timeout).await?;
        let response = self.note_refusal(repository, check_status(response, kind).await).await?;
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok());
        let digest = match header(oci::CONTENT_DIGEST_HEADER) {
            Some(text) => Some(text.parse::<Digest>().map_err(|error| {
                UpstreamError::Protocol(format!("upstream sent a bad digest header: {}", error_chain(&error)))
            })?),
            None => None,
        };
        Ok(ObjectHead {
            digest,
            media_type: header(http::header::CONTENT_TYPE.as_str()).map(str::to_owned),
            size: header(http::header::CONTENT_LENGTH.as_str()).and_then(|text| text.parse().ok()),
        })
    }
}

/// A small metadata document fetched from upstream (tag list, referrers index).
#[derive(Debug, Clone)]
pub struct MetadataDocument {
    pub content_type: Option<String>,
    /// `Link` header (pagination), as upstream sent it.
    pub link: Option<String>,
    /// `OCI-Filters-Applied` (referrers), as upstream sent it.
    pub filters_applied: Option<String>,
    pub body: bytes::Bytes,
}

/// Tag lists and referrer indexes are JSON documents; anything bigger is refused.
const MAX_METADATA_DOCUMENT: usize = 4 << 20;

impl UpstreamClient {
    /// GETs `/v2/<repository>/<suffix>` (e.g. `tags/list?n=10`, `referrers/<digest>`), passing
    /// the document through. `not_found` classifies a 404.
    pub async fn get_metadata(
        &self,
        repository: &RepositoryName,
        suffix: &str,
        not_found: ObjectKind,
    ) -> Result<MetadataDocument, UpstreamError> {
        let mut headers = self.request_headers(repository, ObjectKind::Blob).await?;
        let url = format!("{}/v2/{}/{}", self.inner.base, repository, suffix);
        let timeout = self.inner.config.http.header_timeout;
        if suffix.starts_with("referrers/") {
            headers.insert(http::header::ACCEPT, HeaderValue::from_static(oci::media::OCI_INDEX));
            self.count(RequestKind::Referrers);
        } else {
            self.count(RequestKind::TagsList);
        }
        let response = self.send(http::Method::GET, &url, headers, timeout).await?;
        let mut response = self.note_refusal(repository, check_status(response, not_found).await).await?;
        let header = |name: http::header::HeaderName| {
            response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
        };
        let content_type = header(http::header::CONTENT_TYPE);
        let link = header(http::header::LINK);
        let filters_applied = header(http::header::HeaderName::from_static("oci-filters-applied"));
        let mut body = bytes::BytesMut::new();
        loop {
            let chunk = tokio::time::timeout(timeout, response.chunk())
                .await
                .map_err(|_| UpstreamError::Timeout(format!("body of {url} stalled")))?
                .map_err(|error| UpstreamError::from_transport(&error))?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_METADATA_DOCUMENT {
                return Err(UpstreamError::Protocol(format!(
                    "{url} is larger than {MAX_METADATA_DOCUMENT} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(MetadataDocument { content_type, link, filters_applied, body: body.freeze() })
    }
}

/// Tags asked for per page of a listing (registries may answer fewer).
const TAGS_PER_PAGE: usize = 1000;
/// Pages read of one listing at most: a repository with more tags than this is listed in part
/// (its first tags in the registry's order), and the caller is told so.
const MAX_TAG_PAGES: usize = 100;

/// A repository's tags as upstream lists them, every page read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList {
    pub tags: Vec<String>,
    /// The listing had more pages than are read ([`MAX_TAG_PAGES`]).
    pub truncated: bool,
}

#[derive(serde::Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl UpstreamClient {
    /// Every tag of `repository`, following the listing's pages. The next page is asked with the
    /// `last` tag its `Link` names (the distribution API's pagination), always of this upstream:
    /// a link to another host or path is never followed.
    pub async fn list_tags(&self, repository: &RepositoryName) -> Result<TagList, UpstreamError> {
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        for _ in 0..MAX_TAG_PAGES {
            let suffix = {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("n", &TAGS_PER_PAGE.to_string());
                if let Some(last) = &last {
                    query.append_pair("last", last);
                }
                format!("tags/list?{}", query.finish())
            };
            let document = self.get_metadata(repository, &suffix, ObjectKind::Manifest).await?;
            let page: TagsPage = serde_json::from_slice(&document.body).map_err(|error| {
                UpstreamError::Protocol(format!(
                    "the tag list of {repository} is not what the API says: {error}"
                ))
            })?;
            tags.extend(page.tags.unwrap_or_default());
            let next = document.link.as_deref().and_then(next_page_last);
            match next {
                // A link that does not move on would list the same page forever.
                Some(next) if last.as_deref() != Some(next.as_str()) => last = Some(next),
                _ => return Ok(TagList { tags, truncated: false }),
            }
        }
        Ok(TagList { tags, truncated: true })
    }
}

/// The `last` parameter of a `Link: <…>; rel="next"` header: where the next page starts.
fn next_page_last(link: &str) -> Option<String> {
    let start = link.find('<')?;
    let end = start + link[start..].find('>')?;
    if !link[end..].contains("next") {
        return None;
    }
    let target = &link[start + 1..end];
    let query = target.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "last")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tag_list_tests {
    use super::next_page_last;

    #[test]
    fn the_next_page_starts_after_the_links_last_tag() {
        assert_eq!(next_page_last("</v2/app/tags/list?n=2&last=b>; rel=\"next\"").as_deref(), Some("b"));
        assert_eq!(
            next_page_last("<https://other.example.com/v2/app/tags/list?last=3.20%2B1&n=2>; rel=\"next\"")
                .as_deref(),
            Some("3.20+1")
        );
        assert_eq!(next_page_last("</v2/app/tags/list?n=2>; rel=\"next\""), None);
        assert_eq!(next_page_last("</v2/app/tags/list?last=b>; rel=\"prev\""), None);
        assert_eq!(next_page_last("garbage"), None);
    }
}
