//! Cargo's parts for the end-to-end tests: the fixture crates `scripts/lab/make-cargo-fixtures.sh`
//! packages with `cargo package` (built once per machine and change of the scripts, shared by every
//! test), the lab sparse registry (`start-sparse-registry.sh`: an index server and a separate
//! download server, as a registry and its CDN are) serving a private copy of them, and `cargo`
//! itself run with a fresh `CARGO_HOME` and nothing of the environment the tests run in.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::packages::{lab_script, locked, package_proxy, stamp};
use super::processes::{Depproxy, free_port, run, test_dir, try_run};

/// What the consumer projects print when built from the fixtures: each dependency's `describe()`.
pub const CONSUMER_OUTPUT: &str = "dp-beta 0.1.0 [dp-alpha 1.1.0]\n\
     dp_gamma 0.1.0 [dp-beta 0.1.0 [dp-alpha 1.1.0], dpx 0.1.0 [x 0.1.0]]\n\
     x 0.1.0\ndz 0.1.0\ndpx 0.1.0 [x 0.1.0]\nDp-Mixed 0.1.0\n";

/// The fixtures' OUT_DIR: `crates/`, `index/`, `dl/`, `consumer*/`, `fixtures.json`.
pub struct CargoFixtures {
    pub dir: PathBuf,
}

/// One packaged crate version (an entry of `fixtures.json`).
#[derive(Debug, Clone)]
pub struct CrateFile {
    pub name: String,
    pub version: String,
    /// File name in `crates/`.
    pub file: String,
    /// sha256 hex, as the index lists it.
    pub cksum: String,
    /// The index file's path on the index server, e.g. `/dp/-a/dp-alpha`.
    pub index_path: String,
    /// The `.crate`'s path on the download server (`{prefix}` markers template), e.g.
    /// `/crates/dp/-a/dp-alpha/dp-alpha-1.1.0.crate`.
    pub dl_path: String,
}

impl CargoFixtures {
    pub fn get() -> CargoFixtures {
        let dir = test_dir()
            .join(format!("cargo-fixtures-{}", stamp(&["make-cargo-fixtures.sh", "make-sparse-index.py"])));
        // The fixtures' own cargo, not the test runner's target dir.
        let script = r#"set -euo pipefail
d=$1
[ -f "$d/done" ] && exit 0
rm -rf "$d"
env -u CARGO_TARGET_DIR scripts/lab/make-cargo-fixtures.sh "$d" >/dev/null
touch "$d/done""#;
        locked(&test_dir().join("cargo-fixtures.lock"), script, &[dir.to_str().unwrap()]);
        CargoFixtures { dir }
    }

    pub fn crates(&self) -> Vec<CrateFile> {
        let text = std::fs::read_to_string(self.dir.join("fixtures.json")).unwrap();
        let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        entries
            .iter()
            .map(|entry| {
                let field = |name: &str| entry[name].as_str().unwrap().to_owned();
                CrateFile {
                    name: field("name"),
                    version: field("version"),
                    file: field("file"),
                    cksum: field("cksum"),
                    index_path: format!("/{}", field("index_path")),
                    dl_path: format!("/{}", field("dl_markers")),
                }
            })
            .collect()
    }

    pub fn crate_file(&self, name: &str, version: &str) -> CrateFile {
        self.crates()
            .into_iter()
            .find(|file| file.name == name && file.version == version)
            .unwrap_or_else(|| panic!("no fixture crate {name} {version}"))
    }

    /// The seven crates the consumer projects resolve to.
    pub fn consumer_crates(&self) -> Vec<CrateFile> {
        [
            ("dp-alpha", "1.1.0"),
            ("dp-beta", "0.1.0"),
            ("dp_gamma", "0.1.0"),
            ("dpx", "0.1.0"),
            ("x", "0.1.0"),
            ("dz", "0.1.0"),
            ("Dp-Mixed", "0.1.0"),
        ]
        .iter()
        .map(|(name, version)| self.crate_file(name, version))
        .collect()
    }

    /// The bytes `cargo package` made.
    pub fn crate_bytes(&self, name: &str, version: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("crates").join(self.crate_file(name, version).file)).unwrap()
    }

    /// A copy of the project `kind` (`consumer`, `consumer-dp`, `consumer-tampered`) whose
    /// `.cargo/config.toml` names the sparse registry at `index_url` (its root, ending in `/`).
    pub fn project(&self, kind: &str, index_url: &str) -> tempfile::TempDir {
        assert!(index_url.ends_with('/'), "{index_url}: a sparse index URL ends with /");
        let copy = tempfile::tempdir().unwrap();
        run(Command::new("cp").arg("-a").arg(self.dir.join(kind).join(".")).arg(copy.path()));
        let config = copy.path().join(".cargo");
        let template = std::fs::read_to_string(config.join("config.toml.template")).unwrap();
        std::fs::write(config.join("config.toml"), template.replace("@PROXY_URL@", index_url)).unwrap();
        copy
    }
}

/// The lab sparse registry on a private copy of the fixtures' `index/` and `dl/` (a test may
/// tamper with it); stopped on [`SparseRegistry::stop`] or drop.
pub struct SparseRegistry {
    pub index_port: u16,
    pub dl_port: u16,
    /// `index/` and `dl/` as served.
    pub tree: tempfile::TempDir,
    /// The servers' DEPPROXY_TEST_DIR: config.json, logs, pid files.
    pub lab: tempfile::TempDir,
    running: bool,
}

impl SparseRegistry {
    pub fn start(fixtures: &CargoFixtures) -> SparseRegistry {
        let tree = tempfile::tempdir().unwrap();
        // `cp -a` keeps the download tree's hard links (both layouts are one file).
        for part in ["index", "dl"] {
            run(Command::new("cp").arg("-a").arg(fixtures.dir.join(part)).arg(tree.path()));
        }
        let lab = tempfile::tempdir().unwrap();
        let (index_port, dl_port) = (free_port(), free_port());
        run(Command::new("bash")
            .arg(lab_script("start-sparse-registry.sh"))
            .args([index_port.to_string(), dl_port.to_string()])
            .arg(tree.path())
            .env("DEPPROXY_TEST_DIR", lab.path())
            .env_remove("SPARSE_AUTH_TOKEN")
            .env_remove("SPARSE_DL_STYLE")
            .env_remove("SPARSE_DL_URL"));
        SparseRegistry { index_port, dl_port, tree, lab, running: true }
    }

    /// The index root, as `sparse+` names it.
    pub fn index_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.index_port)
    }

    /// The download server's `host:port`: what the proxy's `redirect_allow` must name.
    pub fn dl_host(&self) -> String {
        format!("127.0.0.1:{}", self.dl_port)
    }

    /// Both servers are gone: the upstream is down.
    pub fn stop(&mut self) {
        if self.running {
            run(Command::new("bash")
                .arg(lab_script("stop-sparse-registry.sh"))
                .args([self.index_port.to_string(), self.dl_port.to_string()])
                .env("DEPPROXY_TEST_DIR", self.lab.path()));
            self.running = false;
        }
    }

    pub fn index_log(&self) -> PathBuf {
        self.lab.path().join(format!("sparse-index-{}.log", self.index_port))
    }

    pub fn dl_log(&self) -> PathBuf {
        self.lab.path().join(format!("sparse-dl-{}.log", self.dl_port))
    }

    /// Requests the index server received, `"METHOD path"` → how many.
    pub fn index_requests(&self) -> BTreeMap<String, usize> {
        requests_in(&self.index_log())
    }

    /// Requests the download server received, `"METHOD path"` → how many.
    pub fn dl_requests(&self) -> BTreeMap<String, usize> {
        requests_in(&self.dl_log())
    }

    /// Overwrites `name` `version`'s `.crate` with another valid one its index line's cksum does
    /// not match (`tamper-crate.sh`); returns the sha256 hex of what is served now.
    pub fn tamper(&self, name: &str, version: &str) -> String {
        let output = run(Command::new("bash")
            .arg(lab_script("tamper-crate.sh"))
            .arg(self.tree.path())
            .args([name, version]));
        let printed: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
        let served = printed["served_cksum"].as_str().unwrap().to_owned();
        assert_ne!(printed["listed_cksum"], printed["served_cksum"], "{output}");
        served
    }

    /// Puts the packaged bytes of `name` `version` back, in place (both layouts are one file).
    pub fn restore(&self, fixtures: &CargoFixtures, name: &str, version: &str) {
        let file = self.tree.path().join("dl").join(name).join(version).join("download");
        std::fs::write(file, fixtures.crate_bytes(name, version)).unwrap();
    }
}

impl Drop for SparseRegistry {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("bash")
                .arg(lab_script("stop-sparse-registry.sh"))
                .args([self.index_port.to_string(), self.dl_port.to_string()])
                .env("DEPPROXY_TEST_DIR", self.lab.path())
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Every request in a lab server's access log, `"METHOD path"` → how many
/// (`scripts/lab/count-upstream.py --by-path`).
pub fn requests_in(log: &Path) -> BTreeMap<String, usize> {
    let output = run(Command::new("python3").arg(lab_script("count-upstream.py")).arg(log).arg("--by-path"));
    let counted: serde_json::Value = serde_json::from_str(&output).unwrap();
    counted["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(request, n)| (request.clone(), n.as_u64().unwrap() as usize))
        .collect()
}

/// `depproxy serve` with one cargo upstream (the registry's index) and the group `rust`;
/// `group_extra` goes into the group's table. The download server is on a loopback address, which
/// the egress rules refuse unless named: `redirect_allow` names it.
pub fn cargo_proxy(registry: &SparseRegistry, group_extra: &str) -> Depproxy {
    let upstream_extra = format!("redirect_allow = [\"{}\"]", registry.dl_host());
    package_proxy("cargo", &registry.index_url(), "rust", &upstream_extra, group_extra)
}

/// The group's sparse index root for cargo: `http://127.0.0.1:PORT/cargo/rust/`.
pub fn cargo_index(proxy: &Depproxy) -> String {
    format!("{}/cargo/rust/", proxy.url())
}

/// `cargo ARGS` in `project` with `home` as its `CARGO_HOME` and its own target dir; nothing of
/// the test runner's cargo environment (`CARGO_*`, `RUSTC_WRAPPER`, `RUSTFLAGS`), no retries (a
/// failure shows at once), `env` added.
pub fn cargo_command(project: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new("cargo");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") || name.starts_with("RUSTC") || name.starts_with("RUSTDOC") {
            command.env_remove(&*name);
        }
    }
    command
        .args(args)
        .current_dir(project)
        .env_remove("RUSTFLAGS")
        .env_remove("LD_LIBRARY_PATH")
        .env("CARGO_HOME", home)
        .env("CARGO_TARGET_DIR", project.join("target"))
        .env("CARGO_NET_RETRY", "0")
        .env("CARGO_HTTP_TIMEOUT", "60")
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_INCREMENTAL", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// [`cargo_command`], run to its end: stdout, or stdout and stderr when it failed.
pub fn cargo(project: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    try_run(&mut cargo_command(project, home, args, env))
}

/// `cargo fetch` then `cargo run --offline` of a consumer project: what it printed.
pub fn fetch_and_run(project: &Path, home: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    cargo(project, home, &["fetch"], env)?;
    cargo(project, home, &["run", "--offline", "--quiet"], env)
}

/// The `checksum` of each package in `project`'s `Cargo.lock`: name → (version, checksum).
pub fn locked_checksums(project: &Path) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|package| {
            let checksum = package.get("checksum")?.as_str()?.to_owned();
            let name = package["name"].as_str().unwrap().to_owned();
            Some((name, (package["version"].as_str().unwrap().to_owned(), checksum)))
        })
        .collect()
}

/// The proxy's access-log lines (`depproxy::access`) so far.
pub fn access_lines(proxy: &Depproxy) -> Vec<String> {
    std::fs::read_to_string(proxy.data_dir.path().join("serve.log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("depproxy::access"))
        .map(str::to_owned)
        .collect()
}

/// A field of an access-log line (`status=304` → `"304"`).
pub fn access_field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let prefix = format!("{field}=");
    line.split_whitespace().find_map(|part| part.strip_prefix(prefix.as_str()))
}

/// Files anywhere under `dir` whose content contains `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
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
                        && bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
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
