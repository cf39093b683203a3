//! The README's "Access control" walkthrough, run as printed: its configuration, then each of
//! its `sh` blocks through `sh -ec` — `depproxy token create … > token`, `podman login …
//! --password-stdin < token`, `TOKEN=$(cat token)`, skopeo and ctr with `$TOKEN`, `depproxy token
//! revoke`. Only names are replaced: `proxy.example.com` by a real `depproxy serve`, Docker Hub
//! by a real `distribution` registry that wants a password, the password file by a real one.
//!
//! Needs docker-registry, htpasswd, skopeo, podman, containerd, ctr (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::processes::{
    Containerd, Depproxy, Process, Registry, free_port, require_tools, run, test_layouts, wait_http_ok,
};

const UPSTREAM_PASSWORD: &str = "upstream-pass";

/// The fenced blocks of `section` of the README, as (language, text), in order.
fn readme_blocks(section: &str) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(crate::support::processes::repo_root().join("README.md")).unwrap();
    let start = readme.find(&format!("\n## {section}\n")).unwrap_or_else(|| panic!("no section {section}"));
    let body = &readme[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |at| at + 3);
    let mut blocks = Vec::new();
    let mut lines = body[..end].lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.strip_prefix("```") {
            let text: Vec<&str> = lines.by_ref().take_while(|line| !line.starts_with("```")).collect();
            blocks.push((language.to_owned(), text.join("\n") + "\n"));
        }
    }
    blocks
}

/// Runs `script` with `sh -ec` in `cwd`, the binary under test as `depproxy`.
fn sh(script: &str, cwd: &Path, env: &[(&str, &Path)]) -> Result<String, String> {
    let mut command = Command::new("sh");
    command.arg("-ec").arg(script).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DEPPROXY_") {
            command.env_remove(&name);
        }
    }
    command.env("DEPPROXY_PACKAGED_CONFIG", cwd.join("no-packaged-config.toml"));
    for (name, value) in env {
        command.env(name, value);
    }
    crate::support::processes::try_run(&mut command)
}

#[test]
fn the_readme_token_walkthrough_runs_as_printed() {
    require_tools(&["docker-registry", "htpasswd", "skopeo", "podman", "containerd", "ctr"]);
    let blocks = readme_blocks("Access control");
    let config = &blocks.iter().find(|(language, _)| language == "toml").expect("the configuration").1;
    let scripts: Vec<&String> =
        blocks.iter().filter(|(language, _)| language == "sh").map(|(_, text)| text).collect();
    assert_eq!(scripts.len(), 3, "token create + list, log in and pull, revoke: {blocks:?}");
    assert!(scripts[0].contains("> token") && scripts[1].contains("--password-stdin < token"), "{scripts:?}");

    // The upstream: the README's account (`username`) on a registry that wants its password.
    let username = config
        .lines()
        .find_map(|line| line.strip_prefix("username = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("the README's upstream has a username");
    let registry = Registry::start_with_password(username, UPSTREAM_PASSWORD);
    let layouts = test_layouts();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--dest-tls-verify=false", "--preserve-digests"])
        .args(["--dest-creds", &format!("{username}:{UPSTREAM_PASSWORD}")])
        .arg(format!("oci:{}:v1", layouts.join("multi").display()))
        .arg(format!("docker://{}/alpine:3.20", registry.address())));

    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let password_file = cwd.join("hub-password");
    std::fs::write(&password_file, UPSTREAM_PASSWORD).unwrap();
    let config = config
        .replace("https://registry-1.docker.io", &format!("http://{}", registry.address()))
        .replace("/run/secrets/hub", password_file.to_str().unwrap());
    std::fs::write(cwd.join("depproxy.toml"), &config).unwrap();

    // The server, started in this directory as the README says (the port is the test's).
    let port = free_port();
    let mut serve = Command::new(Depproxy::binary());
    serve.current_dir(cwd).args([
        "serve",
        "--config",
        "depproxy.toml",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    serve.args(["--admin-listen", &format!("127.0.0.1:{}", free_port())]);
    let _serve = Process::spawn("depproxy serve", &mut serve, &cwd.join("serve.log"));
    wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");

    // The clients' environment: `depproxy` on the PATH; podman and skopeo reach the plain-HTTP
    // proxy through a per-user registries.conf (as `insecure = true`), and keep their storage and
    // login here; ctr talks to a containerd of its own (it tries HTTP on loopback by itself).
    let bin = cwd.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(Depproxy::binary(), bin.join("depproxy")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let home = cwd.join("home");
    std::fs::create_dir_all(home.join(".config/containers")).unwrap();
    let proxy = format!("127.0.0.1:{port}");
    std::fs::write(
        home.join(".config/containers/registries.conf"),
        format!("[[registry]]\nlocation = \"{proxy}\"\ninsecure = true\n"),
    )
    .unwrap();
    let storage_conf = cwd.join("storage.conf");
    std::fs::write(
        &storage_conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/podman/root\"\nrunroot = \"{0}/podman/run\"\n",
            cwd.display()
        ),
    )
    .unwrap();
    let containers_conf = cwd.join("containers.conf");
    std::fs::write(&containers_conf, "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n")
        .unwrap();
    let runtime_dir = cwd.join("run");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    let containerd = Containerd::start();
    let socket = containerd.dir.path().join("containerd.sock");
    let path = Path::new(&path);
    let env: [(&str, &Path); 6] = [
        ("PATH", path),
        ("HOME", &home),
        ("XDG_RUNTIME_DIR", &runtime_dir),
        ("CONTAINERS_STORAGE_CONF", &storage_conf),
        ("CONTAINERS_CONF", &containers_conf),
        ("CONTAINERD_ADDRESS", &socket),
    ];
    let script = |text: &str| text.replace("proxy.example.com", &proxy);

    // Before: the private image is not for anonymous clients.
    let anonymous = sh(
        &format!("skopeo inspect docker://{proxy}/acme/dependency_proxy/containers/alpine:3.20"),
        cwd,
        &env,
    );
    assert!(anonymous.is_err(), "anonymous pulls of a token group: {anonymous:?}");

    let created = sh(&script(scripts[0]), cwd, &env).unwrap();
    let secret = std::fs::read_to_string(cwd.join("token")).unwrap();
    assert!(
        secret.starts_with("dpp_") && secret.trim_end().lines().count() == 1,
        "the file holds the secret alone: {secret:?}"
    );
    assert!(
        created.lines().any(|line| line.starts_with("ci ") && line.contains("acme")),
        "token list: {created}"
    );

    sh(&script(scripts[1]), cwd, &env).unwrap();
    assert!(cwd.join("alpine/index.json").exists(), "skopeo's copy is where the README put it");
    assert!(registry.count("GET", "/v2/alpine/blobs/") >= 1, "pulled from the upstream through the proxy");

    sh(&script(scripts[2]), cwd, &env).unwrap();
    let pull = format!(
        "skopeo copy --src-creds ci:$(cat token) docker://{proxy}/acme/dependency_proxy/containers/alpine:3.20 oci:again:3.20"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while sh(&pull, cwd, &env).is_ok() {
        assert!(Instant::now() < deadline, "the revoked token still pulls after 30 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}
