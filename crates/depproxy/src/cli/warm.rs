//! `depproxy cache warm`: pulls every platform of images through a running proxy, as a client, so
//! that later pulls are cache hits.
//!
//! It only speaks the registry API to the proxy's public listener, so it works the same against
//! `serve` and against a gateway of a split deployment, and it leaves every decision (what is
//! cached, what is fetched upstream, who may pull) to the proxy. Objects are addressed in the group
//! form (`/v2/<group>/dependency_proxy/containers/<image>/…`) even for `default`: that form names
//! exactly one group, while the mirror form `/v2/<image>` is taken by an upstream's path prefix
//! when the image's first component happens to be that upstream's name.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::IsTerminal as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci::{Digest, GroupPath, ImageAddress, Reference, RepositoryName, Tag};

/// How many blobs (and manifests) are fetched at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;
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

/// What to warm, and through which proxy.
#[derive(Clone)]
pub struct WarmOptions {
    /// Base URL of the proxy's public listener, e.g. `http://127.0.0.1:5000`.
    pub proxy: String,
    /// The group path (`default` for the mirror group).
    pub group: String,
    /// `IMAGE[:TAG|@DIGEST]`, tag `latest` when neither is given.
    pub images: Vec<String>,
    /// An access token for groups with `access = "token"`.
    pub token: Option<String>,
    /// Objects fetched at once (at least 1).
    pub concurrency: usize,
    /// Where `proxy` came from (`--proxy`, `--listen`, a configuration's `listen`, the default),
    /// said when the proxy cannot be reached.
    pub proxy_origin: String,
    /// The configuration file given on the command line, for the `depproxy token create` hint.
    pub config: Option<std::path::PathBuf>,
}

impl fmt::Debug for WarmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmOptions")
            .field("proxy", &self.proxy)
            .field("group", &self.group)
            .field("images", &self.images)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("concurrency", &self.concurrency)
            .field("proxy_origin", &self.proxy_origin)
            .field("config", &self.config)
            .finish()
    }
}

/// The proxy URL a configuration's listener is reached at from this machine: an unspecified
/// address (`0.0.0.0`, `[::]`) is a bind-everything address, not one to connect to.
pub fn default_proxy_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

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

/// What one object's fetch ended with, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmFailure {
    /// The image argument as given.
    pub image: String,
    /// `manifest <ref>` or `blob <digest>`.
    pub object: String,
    /// The proxy's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The OCI error message(s) of the answer, or why there was none.
    pub message: String,
}

impl fmt::Display for WarmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.image, self.object)?;
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        f.write_str(&self.message)
    }
}

/// What a warm run did. Whether an object was already cached is the proxy's secret (a hit and a
/// miss look the same to a client), so only what was fetched through the proxy is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmSummary {
    /// Images asked for.
    pub images: usize,
    /// Images with at least one object that could not be fetched.
    pub images_failed: usize,
    /// Manifests (indexes included) fetched.
    pub manifests: usize,
    /// Config and layer blobs fetched.
    pub blobs: usize,
    /// Bytes of manifests and blobs received.
    pub bytes: u64,
    /// Layers with `urls` (Windows "foreign" layers): not distributed by registries, so not fetched.
    pub foreign_layers: usize,
    pub failures: Vec<WarmFailure>,
}

impl WarmSummary {
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for WarmSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warmed {} of {} image(s): {} manifest(s), {} blob(s), {} fetched through the proxy",
            self.images - self.images_failed,
            self.images,
            self.manifests,
            self.blobs,
            HumanBytes(self.bytes)
        )?;
        if self.foreign_layers > 0 {
            write!(f, "; {} foreign layer(s) skipped", self.foreign_layers)?;
        }
        if !self.failures.is_empty() {
            write!(f, "; {} object(s) failed:", self.failures.len())?;
            for failure in &self.failures {
                write!(f, "\n  {failure}")?;
            }
        }
        Ok(())
    }
}

/// The run finished but some objects could not be fetched: the command must fail. Carries the
/// summary (`anyhow::Error::downcast_ref::<WarmFailed>()`).
#[derive(Debug)]
pub struct WarmFailed {
    pub summary: WarmSummary,
}

impl fmt::Display for WarmFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.summary.fmt(f)
    }
}

impl std::error::Error for WarmFailed {}

/// Warms every image of `options`: its manifest, every child manifest of an index (every platform,
/// attestations included), and every config and layer blob. Everything is tried; `Ok` only when
/// everything succeeded, else [`WarmFailed`] with the summary. Problems that would fail every
/// object (a bad argument, an unreachable proxy, refused credentials) end the run early.
pub async fn warm(options: &WarmOptions) -> anyhow::Result<WarmSummary> {
    let plan = Plan::parse(options)?;
    let client = Client::new(options, plan.group.clone())?;
    client.check_reachable().await?;
    let progress = Progress::new();
    let mut run = Run { client: &client, progress: &progress, plan: &plan, state: State::default() };
    run.fetch_manifests(options.concurrency.max(1)).await;
    if !client.refused() {
        run.fetch_blobs(options.concurrency.max(1)).await;
    }
    progress.finish();
    if client.refused() {
        anyhow::bail!(client.refusal_message());
    }
    let summary = run.state.into_summary(&plan);
    if summary.is_success() { Ok(summary) } else { Err(WarmFailed { summary }.into()) }
}

/// The arguments, validated before any request: a typo fails fast instead of after a long run.
struct Plan {
    group: GroupPath,
    images: Vec<ImageRef>,
}

struct ImageRef {
    /// As given on the command line, for messages.
    written: String,
    name: RepositoryName,
    reference: Reference,
}

impl Plan {
    fn parse(options: &WarmOptions) -> anyhow::Result<Plan> {
        let group = GroupPath::parse(&options.group)
            .map_err(|error| anyhow::anyhow!("--group {:?}: {}", options.group, error.message))?;
        if options.images.is_empty() {
            anyhow::bail!("no image to warm: name at least one IMAGE[:TAG|@DIGEST]");
        }
        let mut images = Vec::new();
        let mut invalid = Vec::new();
        for written in &options.images {
            match parse_image(written) {
                Ok(image) => images.push(image),
                Err(why) => invalid.push(format!("{written:?}: {why}")),
            }
        }
        if !invalid.is_empty() {
            anyhow::bail!("invalid image reference(s), nothing was warmed:\n  {}", invalid.join("\n  "));
        }
        Ok(Plan { group, images })
    }
}

/// `IMAGE[:TAG|@DIGEST]`. With both a tag and a digest the digest decides, as docker does.
fn parse_image(written: &str) -> Result<ImageRef, String> {
    let (rest, digest) = match written.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (written, None),
    };
    // A ':' after the last '/' starts a tag; one before it would be a registry port, which an
    // image name on this proxy never has (the group decides the registry).
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (rest, None),
    };
    let name = RepositoryName::parse(name).map_err(|error| error.message)?;
    let tag = tag.map(Tag::parse).transpose().map_err(|error| error.message)?;
    let reference = match (digest, tag) {
        (Some(digest), _) => {
            Reference::Digest(digest.parse::<Digest>().map_err(|error| format!("digest: {error}"))?)
        }
        (None, Some(tag)) => Reference::Tag(tag),
        (None, None) => Reference::Tag(Tag::parse("latest").map_err(|error| error.message)?),
    };
    Ok(ImageRef { written: written.to_owned(), name, reference })
}

/// A blob to fetch, and the images that need it (a failure leaves each of them incomplete).
struct BlobJob {
    /// The first image that named it: the repository it is fetched through.
    image: usize,
    digest: Digest,
    size: u64,
    needed_by: BTreeSet<usize>,
}

struct ManifestJob {
    image: usize,
    reference: Reference,
    /// What the progress line says besides the reference, e.g. `linux/arm64`.
    label: String,
}

#[derive(Default)]
struct State {
    manifests: usize,
    blobs: usize,
    bytes: u64,
    foreign_layers: usize,
    failures: Vec<WarmFailure>,
    failed_images: BTreeSet<usize>,
    blob_jobs: Vec<BlobJob>,
}

impl State {
    fn fail(
        &mut self,
        plan: &Plan,
        images: impl IntoIterator<Item = usize>,
        object: String,
        error: ObjectError,
    ) {
        let images: Vec<usize> = images.into_iter().collect();
        let Some(&first) = images.first() else { return };
        self.failures.push(WarmFailure {
            image: plan.images[first].written.clone(),
            object,
            status: error.status,
            message: error.message,
        });
        self.failed_images.extend(images);
    }

    fn into_summary(self, plan: &Plan) -> WarmSummary {
        WarmSummary {
            images: plan.images.len(),
            images_failed: self.failed_images.len(),
            manifests: self.manifests,
            blobs: self.blobs,
            bytes: self.bytes,
            foreign_layers: self.foreign_layers,
            failures: self.failures,
        }
    }
}

struct Run<'a> {
    client: &'a Client,
    progress: &'a Progress,
    plan: &'a Plan,
    state: State,
}

impl Run<'_> {
    /// Resolves every image down to its blobs, level by level (index, then its children), each
    /// level fetched concurrently. Manifests are small and must be parsed, so they are read whole.
    async fn fetch_manifests(&mut self, concurrency: usize) {
        // Manifest rows are per image (blob rows per group): a digest shared by two images is
        // fetched through each of them, a blob only once.
        let mut seen_manifests: HashSet<(usize, Digest)> = HashSet::new();
        let mut blob_index: HashMap<Digest, usize> = HashMap::new();
        let mut pending: Vec<ManifestJob> = (0..self.plan.images.len())
            .map(|image| ManifestJob {
                image,
                reference: self.plan.images[image].reference.clone(),
                label: String::new(),
            })
            .collect();
        for job in &pending {
            if let Reference::Digest(digest) = &job.reference {
                seen_manifests.insert((job.image, digest.clone()));
            }
        }
        while !pending.is_empty() && !self.client.refused() {
            let client = self.client;
            let plan = self.plan;
            let progress = self.progress;
            let results: Vec<(ManifestJob, Result<Fetched, ObjectError>)> =
                futures_util::stream::iter(pending)
                    .map(|job| async move {
                        let result =
                            client.manifest(&plan.images[job.image].name, &job.reference, progress).await;
                        (job, result)
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            pending = Vec::new();
            for (job, result) in results {
                let image = &self.plan.images[job.image];
                let object = format!("manifest {}", job.reference);
                let fetched = match result {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        self.progress.failure(&format!("{} {object}: {error}", image.written));
                        self.state.fail(self.plan, [job.image], object, error);
                        continue;
                    }
                };
                self.state.manifests += 1;
                self.state.bytes += fetched.bytes;
                self.progress.manifest(&format!(
                    "manifest {}{}{} ({}, {})",
                    image.name,
                    reference_separator(&job.reference),
                    job.reference,
                    job.label_or(&fetched.kind),
                    HumanBytes(fetched.bytes)
                ));
                if let Some(digest) = &fetched.digest {
                    seen_manifests.insert((job.image, digest.clone()));
                }
                for child in fetched.children {
                    if seen_manifests.insert((job.image, child.digest.clone())) {
                        pending.push(ManifestJob {
                            image: job.image,
                            reference: Reference::Digest(child.digest),
                            label: child.label,
                        });
                    }
                }
                for blob in fetched.blobs {
                    if blob.foreign {
                        self.state.foreign_layers += 1;
                        continue;
                    }
                    match blob_index.get(&blob.digest) {
                        Some(&index) => {
                            self.state.blob_jobs[index].needed_by.insert(job.image);
                        }
                        None => {
                            blob_index.insert(blob.digest.clone(), self.state.blob_jobs.len());
                            self.state.blob_jobs.push(BlobJob {
                                image: job.image,
                                digest: blob.digest,
                                size: blob.size,
                                needed_by: BTreeSet::from([job.image]),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Streams every blob through the proxy and discards it: the proxy keeps what passes through.
    async fn fetch_blobs(&mut self, concurrency: usize) {
        let jobs = std::mem::take(&mut self.state.blob_jobs);
        self.progress.start_blobs(jobs.len(), jobs.iter().map(|job| job.size).sum());
        let client = self.client;
        let plan = self.plan;
        let progress = self.progress;
        let mut results = futures_util::stream::iter(&jobs)
            .map(|job| async move {
                let result = client.blob(&plan.images[job.image].name, &job.digest, job.size, progress).await;
                (job, result)
            })
            .buffer_unordered(concurrency);
        while let Some((job, result)) = results.next().await {
            let object = format!("blob {}", job.digest);
            match result {
                Ok(bytes) => {
                    self.state.blobs += 1;
                    self.state.bytes += bytes;
                    progress.blob(&format!(
                        "blob {} ({}, {})",
                        job.digest,
                        plan.images[job.image].name,
                        HumanBytes(bytes)
                    ));
                }
                Err(error) => {
                    let image = &plan.images[job.image].written;
                    progress.failure(&format!("{image} {object}: {error}"));
                    self.state.fail(plan, job.needed_by.iter().copied(), object, error);
                }
            }
        }
    }
}

impl ManifestJob {
    fn label_or(&self, kind: &str) -> String {
        if self.label.is_empty() { kind.to_owned() } else { format!("{kind}, {}", self.label) }
    }
}

fn reference_separator(reference: &Reference) -> &'static str {
    match reference {
        Reference::Digest(_) => "@",
        Reference::Tag(_) => ":",
    }
}

/// Why one object could not be fetched.
#[derive(Debug)]
struct ObjectError {
    status: Option<u16>,
    message: String,
}

impl ObjectError {
    fn other(message: impl Into<String>) -> Self {
        ObjectError { status: None, message: message.into() }
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        f.write_str(&self.message)
    }
}

/// A manifest as far as warming cares: what it points at.
struct Fetched {
    bytes: u64,
    /// `Docker-Content-Digest` of the answer (the digest a tag resolved to).
    digest: Option<Digest>,
    /// `index`, `image` (for the progress line).
    kind: String,
    children: Vec<Child>,
    blobs: Vec<BlobRef>,
}

struct Child {
    digest: Digest,
    label: String,
}

struct BlobRef {
    digest: Digest,
    size: u64,
    foreign: bool,
}

#[derive(serde::Deserialize)]
struct ManifestDocument {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    /// The OCI 1.1 draft's artifact manifest lists `blobs` instead of layers.
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
    /// Docker schema 1: never asked for, but an upstream may still send one.
    #[serde(default, rename = "fsLayers")]
    fs_layers: Option<Vec<FsLayer>>,
}

#[derive(serde::Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(serde::Deserialize)]
struct FsLayer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

fn parse_manifest(body: &[u8], digest: Option<Digest>) -> Result<Fetched, ObjectError> {
    let document: ManifestDocument = serde_json::from_slice(body).map_err(|error| {
        ObjectError::other(format!("the proxy sent a manifest that is not JSON: {error}"))
    })?;
    let parse_digest = |text: &str| {
        text.parse::<Digest>().map_err(|error| {
            ObjectError::other(format!("manifest names an invalid digest {text:?}: {error}"))
        })
    };
    let bytes = body.len() as u64;
    if let Some(manifests) = document.manifests {
        let children = manifests
            .iter()
            .map(|descriptor| {
                Ok(Child { digest: parse_digest(&descriptor.digest)?, label: platform_label(descriptor) })
            })
            .collect::<Result<_, ObjectError>>()?;
        return Ok(Fetched { bytes, digest, kind: "index".into(), children, blobs: Vec::new() });
    }
    let mut blobs = Vec::new();
    if document.config.is_some() || document.layers.is_some() || document.blobs.is_some() {
        let layers = document.layers.iter().flatten().chain(document.blobs.iter().flatten());
        for descriptor in document.config.iter().chain(layers) {
            blobs.push(BlobRef {
                digest: parse_digest(&descriptor.digest)?,
                size: descriptor.size,
                foreign: !descriptor.urls.is_empty(),
            });
        }
    } else if let Some(layers) = document.fs_layers {
        for layer in layers {
            blobs.push(BlobRef { digest: parse_digest(&layer.blob_sum)?, size: 0, foreign: false });
        }
    } else {
        return Err(ObjectError::other("the proxy sent a manifest with neither manifests nor layers"));
    }
    Ok(Fetched { bytes, digest, kind: "image".into(), children: Vec::new(), blobs })
}

fn platform_label(descriptor: &Descriptor) -> String {
    if descriptor.annotations.get("vnd.docker.reference.type").map(String::as_str)
        == Some("attestation-manifest")
    {
        return "attestation".into();
    }
    match &descriptor.platform {
        Some(platform) => {
            let mut label = format!("{}/{}", platform.os, platform.architecture);
            if let Some(variant) = &platform.variant {
                label.push('/');
                label.push_str(variant);
            }
            label
        }
        None => String::new(),
    }
}

/// The proxy as a registry client sees it.
struct Client {
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
    fn new(options: &WarmOptions, group: GroupPath) -> anyhow::Result<Client> {
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

    fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn refusal_message(&self) -> String {
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
    async fn check_reachable(&self) -> anyhow::Result<()> {
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

    async fn manifest(
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
    async fn blob(
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

/// reqwest's own message is "error sending request"; the reason is further down the chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
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

/// A bar on a terminal; one line per object otherwise (CI logs, files), where a bar would be noise.
struct Progress {
    bar: Option<ProgressBar>,
    blobs_total: AtomicUsize,
    blobs_done: AtomicUsize,
    manifests_done: AtomicUsize,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} resolving manifests: {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            blobs_total: AtomicUsize::new(0),
            blobs_done: AtomicUsize::new(0),
            manifests_done: AtomicUsize::new(0),
        }
    }

    fn manifest(&self, line: &str) {
        let done = self.manifests_done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => bar.set_message(format!("{done} fetched")),
            None => eprintln!("{line}"),
        }
    }

    fn start_blobs(&self, count: usize, total_bytes: u64) {
        self.blobs_total.store(count, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => {
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                ) {
                    bar.set_style(style);
                }
                bar.set_length(total_bytes);
                bar.set_position(0);
                bar.set_message(format!("0/{count} blobs"));
            }
            None => eprintln!("fetching {count} blob(s), {}", HumanBytes(total_bytes)),
        }
    }

    fn bytes(&self, received: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(received);
        }
    }

    fn blob(&self, line: &str) {
        let done = self.blobs_done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{done}/{} blobs", self.blobs_total.load(Ordering::Relaxed)))
            }
            None => eprintln!("{line}"),
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn failure(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("failed: {line}")),
            None => eprintln!("failed: {line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_default_to_latest_and_prefer_a_digest() {
        let digest = Digest::of(b"x");
        let cases = [
            ("alpine", "alpine", "latest".to_owned()),
            ("library/alpine:3.20", "library/alpine", "3.20".to_owned()),
            (&*format!("lab/multi@{digest}"), "lab/multi", digest.to_string()),
            (&*format!("lab/multi:v1@{digest}"), "lab/multi", digest.to_string()),
        ];
        for (written, name, reference) in cases {
            let image = parse_image(written).unwrap();
            assert_eq!((image.name.as_str(), image.reference.to_string()), (name, reference), "{written}");
        }
        for invalid in ["", "Alpine", "alpine:", "alpine:bad/tag", "alpine@sha256:short", "host:5000/x:y:z"] {
            assert!(parse_image(invalid).is_err(), "{invalid:?} should be refused");
        }
    }

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        assert_eq!(default_proxy_url("0.0.0.0:5000".parse().unwrap()), "http://127.0.0.1:5000");
        assert_eq!(default_proxy_url("[::]:5000".parse().unwrap()), "http://[::1]:5000");
        assert_eq!(default_proxy_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
    }

    #[test]
    fn error_messages_come_from_the_oci_envelope() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_message(reqwest::StatusCode::NOT_FOUND, body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(
            error_message(reqwest::StatusCode::BAD_GATEWAY, b"<html>"),
            "Bad Gateway (no OCI error in the answer)"
        );
    }

    #[test]
    fn manifests_yield_children_or_blobs_and_skip_foreign_layers() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let index = format!(
            r#"{{"manifests":[{{"digest":"{a}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
                {{"digest":"{b}","platform":{{"os":"unknown","architecture":"unknown"}},
                  "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
        );
        let fetched = parse_manifest(index.as_bytes(), None).unwrap();
        let labels: Vec<_> = fetched.children.iter().map(|child| child.label.as_str()).collect();
        assert_eq!(labels, ["linux/arm64/v8", "attestation"]);
        let image = format!(
            r#"{{"config":{{"digest":"{a}","size":3}},"layers":[{{"digest":"{b}","size":5,"urls":["https://x"]}}]}}"#
        );
        let fetched = parse_manifest(image.as_bytes(), None).unwrap();
        let blobs: Vec<_> = fetched.blobs.iter().map(|blob| (blob.size, blob.foreign)).collect();
        assert_eq!(blobs, [(3, false), (5, true)]);
        assert!(parse_manifest(b"{}", None).is_err());
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let options = WarmOptions {
            proxy: "http://127.0.0.1:5000".into(),
            group: "default".into(),
            images: vec!["alpine".into()],
            token: Some("dpp_secret".into()),
            concurrency: 4,
            proxy_origin: "--proxy".into(),
            config: None,
        };
        assert!(!format!("{options:?}").contains("dpp_secret"));
    }
}
