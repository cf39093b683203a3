//! Real processes for end-to-end tests: the `distribution` registry, depproxy itself, skopeo.
//! Each process is killed when its handle drops, so a failing test leaves nothing running.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (for the scripts).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Where test data is cached between runs.
pub fn test_dir() -> PathBuf {
    let dir = std::env::var_os("DEPPROXY_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/depproxy-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fails with instructions when a tool the end-to-end tests need is missing.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            found.success(),
            "{tool} is missing: run scripts/install-test-deps.sh (scripts/test.sh does)"
        );
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed on drop.
pub struct Process {
    pub name: String,
    child: Child,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Process {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        Process { name: name.to_owned(), child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as a service manager stops a service; then waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {timeout:?} of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

/// Runs a command that should end by itself (e.g. a server that must refuse to start), for at
/// most `timeout`: its exit status and output (stdout and stderr together).
pub fn run_to_exit(command: &mut Command, timeout: Duration) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("output.log");
    let mut process = Process::spawn("command", command.env_remove("LD_LIBRARY_PATH"), &log);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = process.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} still runs after {timeout:?}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&log).unwrap())
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `ready` until it holds, for at most `timeout`. Only for readiness of external processes,
/// which offer no event to wait on.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `GET url` answers 200 (certificates unchecked: this is a liveness probe).
pub fn wait_http_ok(url: &str, process: &str) {
    wait_until(&format!("{process} did not answer 200 on {url}"), Duration::from_secs(30), || {
        Command::new("curl")
            .env_remove("LD_LIBRARY_PATH")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .is_ok_and(|output| output.stdout == b"200")
    });
}

/// A real `distribution` registry on 127.0.0.1 with its access log in a file.
pub struct Registry {
    pub port: u16,
    pub log: PathBuf,
    process: Process,
    _data: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(None, None)
    }

    /// A registry serving HTTPS with a certificate for 127.0.0.1 signed by `tls`'s CA.
    pub fn start_tls(tls: &TestCertificates) -> Registry {
        Self::start_with(Some(tls), None)
    }

    /// A registry that wants HTTP Basic credentials (`htpasswd` auth, bcrypt) for everything.
    pub fn start_with_password(username: &str, password: &str) -> Registry {
        Self::start_with(None, Some((username, password)))
    }

    fn start_with(tls: Option<&TestCertificates>, basic: Option<(&str, &str)>) -> Registry {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = data.path().join("config.yml");
        let tls_section = tls.map_or(String::new(), |tls| {
            format!(
                "\n  tls:\n    certificate: {}\n    key: {}",
                tls.server_cert.display(),
                tls.server_key.display()
            )
        });
        let auth_section = basic.map_or(String::new(), |(username, password)| {
            let htpasswd = data.path().join("htpasswd");
            let line = run(Command::new("htpasswd").args(["-Bbn", username, password]));
            std::fs::write(&htpasswd, line.trim()).unwrap();
            format!("auth:\n  htpasswd:\n    realm: depproxy-test\n    path: {}\n", htpasswd.display())
        });
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{auth_section}http:\n  addr: 127.0.0.1:{port}\n  secret: depproxy-test{tls_section}\n",
                data.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = data.path().join("registry.log");
        let process =
            Process::spawn("registry", Command::new("docker-registry").arg("serve").arg(&config), &log);
        let scheme = if tls.is_some() { "https" } else { "http" };
        // A registry with auth answers /v2/ with 401: wait for the port instead.
        if basic.is_some() {
            wait_until("registry did not start", Duration::from_secs(30), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        } else {
            wait_http_ok(&format!("{scheme}://127.0.0.1:{port}/v2/"), "registry");
        }
        Registry { port, log, process, _data: data }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the registry: the upstream is gone.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Access-log lines so far (Apache combined format; other log lines skipped).
    pub fn access_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                line.contains("\"GET ")
                    || line.contains("\"HEAD ")
                    || line.contains("\"POST ")
                    || line.contains("\"PUT ")
            })
            .map(str::to_owned)
            .collect()
    }

    /// Access-log requests of `method` whose path contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.access_lines()
            .iter()
            .filter(|line| {
                line.split('"').nth(1).is_some_and(|request| {
                    request.starts_with(&format!("{method} ")) && request.contains(fragment)
                })
            })
            .count()
    }
}

/// Builds the test images (cached), once for all tests.
pub fn test_layouts() -> PathBuf {
    let layouts = test_dir().join("e2e-layouts");
    // Tests run in parallel processes: one builds the layouts, the others wait on the lock.
    let lock = test_dir().join("e2e-layouts.lock");
    run(Command::new("flock")
        .arg(&lock)
        .arg("python3")
        .arg(repo_root().join("scripts/make-images.py"))
        .arg(&layouts));
    layouts
}

/// Builds the test images (cached) and pushes them to `registry`.
pub fn push_test_images(registry: &Registry) -> PathBuf {
    let layouts = test_layouts();
    run(Command::new("bash")
        .arg(repo_root().join("scripts/lab/push-images.sh"))
        .arg(registry.address())
        .arg(&layouts));
    layouts
}

/// Runs a command to completion, panicking with its output when it fails.
///
/// The test runner's `LD_LIBRARY_PATH` (build-script output directories, e.g. aws-lc's) is not
/// passed on: it makes curl load the wrong TLS library and fail handshakes.
pub fn run(command: &mut Command) -> String {
    command.env_remove("LD_LIBRARY_PATH");
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command to completion: its stdout when it succeeded, stdout and stderr when it failed.
pub fn try_run(command: &mut Command) -> Result<String, String> {
    command.env_remove("LD_LIBRARY_PATH");
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// `skopeo copy docker://<reference> dir:<out>` (with `--all` for indexes); returns wall time.
pub fn skopeo_pull(reference: &str, out: &Path, all: bool) -> Duration {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let mut command = Command::new("skopeo");
    command.args(["copy", "-q", "--src-tls-verify=false"]);
    if all {
        command.arg("--all");
    }
    command.arg(format!("docker://{reference}")).arg(format!("dir:{}", out.display()));
    run(&mut command);
    started.elapsed()
}

/// Every file of a `dir:` copy, by name, with its bytes.
pub fn dir_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// Every object under `<data_dir>/blobs/sha256/`, as (name, sha256 of content).
pub fn stored_object_hashes(data_dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Ok(prefixes) = std::fs::read_dir(data_dir.join("blobs/sha256")) {
        for prefix in prefixes.flatten() {
            for object in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                let bytes = std::fs::read(object.path()).unwrap();
                found.push((
                    object.file_name().to_string_lossy().into_owned(),
                    oci::Digest::of(&bytes).hex().to_owned(),
                ));
            }
        }
    }
    found
}

/// A depproxy process (`serve`, or `control` + `gateway`).
pub struct Depproxy {
    pub port: u16,
    /// The control plane's port in split mode.
    pub control_port: Option<u16>,
    /// The admin API's port (`serve`, or the control plane in split mode): each process gets
    /// its own, since several run at once and a taken admin port stops a start.
    pub admin_port: u16,
    pub data_dir: tempfile::TempDir,
    processes: Vec<Process>,
}

impl Depproxy {
    pub fn binary() -> &'static str {
        env!("CARGO_BIN_EXE_depproxy")
    }

    pub fn serve(upstream: &str) -> Depproxy {
        Self::serve_on(upstream, tempfile::tempdir().unwrap())
    }

    /// `depproxy serve` on an existing data directory: a restart (after [`Depproxy::crash`]).
    /// Each start logs to its own `serve-<port>.log` in the data directory.
    pub fn serve_on(upstream: &str, data_dir: tempfile::TempDir) -> Depproxy {
        let port = free_port();
        let admin_port = free_port();
        let mut command = Command::new(Self::binary());
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", upstream])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--data-dir")
            .arg(data_dir.path());
        let log = data_dir.path().join(format!("serve-{port}.log"));
        let process = Process::spawn("depproxy serve", &mut command, &log);
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
        Depproxy { port, control_port: None, admin_port, data_dir, processes: vec![process] }
    }

    /// `depproxy serve` with this TOML configuration, on a fresh data directory.
    pub fn serve_with_config(config: &str) -> Depproxy {
        let data_dir = tempfile::tempdir().unwrap();
        let file = data_dir.path().join("depproxy.toml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let admin_port = free_port();
        let mut command = Command::new(Self::binary());
        command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]).arg("--config").arg(&file);
        command.args(["--admin-listen", &format!("127.0.0.1:{admin_port}")]);
        command.arg("--data-dir").arg(data_dir.path());
        let process = Process::spawn("depproxy serve", &mut command, &data_dir.path().join("serve.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
        Depproxy { port, control_port: None, admin_port, data_dir, processes: vec![process] }
    }

    /// [`Depproxy::serve_with_config`] with its listener on TLS (`--tls-cert`, `--tls-key`) with
    /// `tls`'s certificate for 127.0.0.1: reach it at `https://` + [`Depproxy::address`].
    pub fn serve_with_config_over_tls(config: &str, tls: &TestCertificates) -> Depproxy {
        let data_dir = tempfile::tempdir().unwrap();
        let file = data_dir.path().join("depproxy.toml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let admin_port = free_port();
        let mut command = Command::new(Self::binary());
        command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]).arg("--config").arg(&file);
        command.args(["--admin-listen", &format!("127.0.0.1:{admin_port}")]);
        command.arg("--data-dir").arg(data_dir.path());
        command.arg("--tls-cert").arg(&tls.server_cert).arg("--tls-key").arg(&tls.server_key);
        let process = Process::spawn("depproxy serve", &mut command, &data_dir.path().join("serve.log"));
        wait_http_ok(&format!("https://127.0.0.1:{port}/healthz"), "depproxy serve over TLS");
        Depproxy { port, control_port: None, admin_port, data_dir, processes: vec![process] }
    }

    pub fn split(upstream: &str) -> Depproxy {
        Self::split_with(upstream, None)
    }

    /// Split mode (`control` + `gateway`) with one TOML configuration for both, written by
    /// `config` from the gateway's URL and a fresh registry-token signing key (a file).
    pub fn split_with_config(config: impl FnOnce(&str, &Path) -> String) -> Depproxy {
        let data_dir = tempfile::tempdir().unwrap();
        let secret = data_dir.path().join("secret");
        run(Command::new(Self::binary()).arg("gen-secret").arg(&secret));
        let signing_key = data_dir.path().join("signing.key");
        run(Command::new(Self::binary()).arg("gen-secret").arg(&signing_key));
        let (port, control_port, admin_port) = (free_port(), free_port(), free_port());
        let file = data_dir.path().join("depproxy.toml");
        std::fs::write(&file, config(&format!("http://127.0.0.1:{port}"), &signing_key)).unwrap();
        let mut control = Command::new(Self::binary());
        control
            .args(["control", "--listen", &format!("127.0.0.1:{control_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--config")
            .arg(&file)
            .arg("--secret-file")
            .arg(&secret)
            .arg("--data-dir")
            .arg(data_dir.path());
        let control = Process::spawn("depproxy control", &mut control, &data_dir.path().join("control.log"));
        let mut gateway = Command::new(Self::binary());
        gateway
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--control-url", &format!("http://127.0.0.1:{control_port}")])
            .arg("--config")
            .arg(&file)
            .arg("--secret-file")
            .arg(&secret)
            .arg("--data-dir")
            .arg(data_dir.path());
        let gateway = Process::spawn("depproxy gateway", &mut gateway, &data_dir.path().join("gateway.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy gateway");
        wait_until("depproxy control did not start", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", control_port)).is_ok()
        });
        Depproxy {
            port,
            control_port: Some(control_port),
            admin_port,
            data_dir,
            processes: vec![control, gateway],
        }
    }

    /// Split mode with TLS on the control listener (`--tls-cert`, `--tls-key`), the gateway
    /// trusting `tls`'s CA (`--control-ca`) at an `https://` control URL.
    pub fn split_tls(upstream: &str, tls: &TestCertificates) -> Depproxy {
        Self::split_with(upstream, Some(tls))
    }

    fn split_with(upstream: &str, tls: Option<&TestCertificates>) -> Depproxy {
        let data_dir = tempfile::tempdir().unwrap();
        let secret = data_dir.path().join("secret");
        run(Command::new(Self::binary()).arg("gen-secret").arg(&secret));
        let control_port = free_port();
        let admin_port = free_port();
        let mut control = Command::new(Self::binary());
        control
            .args(["control", "--listen", &format!("127.0.0.1:{control_port}"), "--upstream", upstream])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--secret-file")
            .arg(&secret)
            .arg("--data-dir")
            .arg(data_dir.path());
        if let Some(tls) = tls {
            control.arg("--tls-cert").arg(&tls.server_cert).arg("--tls-key").arg(&tls.server_key);
        }
        let control = Process::spawn("depproxy control", &mut control, &data_dir.path().join("control.log"));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let port = free_port();
        let mut gateway = Command::new(Self::binary());
        gateway
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}"), "--upstream", upstream])
            .args(["--control-url", &format!("{scheme}://127.0.0.1:{control_port}")])
            .arg("--secret-file")
            .arg(&secret)
            .arg("--data-dir")
            .arg(data_dir.path());
        if let Some(tls) = tls {
            gateway.arg("--control-ca").arg(&tls.ca_cert);
        }
        let gateway = Process::spawn("depproxy gateway", &mut gateway, &data_dir.path().join("gateway.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy gateway");
        wait_until("depproxy control did not start", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", control_port)).is_ok()
        });
        Depproxy {
            port,
            control_port: Some(control_port),
            admin_port,
            data_dir,
            processes: vec![control, gateway],
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id of `serve` (of the control plane in split mode): for signals.
    pub fn pid(&self) -> u32 {
        self.processes[0].pid()
    }

    /// SIGKILLs every process, as a crash would, and hands back the data directory untouched.
    /// SIGTERMs every process and waits for each to exit; hands back the data directory and
    /// how long the exits took.
    pub fn terminate(self, timeout: Duration) -> (tempfile::TempDir, Duration) {
        let Depproxy { data_dir, mut processes, .. } = self;
        let started = Instant::now();
        for process in &mut processes {
            let status = process.terminate(timeout);
            assert!(status.success(), "{} exited with {status} after SIGTERM", process.name);
        }
        (data_dir, started.elapsed())
    }

    pub fn crash(self) -> tempfile::TempDir {
        let Depproxy { data_dir, mut processes, .. } = self;
        for process in &mut processes {
            process.kill();
        }
        data_dir
    }
}

/// One node of a cluster: a real `depproxy control` or `depproxy gateway` process.
pub struct Node {
    pub port: u16,
    /// A control plane's admin API port (each its own: a taken admin port stops a start).
    pub admin_port: Option<u16>,
    /// `--data-dir`: a fresh directory in `dir`, or the one given (which may not exist).
    pub data_dir: PathBuf,
    /// Holds its log (`<role>.log`).
    pub dir: tempfile::TempDir,
    process: Process,
}

impl Node {
    /// `depproxy control --listen … --secret-file … --config …`
    pub fn control(config: &Path, secret: &Path) -> Node {
        Self::start("control", config, secret, &[], None)
    }

    /// [`Node::control`] with this `--data-dir` (which may not exist).
    pub fn control_on(config: &Path, secret: &Path, data_dir: &Path) -> Node {
        Self::start("control", config, secret, &[], Some(data_dir))
    }

    /// `depproxy gateway --control-url … --secret-file … --config …`, with its own data directory.
    pub fn gateway(config: &Path, secret: &Path, control: &Node) -> Node {
        Self::gateway_with(config, secret, control, None)
    }

    /// [`Node::gateway`] with this `--data-dir` (which may not exist).
    pub fn gateway_on(config: &Path, secret: &Path, control: &Node, data_dir: &Path) -> Node {
        Self::gateway_with(config, secret, control, Some(data_dir))
    }

    fn gateway_with(config: &Path, secret: &Path, control: &Node, data_dir: Option<&Path>) -> Node {
        let node = Self::start("gateway", config, secret, &["--control-url", &control.url()], data_dir);
        wait_http_ok(&format!("{}/healthz", node.url()), "depproxy gateway");
        node
    }

    fn start(role: &str, config: &Path, secret: &Path, extra: &[&str], data_dir: Option<&Path>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = data_dir.map_or_else(|| dir.path().join("data"), Path::to_owned);
        let port = free_port();
        let admin_port = (role == "control").then(free_port);
        let mut command = Command::new(Depproxy::binary());
        command.args([role, "--listen", &format!("127.0.0.1:{port}")]).args(extra);
        if let Some(admin_port) = admin_port {
            command.args(["--admin-listen", &format!("127.0.0.1:{admin_port}")]);
        }
        command.arg("--config").arg(config).arg("--secret-file").arg(secret).arg("--data-dir").arg(&data_dir);
        let log = dir.path().join(format!("{role}.log"));
        let mut process = Process::spawn(&format!("depproxy {role}"), &mut command, &log);
        if role == "control" {
            wait_until("depproxy control did not start", Duration::from_secs(30), || {
                if let Some(status) = process.exited() {
                    panic!(
                        "depproxy control exited with {status}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
        Node { port, admin_port, data_dir, dir, process }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        let role = self.process.name.trim_start_matches("depproxy ");
        std::fs::read_to_string(self.dir.path().join(format!("{role}.log"))).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A containerd daemon on a unix socket (CRI disabled, so no TCP port), with `ctr` pulling through
/// a `hosts.toml` mirror configuration.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    _process: Process,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{0}/containerd.sock\"\n",
                root.display()
            ),
        )
        .unwrap();
        let process = Process::spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(root.join("config.toml")),
            &root.join("containerd.log"),
        );
        let socket = root.join("containerd.sock");
        wait_until("containerd did not start", Duration::from_secs(20), || socket.exists());
        Containerd { dir, _process: process }
    }

    /// Points pulls of `registry` (host:port) at `mirror` (host:port) first.
    pub fn mirror(&self, registry: &str, mirror: &str) {
        let hosts = self.dir.path().join("certs.d").join(registry);
        std::fs::create_dir_all(&hosts).unwrap();
        std::fs::write(
            hosts.join("hosts.toml"),
            format!("server = \"http://{registry}\"\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
        .unwrap();
    }

    /// `ctr image pull` (all platforms) through the hosts configuration.
    pub fn pull(&self, reference: &str) -> String {
        let root = self.dir.path();
        run(Command::new("ctr")
            .arg("--address")
            .arg(root.join("containerd.sock"))
            .args(["image", "pull", "--all-platforms", "--hosts-dir"])
            .arg(root.join("certs.d"))
            .arg(reference))
    }
}

/// A private CA and a server certificate for 127.0.0.1 it signed, made with `openssl`.
pub struct TestCertificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCertificates {
    pub fn generate() -> TestCertificates {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir.path()));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=depproxy test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(path("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        TestCertificates {
            ca_cert: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            _dir: dir,
        }
    }
}
