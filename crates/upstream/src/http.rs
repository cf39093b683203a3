//! The HTTP client settings shared by control plane and gateway, and the streaming object GET.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use oci::ObjectKind;

use crate::egress::{AllowEntry, EgressPolicy, EgressResolver};
use crate::error::{UpstreamError, error_chain};
use crate::metrics::{RequestKind, UpstreamMetrics, host_label};

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
}

/// Builds the pooled client of the upstream at `origin`. Redirects are followed (registries send
/// blob GETs to CDNs) as far as the upstream's [`EgressPolicy`] allows, and reqwest drops
/// `Authorization` when a redirect leaves the host. No transparent decompression: the bytes
/// hashed must be the bytes upstream stored.
pub fn build_http_client(options: &HttpOptions, origin: &url::Url) -> Result<reqwest::Client, UpstreamError> {
    let policy = Arc::new(EgressPolicy::new(origin, options.redirect_allow.clone()));
    let redirects = policy.clone();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("depproxy/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            match redirects.check_redirect(attempt.previous(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        }))
        .dns_resolver(Arc::new(EgressResolver { policy }))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90));
    for pem in &options.extra_ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|error| UpstreamError::Protocol(format!("bad CA bundle: {}", error_chain(&error))))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|error| UpstreamError::Protocol(error_chain(&error)))
}

/// Opens a GET of an object and returns the response once its headers say 2xx. Non-success
/// statuses and transport failures come back classified.
pub async fn open_stream(
    client: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    kind: ObjectKind,
    header_timeout: Duration,
    metrics: &UpstreamMetrics,
) -> Result<reqwest::Response, UpstreamError> {
    let host = url::Url::parse(url).map(|parsed| host_label(&parsed)).unwrap_or_default();
    metrics.count(
        &host,
        match kind {
            ObjectKind::Manifest => RequestKind::GetManifest,
            ObjectKind::Blob => RequestKind::GetBlob,
        },
    );
    let started = std::time::Instant::now();
    let request = client.get(url).headers(headers).send();
    let outcome = match tokio::time::timeout(header_timeout, request).await {
        Err(_) => Err(UpstreamError::Timeout(format!("no response headers within {header_timeout:?}"))),
        Ok(Err(error)) => Err(UpstreamError::from_transport(&error)),
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
