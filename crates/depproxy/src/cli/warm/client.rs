//! The proxy as a registry client sees it: one GET per object, retried when the proxy says it
//! may work later, with the access token, and the proxy's refusals in words.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::HumanBytes;
use oci::{Digest, GroupPath, ImageAddress, Reference, RepositoryName};
use telemetry::error_chain;

use super::manifest::{Fetched, parse_manifest};
use super::plan::WarmOptions;
use super::progress::Progress;
use super::report::ObjectError;

/// The username sent with an access token: the proxy ignores it, the token is the password.
pub const TOKEN_USERNAME: &str = "token";

/// Attempts per object when the proxy answers "try again later" (429, 502, 503, 504) or cannot be
/// connected to: a fill queue that is full or an upstream hiccup should not fail a nightly job.
const ATTEMPTS: u32 = 3;
/// Longest `Retry-After` honoured; a longer one is the proxy saying "not tonight".
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// A manifest larger than this is not a manifest (the proxy's own default limit is 4 MiB).
const MAX_MANIFEST_BYTES: usize = 64 << 20;
/// An error body is only read this far: it is a short JSON document, anything longer is noise.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The command that makes a token for `group` (run where the server's database is).
fn token_create_hint(group: &GroupPath, config: Option<&std::path::Path>) -> String {
    let mut name = format!("warm-{}", group.as_str().replace('/', "-"));
    if name.len() > 64 {
        name = "warm".to_owned();
    }
    let mut hint = format!("depproxy token create --name {name} --group {group}");
    if let Some(config) = config {
        hint.push_str(&format!(" --config {}", config.display()));
    }
    hint
}

/// The proxy as a registry client sees it.
pub(super) struct Client {
    http: reqwest::Client,
    /// `http://host:port` without a trailing `/`.
    base: String,
    group: GroupPath,
    token: Option<String>,
    accept: String,
    proxy_origin: String,
    config: Option<std::path::PathBuf>,
    /// Set on the first 401: a token the proxy does not take (or a missing one) fails every
    /// request, and each wrong guess counts against this address's failed-login limit, which
    /// other clients behind the same address share.
    refused: AtomicBool,
}

impl Client {
    pub(super) fn new(options: &WarmOptions, group: GroupPath) -> anyhow::Result<Client> {
        let base = options.proxy.trim_end_matches('/').to_owned();
        let url = url::Url::parse(&base).map_err(|error| anyhow::anyhow!("--proxy {base:?}: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            anyhow::bail!("--proxy {base:?}: expected http://HOST:PORT or https://HOST:PORT");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Between two reads of a body, not for a whole blob: a large layer may take long, a
            // silent connection should not take forever.
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("depproxy-cache-warm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| anyhow::anyhow!("HTTP client: {}", error_chain(&error)))?;
        Ok(Client {
            http,
            base,
            group,
            token: options.token.clone().filter(|token| !token.is_empty()),
            accept: oci::media::manifest_accept_header(),
            proxy_origin: options.proxy_origin.clone(),
            config: options.config.clone(),
            refused: AtomicBool::new(false),
        })
    }

    pub(super) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    pub(super) fn refusal_message(&self) -> String {
        match &self.token {
            Some(_) => format!(
                "the proxy at {} refused the access token for group {} (unknown, revoked or expired); \
                 stopped without trying the remaining objects",
                self.base, self.group
            ),
            None => format!(
                "group {} on the proxy at {} needs an access token: pass --token or set DEPPROXY_TOKEN \
                 (on the server: `{}`)",
                self.group,
                self.base,
                token_create_hint(&self.group, self.config.as_deref())
            ),
        }
    }

    /// One request without credentials, so that a wrong token is not counted twice: any answer
    /// means the proxy is there.
    pub(super) async fn check_reachable(&self) -> anyhow::Result<()> {
        let url = format!("{}/v2/", self.base);
        match self.http.get(&url).send().await {
            Ok(_) => Ok(()),
            Err(error) => anyhow::bail!(
                "cannot reach the proxy at {} (from {}): {}; is it running? --proxy URL, or --listen \
                 ADDR as serve was given, names another",
                self.base,
                self.proxy_origin,
                error_chain(&error)
            ),
        }
    }

    fn object_url(&self, image: &RepositoryName, kind: &str, reference: &str) -> String {
        let address = ImageAddress::Group { group: self.group.clone(), image: image.clone() };
        format!("{}/v2/{}/{kind}/{reference}", self.base, address.as_written())
    }

    pub(super) async fn manifest(
        &self,
        image: &RepositoryName,
        reference: &Reference,
        progress: &Progress,
    ) -> Result<Fetched, ObjectError> {
        let url = self.object_url(image, "manifests", &reference.to_string());
        let mut response = self.get(&url, true, progress).await?;
        let digest = response
            .headers()
            .get(oci::CONTENT_DIGEST_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<Digest>().ok());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| transport(&error))? {
            if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(ObjectError::other(format!(
                    "manifest larger than {}",
                    HumanBytes(MAX_MANIFEST_BYTES as u64)
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if let Reference::Digest(expected) = reference {
            let actual = Digest::of(&body);
            if &actual != expected {
                return Err(ObjectError::other(format!(
                    "the proxy sent a manifest whose digest is {actual}"
                )));
            }
        }
        parse_manifest(&body, digest.or_else(|| reference.as_digest().cloned()))
    }

    /// Reads a blob to its end, counting bytes into `progress` as they arrive; never holds it.
    pub(super) async fn blob(
        &self,
        image: &RepositoryName,
        digest: &Digest,
        size: u64,
        progress: &Progress,
    ) -> Result<u64, ObjectError> {
        let url = self.object_url(image, "blobs", &digest.to_string());
        let mut response = self.get(&url, false, progress).await?;
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|error| transport(&error))? {
            received += chunk.len() as u64;
            progress.bytes(chunk.len() as u64);
        }
        // Size 0 is "unknown" (schema 1 names no sizes).
        if size != 0 && received != size {
            return Err(ObjectError::other(format!("received {received} bytes, the manifest says {size}")));
        }
        Ok(received)
    }

    /// A GET that succeeded (2xx), after retrying what the proxy says may work later.
    async fn get(
        &self,
        url: &str,
        manifest: bool,
        progress: &Progress,
    ) -> Result<reqwest::Response, ObjectError> {
        let mut attempt = 1;
        loop {
            if self.refused() {
                return Err(ObjectError::other("not tried: the proxy refused the credentials"));
            }
            let mut request = self.http.get(url);
            if manifest {
                request = request.header(reqwest::header::ACCEPT, &self.accept);
            }
            if let Some(token) = &self.token {
                request = request.basic_auth(TOKEN_USERNAME, Some(token));
            }
            let wait = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    if status == reqwest::StatusCode::UNAUTHORIZED {
                        self.refused.store(true, Ordering::Relaxed);
                    }
                    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                    if !retryable || attempt >= ATTEMPTS {
                        return Err(error_of(response).await);
                    }
                    let wait =
                        retry_after(response.headers()).unwrap_or(backoff(attempt)).min(MAX_RETRY_WAIT);
                    progress.note(&format!("retrying in {}s: {url}: {status}", wait.as_secs()));
                    wait
                }
                Err(error) if error.is_connect() && attempt < ATTEMPTS => {
                    let wait = backoff(attempt);
                    progress.note(&format!(
                        "retrying in {}s: {url}: {}",
                        wait.as_secs(),
                        error_chain(&error)
                    ));
                    wait
                }
                Err(error) => return Err(transport(&error)),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(u64::from(attempt))
}

/// `Retry-After` in seconds (the proxy never sends the HTTP-date form).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

fn transport(error: &reqwest::Error) -> ObjectError {
    ObjectError::other(error_chain(error))
}

/// The OCI error envelope's messages (`CODE: message`), or the status text when there is none.
async fn error_of(mut response: reqwest::Response) -> ObjectError {
    let status = response.status();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    ObjectError { status: Some(status.as_u16()), message: error_message(status, &body) }
}

fn error_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let reason = status.canonical_reason().unwrap_or("error");
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) if !envelope.errors.is_empty() => envelope
            .errors
            .iter()
            .map(|entry| match (entry.code.is_empty(), entry.message.is_empty()) {
                (false, false) => format!("{}: {}", entry.code, entry.message),
                (false, true) => entry.code.clone(),
                (true, _) => entry.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => format!("{reason} (no OCI error in the answer)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_oci_envelope() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_message(reqwest::StatusCode::NOT_FOUND, body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(
            error_message(reqwest::StatusCode::BAD_GATEWAY, b"<html>"),
            "Bad Gateway (no OCI error in the answer)"
        );
    }
}
