//! Real Maven repositories and the real `mvn` for the Maven end-to-end tests: the repositories
//! `scripts/lab/make-maven-fixtures.sh` deploys with mvn (built once per machine and change of the
//! script, shared by every test; a test that changes one works on a copy), served by Python's
//! http.server (`start-static-index.sh`), Debian's `/usr/share/maven-repo` as the repository the
//! plugins come from, a depproxy with a Maven group over them, and `mvn` run with nothing of the
//! user's or the machine's configuration and a fresh local repository each time.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::packages::{LabServer, lab_script, locked, stamp};
use super::processes::{Depproxy, run, test_dir, try_run};

/// Debian's Maven repository (the plugins, and what the issue's check resolves).
pub const DEBIAN_REPO: &str = "/usr/share/maven-repo";

/// The maven-dependency-plugin Debian's tree has (it has no metadata to resolve a version from).
pub const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.5.0";

/// The output of `make-maven-fixtures.sh` (see its header).
pub struct MavenFixtures {
    /// OUT_DIR: `repo-a/`, `repo-b/`, `repo-nosum/`, `project/`, `fixtures.json`.
    pub dir: PathBuf,
}

/// One file of repo-a or repo-b (an entry of `fixtures.json`).
#[derive(Debug, Clone)]
pub struct MavenFile {
    pub repo: String,
    /// Its path in the repository, without a leading `/`.
    pub path: String,
    pub sha1: String,
    pub sha256: String,
}

impl MavenFile {
    /// Its path as a request line names it.
    pub fn url_path(&self) -> String {
        format!("/{}", self.path)
    }
}

impl MavenFixtures {
    /// Deploys the fixtures (once per machine and version of the script).
    pub fn get() -> MavenFixtures {
        let dir = test_dir().join(format!("maven-fixtures-{}", stamp(&["make-maven-fixtures.sh"])));
        let script = r#"set -euo pipefail
d=$1
[ -f "$d/done" ] && exit 0
rm -rf "$d"
scripts/lab/make-maven-fixtures.sh "$d" >/dev/null
touch "$d/done""#;
        locked(&test_dir().join("maven-fixtures.lock"), script, &[dir.to_str().unwrap()]);
        MavenFixtures { dir }
    }

    pub fn repo(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The project depending on dp-core 1.1 (→ dp-util 1.0), dp-extra 1.0 and dp-snap
    /// 1.0-SNAPSHOT.
    pub fn project(&self) -> PathBuf {
        self.dir.join("project")
    }

    pub fn files(&self) -> Vec<MavenFile> {
        let text = std::fs::read_to_string(self.dir.join("fixtures.json")).unwrap();
        let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        entries
            .iter()
            .map(|entry| {
                let field = |name: &str| entry[name].as_str().unwrap().to_owned();
                MavenFile {
                    repo: field("repo"),
                    path: field("path"),
                    sha1: field("sha1"),
                    sha256: field("sha256"),
                }
            })
            .collect()
    }

    /// The file at `path` of `repo`.
    pub fn file(&self, repo: &str, path: &str) -> MavenFile {
        self.files()
            .into_iter()
            .find(|file| file.repo == repo && file.path == path)
            .unwrap_or_else(|| panic!("no fixture {repo}/{path}"))
    }

    /// The jars and poms the project resolves to, each from the repository that has it: the
    /// releases, and dp-snap's latest timestamped build (its `-2` files).
    pub fn project_files(&self) -> Vec<MavenFile> {
        let wanted = |path: &str| {
            let release = [
                "com/example/dp/dp-core/1.1/dp-core-1.1.",
                "com/example/dp/dp-util/1.0/dp-util-1.0.",
                "com/example/dp/dp-extra/1.0/dp-extra-1.0.",
            ]
            .iter()
            .any(|prefix| path.strip_prefix(prefix).is_some_and(|ext| ext == "jar" || ext == "pom"));
            let snapshot = path.starts_with("com/example/dp/dp-snap/1.0-SNAPSHOT/dp-snap-1.0-")
                && (path.ends_with("-2.jar") || path.ends_with("-2.pom"));
            release || snapshot
        };
        let files: Vec<MavenFile> = self.files().into_iter().filter(|file| wanted(&file.path)).collect();
        assert_eq!(files.len(), 8, "{files:#?}");
        files
    }
}

/// http.server (`start-static-index.sh`) serving a Maven repository tree; ready when
/// `ready_path` answers 200 (a directory listing, so no artifact is asked for by the probe).
pub fn maven_repo(tree: &Path, ready_path: &str) -> LabServer {
    LabServer::start("static-index", &[tree, Path::new(ready_path)])
}

/// Debian's Maven repository over HTTP.
pub fn debian_repo() -> LabServer {
    assert!(
        Path::new(DEBIAN_REPO).join("org/apache/maven/plugins/maven-dependency-plugin/3.5.0").is_dir(),
        "{DEBIAN_REPO} lacks maven-dependency-plugin 3.5.0: run scripts/install-test-deps.sh"
    );
    maven_repo(Path::new(DEBIAN_REPO), "/commons-io/commons-io/")
}

/// A copy of the fixtures' repository `name` (for a test that changes it).
pub fn repo_copy(fixtures: &MavenFixtures, name: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    run(Command::new("cp").arg("-a").arg(format!("{}/.", fixtures.repo(name).display())).arg(copy.path()));
    copy
}

/// `depproxy serve` with one Maven upstream per `(name, server)`, in this order, and a Maven
/// group `java` over them; `group_extra` goes into the group's table.
pub fn maven_proxy(upstreams: &[(&str, &LabServer)], group_extra: &str) -> Depproxy {
    let mut config = String::new();
    for (name, server) in upstreams {
        config.push_str(&format!(
            "[[upstream]]\nname = \"{name}\"\nformat = \"maven\"\nurl = \"{}\"\n",
            server.url()
        ));
    }
    let names: Vec<String> = upstreams.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    config.push_str(&format!(
        "[[group]]\npath = \"java\"\nupstreams = [{}]\nformat = \"maven\"\n{group_extra}\n\
         [auth]\ntoken_check_interval = \"1s\"\n",
        names.join(", ")
    ));
    Depproxy::serve_with_config(&config)
}

/// The proxy's Maven group `java`, as a mirror URL.
pub fn group_url(proxy: &Depproxy) -> String {
    format!("{}/maven/java/", proxy.url())
}

/// The fixtures' `settings.xml` with its mirror at `mirror`; `credentials` are the `<server>`'s
/// (none: the `<servers>` block is dropped).
pub fn settings_xml(fixtures: &MavenFixtures, mirror: &str, credentials: Option<(&str, &str)>) -> String {
    let template = std::fs::read_to_string(fixtures.project().join("settings.xml.template")).unwrap();
    let template = match credentials {
        Some(_) => template,
        None => {
            let start = template.find("  <servers>").unwrap();
            let end = template.find("</servers>\n").unwrap() + "</servers>\n".len();
            format!("{}{}", &template[..start], &template[end..])
        }
    };
    let (username, password) = credentials.unwrap_or_default();
    template.replace("@PROXY_URL@", mirror).replace("@USERNAME@", username).replace("@PASSWORD@", password)
}

/// A `mvn` run: batch mode, `settings` as the user settings and an empty global settings file (no
/// `~/.m2`, HOME elsewhere), a fresh local repository (`local_repo()`), in `dir` (the project, or
/// an empty directory).
pub struct Mvn {
    pub command: Command,
    home: tempfile::TempDir,
}

impl Mvn {
    pub fn new(settings: &str, dir: Option<&Path>, args: &[&str]) -> Mvn {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("settings.xml"), settings).unwrap();
        std::fs::write(home.path().join("global-settings.xml"), "<settings/>\n").unwrap();
        std::fs::create_dir(home.path().join("work")).unwrap();
        let mut command = Command::new("mvn");
        command
            .args(["-B", "-Dstyle.color=never", "-s"])
            .arg(home.path().join("settings.xml"))
            .arg("-gs")
            .arg(home.path().join("global-settings.xml"))
            .arg(format!("-Dmaven.repo.local={}", home.path().join("m2").display()))
            .args(args)
            .current_dir(dir.map_or_else(|| home.path().join("work"), Path::to_owned))
            .env("HOME", home.path())
            .env_remove("MAVEN_ARGS")
            .env_remove("MAVEN_OPTS")
            .env_remove("LD_LIBRARY_PATH");
        Mvn { command, home }
    }

    /// Its local repository.
    pub fn local_repo(&self) -> PathBuf {
        self.home.path().join("m2")
    }

    /// Runs it: stdout, or (when it failed) what it printed on ERROR lines and its last lines.
    pub fn run(&mut self) -> Result<String, String> {
        try_run(&mut self.command).map_err(|output| summary(&output))
    }

    /// The sha256 of the file at `path` (a repository path) in its local repository, if there.
    pub fn local_sha256(&self, path: &str) -> Option<String> {
        let bytes = std::fs::read(self.local_repo().join(path)).ok()?;
        Some(oci::Digest::of(&bytes).hex().to_owned())
    }
}

/// `mvn dependency:resolve` of the fixtures' project through `mirror`.
pub fn resolve_project(fixtures: &MavenFixtures, mirror: &str, credentials: Option<(&str, &str)>) -> Mvn {
    let settings = settings_xml(fixtures, mirror, credentials);
    let pom = fixtures.project().join("pom.xml");
    Mvn::new(&settings, None, &["-f", pom.to_str().unwrap(), "dependency:resolve"])
}

/// `mvn maven-dependency-plugin:3.5.0:get -Dartifact=…` (no project) through `mirror`.
pub fn get_artifact(fixtures: &MavenFixtures, mirror: &str, artifact: &str, transitive: bool) -> Mvn {
    let settings = settings_xml(fixtures, mirror, None);
    Mvn::new(
        &settings,
        None,
        &[
            &format!("{DEPENDENCY_PLUGIN}:get"),
            &format!("-Dartifact={artifact}"),
            &format!("-Dtransitive={transitive}"),
        ],
    )
}

/// The lines `dependency:resolve` lists the project's dependencies on (`com.example.dp:…`).
pub fn resolved(output: &str) -> Vec<String> {
    let mut found: Vec<String> = output
        .lines()
        .filter_map(|line| line.trim_start_matches("[INFO]").trim().split(' ').next())
        .filter(|word| word.starts_with("com.example.dp:") && word.ends_with(":compile"))
        .map(str::to_owned)
        .collect();
    found.sort();
    found
}

/// What the project resolves to.
pub fn project_dependencies() -> Vec<String> {
    let mut expected: Vec<String> = [
        "com.example.dp:dp-core:jar:1.1:compile",
        "com.example.dp:dp-extra:jar:1.0:compile",
        "com.example.dp:dp-snap:jar:1.0-SNAPSHOT:compile",
        "com.example.dp:dp-util:jar:1.0:compile",
    ]
    .iter()
    .map(|line| (*line).to_owned())
    .collect();
    expected.sort();
    expected
}

/// A failed mvn's output, short enough for a panic message: its ERROR lines and last lines.
fn summary(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let errors: Vec<&str> =
        lines.iter().copied().filter(|line| line.starts_with("[ERROR]")).take(40).collect();
    let tail = &lines[lines.len().saturating_sub(30)..];
    format!("{}\n…\n{}", errors.join("\n"), tail.join("\n"))
}

/// `scripts/lab/tamper-maven-artifact.sh REPO PATH`: changes the file, leaves its sidecars; the
/// sha256 of the new bytes.
pub fn tamper(repo: &Path, path: &str) -> String {
    run(Command::new("bash").arg(lab_script("tamper-maven-artifact.sh")).arg(repo).arg(path));
    oci::Digest::of(&std::fs::read(repo.join(path)).unwrap()).hex().to_owned()
}
