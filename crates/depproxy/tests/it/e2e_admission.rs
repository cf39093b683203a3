//! End to end with real parts, a hold for new artifacts: a real `distribution` registry, `depproxy
//! serve` as a real process with a configuration file, `skopeo` pulling through it, and a small
//! admission hook in the test. An image the hook allows is pulled (an index and the image manifest
//! under it each judged, once); one it refuses fails with the hook's reason, is refused again
//! without asking, and shows in the admin API's denials; forgotten through the admin API, it is
//! judged again.
//!
//! Needs docker-registry, skopeo, python3, curl (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;

use crate::support::processes::{
    Depproxy, Registry, dir_contents, push_test_images, require_tools, run, skopeo_pull, try_run,
};
use crate::support::webhook::{Answer, Webhook};

/// `skopeo copy` through the proxy: its output when it fails.
fn skopeo_refused(reference: &str, out: &Path) -> String {
    let _ = std::fs::remove_dir_all(out);
    let copied = try_run(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", "--retry-times", "0"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", out.display())),
    );
    match copied {
        Ok(output) => panic!("{reference} was pulled: {output}"),
        Err(output) => output,
    }
}

/// An admin token for the proxy's database (the server finds a new token on first use).
fn admin_token(proxy: &Depproxy) -> String {
    let output = run(Command::new(Depproxy::binary())
        .args(["token", "create", "--name", "ops", "--admin", "--config"])
        .arg(proxy.data_dir.path().join("depproxy.toml"))
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    output.split_whitespace().find(|word| word.starts_with("dpp_")).expect("a token secret").to_owned()
}

/// `curl` against the admin API: the status and the body.
fn admin(proxy: &Depproxy, token: &str, method: &str, path: &str) -> (String, String) {
    let answer = run(Command::new("curl").args([
        "-s",
        "-X",
        method,
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:{}{path}", proxy.admin_port),
    ]));
    let (body, status) = answer.rsplit_once('\n').unwrap();
    (status.to_owned(), body.to_owned())
}

#[test]
fn skopeo_pulls_what_the_hook_allows_and_is_refused_what_it_refuses_until_the_verdict_is_forgotten() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime.block_on(Webhook::start());
    hook.answer("lab/medium", Answer::Deny("CVE-2024-0001 (critical) in libexample 1.2"));
    let config = format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://{}\"\n\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n\
         admission_hook = \"{}\"\nadmission_timeout = \"10s\"\n\n[timeouts]\nconnect = \"1s\"\n",
        registry.address(),
        hook.url
    );
    let proxy = Depproxy::serve_with_config(&config);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    // Allowed: pulled whole. A multi-arch image: its index (by tag) and the platform's manifest
    // (by digest) are each judged.
    skopeo_pull(&format!("{}/lab/tiny:v1", proxy.address()), &out, false);
    let tiny = dir_contents(&out);
    assert!(!tiny.is_empty());
    assert_eq!(hook.asked_about("lab/tiny"), 1);
    skopeo_pull(&format!("{}/lab/multi:v1", proxy.address()), &work.path().join("multi"), false);
    let multi: Vec<serde_json::Value> =
        hook.questions().into_iter().filter(|question| question["name"] == "lab/multi").collect();
    assert_eq!(multi.len(), 2, "{multi:?}");
    assert_eq!(multi[0]["tag"], "v1");
    assert!(multi[0]["media_type"].as_str().unwrap().contains("index"), "{multi:?}");
    assert!(multi[1]["tag"].is_null(), "the platform's manifest, by digest: {multi:?}");
    // Pulled again: served from the cache, not judged again.
    skopeo_pull(&format!("{}/lab/tiny:v1", proxy.address()), &out, false);
    assert_eq!(dir_contents(&out), tiny);
    assert_eq!(hook.asked_about("lab/tiny"), 1);

    // Refused: skopeo shows the hook's reason; refused again without asking the hook.
    let refused = skopeo_refused(&format!("{}/lab/medium:v1", proxy.address()), &out);
    assert!(
        refused.contains(
            "refused by group default's admission hook: CVE-2024-0001 (critical) in libexample 1.2"
        ),
        "skopeo shows the reason: {refused}"
    );
    let refused = skopeo_refused(&format!("{}/lab/medium:v1", proxy.address()), &out);
    assert!(refused.contains("CVE-2024-0001"), "{refused}");
    assert_eq!(hook.asked_about("lab/medium"), 1, "remembered");
    let medium = hook
        .questions()
        .into_iter()
        .find(|question| question["name"] == "lab/medium")
        .map(|question| question["digest"].as_str().unwrap().to_owned())
        .unwrap();
    let stored = crate::support::processes::stored_object_hashes(proxy.data_dir.path());
    assert!(
        stored.iter().all(|(name, _)| !medium.ends_with(name.as_str())),
        "a refused manifest is not stored"
    );

    // The refusal is an audit denial in the admin API's events.
    let token = admin_token(&proxy);
    let (status, denials) = admin(&proxy, &token, "GET", "/api/v1/events?kind=denied");
    assert_eq!(status, "200", "{denials}");
    let denials: serde_json::Value = serde_json::from_str(&denials).unwrap();
    assert!(
        denials.as_array().unwrap().iter().any(|row| row["image"] == "lab/medium:v1"
            && row["message"].as_str().unwrap().contains("admission hook")),
        "{denials}"
    );

    // Forgotten: the next pull asks the hook again, which now allows it.
    let (status, body) = admin(&proxy, &token, "DELETE", &format!("/api/v1/verdicts/{medium}"));
    assert_eq!(status, "200", "{body}");
    hook.answer("lab/medium", Answer::Allow);
    skopeo_pull(&format!("{}/lab/medium:v1", proxy.address()), &out, false);
    assert!(!dir_contents(&out).is_empty());
    assert_eq!(hook.asked_about("lab/medium"), 2);
    let (status, _) = admin(&proxy, &token, "DELETE", &format!("/api/v1/verdicts/sha256:{}", "0".repeat(64)));
    assert_eq!(status, "404");
}
