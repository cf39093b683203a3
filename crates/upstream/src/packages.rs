//! What the control plane asks a package upstream (npm, PyPI) itself: whether a document is still
//! there (a HEAD, when a cached one is revalidated), a document whose files' checksums it needs
//! (a file asked for before its document), and the requests passed through uncached (`npm audit`,
//! `npm ping`). Files and documents served to clients are fetched by the gateway, not here.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use oci::ObjectKind;

use crate::client::UpstreamClient;
use crate::error::UpstreamError;
use crate::http::check_status;
use crate::metrics::RequestKind;

/// A document read whole (bounded) from a package upstream.
#[derive(Debug, Clone)]
pub struct PackageDocument {
    /// The URL it was read from (relative links in it resolve against this).
    pub url: String,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// An upstream's answer to a request passed through, read whole (bounded).
#[derive(Debug, Clone)]
pub struct PassedThrough {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl UpstreamClient {
    /// The absolute URL of `path` (relative to the upstream's URL, no leading `/`).
    pub fn package_url(&self, path: &str) -> String {
        let base = self.url().as_str().trim_end_matches('/');
        format!("{base}/{path}")
    }

    /// The headers of a request to this upstream: its credentials (Basic), and `accept`.
    pub fn package_headers(&self, accept: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(credentials) = self.credentials()
            && let Ok(value) = HeaderValue::from_str(&credentials.basic_header())
        {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if let Some(accept) = accept.and_then(|accept| HeaderValue::from_str(accept).ok()) {
            headers.insert(http::header::ACCEPT, accept);
        }
        headers
    }

    /// Whether the document at `url` is still there: `Ok` for a 2xx, `NotFound` for 404 or 410,
    /// an outage otherwise.
    pub async fn probe_document(&self, url: &str, headers: HeaderMap) -> Result<(), UpstreamError> {
        self.count_request(RequestKind::HeadDocument);
        let timeout = self.header_timeout();
        let response = self.send_request(Method::HEAD, url, headers, timeout).await?;
        checked(response).await.map(drop)
    }

    /// The document at `url`, at most `max` bytes.
    pub async fn get_document(
        &self,
        url: &str,
        headers: HeaderMap,
        max: usize,
    ) -> Result<PackageDocument, UpstreamError> {
        self.count_request(RequestKind::GetDocument);
        let timeout = self.header_timeout();
        let response = self.send_request(Method::GET, url, headers, timeout).await?;
        let response = checked(response).await?;
        let content_type = content_type(response.headers());
        let body = read_bounded(response, max, timeout, url).await?;
        Ok(PackageDocument { url: url.to_owned(), content_type, body })
    }

    /// Sends `method url` with `body` and reads the answer whatever its status, at most `max`
    /// bytes.
    pub async fn pass_through(
        &self,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: Bytes,
        max: usize,
    ) -> Result<PassedThrough, UpstreamError> {
        self.count_request(RequestKind::PassThrough);
        let timeout = self.header_timeout();
        if !body.is_empty() {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let response = self.send_with_body(method, url, headers, body, timeout).await?;
        let status = response.status();
        let content_type = content_type(response.headers());
        let body = read_bounded(response, max, timeout, url).await?;
        Ok(PassedThrough { status, content_type, body })
    }
}

/// The answer when it is a 2xx; a 404 or a 410 Gone (PyPI and npm registries answer it for what
/// was removed) is a not-found.
async fn checked(response: reqwest::Response) -> Result<reqwest::Response, UpstreamError> {
    if response.status() == StatusCode::GONE {
        return Err(UpstreamError::NotFound(ObjectKind::Manifest));
    }
    check_status(response, ObjectKind::Manifest).await
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

async fn read_bounded(
    mut response: reqwest::Response,
    max: usize,
    timeout: std::time::Duration,
    url: &str,
) -> Result<Bytes, UpstreamError> {
    let mut body = bytes::BytesMut::new();
    loop {
        let chunk = tokio::time::timeout(timeout, response.chunk())
            .await
            .map_err(|_| UpstreamError::Timeout(format!("body of {url} stalled")))?
            .map_err(|error| UpstreamError::from_transport(&error))?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > max {
            return Err(UpstreamError::Protocol(format!("{url} is larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
