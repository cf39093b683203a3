//! The fake registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use oci::Digest;
use tokio::sync::Notify;

use crate::gate::Gate;

/// What the registry does instead of answering normally. Applies to object GETs (and HEADs where
/// it makes sense) of the digests it is set for, or of every object when set globally.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and optional `Retry-After`), empty OCI body.
    Status { status: u16, retry_after: Option<String> },
    /// Send only the first `after` bytes, then end the body. With `content_length` the header
    /// announces the full size (the connection breaks); without, the body is chunked and ends
    /// cleanly short.
    Truncate { after: usize, content_length: bool },
    /// Send the full length but with one byte changed.
    WrongBytes,
    /// Send `after` bytes, then nothing, ever (the connection stays open).
    Stall { after: usize },
    /// Send `after` bytes, then reset the connection.
    Reset { after: usize },
    /// Answer 307 to the same path on `location` (another server).
    Redirect { location: String },
    /// Announce `claimed` as `Content-Length` while sending the real bytes (raw HTTP/1.1, from
    /// another port the registry redirects to; honours the gate).
    LyingLength { claimed: u64 },
    /// Do not answer at all (headers never come).
    Hang,
}

/// One request the registry saw.
#[derive(Clone, Debug)]
pub struct RequestLog {
    pub method: Method,
    pub path: String,
    pub authorization: Option<String>,
}

struct Object {
    bytes: Bytes,
    media_type: String,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<Digest, Object>,
    /// (repository, tag) → digest
    tags: HashMap<(String, String), Digest>,
    log: Vec<RequestLog>,
    global_fault: Option<Fault>,
    faults: HashMap<Digest, Fault>,
    gate: Option<Gate>,
    /// Require `Authorization: Bearer <token>` on /v2/* and serve tokens at /token.
    token: Option<String>,
    token_endpoint_down: bool,
    /// The realm the Bearer challenge names instead of `<url>/token`.
    realm: Option<String>,
    /// Whitespace added to token answers (a token service that sends too much).
    token_padding: usize,
    /// Require `Authorization: Basic …` for these credentials instead.
    basic: Option<(String, String)>,
    /// Referrer manifests by subject digest: (manifest digest, artifact type).
    referrers: HashMap<Digest, Vec<(Digest, String)>>,
    /// Answer the referrers API with 404, as registries without it do.
    no_referrers_api: bool,
    /// Chunk size of streamed bodies.
    chunk: usize,
    /// Send object bodies chunked, without `Content-Length` (unless a fault decides otherwise).
    chunked: bool,
}

/// An in-process registry on 127.0.0.1.
#[derive(Clone)]
pub struct FakeRegistry {
    inner: Arc<Mutex<Inner>>,
    address: SocketAddr,
    notify: Arc<Notify>,
}

impl FakeRegistry {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner { chunk: 64 * 1024, ..Inner::default() }));
        let registry = FakeRegistry { inner, address, notify: Arc::new(Notify::new()) };
        let router = Router::new().fallback(handle).with_state(registry.clone());
        tokio::spawn(async move {
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|connection| {
                let _ = connection.set_nodelay(true);
            });
            let _ = axum::serve(listener, router).await;
        });
        registry
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Stores a blob (any repository may fetch it) and returns its digest.
    pub fn put_blob(&self, bytes: impl Into<Bytes>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        self.lock()
            .objects
            .insert(digest.clone(), Object { bytes, media_type: "application/octet-stream".into() });
        digest
    }

    /// Stores a manifest and tags it.
    pub fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        media_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        let mut inner = self.lock();
        inner.objects.insert(digest.clone(), Object { bytes, media_type: media_type.into() });
        inner.tags.insert((repository.into(), tag.into()), digest.clone());
        digest
    }

    /// Stores an image (config + layers + OCI manifest) under `repository:tag`; returns the
    /// manifest digest and the layer digests.
    pub fn put_image(&self, repository: &str, tag: &str, layers: &[&[u8]]) -> (Digest, Vec<Digest>) {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        let config_digest = self.put_blob(config.clone());
        let layer_digests: Vec<Digest> = layers.iter().map(|layer| self.put_blob(layer.to_vec())).collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::media::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
            "layers": layers.iter().zip(&layer_digests).map(|(layer, digest)| serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest.to_string(), "size": layer.len()
            })).collect::<Vec<_>>(),
        });
        let digest = self.put_manifest(
            repository,
            tag,
            oci::media::OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap(),
        );
        (digest, layer_digests)
    }

    /// Stores an OCI index over manifests already stored and tags it; returns its digest. Each
    /// child is `(digest, "os/architecture")`; `"unknown/unknown"` marks a BuildKit attestation
    /// manifest (annotated as one, naming the first child as its subject), as `docker buildx` pushes.
    pub fn put_index(&self, repository: &str, tag: &str, manifests: &[(&Digest, &str)]) -> Digest {
        let descriptors: Vec<serde_json::Value> = {
            let inner = self.lock();
            manifests
                .iter()
                .map(|(digest, platform)| {
                    let object =
                        inner.objects.get(*digest).expect("put_index: the child manifest is not stored");
                    let (os, architecture) =
                        platform.split_once('/').expect("put_index: platform is os/architecture");
                    let mut descriptor = serde_json::json!({
                        "mediaType": object.media_type,
                        "digest": digest.to_string(),
                        "size": object.bytes.len(),
                        "platform": {"architecture": architecture, "os": os},
                    });
                    if *platform == "unknown/unknown" {
                        descriptor["annotations"] = serde_json::json!({
                            "vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": manifests[0].0.to_string(),
                        });
                    }
                    descriptor
                })
                .collect()
        };
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": oci::media::OCI_INDEX, "manifests": descriptors});
        self.put_manifest(repository, tag, oci::media::OCI_INDEX, serde_json::to_vec(&index).unwrap())
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.lock().global_fault = fault;
    }

    pub fn set_fault_for(&self, digest: &Digest, fault: Option<Fault>) {
        let mut inner = self.lock();
        match fault {
            Some(fault) => inner.faults.insert(digest.clone(), fault),
            None => inner.faults.remove(digest),
        };
    }

    pub fn set_gate(&self, gate: Option<Gate>) {
        self.lock().gate = gate;
    }

    /// Serves object bodies without `Content-Length` (chunked), as some registries and CDNs do.
    /// Combines with every fault except `Truncate`, which decides for itself.
    pub fn set_chunked(&self, chunked: bool) {
        self.lock().chunked = chunked;
    }

    pub fn set_chunk_size(&self, chunk: usize) {
        self.lock().chunk = chunk.max(1);
    }

    /// Requires Bearer token auth: `GET /v2/` answers 401 with a challenge whose realm is
    /// `<url>/token`, and every other `/v2/` request needs `Bearer <token>`.
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_owned());
    }

    /// Names `realm` in the Bearer challenge instead of `<url>/token` (another token service).
    pub fn set_realm(&self, realm: &str) {
        self.lock().realm = Some(realm.to_owned());
    }

    /// Pads token answers with `bytes` of whitespace.
    pub fn set_token_padding(&self, bytes: usize) {
        self.lock().token_padding = bytes;
    }

    /// Requires Basic auth with these credentials (`GET /v2/` answers 401 with a Basic challenge).
    pub fn require_basic(&self, username: &str, password: &str) {
        self.lock().basic = Some((username.to_owned(), password.to_owned()));
    }

    /// Stores an artifact manifest whose `subject` is `subject` (what cosign/oras push), so it is
    /// listed by the referrers API. Returns its digest.
    pub fn put_referrer(&self, repository: &str, subject: &Digest, artifact_type: &str) -> Digest {
        let config = self.put_blob(b"{}".to_vec());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::media::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.to_string(), "size": 2},
            "layers": [],
            "subject": {"mediaType": oci::media::OCI_MANIFEST, "digest": subject.to_string(), "size": 1},
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = Digest::of(&bytes);
        let mut inner = self.lock();
        inner.objects.insert(
            digest.clone(),
            Object { bytes: bytes.into(), media_type: oci::media::OCI_MANIFEST.into() },
        );
        inner.tags.insert((repository.to_owned(), format!("ref-{}", &digest.hex()[..12])), digest.clone());
        inner.referrers.entry(subject.clone()).or_default().push((digest.clone(), artifact_type.to_owned()));
        digest
    }

    /// Serves the referrers API (the default) or answers it 404, as a registry without it does.
    pub fn set_referrers_api(&self, served: bool) {
        self.lock().no_referrers_api = !served;
    }

    pub fn set_token_endpoint_down(&self, down: bool) {
        self.lock().token_endpoint_down = down;
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<RequestLog> {
        self.lock().log.clone()
    }

    /// Requests whose method matches and whose path contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|entry| entry.method.as_str() == method && entry.path.contains(fragment))
            .count()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Waits until at least `n` requests matching `method` and `fragment` arrived.
    pub async fn wait_for_requests(&self, method: &str, fragment: &str, n: usize) {
        loop {
            let notified = self.notify.notified();
            if self.count(method, fragment) >= n {
                return;
            }
            notified.await;
        }
    }
}

fn oci_error(status: StatusCode, code: &str) -> Response {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"fake registry says {code}"}}]}}"#);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn handle(State(registry): State<FakeRegistry>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let authorization =
        request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    registry.lock().log.push(RequestLog {
        method: method.clone(),
        path: path.clone(),
        authorization: authorization.clone(),
    });
    registry.notify.notify_waiters();

    let (token, token_down, realm, padding) = {
        let inner = registry.lock();
        (inner.token.clone(), inner.token_endpoint_down, inner.realm.clone(), inner.token_padding)
    };
    if path == "/token" {
        if token_down {
            return oci_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
        }
        let body = serde_json::json!({"token": token.unwrap_or_default(), "expires_in": 300});
        return Response::new(Body::from(format!("{body}{}", " ".repeat(padding))));
    }
    if let Some(token) = token
        && authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        let mut response = oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        let realm = realm.unwrap_or_else(|| format!("{}/token", registry.url()));
        let challenge = format!(r#"Bearer realm="{realm}",service="fake-registry""#);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap());
        return response;
    }
    let basic = registry.lock().basic.clone();
    if let Some((username, password)) = basic {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        );
        if authorization.as_deref() != Some(expected.as_str()) {
            let mut response = oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"fake\""));
            return response;
        }
    }
    if path == "/v2/" || path == "/v2" {
        return Response::new(Body::from("{}"));
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return oci_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(repository) = rest.strip_suffix("/tags/list") {
        return tags_list(&registry, repository, &query);
    }
    if let Some((repository, subject)) = rest.rsplit_once("/referrers/") {
        return referrers(&registry, repository, subject, &query);
    }
    let (repository, kind, reference) = if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        (repo, "manifest", reference)
    } else if let Some((repo, reference)) = rest.rsplit_once("/blobs/") {
        (repo, "blob", reference)
    } else {
        return oci_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    let digest = match reference.parse::<Digest>() {
        Ok(digest) => Some(digest),
        Err(_) if kind == "manifest" => {
            registry.lock().tags.get(&(repository.to_owned(), reference.to_owned())).cloned()
        }
        Err(_) => None,
    };
    let not_found = if kind == "manifest" { "MANIFEST_UNKNOWN" } else { "BLOB_UNKNOWN" };
    let Some(digest) = digest else {
        return oci_error(StatusCode::NOT_FOUND, not_found);
    };
    let (object, fault, gate, chunk, chunked) = {
        let inner = registry.lock();
        let Some(object) = inner.objects.get(&digest) else {
            return oci_error(StatusCode::NOT_FOUND, not_found);
        };
        let fault = inner.faults.get(&digest).cloned().or_else(|| inner.global_fault.clone());
        (
            Object { bytes: object.bytes.clone(), media_type: object.media_type.clone() },
            fault,
            inner.gate.clone(),
            inner.chunk,
            inner.chunked,
        )
    };
    let shape = Shape { gate, chunk, chunked };
    respond(&method, &digest, object, fault, shape, &path).await
}

/// How a body is sent when no fault says otherwise.
struct Shape {
    gate: Option<Gate>,
    chunk: usize,
    chunked: bool,
}

async fn respond(
    method: &Method,
    digest: &Digest,
    object: Object,
    fault: Option<Fault>,
    shape: Shape,
    path: &str,
) -> Response {
    let Shape { gate, chunk, chunked } = shape;
    let mut body_bytes = object.bytes.clone();
    let mut send_length = !chunked;
    let mut stop_after: Option<(usize, End)> = None;
    match fault {
        Some(Fault::Status { status, retry_after }) => {
            let mut response = oci_error(StatusCode::from_u16(status).unwrap(), "FAULT");
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&value).unwrap());
            }
            return response;
        }
        Some(Fault::Redirect { location }) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_str(&format!("{location}{path}")).unwrap());
            return response;
        }
        Some(Fault::Hang) => {
            std::future::pending::<()>().await;
        }
        Some(Fault::LyingLength { claimed }) if method == Method::GET => {
            return crate::raw::lying_response(object.bytes, claimed, &object.media_type, digest, gate).await;
        }
        Some(Fault::Truncate { after, content_length }) => {
            send_length = content_length;
            stop_after = Some((after, if content_length { End::Error } else { End::Clean }));
        }
        Some(Fault::WrongBytes) => {
            let mut changed = body_bytes.to_vec();
            if let Some(last) = changed.last_mut() {
                *last ^= 0xff;
            }
            body_bytes = Bytes::from(changed);
        }
        Some(Fault::Stall { after }) => stop_after = Some((after, End::Stall)),
        Some(Fault::Reset { after }) => stop_after = Some((after, End::Error)),
        _ => {}
    }
    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(body_stream(body_bytes, chunk, stop_after, gate)))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&object.media_type).unwrap());
    headers.insert("docker-content-digest", HeaderValue::from_str(&digest.to_string()).unwrap());
    if send_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.bytes.len()));
    }
    response
}

#[derive(Clone, Copy, Debug)]
enum End {
    Clean,
    Error,
    Stall,
}

fn body_stream(
    bytes: Bytes,
    chunk: usize,
    stop_after: Option<(usize, End)>,
    gate: Option<Gate>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct Cursor {
        bytes: Bytes,
        offset: usize,
        chunk: usize,
        stop_after: Option<(usize, End)>,
        gate: Option<Gate>,
        finished: bool,
    }
    let cursor = Cursor { bytes, offset: 0, chunk, stop_after, gate, finished: false };
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        if cursor.finished {
            return None;
        }
        if let Some(gate) = &cursor.gate
            && cursor.offset >= gate.before
        {
            gate.wait().await;
            cursor.gate = None;
        }
        let mut limit = cursor.bytes.len();
        if let Some(gate) = &cursor.gate {
            limit = limit.min(gate.before);
        }
        if let Some((after, end)) = cursor.stop_after {
            if cursor.offset >= after {
                cursor.finished = true;
                return match end {
                    End::Clean => None,
                    End::Error => Some((Err(std::io::Error::other("fault: connection reset")), cursor)),
                    End::Stall => {
                        std::future::pending::<()>().await;
                        None
                    }
                };
            }
            limit = limit.min(after);
        }
        if cursor.offset >= cursor.bytes.len() {
            return None;
        }
        let end = (cursor.offset + cursor.chunk).min(limit).max(cursor.offset + 1).min(cursor.bytes.len());
        let piece = cursor.bytes.slice(cursor.offset..end);
        cursor.offset = end;
        Some((Ok(piece), cursor))
    })
}

fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `tags/list` with `n`/`last` pagination and a `Link` to the next page, as distribution does.
fn tags_list(registry: &FakeRegistry, repository: &str, query: &str) -> Response {
    let mut tags: Vec<String> = registry
        .lock()
        .tags
        .keys()
        .filter(|(repo, _)| repo == repository)
        .map(|(_, tag)| tag.clone())
        .collect();
    if tags.is_empty() {
        return oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    }
    tags.sort();
    if let Some(last) = query_value(query, "last") {
        tags.retain(|tag| tag > &last);
    }
    let limit = query_value(query, "n").and_then(|n| n.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let more = tags.len() > limit;
    tags.truncate(limit);
    let body = serde_json::json!({"name": repository, "tags": tags});
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if more && let Some(last) = tags.last() {
        let link = format!("</v2/{repository}/tags/list?n={limit}&last={last}>; rel=\"next\"");
        response.headers_mut().insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    }
    response
}

/// The referrers API: an index of the manifests whose subject is `subject`, filtered by
/// `artifactType` when asked (and then saying so); 404 when switched off; a global status fault's
/// status; a JSON document that is no index for a global `WrongBytes`.
fn referrers(registry: &FakeRegistry, _repository: &str, subject: &str, query: &str) -> Response {
    let Ok(subject) = subject.parse::<Digest>() else {
        return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    };
    let filter = query_value(query, "artifactType");
    let inner = registry.lock();
    if inner.no_referrers_api {
        return oci_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    // A status fault for every object answers listings so too (an upstream that is down).
    match &inner.global_fault {
        Some(Fault::Status { status, .. }) => {
            return oci_error(StatusCode::from_u16(*status).unwrap(), "FAULT");
        }
        Some(Fault::WrongBytes) => return Response::new(Body::from(r#"{"not":"an index"}"#)),
        _ => {}
    }
    let descriptors: Vec<serde_json::Value> = inner
        .referrers
        .get(&subject)
        .into_iter()
        .flatten()
        .filter(|(_, artifact_type)| filter.as_ref().is_none_or(|wanted| wanted == artifact_type))
        .map(|(digest, artifact_type)| {
            let size = inner.objects.get(digest).map_or(0, |object| object.bytes.len());
            serde_json::json!({"mediaType": oci::media::OCI_MANIFEST, "digest": digest.to_string(), "size": size, "artifactType": artifact_type})
        })
        .collect();
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": oci::media::OCI_INDEX, "manifests": descriptors});
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(oci::media::OCI_INDEX));
    if filter.is_some() {
        response.headers_mut().insert("oci-filters-applied", HeaderValue::from_static("artifactType"));
    }
    response
}
