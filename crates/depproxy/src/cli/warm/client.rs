//! The proxy as a registry client sees it: one GET per object, retried when the proxy says it
//! may work later, with the access token, and the proxy's refusals in words. Over HTTP to the
//! proxy's public listener (the command), or in memory to the gateway's router of the same
//! process (scheduled warming in `serve`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use indicatif::HumanBytes;
use oci::{Digest, GroupPath, ImageAddress, Reference, RepositoryName};
use telemetry::error_chain;
use tower::ServiceExt as _;

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

/// How requests reach the proxy.
#[derive(Clone)]
pub enum Transport {
    /// HTTP to a public listener at `base` (`http://host:port`, no trailing `/`).
    Http { http: reqwest::Client, base: String },
    /// The gateway's router of this process, called in memory: no socket, no listener limits.
    InProcess { router: axum::Router },
}

impl Transport {
    /// An HTTP client of the proxy at `base` (`http://…` or `https://…`), named in messages as
    /// `what` (`--proxy`, `public_url`).
    pub fn http(base: &str, what: &str, user_agent: &str) -> anyhow::Result<Transport> {
        let base = base.trim_end_matches('/').to_owned();
        let url = url::Url::parse(&base).map_err(|error| anyhow::anyhow!("{what} {base:?}: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            anyhow::bail!("{what} {base:?}: expected http://HOST:PORT or https://HOST:PORT");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Between two reads of a body, not for a whole blob: a large layer may take long, a
            // silent connection should not take forever.
            .read_timeout(Duration::from_secs(300))
            .user_agent(user_agent)
            .build()
            .map_err(|error| anyhow::anyhow!("HTTP client: {}", error_chain(&error)))?;
        Ok(Transport::Http { http, base })
    }

    fn describe(&self) -> &str {
        match self {
            Transport::Http { base, .. } => base,
            Transport::InProcess { .. } => "the gateway of this process",
        }
    }
}

/// What a request authenticates with.
#[derive(Clone)]
pub enum Credential {
    /// Nothing: the group lets anyone pull.
    Anonymous,
    /// An access token's secret (Basic, as `docker login` sends it).
    AccessToken(String),
    /// A registry token made for each request (scheduled warming's, which the control plane
    /// mints); `None` when none can be made.
    Minted(Arc<dyn Fn() -> Option<String> + Send + Sync>),
}

/// The proxy as a registry client sees it.
pub struct Client {
    transport: Transport,
    group: GroupPath,
    credential: Credential,
    accept: String,
    proxy_origin: String,
    config: Option<std::path::PathBuf>,
    /// Set on the first 401: a token the proxy does not take (or a missing one) fails every
    /// request, and each wrong guess counts against this address's failed-login limit, which
    /// other clients behind the same address share.
    refused: AtomicBool,
}

/// An answer of the proxy: its status, headers and body, read chunk by chunk.
pub(super) enum Answer {
    Http(reqwest::Response),
    InProcess { status: http::StatusCode, headers: http::HeaderMap, body: axum::body::BodyDataStream },
}

impl Answer {
    pub(super) fn status(&self) -> http::StatusCode {
        match self {
            Answer::Http(response) => response.status(),
            Answer::InProcess { status, .. } => *status,
        }
    }

    pub(super) fn headers(&self) -> &http::HeaderMap {
        match self {
            Answer::Http(response) => response.headers(),
            Answer::InProcess { headers, .. } => headers,
        }
    }

    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, ObjectError> {
        match self {
            Answer::Http(response) => response.chunk().await.map_err(|error| transport(&error)),
            Answer::InProcess { body, .. } => match body.next().await {
                None => Ok(None),
                Some(Ok(chunk)) => Ok(Some(chunk)),
                Some(Err(error)) => Err(ObjectError::other(error_chain(&error))),
            },
        }
    }
}

impl Client {
    /// The command's client: HTTP to `--proxy`, with `--token` when given.
    pub(super) fn new(options: &WarmOptions, group: GroupPath) -> anyhow::Result<Client> {
        let user_agent = concat!("depproxy-cache-warm/", env!("CARGO_PKG_VERSION"));
        let transport = Transport::http(&options.proxy, "--proxy", user_agent)?;
        let credential = match options.token.clone().filter(|token| !token.is_empty()) {
            Some(token) => Credential::AccessToken(token),
            None => Credential::Anonymous,
        };
        let mut client = Client::with(transport, group, credential);
        client.proxy_origin = options.proxy_origin.clone();
        client.config = options.config.clone();
        Ok(client)
    }

    /// A client of the proxy through `transport`, pulling from `group` with `credential`.
    pub fn with(transport: Transport, group: GroupPath, credential: Credential) -> Client {
        Client {
            transport,
            group,
            credential,
            accept: oci::media::manifest_accept_header(),
            proxy_origin: String::new(),
            config: None,
            refused: AtomicBool::new(false),
        }
    }

    pub(super) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    pub(super) fn refusal_message(&self) -> String {
        let proxy = self.transport.describe();
        match &self.credential {
            Credential::AccessToken(_) => format!(
                "the proxy at {proxy} refused the access token for group {} (unknown, revoked or expired); \
                 stopped without trying the remaining objects",
                self.group
            ),
            Credential::Anonymous => format!(
                "group {} on the proxy at {proxy} needs an access token: pass --token or set DEPPROXY_TOKEN \
                 (on the server: `{}`)",
                self.group,
                token_create_hint(&self.group, self.config.as_deref())
            ),
            Credential::Minted(_) => format!(
                "the proxy at {proxy} refused scheduled warming's registry token for group {} (every control \
                 plane must share [auth] signing_key_file)",
                self.group
            ),
        }
    }

    /// One request without credentials, so that a wrong token is not counted twice: any answer
    /// means the proxy is there.
    pub(super) async fn check_reachable(&self) -> anyhow::Result<()> {
        let Transport::Http { http, base } = &self.transport else { return Ok(()) };
        let url = format!("{base}/v2/");
        match http.get(&url).send().await {
            Ok(_) => Ok(()),
            Err(error) => anyhow::bail!(
                "cannot reach the proxy at {base} (from {}): {}; is it running? --proxy URL, or --listen \
                 ADDR as serve was given, names another",
                self.proxy_origin,
                error_chain(&error)
            ),
        }
    }

    /// The group it warms.
    pub(super) fn group(&self) -> &GroupPath {
        &self.group
    }

    /// The path of an object, in the group form (it names exactly one group).
    fn object_path(&self, image: &RepositoryName, kind: &str, reference: &str) -> String {
        let address = ImageAddress::Group { group: self.group.clone(), image: image.clone() };
        format!("/v2/{}/{kind}/{reference}", address.as_written())
    }

    pub(super) async fn manifest(
        &self,
        image: &RepositoryName,
        reference: &Reference,
        progress: &Progress,
    ) -> Result<Fetched, ObjectError> {
        let path = self.object_path(image, "manifests", &reference.to_string());
        let mut response = self.get(&path, Some(&self.accept), progress).await?;
        let digest = response
            .headers()
            .get(oci::CONTENT_DIGEST_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<Digest>().ok());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
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
        let path = self.object_path(image, "blobs", &digest.to_string());
        let mut response = self.get(&path, None, progress).await?;
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await? {
            received += chunk.len() as u64;
            progress.bytes(chunk.len() as u64);
        }
        // Size 0 is "unknown" (schema 1 names no sizes).
        if size != 0 && received != size {
            return Err(ObjectError::other(format!("received {received} bytes, the manifest says {size}")));
        }
        Ok(received)
    }

    /// A GET of `path` (accepting `accept`) that succeeded (2xx), after retrying what the proxy
    /// says may work later.
    pub(super) async fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        progress: &Progress,
    ) -> Result<Answer, ObjectError> {
        let mut attempt = 1;
        loop {
            if self.refused() {
                return Err(ObjectError::other("not tried: the proxy refused the credentials"));
            }
            let wait = match self.send(path, accept).await {
                Ok(answer) if answer.status().is_success() => return Ok(answer),
                Ok(answer) => {
                    let status = answer.status();
                    if status == http::StatusCode::UNAUTHORIZED {
                        self.refused.store(true, Ordering::Relaxed);
                    }
                    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                    if !retryable || attempt >= ATTEMPTS {
                        return Err(error_of(answer).await);
                    }
                    let wait = retry_after(answer.headers()).unwrap_or(backoff(attempt)).min(MAX_RETRY_WAIT);
                    progress.note(&format!("retrying in {}s: {path}: {status}", wait.as_secs()));
                    wait
                }
                Err(error) if error.is_connect() && attempt < ATTEMPTS => {
                    let wait = backoff(attempt);
                    progress.note(&format!(
                        "retrying in {}s: {path}: {}",
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

    /// One GET, with the credential and the media types we read (a manifest's, a document's).
    pub(super) async fn send(&self, path: &str, accept: Option<&str>) -> Result<Answer, reqwest::Error> {
        let authorization = match &self.credential {
            Credential::Anonymous => None,
            Credential::AccessToken(token) => {
                use base64::Engine as _;
                let pair = format!("{TOKEN_USERNAME}:{token}");
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
            }
            Credential::Minted(mint) => mint().map(|token| format!("Bearer {token}")),
        };
        match &self.transport {
            Transport::Http { http, base } => {
                let mut request = http.get(format!("{base}{path}"));
                if let Some(accept) = accept {
                    request = request.header(reqwest::header::ACCEPT, accept);
                }
                if let Some(authorization) = authorization {
                    request = request.header(reqwest::header::AUTHORIZATION, authorization);
                }
                request.send().await.map(Answer::Http)
            }
            Transport::InProcess { router } => {
                let mut request = http::Request::get(path);
                if let Some(accept) = accept {
                    request = request.header(http::header::ACCEPT, accept);
                }
                if let Some(authorization) = authorization {
                    request = request.header(http::header::AUTHORIZATION, authorization);
                }
                request = request.header(
                    http::header::USER_AGENT,
                    concat!("depproxy-scheduled-warm/", env!("CARGO_PKG_VERSION")),
                );
                let mut request = match request.body(axum::body::Body::empty()) {
                    Ok(request) => request,
                    // Only a path that is no URI gets here: the proxy would have refused it as such.
                    Err(_) => return Ok(not_a_path(path)),
                };
                // The gateway reads the client's address from the connection: this one is ours.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
                let response = match router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                Ok(Answer::InProcess {
                    status: parts.status,
                    headers: parts.headers,
                    body: body.into_data_stream(),
                })
            }
        }
    }
}

/// The answer to a path that cannot be sent.
fn not_a_path(path: &str) -> Answer {
    let body = format!(
        r#"{{"errors":[{{"code":"NAME_INVALID","message":"not a path: {}"}}]}}"#,
        path.escape_default()
    );
    Answer::InProcess {
        status: http::StatusCode::BAD_REQUEST,
        headers: http::HeaderMap::new(),
        body: axum::body::Body::from(body).into_data_stream(),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(u64::from(attempt))
}

/// `Retry-After` in seconds (the proxy never sends the HTTP-date form).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

fn transport(error: &reqwest::Error) -> ObjectError {
    ObjectError::other(error_chain(error))
}

/// The OCI error envelope's messages (`CODE: message`), or the status text when there is none.
async fn error_of(mut answer: Answer) -> ObjectError {
    let status = answer.status();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    ObjectError { status: Some(status.as_u16()), message: error_message(status, &body) }
}

fn error_message(status: http::StatusCode, body: &[u8]) -> String {
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
    /// npm's error shape.
    #[derive(serde::Deserialize)]
    struct NpmError {
        error: String,
    }
    let reason = status.canonical_reason().unwrap_or("error");
    if let Ok(npm) = serde_json::from_slice::<NpmError>(body) {
        return npm.error;
    }
    // PyPI's: a line of text.
    if let Ok(text) = std::str::from_utf8(body)
        && !text.trim().is_empty()
        && text.len() <= 500
        && !text.trim_start().starts_with(['<', '{'])
    {
        return text.trim().to_owned();
    }
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
        assert_eq!(error_message(http::StatusCode::NOT_FOUND, body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(
            error_message(http::StatusCode::BAD_GATEWAY, b"<html>"),
            "Bad Gateway (no OCI error in the answer)"
        );
        assert_eq!(error_message(http::StatusCode::FORBIDDEN, br#"{"error":"denied"}"#), "denied");
        assert_eq!(error_message(http::StatusCode::NOT_FOUND, b"no such project\n"), "no such project");
    }
}
