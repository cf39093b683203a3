//! Access control end to end, with real parts: a `distribution` registry that wants a password
//! (htpasswd) as the upstream, depproxy as a real process with that password configured, access
//! tokens made with `depproxy token`, and real clients logging in and pulling — skopeo (login,
//! --src-creds, a docker config.json auth file), podman, containerd's ctr, oras-py. Then split mode:
//! a registry token issued by one control plane works through another node.
//!
//! Needs docker-registry, htpasswd, skopeo, podman, containerd, python3 with oras
//! (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::backends::{S3Server, postgres_url};
use crate::support::processes::{
    Containerd, Depproxy, Node, Registry, require_tools, run, test_layouts, try_run,
};
use base64::Engine as _;

const UPSTREAM_USER: &str = "upstream-user";
const UPSTREAM_PASSWORD: &str = "upstream-pass";

/// The private registry, holding `lab/tiny:v1` and `lab/multi:v1` (pushed with its password).
fn private_registry() -> Registry {
    let registry = Registry::start_with_password(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let layouts = test_layouts();
    for (name, all) in [("tiny", false), ("multi", true)] {
        let mut push = Command::new("skopeo");
        push.args(["copy", "-q", "--dest-tls-verify=false", "--preserve-digests"])
            .args(["--dest-creds", &format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}")]);
        if all {
            push.arg("--all");
        }
        push.arg(format!("oci:{}:v1", layouts.join(name).display()))
            .arg(format!("docker://{}/lab/{name}:v1", registry.address()));
        run(&mut push);
    }
    registry
}

fn upstream_config(registry: &Registry, password_file: &Path, extra_top: &str, extra: &str) -> String {
    format!(
        "{extra_top}\n[[upstream]]\nname = \"lab\"\nurl = \"http://{}\"\nusername = \"{UPSTREAM_USER}\"\npassword_file = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n[auth]\ntoken_check_interval = \"1s\"\n{extra}",
        registry.address(),
        password_file.display()
    )
}

/// `depproxy token create …`: the secret (the first line of the output).
fn create_token(config: &Path, data_dir: &Path, name: &str) -> String {
    let output = run(Command::new(Depproxy::binary())
        .args(["token", "create", "--name", name, "--group", "default", "--expires", "30d", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir));
    let secret = output.lines().next().unwrap().trim().to_owned();
    assert!(secret.starts_with("dpp_"), "{output}");
    secret
}

fn skopeo_copy(proxy: &str, args: &[&str], out: &Path) -> Result<String, String> {
    let _ = std::fs::remove_dir_all(out);
    try_run(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .args(args)
            .arg(format!("docker://{proxy}/lab/tiny:v1"))
            .arg(format!("dir:{}", out.display())),
    )
}

#[test]
fn real_clients_log_in_with_access_tokens_and_pull_a_private_upstream() {
    require_tools(&["docker-registry", "htpasswd", "skopeo", "podman", "containerd", "ctr", "python3"]);
    let registry = private_registry();
    let work = tempfile::tempdir().unwrap();
    let password_file = work.path().join("upstream-password");
    std::fs::write(&password_file, UPSTREAM_PASSWORD).unwrap();
    let proxy = Depproxy::serve_with_config(&upstream_config(&registry, &password_file, "", ""));
    let address = proxy.address();
    let config = proxy.data_dir.path().join("depproxy.toml");
    let out = work.path().join("out");

    // Before: what a new user tried — an anonymous pull of the private image — is now refused.
    let anonymous = skopeo_copy(&address, &[], &out).unwrap_err();
    assert!(anonymous.to_lowercase().contains("unauthorized") || anonymous.contains("401"), "{anonymous}");

    let secret = create_token(&config, proxy.data_dir.path(), "ci");
    let listed = run(Command::new(Depproxy::binary())
        .args(["token", "list", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with("ci ") && line.contains("default") && line.ends_with("active")),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "the secret is shown once, at creation");

    // skopeo login, then copy with the stored credentials.
    let authfile = work.path().join("skopeo-auth.json");
    run(Command::new("skopeo")
        .args(["login", "--tls-verify=false", "-u", "ci", "-p", &secret, "--authfile"])
        .arg(&authfile)
        .arg(&address));
    skopeo_copy(&address, &["--authfile", authfile.to_str().unwrap()], &out).unwrap();
    // --src-creds.
    skopeo_copy(&address, &["--src-creds", &format!("ci:{secret}")], &out).unwrap();
    // A docker config.json (what `docker login` writes), given with --authfile.
    let docker_config = work.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{secret}"));
    std::fs::write(&docker_config, format!("{{\"auths\":{{\"{address}\":{{\"auth\":\"{auth}\"}}}}}}"))
        .unwrap();
    skopeo_copy(&address, &["--authfile", docker_config.to_str().unwrap()], &out).unwrap();
    // A wrong secret fails.
    let wrong = skopeo_copy(&address, &["--src-creds", "ci:dpp_0123456789abcdef_wrong"], &out).unwrap_err();
    assert!(wrong.to_lowercase().contains("unauthorized") || wrong.contains("401"), "{wrong}");

    // podman login + pull.
    let podman = |args: &[&str]| {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(work.path().join("podman/root"))
            .arg("--runroot")
            .arg(work.path().join("podman/run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args(args)
            .env("REGISTRY_AUTH_FILE", work.path().join("podman-auth.json"))
            .env("XDG_RUNTIME_DIR", work.path().join("podman"));
        command
    };
    std::fs::create_dir_all(work.path().join("podman")).unwrap();
    run(&mut podman(&["login", "--tls-verify=false", "-u", "ci", "-p", &secret, &address]));
    run(&mut podman(&["pull", "-q", "--tls-verify=false", &format!("{address}/lab/tiny:v1")]));

    // containerd: ctr image pull --user (the token flow's OAuth2 POST or GET).
    let containerd = Containerd::start();
    run(Command::new("ctr")
        .arg("--address")
        .arg(containerd.dir.path().join("containerd.sock"))
        .args(["image", "pull", "--plain-http", "--all-platforms", "--user", &format!("ci:{secret}")])
        .arg(format!("{address}/lab/multi:v1")));

    // oras-py with basic auth: log in, read the manifest, download its layer.
    let script = format!(
        r#"
import json, oras.client, sys
client = oras.client.OrasClient(hostname="{address}", insecure=True)
client.login(username="ci", password="{secret}")
manifest = client.get_manifest("{address}/lab/tiny:v1")
layer = manifest["layers"][0]
path = client.download_blob("{address}/lab/tiny:v1", layer["digest"], "{out}")
print(json.dumps({{"layer": layer["digest"], "path": path}}))
"#,
        out = work.path().join("oras-layer").display()
    );
    let printed = run(Command::new("python3").arg("-c").arg(&script));
    assert!(printed.contains("sha256:"), "{printed}");

    // Revoked: every pull fails within the check interval (1 s here; 60 s is the promise).
    run(Command::new(Depproxy::binary())
        .args(["token", "revoke", "ci", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while skopeo_copy(&address, &["--src-creds", &format!("ci:{secret}")], &out).is_ok() {
        assert!(Instant::now() < deadline, "the revoked token still pulls after 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A client retrying wrong logins: refused every time, logged once a minute with a count.
    for attempt in 0..30 {
        let status = run(Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
            .arg(format!("ci:dpp_0123456789abcdef_retry{attempt}"))
            .arg(format!("http://{address}/v2/token?service=depproxy&scope=repository:lab/tiny:pull")));
        assert!(status == "401" || status == "429", "{status}");
    }

    // The logs have the denials (throttled) and issued tokens (how many scopes, not which), and
    // no secret.
    let log = std::fs::read_to_string(proxy.data_dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("token_issued") && log.contains("login_refused"),
        "no audit lines in the log:\n{log}"
    );
    let refusals = log.lines().filter(|line| line.contains("login_refused")).count();
    assert!(refusals < 10, "{refusals} lines for 30+ refused logins from one address:\n{log}");
    for line in log.lines().filter(|line| line.contains("token_issued")) {
        assert!(line.contains("granted=") && !line.contains("lab/tiny"), "scope names logged: {line}");
    }
    assert!(!log.contains(&secret) && !log.contains("dpp_0123456789abcdef_wrong"), "a secret in the log");
    assert!(!log.contains(UPSTREAM_PASSWORD), "the upstream password in the log");
    assert!(!log.contains("eyJ"), "a registry token in the log");
}

#[test]
fn a_registry_token_from_one_control_plane_works_through_another_node() {
    require_tools(&["docker-registry", "htpasswd", "skopeo", "psql", "python3"]);
    let registry = private_registry();
    // Nodes share the database, the bucket and the signing key.
    let s3 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let password_file = work.path().join("upstream-password");
    std::fs::write(&password_file, UPSTREAM_PASSWORD).unwrap();
    let key = work.path().join("token.key");
    run(Command::new(Depproxy::binary()).arg("gen-secret").arg(&key));
    let config = work.path().join("cluster.toml");
    std::fs::write(
        &config,
        upstream_config(
            &registry,
            &password_file,
            &format!("database_url = \"{}\"", postgres_url()),
            &format!("signing_key_file = \"{}\"\n{}", key.display(), s3.storage_toml()),
        ),
    )
    .unwrap();
    let secret_file = work.path().join("secret");
    run(Command::new(Depproxy::binary()).arg("gen-secret").arg(&secret_file));
    let controls = [Node::control(&config, &secret_file), Node::control(&config, &secret_file)];
    let gateways = [
        Node::gateway(&config, &secret_file, &controls[0]),
        Node::gateway(&config, &secret_file, &controls[1]),
    ];
    let secret = create_token(&config, work.path(), "cluster-ci");

    // A registry token from gateway 0 (control plane 0) …
    let token = run(Command::new("curl")
        .args(["-sf", "-u", &format!("ci:{secret}")])
        .arg(format!("{}/v2/token?service=depproxy&scope=repository:lab/tiny:pull", gateways[0].url())));
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let token = token["token"].as_str().unwrap();
    // … pulls through gateway 1 (control plane 1).
    let status = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/v2/lab/tiny/manifests/v1", gateways[1].url())));
    assert_eq!(status, "200");
    let anonymous = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/v2/lab/tiny/manifests/v1", gateways[1].url())));
    assert_eq!(anonymous, "401");
    // And a whole pull with the access token through each node.
    for gateway in &gateways {
        let address = gateway.url().trim_start_matches("http://").to_owned();
        skopeo_copy(&address, &["--src-creds", &format!("ci:{secret}")], &work.path().join("out")).unwrap();
    }
}
