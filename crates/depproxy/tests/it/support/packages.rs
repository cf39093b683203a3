//! Real package-registry upstreams and clients for the npm and PyPI end-to-end tests: Verdaccio,
//! pypiserver and a static PEP 503 index started by `scripts/lab/` (each in a directory of its own,
//! stopped when its handle drops), the fixtures those scripts make (built once per machine and
//! change of the scripts, shared by every test), and `npm` / `pip` run with nothing of the user's or
//! the machine's configuration (no `~/.npmrc`, no `pip.conf`, no `PIP_FIND_LINKS`), each run with a
//! fresh cache.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::processes::{Depproxy, free_port, repo_root, run, test_dir, try_run};

pub(crate) fn lab_script(name: &str) -> PathBuf {
    repo_root().join("scripts/lab").join(name)
}

/// sha256 hex of the scripts a fixture set is made by: a change of them makes a new set.
pub(crate) fn stamp(scripts: &[&str]) -> String {
    let mut text = Vec::new();
    for script in scripts {
        text.extend(std::fs::read(lab_script(script)).unwrap());
    }
    oci::Digest::of(&text).hex()[..12].to_owned()
}

/// Runs `script` (bash, `$1`… = `args`) under `flock` on `lock`: once per machine, whatever
/// number of test processes ask at once.
pub(crate) fn locked(lock: &Path, script: &str, args: &[&str]) {
    run(Command::new("flock")
        .arg(lock)
        .args(["bash", "-c", script, "fixtures"])
        .args(args)
        .current_dir(repo_root()));
}

/// The npm fixtures (`scripts/lab/make-npm-fixtures.sh`) published to a Verdaccio whose storage is
/// kept: each test's Verdaccio starts on a copy of it.
pub struct NpmFixtures {
    /// Verdaccio's storage with the fixtures published.
    pub storage: PathBuf,
    /// `make-npm-fixtures.sh`'s OUT_DIR: `fixtures.json`, `tarballs/`, `src/`, `project/`.
    pub out: PathBuf,
}

/// One published tarball (an entry of `fixtures.json`).
#[derive(Debug, Clone)]
pub struct NpmTarball {
    pub name: String,
    pub version: String,
    /// File name in `tarballs/`.
    pub file: String,
    /// Its path on the registry, e.g. `/@dp/util/-/util-1.0.0.tgz`.
    pub path: String,
    pub integrity: String,
    pub shasum: String,
}

impl NpmFixtures {
    /// Publishes the fixtures (once per machine and version of the scripts).
    pub fn get() -> NpmFixtures {
        let dir = test_dir()
            .join(format!("npm-fixtures-{}", stamp(&["start-verdaccio.sh", "make-npm-fixtures.sh"])));
        let script = r#"set -euo pipefail
d=$1 port=$2
[ -f "$d/done" ] && exit 0
rm -rf "$d"; mkdir -p "$d/lab"
export DEPPROXY_TEST_DIR=$d/lab
trap 'scripts/lab/stop-verdaccio.sh "$port" >/dev/null' EXIT
scripts/lab/start-verdaccio.sh "$port" "$d/storage" >/dev/null
scripts/lab/make-npm-fixtures.sh "http://127.0.0.1:$port" "$d/out" >/dev/null
touch "$d/done""#;
        let port = free_port().to_string();
        locked(&test_dir().join("npm-fixtures.lock"), script, &[dir.to_str().unwrap(), &port]);
        NpmFixtures { storage: dir.join("storage"), out: dir.join("out") }
    }

    pub fn tarballs(&self) -> Vec<NpmTarball> {
        let text = std::fs::read_to_string(self.out.join("fixtures.json")).unwrap();
        let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        entries
            .iter()
            .map(|entry| {
                let field = |name: &str| entry[name].as_str().unwrap().to_owned();
                NpmTarball {
                    name: field("name"),
                    version: field("version"),
                    file: field("file"),
                    path: field("tarball_path"),
                    integrity: field("integrity"),
                    shasum: field("shasum"),
                }
            })
            .collect()
    }

    pub fn tarball(&self, name: &str, version: &str) -> NpmTarball {
        self.tarballs()
            .into_iter()
            .find(|tarball| tarball.name == name && tarball.version == version)
            .unwrap_or_else(|| panic!("no fixture {name}@{version}"))
    }

    /// The published bytes of a tarball.
    pub fn tarball_bytes(&self, name: &str, version: &str) -> Vec<u8> {
        std::fs::read(self.out.join("tarballs").join(self.tarball(name, version).file)).unwrap()
    }

    /// The package's sources as published (`src/<name>@<version>/`).
    pub fn source(&self, name: &str, version: &str) -> PathBuf {
        self.out.join("src").join(format!("{name}@{version}"))
    }

    /// The tarballs a project depending on `dp-app ^1.0.0` installs.
    pub fn project_tarballs(&self) -> Vec<NpmTarball> {
        [
            ("dp-app", "1.0.0"),
            ("dp-left-pad", "1.1.0"),
            ("dp-left-pad", "2.0.0"),
            ("dp-right-pad", "1.0.0"),
            ("@dp/util", "1.0.0"),
        ]
        .iter()
        .map(|(name, version)| self.tarball(name, version))
        .collect()
    }
}

/// The Python fixtures (`scripts/lab/make-python-fixtures.sh`), built once per machine and version
/// of the scripts.
pub struct PythonFixtures {
    /// OUT_DIR: `packages/` (pypiserver's), `static/` (a PEP 503 tree with a tampered wheel),
    /// `fixtures.json`, `tampered.json`.
    pub dir: PathBuf,
}

/// One built distribution (an entry of `fixtures.json`).
#[derive(Debug, Clone)]
pub struct PythonFile {
    /// Normalised project name.
    pub project: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
}

impl PythonFixtures {
    pub fn get() -> PythonFixtures {
        let dir = test_dir()
            .join(format!("python-fixtures-{}", stamp(&["make-python-fixtures.sh", "make-simple-index.py"])));
        let script = r#"set -euo pipefail
d=$1
[ -f "$d/done" ] && exit 0
rm -rf "$d"
scripts/lab/make-python-fixtures.sh "$d" >/dev/null
touch "$d/done""#;
        locked(&test_dir().join("python-fixtures.lock"), script, &[dir.to_str().unwrap()]);
        PythonFixtures { dir }
    }

    pub fn packages(&self) -> PathBuf {
        self.dir.join("packages")
    }

    pub fn static_tree(&self) -> PathBuf {
        self.dir.join("static")
    }

    pub fn files(&self) -> Vec<PythonFile> {
        let text = std::fs::read_to_string(self.dir.join("fixtures.json")).unwrap();
        let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        entries
            .iter()
            .map(|entry| {
                let field = |name: &str| entry[name].as_str().unwrap().to_owned();
                PythonFile {
                    project: field("project"),
                    version: field("version"),
                    file: field("file"),
                    sha256: field("sha256"),
                }
            })
            .collect()
    }

    /// The wheels `pip install Dp.Gamma` takes: dp-gamma 1.0, dp-alpha 1.1, dp-beta 1.1.
    pub fn gamma_wheels(&self) -> Vec<PythonFile> {
        let wanted = [("dp-gamma", "1.0"), ("dp-alpha", "1.1"), ("dp-beta", "1.1")];
        let files = self.files();
        wanted
            .iter()
            .map(|(project, version)| {
                files
                    .iter()
                    .find(|file| {
                        &file.project == project && &file.version == version && file.file.ends_with(".whl")
                    })
                    .unwrap_or_else(|| panic!("no wheel of {project} {version}"))
                    .clone()
            })
            .collect()
    }

    /// (file name, sha256 its page lists, sha256 of what the static index serves) of the tampered
    /// wheel in `static/`.
    pub fn tampered(&self) -> (String, String, String) {
        let text = std::fs::read_to_string(self.dir.join("tampered.json")).unwrap();
        let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
        let field = |name: &str| entry[name].as_str().unwrap().to_owned();
        (field("file"), field("listed_sha256"), field("served_sha256"))
    }
}

/// A server started by `scripts/lab/start-<kind>.sh PORT …` with `DEPPROXY_TEST_DIR` a directory
/// of its own (its config, log and pid file); stopped by `stop-<kind>.sh` on [`LabServer::stop`]
/// or drop.
pub struct LabServer {
    kind: &'static str,
    pub port: u16,
    pub dir: tempfile::TempDir,
    running: bool,
}

impl LabServer {
    fn start(kind: &'static str, args: &[&Path]) -> LabServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        run(Command::new("bash")
            .arg(lab_script(&format!("start-{kind}.sh")))
            .arg(port.to_string())
            .args(args)
            .env("DEPPROXY_TEST_DIR", dir.path()));
        LabServer { kind, port, dir, running: true }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server is gone: the upstream is down.
    pub fn stop(&mut self) {
        if self.running {
            run(Command::new("bash")
                .arg(lab_script(&format!("stop-{}.sh", self.kind)))
                .arg(self.port.to_string())
                .env("DEPPROXY_TEST_DIR", self.dir.path()));
            self.running = false;
        }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join(format!("{}-{}.log", self.kind, self.port))
    }

    /// Every request it received so far, `"METHOD path"` → how many, from its log
    /// (`scripts/lab/count-upstream.py --by-path`).
    pub fn requests(&self) -> BTreeMap<String, usize> {
        let output = run(Command::new("python3")
            .arg(lab_script("count-upstream.py"))
            .arg(self.log())
            .arg("--by-path"));
        let counted: serde_json::Value = serde_json::from_str(&output).unwrap();
        counted["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(request, n)| (request.clone(), n.as_u64().unwrap() as usize))
            .collect()
    }

    /// Requests of `method` for exactly `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests().get(&format!("{method} {path}")).copied().unwrap_or(0)
    }

    /// Requests of `method` whose path contains `fragment`.
    pub fn count_matching(&self, method: &str, fragment: &str) -> usize {
        let prefix = format!("{method} ");
        self.requests()
            .iter()
            .filter(|(request, _)| request.strip_prefix(&prefix).is_some_and(|path| path.contains(fragment)))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("bash")
                .arg(lab_script(&format!("stop-{}.sh", self.kind)))
                .arg(self.port.to_string())
                .env("DEPPROXY_TEST_DIR", self.dir.path())
                .stdout(Stdio::null())
                .status();
        }
    }
}

fn require_installed(path: &Path) {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps.sh (scripts/test.sh does)",
        path.display()
    );
}

/// Verdaccio (`start-verdaccio.sh`) on a copy of the published fixtures' storage.
pub struct Verdaccio {
    pub server: LabServer,
    pub storage: PathBuf,
    /// Holds `storage`; declared after `server`, so it is removed after the server stopped.
    _copy: tempfile::TempDir,
}

impl Verdaccio {
    pub fn start(fixtures: &NpmFixtures) -> Verdaccio {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        require_installed(&home.join(".cache/depproxy/verdaccio/node_modules/.bin/verdaccio"));
        let copy = tempfile::tempdir().unwrap();
        let storage = copy.path().join("storage");
        run(Command::new("cp").arg("-a").arg(&fixtures.storage).arg(&storage));
        let server = LabServer::start("verdaccio", &[&storage]);
        Verdaccio { server, storage, _copy: copy }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Overwrites `name@version`'s tarball in its storage with other bytes
    /// (`tamper-npm-tarball.sh`); returns them.
    pub fn tamper(&self, name: &str, version: &str) -> Vec<u8> {
        run(Command::new("bash")
            .arg(lab_script("tamper-npm-tarball.sh"))
            .arg(&self.storage)
            .args([name, version]));
        let basename = name.rsplit('/').next().unwrap();
        std::fs::read(self.storage.join(name).join(format!("{basename}-{version}.tgz"))).unwrap()
    }
}

/// pypiserver (`start-pypiserver.sh`) serving a packages directory.
pub fn pypiserver(packages: &Path) -> LabServer {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    require_installed(&home.join(".cache/depproxy/pypiserver-venv/bin/pypi-server"));
    LabServer::start("pypiserver", &[packages])
}

/// Python's http.server (`start-static-index.sh`) serving a static PEP 503 tree.
pub fn static_index(tree: &Path) -> LabServer {
    LabServer::start("static-index", &[tree])
}

/// `depproxy serve` with one upstream and one group of `format` (`npm` or `pypi`) at `path`;
/// `group_extra` goes into the group's table (e.g. `access = "token"`), `upstream_extra` into the
/// upstream's (e.g. `files_url = "…"`).
pub fn package_proxy(
    format: &str,
    upstream_url: &str,
    path: &str,
    upstream_extra: &str,
    group_extra: &str,
) -> Depproxy {
    let config = format!(
        "[[upstream]]\nname = \"origin\"\nformat = \"{format}\"\nurl = \"{upstream_url}\"\n{upstream_extra}\n\
         [[group]]\npath = \"{path}\"\nupstream = \"origin\"\nformat = \"{format}\"\n{group_extra}\n\
         [auth]\ntoken_check_interval = \"1s\"\n"
    );
    Depproxy::serve_with_config(&config)
}

/// The warnings and errors `depproxy serve` logged so far (for failure messages).
pub fn proxy_warnings(proxy: &Depproxy) -> String {
    std::fs::read_to_string(proxy.data_dir.path().join("serve.log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `depproxy token create --group GROUP` against a running proxy's config and data: the secret.
pub fn create_token(proxy: &Depproxy, group: &str) -> String {
    let output = run(Command::new(Depproxy::binary())
        .args(["token", "create", "--name", "ci", "--group", group, "--expires", "30d", "--config"])
        .arg(proxy.data_dir.path().join("depproxy.toml"))
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    let secret = output.lines().next().unwrap().trim().to_owned();
    assert!(secret.starts_with("dpp_"), "{output}");
    secret
}

/// A project directory with this `package.json`.
pub fn npm_project(package_json: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("package.json"), package_json).unwrap();
    project
}

/// `npm ARGS` in `project` with `npmrc` as its only configuration (`--userconfig`; no global
/// config, HOME elsewhere) and a fresh cache; no retries (a failure shows at once), no audit.
pub fn npm_command(project: &Path, npmrc: &str, args: &[&str]) -> (Command, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("npmrc"), npmrc).unwrap();
    let mut command = Command::new("npm");
    command
        .args(args)
        .arg("--userconfig")
        .arg(home.path().join("npmrc"))
        .args(["--globalconfig", "/dev/null", "--cache"])
        .arg(home.path().join("cache"))
        .args(["--no-audit", "--no-fund", "--update-notifier=false", "--fetch-retries=0"])
        .args(["--fetch-timeout=60000", "--loglevel=http"])
        .current_dir(project)
        .env("HOME", home.path())
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("NPM_CONFIG_REGISTRY")
        .env_remove("npm_config_registry");
    (command, home)
}

/// [`npm_command`], run to its end: its stdout, or stdout and stderr when it failed.
pub fn npm(project: &Path, npmrc: &str, args: &[&str]) -> Result<String, String> {
    let (mut command, _home) = npm_command(project, npmrc, args);
    try_run(&mut command)
}

/// `registry=` for the proxy's npm group at `path`.
pub fn npm_registry(proxy: &Depproxy, path: &str) -> String {
    format!("{}/npm/{path}/", proxy.url())
}

/// `require(spec)` in `project`: the `{name, version}` (or `{tampered}`) its index.js exports.
pub fn node_require(project: &Path, spec: &str) -> serde_json::Value {
    let output = run(Command::new("node")
        .arg("-e")
        .arg(format!("process.stdout.write(JSON.stringify(require({spec:?})))"))
        .current_dir(project));
    serde_json::from_str(&output).unwrap()
}

/// `python3 -m pip ARGS` with no configuration of the machine's or the user's (`PIP_CONFIG_FILE`
/// /dev/null, no `PIP_FIND_LINKS`), no cache, no retries.
pub fn pip_command(args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .args(["-m", "pip"])
        .args(args)
        .args([
            "--no-cache-dir",
            "--retries",
            "0",
            "--timeout",
            "60",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("LD_LIBRARY_PATH");
    command
}

pub fn pip(args: &[&str]) -> Result<String, String> {
    try_run(&mut pip_command(args))
}

/// The proxy's simple index for the PyPI group at `path`.
pub fn pypi_index(proxy: &Depproxy, path: &str) -> String {
    format!("{}/pypi/{path}/simple/", proxy.url())
}

/// Every file in `dir` (not recursive) with the sha256 of its content, sorted by name.
pub fn file_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            let bytes = std::fs::read(entry.path()).unwrap();
            (entry.file_name().to_string_lossy().into_owned(), oci::Digest::of(&bytes).hex().to_owned())
        })
        .collect();
    files.sort();
    files
}

/// Files anywhere under `dir` whose content hashes to `sha256_hex`: where the proxy may have kept
/// bytes it must not have.
pub fn files_with_hash(dir: &Path, sha256_hex: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path)
                        && oci::Digest::of(&bytes).hex() == sha256_hex
                    {
                        found.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// A plain GET with curl: (status, body, whether the transfer completed — curl exit 0).
pub fn curl_get(url: &str, headers: &[&str]) -> (u16, Vec<u8>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let mut command = Command::new("curl");
    command.args(["-s", "--max-time", "60", "-o"]).arg(&body).args(["-w", "%{http_code}"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(url).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let status = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0);
    (status, std::fs::read(&body).unwrap_or_default(), output.status.success())
}

/// A GET with curl, headers included (`-i`), redirects not followed: (status, headers as
/// lowercase name → value, body).
pub fn curl_head_and_body(url: &str, headers: &[&str]) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let mut command = Command::new("curl");
    command.args(["-s", "--max-time", "60", "-D"]).arg(&head).arg("-o").arg(&body);
    for header in headers {
        command.args(["-H", header]);
    }
    command.arg(url).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let fields = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, fields, std::fs::read(&body).unwrap_or_default())
}

/// Children run at once; each one's result (stdout, or stdout and stderr when it failed).
pub fn run_all(commands: Vec<Command>) -> Vec<Result<String, String>> {
    let started: Vec<(Child, tempfile::TempDir)> = commands
        .into_iter()
        .map(|mut command| {
            let dir = tempfile::tempdir().unwrap();
            let out = std::fs::File::create(dir.path().join("out")).unwrap();
            let err = std::fs::File::create(dir.path().join("err")).unwrap();
            let child = command.stdout(out).stderr(err).stdin(Stdio::null()).spawn().unwrap();
            (child, dir)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    started
        .into_iter()
        .map(|(mut child, dir)| {
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let out = std::fs::read_to_string(dir.path().join("out")).unwrap_or_default();
            let err = std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
            if status.success() { Ok(out) } else { Err(format!("{status}\n{out}\n{err}")) }
        })
        .collect()
}
