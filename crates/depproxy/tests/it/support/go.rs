//! Go modules end to end: the fixtures `scripts/lab/make-go-fixtures.sh` makes with real Go
//! tooling (built once per machine and change of the scripts, shared by every test), the lab's
//! GOPROXY upstream with its checksum database (`start-goproxy.sh`, each on a copy of the fixtures
//! of its own, so a test may tamper with or remove modules), and the real `go` command run with
//! nothing of the user's or the machine's configuration: a fresh HOME, GOPATH and module cache per
//! client (the go command remembers the checksum database's tree head in `$GOPATH/pkg/sumdb`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::packages::{LabServer, lab_script, locked, stamp};
use super::processes::{Depproxy, TestCertificates, run, test_dir};

/// The fixtures' modules the consumer builds with, as `(module, version)`.
pub const CONSUMER_MODULES: [(&str, &str); 2] =
    [("example.com/dp/alpha", "v1.1.0"), ("example.com/dp/Beta", "v1.1.0")];

/// What the consumer prints when built with the untampered fixtures.
pub const CONSUMER_OUTPUT: &str =
    "example.com/dp/alpha@v1.1.0 (example.com/dp/Beta@v1.1.0)\nexample.com/dp/Beta@v1.1.0\n";

/// The name of the fixtures' checksum database, as `GOSUMDB` and `sumdb = …` write it.
pub const SUMDB: &str = "sum.example.com";

/// `make-go-fixtures.sh`'s OUT_DIR: `proxy/` (the GOPROXY tree), `sumdb/`, `sumdb.key`,
/// `consumer/`.
pub struct GoFixtures {
    pub dir: PathBuf,
}

impl GoFixtures {
    pub fn get() -> GoFixtures {
        let scripts = ["make-go-fixtures.sh", "build-go-tool.sh", "gofixtures/main.go"];
        let dir = test_dir().join(format!("go-fixtures-{}", stamp(&scripts)));
        let script = r#"set -euo pipefail
d=$1
[ -f "$d/done" ] && exit 0
rm -rf "$d"
scripts/lab/make-go-fixtures.sh "$d" >/dev/null
touch "$d/done""#;
        locked(&test_dir().join("go-fixtures.lock"), script, &[dir.to_str().unwrap()]);
        GoFixtures { dir }
    }

    /// The checksum database's verifier key: the `GOSUMDB` value.
    pub fn sumdb_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("sumdb.key")).unwrap().trim().to_owned()
    }

    /// The consumer module's sources (`go.mod`, `main.go`).
    pub fn consumer(&self) -> PathBuf {
        self.dir.join("consumer")
    }
}

/// A module path as the GOPROXY protocol writes it: each upper-case letter as `!` + lower case.
pub fn escape(module: &str) -> String {
    module
        .chars()
        .flat_map(|c| if c.is_ascii_uppercase() { vec!['!', c.to_ascii_lowercase()] } else { vec![c] })
        .collect()
}

/// A module version's file path, as the upstream logs it: `/example.com/dp/!beta/@v/v1.1.0.zip`.
pub fn module_file(module: &str, version: &str, extension: &str) -> String {
    format!("/{}/@v/{version}.{extension}", escape(module))
}

/// Every `.info`, `.mod` and `.zip` of the consumer's modules, as the upstream logs them.
pub fn consumer_files() -> Vec<String> {
    CONSUMER_MODULES
        .iter()
        .flat_map(|(module, version)| {
            ["info", "mod", "zip"].map(|extension| module_file(module, version, extension))
        })
        .collect()
}

/// The lab's Go upstream (`start-goproxy.sh`): the GOPROXY tree and checksum database of a copy
/// of the fixtures, its own.
pub struct GoUpstream {
    pub server: LabServer,
    /// The copy it serves (a make-go-fixtures.sh OUT_DIR).
    pub tree: PathBuf,
    original: PathBuf,
    /// Holds `tree`; declared after `server`, so it is removed after the server stopped.
    _copy: tempfile::TempDir,
}

impl GoUpstream {
    pub fn start(fixtures: &GoFixtures) -> GoUpstream {
        Self::start_without(fixtures, &[])
    }

    /// An upstream whose GOPROXY tree lacks `modules` (their checksum-database records stay).
    pub fn start_without(fixtures: &GoFixtures, modules: &[&str]) -> GoUpstream {
        let copy = tempfile::tempdir().unwrap();
        let tree = copy.path().join("fixtures");
        run(Command::new("cp").arg("-a").arg(&fixtures.dir).arg(&tree));
        for module in modules {
            std::fs::remove_dir_all(tree.join("proxy").join(escape(module))).unwrap();
        }
        let server = LabServer::start("goproxy", &[&tree]);
        GoUpstream { server, tree, original: fixtures.dir.clone(), _copy: copy }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    fn zip_path(tree: &Path, module: &str, version: &str) -> PathBuf {
        tree.join("proxy").join(format!("{}/@v/{version}.zip", escape(module)))
    }

    /// Alters `module@version`'s zip in place (`tamper-go-zip.sh`): served from now on, while its
    /// `.mod`, `.info` and checksum-database record keep the original. The tampered zip's sha256
    /// (hex).
    pub fn tamper(&self, module: &str, version: &str) -> String {
        run(Command::new("bash").arg(lab_script("tamper-go-zip.sh")).arg(&self.tree).args([module, version]));
        oci::Digest::of(&std::fs::read(Self::zip_path(&self.tree, module, version)).unwrap()).hex().to_owned()
    }

    /// Puts the original zip of `module@version` back.
    pub fn restore(&self, module: &str, version: &str) {
        std::fs::copy(
            Self::zip_path(&self.original, module, version),
            Self::zip_path(&self.tree, module, version),
        )
        .unwrap();
    }

    /// Every request it received so far, `"METHOD path"` → how many, each path in the protocol's
    /// spelling: the go command sends `!` as `%21`, the proxy sends it as is.
    pub fn requests(&self) -> BTreeMap<String, usize> {
        let mut requests = BTreeMap::new();
        for (request, count) in self.server.requests() {
            *requests.entry(request.replace("%21", "!")).or_default() += count;
        }
        requests
    }

    /// GETs of exactly `path` (`!`-escaped) it answered.
    pub fn gets(&self, path: &str) -> usize {
        self.requests().get(&format!("GET {path}")).copied().unwrap_or(0)
    }

    /// GETs of its checksum database's paths starting `/sumdb/sum.example.com/<prefix>`.
    pub fn sumdb_gets(&self, prefix: &str) -> Vec<(String, usize)> {
        let prefix = format!("GET /sumdb/{SUMDB}/{prefix}");
        self.requests().into_iter().filter(|(request, _)| request.starts_with(&prefix)).collect()
    }
}

/// The original zip of `module@version`'s sha256 (hex).
pub fn zip_sha256(fixtures: &GoFixtures, module: &str, version: &str) -> String {
    let zip = GoUpstream::zip_path(&fixtures.dir, module, version);
    oci::Digest::of(&std::fs::read(zip).unwrap()).hex().to_owned()
}

/// How a client checks what it downloads against a checksum database.
#[derive(Clone)]
pub enum SumDb {
    /// `GOSUMDB=<key>`: through the first GOPROXY entry that proxies it.
    Key(String),
    /// `GOSUMDB=off` and the fixtures' modules in `GONOSUMDB`: the go command checks nothing.
    Off,
}

/// One go client: a fresh HOME (for `.netrc`), GOPATH and module cache, and a copy of the
/// consumer module to work in. The build cache is shared (it keys its entries by content).
pub struct GoClient {
    pub home: PathBuf,
    pub gopath: PathBuf,
    pub modcache: PathBuf,
    pub project: PathBuf,
    pub goproxy: String,
    pub sumdb: SumDb,
    /// A CA certificate (PEM) the go command trusts (`SSL_CERT_FILE`), for a proxy over TLS.
    pub ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl GoClient {
    pub fn new(fixtures: &GoFixtures, goproxy: &str, sumdb: SumDb) -> GoClient {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(&path).unwrap();
            path
        };
        let (home, gopath, modcache) = (path("home"), path("gopath"), path("modcache"));
        let project = dir.path().join("consumer");
        run(Command::new("cp").arg("-r").arg(fixtures.consumer()).arg(&project));
        GoClient { home, gopath, modcache, project, goproxy: goproxy.to_owned(), sumdb, ca: None, _dir: dir }
    }

    /// Trusts `ca` (PEM) for TLS: a proxy serving https with a private CA's certificate.
    pub fn trust(mut self, ca: &Path) -> GoClient {
        self.ca = Some(ca.to_owned());
        self
    }

    /// Writes `$HOME/.netrc` with these credentials for `host` (the go command sends them as
    /// Basic credentials to every request to that host over https — never over plain http).
    pub fn netrc(&self, host: &str, login: &str, password: &str) {
        std::fs::write(
            self.home.join(".netrc"),
            format!("machine {host} login {login} password {password}\n"),
        )
        .unwrap();
    }

    /// `go ARGS` in the consumer module, with only this client's environment (no GOENV file, no
    /// GOPRIVATE/GONOPROXY: every module through GOPROXY), `-x` where it applies.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("go");
        command
            .args(args)
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GOENV", "off")
            .env("GO111MODULE", "on")
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOPROXY", &self.goproxy)
            .env("GOPATH", &self.gopath)
            .env("GOMODCACHE", &self.modcache)
            .env("GOCACHE", test_dir().join("go-build-cache"))
            .env("GOPRIVATE", "")
            .env("GONOPROXY", "")
            .env("CGO_ENABLED", "0");
        if let Some(ca) = &self.ca {
            command.env("SSL_CERT_FILE", ca);
        }
        match &self.sumdb {
            SumDb::Key(key) => command.env("GOSUMDB", key).env("GONOSUMDB", ""),
            SumDb::Off => command.env("GOSUMDB", "off").env("GONOSUMDB", "example.com/dp"),
        };
        command
    }

    /// Runs `go ARGS`: its stdout and stderr together (go's `-x` trace and errors are on stderr),
    /// as `Ok` when it succeeded.
    pub fn go(&self, args: &[&str]) -> Result<String, String> {
        output(&mut self.command(args))
    }

    /// `go mod download -x` of everything the consumer needs.
    pub fn download(&self) -> Result<String, String> {
        self.go(&["mod", "download", "-x"])
    }

    /// `go build` of the consumer, then what the binary prints.
    pub fn build_and_run(&self) -> Result<String, String> {
        let binary = self.project.join("consumer-bin");
        self.go(&["build", "-o", binary.to_str().unwrap(), "."])?;
        output(&mut Command::new(&binary))
    }
}

/// stdout and stderr of `command` together; `Err` (with its exit status) when it failed.
pub fn output(command: &mut Command) -> Result<String, String> {
    let output =
        command.env_remove("LD_LIBRARY_PATH").output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() { Ok(text) } else { Err(format!("{}\n{text}", output.status)) }
}

/// `depproxy serve` with one Go upstream and a Go group `golang`; `group_extra` goes into the
/// group's table.
pub fn go_proxy(upstream: &GoUpstream, group_extra: &str) -> Depproxy {
    super::packages::package_proxy("go", &upstream.url(), "golang", "", group_extra)
}

/// [`go_proxy`] with its listener on TLS with `tls`'s certificate for 127.0.0.1.
pub fn go_proxy_over_tls(upstream: &GoUpstream, group_extra: &str, tls: &TestCertificates) -> Depproxy {
    let config = format!(
        "[[upstream]]\nname = \"origin\"\nformat = \"go\"\nurl = \"{}\"\n\
         [[group]]\npath = \"golang\"\nupstream = \"origin\"\nformat = \"go\"\n{group_extra}\n\
         [auth]\ntoken_check_interval = \"1s\"\n",
        upstream.url()
    );
    Depproxy::serve_with_config_over_tls(&config, tls)
}

/// The `GOPROXY` URL of the proxy's group `golang`.
pub fn goproxy_url(proxy: &Depproxy) -> String {
    format!("{}/go/golang", proxy.url())
}
