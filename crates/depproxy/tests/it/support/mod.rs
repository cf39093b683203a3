//! Shared harness: a depproxy (serve mode or split mode) in this process, on real sockets, in front
//! of a [`testkit::FakeRegistry`] or any upstream URL.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod backends;
pub mod cargo;
pub mod fake_packages;
pub mod go;
pub mod logs;
pub mod maven;
pub mod packages;
pub mod processes;
pub mod switch;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use depproxy::app::{ControlAddress, Runtime};
use depproxy::config::{AdminListen, Config, FileConfig, Overrides};
use gateway::Gateway;
use tempfile::TempDir;

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// A running proxy and where its data lives.
pub struct TestProxy {
    /// The registry API (the gateway's in split mode).
    pub url: String,
    pub router: Router,
    pub gateway: Arc<Gateway>,
    pub data_dir: TempDir,
    pub config: Config,
    /// Runs the gateway's fills (and, in serve mode, the control plane's background work); tests
    /// drain it as a shutdown would.
    pub supervisor: supervisor::Supervisor,
    /// The control plane's cache and lifecycle (sweeps, purges, statistics).
    pub cache: Arc<cache::Cache>,
    pub lifecycle: Arc<lifecycle::Lifecycle>,
    pub access: Arc<access::Access>,
    /// Scheduled warming (the control plane's).
    pub warming: Arc<lifecycle::Warming>,
    /// The admin API and status page (of the control plane in split mode).
    pub admin_url: String,
}

/// Knobs for a test proxy.
pub struct Options {
    pub file: FileConfig,
    pub upstream: Option<String>,
    pub split: bool,
    pub clock: cache::Clock,
    /// Reuse this data directory (a restart) instead of a fresh one.
    pub data_dir: Option<TempDir>,
    /// Use the file's `data_dir` instead of a fresh one (e.g. a small tmpfs).
    pub keep_data_dir: bool,
}

impl Options {
    pub fn upstream(url: &str) -> Self {
        Options {
            file: FileConfig::default(),
            upstream: Some(url.to_owned()),
            split: false,
            clock: cache::Clock::system(),
            data_dir: None,
            keep_data_dir: false,
        }
    }

    pub fn toml(text: &str) -> Self {
        Options {
            file: toml::from_str(text).unwrap(),
            upstream: None,
            split: false,
            clock: cache::Clock::system(),
            data_dir: None,
            keep_data_dir: false,
        }
    }

    /// Starts on an existing data directory, as a restarted process would.
    pub fn data_dir(mut self, data_dir: TempDir) -> Self {
        self.data_dir = Some(data_dir);
        self
    }

    /// Control-plane time under the test's control (`Clock::advance`).
    pub fn clock(mut self, clock: cache::Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn split(mut self) -> Self {
        self.split = true;
        self
    }

    /// Sets the upstream (e.g. after [`Options::toml`]).
    pub fn with_upstream(mut self, url: &str) -> Self {
        self.upstream = Some(url.to_owned());
        self
    }

    pub fn timeouts(mut self, header: Duration, idle: Duration) -> Self {
        self.file.timeouts.header = Some(header);
        self.file.timeouts.idle = Some(idle);
        self
    }
}

impl TestProxy {
    /// Hands the data directory over for a restart (`Options::data_dir`); this proxy keeps running
    /// but must not be used any more.
    pub fn into_data_dir(self) -> TempDir {
        self.data_dir
    }

    /// Starts the proxy as the binary does (`app::run_serve`, or `app::run_control` and
    /// `app::run_gateway` in split mode), on ports of the system's choice: the registry API at
    /// `url`, the admin API at `admin_url`.
    pub async fn start(options: Options) -> TestProxy {
        install_crypto();
        let data_dir = match options.data_dir {
            Some(dir) => dir,
            None => tempfile::tempdir().unwrap(),
        };
        let overrides = Overrides {
            listen: Some(any_port()),
            data_dir: (!options.keep_data_dir).then(|| data_dir.path().to_owned()),
            upstream: options.upstream,
        };
        let mut file = options.file;
        file.admin_listen.get_or_insert(AdminListen::At(any_port()));
        let mut config = Config::resolve(file, &overrides).unwrap();
        let listen = depproxy::app::ListenOptions::default;
        let never = std::future::pending::<()>;
        let (gateway, control, supervisor, url, admin_address) = if options.split {
            // Control planes share the key registry tokens are signed with (`depproxy control`
            // refuses to start without one when a group takes access tokens).
            if config.uses_tokens() && config.auth.signing_key_file.is_none() {
                let key = data_dir.path().join("registry-signing.key");
                depproxy::app::write_new_secret(&key).unwrap();
                config.auth.signing_key_file = Some(key);
            }
            let secret = injector::Secret::from_bytes([42; 32]);
            let runtime = Runtime::new(options.clock.clone());
            let control =
                depproxy::app::run_control(&config, &secret, listen(), runtime, never()).await.unwrap();
            let address = ControlAddress { url: format!("http://{}", control.address), ca: None };
            let runtime = Runtime::new(options.clock);
            let gateway = depproxy::app::run_gateway(&config, &address, &secret, listen(), runtime, never())
                .await
                .unwrap();
            let url = format!("http://{}", gateway.address);
            (gateway.node, control.node, gateway.supervisor, url, control.admin_address)
        } else {
            let runtime = Runtime::new(options.clock);
            let serving = depproxy::app::run_serve(&config, listen(), runtime, never()).await.unwrap();
            let url = format!("http://{}", serving.address);
            (serving.node.gateway, serving.node.control, serving.supervisor, url, serving.admin_address)
        };
        let admin_url = format!("http://{}", admin_address.expect("the admin API is on"));
        let router = gateway.router();
        let (cache, lifecycle, access, warming) =
            (control.cache, control.lifecycle, control.access, control.warming);
        TestProxy {
            url,
            admin_url,
            router,
            gateway,
            data_dir,
            config,
            supervisor,
            cache,
            lifecycle,
            access,
            warming,
        }
    }

    /// Every object file under the data directory's `blobs/`, with its content.
    pub fn stored_objects(&self) -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        let root = self.data_dir.path().join("blobs/sha256");
        if let Ok(prefixes) = std::fs::read_dir(&root) {
            for prefix in prefixes.flatten() {
                for object in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                    let name = object.file_name().to_string_lossy().into_owned();
                    found.push((name, std::fs::read(object.path()).unwrap()));
                }
            }
        }
        found
    }

    /// Whether an object named by `digest` is in storage (without reading it).
    pub fn has_object(&self, digest: &oci::Digest) -> bool {
        self.data_dir.path().join(injector::storage_key(digest)).try_exists().unwrap()
    }

    /// Names (hex digests) of every object file under `blobs/`.
    pub fn stored_names(&self) -> Vec<String> {
        let mut found = Vec::new();
        let root = self.data_dir.path().join("blobs/sha256");
        if let Ok(prefixes) = std::fs::read_dir(&root) {
            for prefix in prefixes.flatten() {
                for object in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                    found.push(object.file_name().to_string_lossy().into_owned());
                }
            }
        }
        found
    }

    /// Entries in the temp directory (must be empty whenever no fill runs).
    pub fn temp_entries(&self) -> usize {
        std::fs::read_dir(self.data_dir.path().join("tmp")).map(|dir| dir.count()).unwrap_or(0)
    }

    /// Bytes of every object file under the data directory's `blobs/`.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_objects().iter().map(|(_, bytes)| bytes.len() as u64).sum()
    }

    /// Waits until fills and sweeps are done: what a quiet moment of the proxy looks like.
    pub async fn settled(&self) {
        self.fills_settled().await;
        tokio::time::timeout(Duration::from_secs(30), self.lifecycle.settled())
            .await
            .expect("sweeps did not settle");
    }

    /// The proxy's `/metrics` text.
    pub async fn metrics(&self) -> String {
        client().get(format!("{}/metrics", self.url)).send().await.unwrap().text().await.unwrap()
    }

    /// Waits (up to 30 s) until `/metrics` has a line starting with `sample`, e.g. a counter at a
    /// value: the event a background outcome is observable by.
    pub async fn wait_for_metric(&self, sample: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let metrics = self.metrics().await;
            if metrics.lines().any(|line| line.starts_with(sample)) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {sample:?} in:\n{metrics}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no fill runs on the gateway (fills are detached from clients).
    pub async fn fills_settled(&self) {
        tokio::time::timeout(Duration::from_secs(30), self.gateway.wait_fills_idle())
            .await
            .expect("fills did not settle");
    }
}

/// This test process's log lines at info and above, in the text format `depproxy` writes: for
/// tests of what is logged, and at what level. Nextest runs each test in a process of its own.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the capture as the process's subscriber (panics if there is one already).
    pub fn install() -> LogCapture {
        let capture = LogCapture::default();
        tracing_subscriber::fmt()
            .event_format(telemetry::text_log::TextLine)
            .fmt_fields(telemetry::text_log::PlainFields)
            .with_max_level(tracing::Level::INFO)
            .with_writer(capture.clone())
            .init();
        capture
    }

    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// `127.0.0.1:0`: a port of the system's choice.
fn any_port() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The default listener limits.
pub fn test_limits() -> depproxy::server::ServerLimits {
    Config::resolve(FileConfig::default(), &Overrides::default()).unwrap().server
}

pub async fn spawn_server(router: Router) -> String {
    spawn_server_with(router, test_limits(), depproxy::server::ServerMetrics::default()).await
}

/// Serves `router` under the given listener limits (the proxy's `[server]` settings).
pub async fn spawn_server_with(
    router: Router,
    limits: depproxy::server::ServerLimits,
    metrics: depproxy::server::ServerMetrics,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = depproxy::server::run_server(listener, router, limits, metrics, std::future::pending()).await;
    });
    format!("http://{address}")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Asserts every stored object hashes to its name.
pub fn assert_objects_hash_to_their_names(proxy: &TestProxy) {
    for (name, bytes) in proxy.stored_objects() {
        assert_eq!(oci::Digest::of(&bytes).hex(), name, "stored object does not hash to its name");
    }
}

/// Deterministic bytes that do not repeat on any short period (a shifted or truncated copy never
/// matches), cheap to make in any size.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reads what is left of a response body; whether it ended in a transport error (cut short)
/// rather than as if complete.
pub async fn body_is_cut(mut response: reqwest::Response) -> bool {
    loop {
        match response.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// Reads a response body to its end, hashing as it goes (never holding the body): the digest and
/// length of what arrived, or the transport error that cut it short.
pub async fn body_digest(mut response: reqwest::Response) -> Result<(oci::Digest, u64), reqwest::Error> {
    let mut hasher = oci::Sha256Hasher::new();
    while let Some(chunk) = response.chunk().await? {
        hasher.update(&chunk);
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}
