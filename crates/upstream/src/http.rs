//! The HTTP client of an upstream — shared by control plane and gateway — with the redirects it
//! follows hop by hop under the egress rules, and the streaming object GET.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use oci::ObjectKind;
use telemetry::error_chain;

use crate::egress::{AllowEntry, EgressPolicy, EgressResolver, MAX_REDIRECTS};
use crate::error::UpstreamError;
use crate::metrics::{RequestKind, UpstreamMetrics, host_label_of};
use crate::proxy::EgressProxy;

/// Connection-level settings for talking to upstreams.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP/TLS connect timeout: short, so a dead upstream costs little.
    pub connect_timeout: Duration,
    /// How long to wait for response headers.
    pub header_timeout: Duration,
    /// Extra trusted CA certificates (PEM bundles), for this upstream only.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Where redirects and token realms may lead besides the upstream's origin and public https
    /// addresses (`redirect_allow`).
    pub redirect_allow: Vec<AllowEntry>,
    /// Hosts whose token realms get the upstream's credentials besides its own (`realm_allow`).
    pub realm_allow: Vec<AllowEntry>,
    /// The forward proxy (`[egress] proxy`); never the environment's.
    pub proxy: Option<EgressProxy>,
}

/// The pooled HTTP client of one upstream and the egress rules of every request it sends.
/// Redirects are followed here, one hop at a time, not by reqwest: each hop is checked against
/// the rules — through a proxy, on what its name resolves to, before the proxy is asked — and
/// credentials are dropped when a hop leaves the host.
#[derive(Clone)]
pub struct EgressClient {
    http: reqwest::Client,
    policy: Arc<EgressPolicy>,
    proxied: bool,
}

/// Builds the client of the upstream at `origin`. No transparent decompression: the bytes hashed
/// must be the bytes upstream stored. No proxy but `options.proxy`: reqwest would otherwise read
/// `HTTP_PROXY` and friends from the environment.
pub fn build_http_client(options: &HttpOptions, origin: &url::Url) -> Result<EgressClient, UpstreamError> {
    let policy =
        Arc::new(EgressPolicy::new(origin, options.redirect_allow.clone(), options.realm_allow.clone()));
    let resolver = EgressResolver {
        policy: policy.clone(),
        proxy_host: options.proxy.as_ref().and_then(EgressProxy::host_name),
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("depproxy/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(resolver))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90));
    builder = match &options.proxy {
        None => builder.no_proxy(),
        Some(proxy) => builder.proxy(
            proxy
                .to_reqwest()
                .map_err(|error| UpstreamError::Protocol(format!("bad proxy: {}", error_chain(&error))))?,
        ),
    };
    for pem in &options.extra_ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|error| UpstreamError::Protocol(format!("bad CA bundle: {}", error_chain(&error))))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let http = builder.build().map_err(|error| UpstreamError::Protocol(error_chain(&error)))?;
    Ok(EgressClient { http, policy, proxied: options.proxy.is_some() })
}

/// Headers that stay with the host they were meant for (what browsers and reqwest drop too).
const HOST_BOUND_HEADERS: [http::header::HeaderName; 4] = [
    http::header::AUTHORIZATION,
    http::header::COOKIE,
    http::header::PROXY_AUTHORIZATION,
    http::header::WWW_AUTHENTICATE,
];

impl EgressClient {
    /// The rules this client's requests follow.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// A GET of `url`, redirects followed as the rules allow.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, UpstreamError> {
        self.send(Method::GET, url, HeaderMap::new()).await
    }

    /// Sends `method url` with `headers` and follows redirects (at most [`MAX_REDIRECTS`]), each
    /// hop checked by the upstream's rules; answers the first response that is not a redirect.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut current = url::Url::parse(url)
            .map_err(|error| UpstreamError::Protocol(format!("bad upstream URL {url}: {error}")))?;
        let mut previous: Vec<url::Url> = Vec::with_capacity(MAX_REDIRECTS + 1);
        loop {
            if self.proxied {
                self.policy.check_through_proxy(&current).await.map_err(UpstreamError::Egress)?;
            }
            let response = self
                .http
                .request(method.clone(), current.clone())
                .headers(headers.clone())
                .send()
                .await
                .map_err(|error| UpstreamError::from_transport(&error))?;
            let Some(next) = redirect_target(&current, &response)? else { return Ok(response) };
            previous.push(current);
            self.policy.check_redirect(&previous, &next).map_err(UpstreamError::Egress)?;
            if previous.last().is_some_and(|last| !same_authority(last, &next)) {
                for name in &HOST_BOUND_HEADERS {
                    headers.remove(name);
                }
            }
            current = next;
        }
    }
}

impl EgressClient {
    /// Sends `method url` with `headers` and `body` once: a request with a body is not replayed
    /// to a redirect's target (a redirect comes back as the answer). The URL is checked as the
    /// first hop of [`Self::send`] is.
    pub async fn send_body(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: bytes::Bytes,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = url::Url::parse(url)
            .map_err(|error| UpstreamError::Protocol(format!("bad upstream URL {url}: {error}")))?;
        if self.proxied {
            self.policy.check_through_proxy(&url).await.map_err(UpstreamError::Egress)?;
        }
        self.http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|error| UpstreamError::from_transport(&error))
    }
}

/// Where a redirect answer points, if `response` is one.
fn redirect_target(
    current: &url::Url,
    response: &reqwest::Response,
) -> Result<Option<url::Url>, UpstreamError> {
    let redirect = matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    let Some(location) = response.headers().get(http::header::LOCATION).filter(|_| redirect) else {
        return Ok(None);
    };
    location
        .to_str()
        .ok()
        .and_then(|text| current.join(text).ok())
        .map(Some)
        .ok_or_else(|| UpstreamError::Protocol("a redirect whose Location is not a URL".into()))
}

fn same_authority(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Opens a GET of an object and returns the response once its headers say 2xx. Non-success
/// statuses and transport failures come back classified.
pub async fn open_stream(
    client: &EgressClient,
    url: &str,
    headers: HeaderMap,
    kind: ObjectKind,
    header_timeout: Duration,
    metrics: &UpstreamMetrics,
) -> Result<reqwest::Response, UpstreamError> {
    let host = host_label_of(url);
    metrics.count(
        &host,
        match kind {
            ObjectKind::Manifest => RequestKind::GetManifest,
            ObjectKind::Blob => RequestKind::GetBlob,
        },
    );
    let started = std::time::Instant::now();
    let request = client.send(Method::GET, url, headers);
    let outcome = match tokio::time::timeout(header_timeout, request).await {
        Err(_) => Err(UpstreamError::Timeout(format!("no response headers within {header_timeout:?}"))),
        Ok(Err(error)) => Err(error),
        Ok(Ok(response)) => {
            metrics.status().answered(&host, response.headers(), started.elapsed());
            check_status(response, kind).await
        }
    };
    if let Err(error) = &outcome {
        metrics.status().failed(&host, error);
    }
    outcome
}

/// Turns a non-2xx response into an error, keeping what a client needs (`Retry-After`).
pub(crate) async fn check_status(
    response: reqwest::Response,
    kind: ObjectKind,
) -> Result<reqwest::Response, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // The error codes in the body help users (e.g. DENIED vs UNAUTHORIZED); the body itself is
    // upstream's text and may name internal hosts, so only its codes are passed on.
    let body =
        tokio::time::timeout(Duration::from_secs(2), read_prefix(response, 4096)).await.unwrap_or_default();
    tracing::debug!(%status, body = %body.chars().take(512).collect::<String>(), "upstream error body");
    Err(UpstreamError::from_status(status, kind, retry_after, error_codes(&body)))
}

/// `upstream error codes: DENIED, …` from an OCI error body; empty for anything else. Codes are
/// kept only when they look like codes (capitals and `_`), so no free text gets through.
pub(crate) fn error_codes(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
    }
    let Ok(envelope) = serde_json::from_str::<Envelope>(body) else { return String::new() };
    let codes: Vec<&str> = envelope
        .errors
        .iter()
        .map(|entry| entry.code.as_str())
        .filter(|code| code.len() <= 40 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .take(4)
        .collect();
    if codes.is_empty() { String::new() } else { format!("upstream error codes: {}", codes.join(", ")) }
}

async fn read_prefix(mut response: reqwest::Response, limit: usize) -> String {
    let mut prefix = Vec::new();
    while prefix.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => prefix.extend_from_slice(&chunk[..chunk.len().min(limit - prefix.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&prefix).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_error_codes_of_an_upstream_body_are_kept() {
        let body =
            r#"{"errors":[{"code":"DENIED","message":"see http://10.0.0.1/internal"},{"code":"x y"}]}"#;
        assert_eq!(error_codes(body), "upstream error codes: DENIED");
        assert_eq!(error_codes("<html>502 from http://10.0.0.1</html>"), "");
        assert_eq!(error_codes(r#"{"errors":[]}"#), "");
    }
}
