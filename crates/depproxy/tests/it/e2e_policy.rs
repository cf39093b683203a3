//! End to end with real parts, a group's pull policy: a real `distribution` registry, `depproxy
//! serve` as a real process with a configuration file, `skopeo` pulling through it. Allow and
//! deny rules refuse with the rule named — cached content too — and reload on SIGHUP; an
//! upstream 404 is remembered for `negative_ttl`; an immutable tag is never revalidated; a tag
//! deleted upstream is still served with `stale_on_404`, and the admin API lists it.
//!
//! Needs docker-registry, skopeo, python3, curl (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::processes::{
    Depproxy, Registry, dir_contents, push_test_images, require_tools, run, skopeo_pull, try_run, wait_until,
};

/// `default` (and `extra`, in the group form) caching `registry`, each with its own lines.
fn config(registry: &Registry, default: &str, extra: &str) -> String {
    format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://{}\"\n\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n{default}\n\n\
         [[group]]\npath = \"extra\"\nupstream = \"lab\"\n{extra}\n\n[timeouts]\nconnect = \"1s\"\nrecheck = \"2s\"\n",
        registry.address()
    )
}

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

/// Writes the proxy's configuration anew, sends SIGHUP, and waits for the log to say `what`
/// (`configuration reloaded`, `configuration not reloaded`) once more than before.
fn reload(proxy: &Depproxy, config: &str, what: &str) {
    let log = proxy.data_dir.path().join("serve.log");
    let said = || std::fs::read_to_string(&log).unwrap_or_default().matches(what).count();
    let before = said();
    std::fs::write(proxy.data_dir.path().join("depproxy.toml"), config).unwrap();
    run(Command::new("kill").args(["-HUP", &proxy.pid().to_string()]));
    wait_until(&format!("the log did not say {what:?} after SIGHUP"), Duration::from_secs(20), || {
        said() > before
    });
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

fn admin_get(proxy: &Depproxy, token: &str, path: &str) -> serde_json::Value {
    let body = run(Command::new("curl").args([
        "-sf",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://127.0.0.1:{}{path}", proxy.admin_port),
    ]));
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{path}: {error}: {body}"))
}

/// Requests the registry's access log shows for `fragment` (every method).
fn upstream_requests(registry: &Registry, fragment: &str) -> usize {
    registry.count("GET", fragment) + registry.count("HEAD", fragment)
}

#[test]
fn allow_and_deny_refuse_with_the_rule_named_cached_content_too_and_reload_on_sighup() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let rules = |allow: &str, deny: &str| config(&registry, &format!("allow = {allow}\ndeny = {deny}"), "");
    let proxy = Depproxy::serve_with_config(&rules(r#"["lab/*"]"#, r#"["lab/medium"]"#));
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    // The push left its own lines in the registry's log.
    let pushed = upstream_requests(&registry, "/lab/medium/");
    skopeo_pull(&format!("{}/lab/tiny:v1", proxy.address()), &out, false);
    assert!(!dir_contents(&out).is_empty());
    let refused = skopeo_refused(&format!("{}/lab/medium:v1", proxy.address()), &out);
    assert!(
        refused.contains(r#"lab/medium:v1 is refused by group default's rule deny = \"lab/medium\""#)
            || refused.contains(r#"lab/medium:v1 is refused by group default's rule deny = "lab/medium""#),
        "skopeo shows the rule: {refused}"
    );
    assert_eq!(upstream_requests(&registry, "/lab/medium/"), pushed, "refused before any upstream request");
    // The root-mirror form and the group form follow the same group's rules; a curl sees the
    // OCI envelope itself.
    let answer = run(Command::new("curl").args([
        "-s",
        "-w",
        "\n%{http_code}",
        &format!("{}/v2/default/dependency_proxy/containers/lab/medium/manifests/v1", proxy.url()),
    ]));
    let (body, status) = answer.rsplit_once('\n').unwrap();
    assert_eq!(status, "403", "{body}");
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(envelope["errors"][0]["code"], "DENIED", "{envelope}");
    assert_eq!(envelope["errors"][0]["detail"]["rule"], r#"deny "lab/medium""#, "{envelope}");
    // Not allowed: nothing matches `lab/*` outside lab/.
    let elsewhere = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/v2/other/app/manifests/v1", proxy.url()),
    ]));
    assert_eq!(elsewhere, "403");

    // Every refusal is an audit denial in the admin API's events.
    let token = admin_token(&proxy);
    let denials = admin_get(&proxy, &token, "/api/v1/events?kind=denied");
    let rows = denials.as_array().unwrap();
    assert!(
        rows.iter().any(|row| row["image"] == "lab/medium:v1"
            && row["group"] == "default"
            && row["message"].as_str().unwrap().contains("pull refused by policy")),
        "{denials}"
    );
    assert!(rows.iter().any(|row| row["image"] == "other/app:v1"), "{denials}");

    // SIGHUP with new rules: the cached lab/tiny:v1 is refused now, lab/medium comes through.
    reload(&proxy, &rules(r#"["lab/*"]"#, r#"["lab/tiny:v1"]"#), "configuration reloaded");
    let refused = skopeo_refused(&format!("{}/lab/tiny:v1", proxy.address()), &out);
    assert!(refused.contains("lab/tiny:v1 is refused by group default"), "{refused}");
    skopeo_pull(&format!("{}/lab/medium:v1", proxy.address()), &out, false);
    assert!(upstream_requests(&registry, "/lab/medium/") > pushed);

    // A file that does not resolve changes nothing, and the log says why.
    reload(&proxy, &rules(r#"["lab/[oops"]"#, "[]"), "configuration not reloaded");
    let log = std::fs::read_to_string(proxy.data_dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains(r#"allow pattern \"lab/[oops\""#) || log.contains(r#"allow pattern "lab/[oops""#),
        "{log}"
    );
    let refused = skopeo_refused(&format!("{}/lab/tiny:v1", proxy.address()), &out);
    assert!(refused.contains("lab/tiny:v1 is refused"), "the rules in force stay: {refused}");
}

#[test]
fn an_upstream_404_is_remembered_for_negative_ttl() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let proxy =
        Depproxy::serve_with_config(&config(&registry, "negative_ttl = \"10m\"", "negative_ttl = \"0s\""));
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    // skopeo GETs the tag: the gateway's fill gets 404 and tells the control plane.
    let missing = format!("{}/lab/later:v1", proxy.address());
    let refused = skopeo_refused(&missing, &out);
    assert!(refused.contains("manifest unknown"), "{refused}");
    let asked = upstream_requests(&registry, "/lab/later/");
    assert!(asked > 0);
    let refused = skopeo_refused(&missing, &out);
    assert!(refused.contains("remembered for 10m"), "{refused}");
    // A HEAD (containerd resolves tags so) is answered from memory too.
    let head = run(Command::new("curl").args([
        "-s",
        "-I",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/v2/lab/later/manifests/v1", proxy.url()),
    ]));
    assert_eq!(head, "404");
    assert_eq!(upstream_requests(&registry, "/lab/later/"), asked, "not asked again within negative_ttl");

    // The image appears upstream: within the window the proxy still answers 404 from memory;
    // the group with `negative_ttl = "0s"` asks upstream and serves it.
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/lab/tiny:v1", registry.address()),
        &format!("docker://{}/lab/later:v1", registry.address()),
    ]));
    let refused = skopeo_refused(&missing, &out);
    assert!(refused.contains("manifest unknown"), "{refused}");
    skopeo_pull(&format!("{}/extra/dependency_proxy/containers/lab/later:v1", proxy.address()), &out, false);
    assert!(!dir_contents(&out).is_empty());

    let metrics = run(Command::new("curl").args(["-sf", &format!("{}/metrics", proxy.url())]));
    let remembered = metrics
        .lines()
        .find(|line| line.starts_with("depproxy_not_found_remembered_total{group=\"default\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let count: u64 = remembered.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3, "{remembered}");
}

/// The digest `lab/<image>:v1` points at in `registry`, as it answers a manifest HEAD.
fn upstream_digest(registry: &Registry, image: &str) -> String {
    let headers = run(Command::new("curl").args([
        "-sfI",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
        &format!("http://{}/v2/lab/{image}/manifests/v1", registry.address()),
    ]));
    headers
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("docker-content-digest").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("{headers}"))
}

#[test]
fn immutable_tags_are_not_revalidated_and_tags_deleted_upstream_are_served_stale() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    // Every tag pull would revalidate (`manifest_recheck = "0s"`) but for the policies.
    let default = "manifest_recheck = \"0s\"\nimmutable_tags = [\"lab/tiny:v*\"]\nstale_on_404 = true\nnegative_ttl = \"0s\"";
    let extra = "manifest_recheck = \"0s\"";
    let proxy = Depproxy::serve_with_config(&config(&registry, default, extra));
    let work = tempfile::tempdir().unwrap();
    let pull = |reference: String, name: &str| {
        let out = work.path().join(name);
        skopeo_pull(&reference, &out, false);
        dir_contents(&out)
    };
    let root = |image: &str| format!("{}/lab/{image}:v1", proxy.address());
    let extra_group =
        |image: &str| format!("{}/extra/dependency_proxy/containers/lab/{image}:v1", proxy.address());

    // Immutable: cached once, never asked about again, even when the tag moves upstream.
    let tiny = pull(root("tiny"), "tiny");
    let heads =
        registry.count("HEAD", "/lab/tiny/manifests/v1") + registry.count("GET", "/lab/tiny/manifests/v1");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/lab/medium:v1", registry.address()),
        &format!("docker://{}/lab/tiny:v1", registry.address()),
    ]));
    assert_eq!(pull(root("tiny"), "tiny-again"), tiny, "the tag moved upstream; the proxy never asked");
    assert_eq!(
        registry.count("HEAD", "/lab/tiny/manifests/v1") + registry.count("GET", "/lab/tiny/manifests/v1"),
        heads,
        "an immutable tag is not revalidated"
    );
    let moved = pull(extra_group("tiny"), "extra-tiny");
    assert_ne!(moved, tiny, "a group without immutable_tags gets what the tag points at now");
    let extra_heads = registry.count("HEAD", "/lab/tiny/manifests/v1");
    pull(extra_group("tiny"), "extra-tiny-again");
    assert!(registry.count("HEAD", "/lab/tiny/manifests/v1") > extra_heads, "and revalidates it each time");

    // Stale on 404: the cached tag of an image deleted upstream is still served, marked stale,
    // and listed; a group without it passes the 404 on.
    let layers = pull(format!("{}/lab/layers:v1", proxy.address()), "layers");
    pull(extra_group("layers"), "extra-layers");
    let digest = upstream_digest(&registry, "layers");
    run(Command::new("curl").args([
        "-sf",
        "-X",
        "DELETE",
        &format!("http://{}/v2/lab/layers/manifests/{digest}", registry.address()),
    ]));
    let gone = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v2/lab/layers/manifests/v1", registry.address()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&gone.stdout), "404", "deleted upstream");
    assert_eq!(pull(format!("{}/lab/layers:v1", proxy.address()), "stale"), layers, "served stale");
    let headers = run(Command::new("curl").args([
        "-sf",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{}/v2/lab/layers/manifests/v1", proxy.url()),
    ]));
    assert!(headers.contains("Response is Stale: gone from upstream"), "{headers}");
    let refused = skopeo_refused(&extra_group("layers"), &work.path().join("extra-gone"));
    assert!(refused.contains("manifest unknown"), "{refused}");

    let token = admin_token(&proxy);
    let stale = admin_get(&proxy, &token, "/api/v1/groups/default/stale");
    let entries = stale.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{stale}");
    assert_eq!((entries[0]["image"].as_str(), entries[0]["tag"].as_str()), (Some("lab/layers"), Some("v1")));
    assert_eq!(entries[0]["digest"], digest.as_str());
    assert!(entries[0]["served"].as_u64().unwrap() >= 2, "{stale}");
    assert_eq!(admin_get(&proxy, &token, "/api/v1/groups/extra/stale"), serde_json::json!([]));
}
