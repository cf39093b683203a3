//! The HTTP client settings shared by control plane and gateway, and the streaming object GET.

use std::time::Duration;

use http::HeaderMap;
use oci::ObjectKind;

use crate::error::{UpstreamError, error_chain};
use crate::metrics::{RequestKind, UpstreamMetrics, host_label};

/// Connection-level settings for talking to upstreams.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP/TLS connect timeout: short, so a dead upstream costs little.
    pub connect_timeout: Duration,
    /// How long to wait for response headers.
    pub header_timeout: Duration,
    /// Extra trusted CA certificates (PEM bundles).
    pub extra_ca_pem: Vec<Vec<u8>>,
}

/// Builds the pooled client. Redirects are followed (registries send blob GETs to CDNs), and
/// reqwest drops `Authorization` when a redirect leaves the host. No transparent decompression:
/// the bytes hashed must be the bytes upstream stored.
pub fn build_http_client(options: &HttpOptions) -> Result<reqwest::Client, UpstreamError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("depproxy/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::limited(10))
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
    if let Ok(parsed) = url::Url::parse(url) {
        let counted = match kind {
            ObjectKind::Manifest => RequestKind::GetManifest,
            ObjectKind::Blob => RequestKind::GetBlob,
        };
        metrics.count(&host_label(&parsed), counted);
    }
    let request = client.get(url).headers(headers).send();
    let response = match tokio::time::timeout(header_timeout, request).await {
        Err(_) => {
            return Err(UpstreamError::Timeout(format!("no response headers within {header_timeout:?}")));
        }
        Ok(Err(error)) => return Err(UpstreamError::from_transport(&error)),
        Ok(Ok(response)) => response,
    };
    check_status(response, kind).await
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
    // The body of an error helps users (e.g. "insufficient_scope"); read at most a little of it.
    let message =
        tokio::time::timeout(Duration::from_secs(2), read_prefix(response, 512)).await.unwrap_or_default();
    Err(UpstreamError::from_status(status, kind, retry_after, message))
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
