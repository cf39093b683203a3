//! End to end, ordered upstreams: two real `distribution` registries behind one group
//! (`upstreams = ["internal", "hub"]`) of a `depproxy serve` process, pulled by `skopeo`. The
//! first upstream that has an image serves it (an image both have comes from `internal`); an image
//! only `hub` has is found past `internal`'s 404; with `internal` down, a tag `hub` served is
//! checked at `hub` alone, and a new image is found past the outage, which counts against
//! `internal`'s health. `depproxy cache stats`, the admin API and the access log name the upstream
//! that served.
//!
//! Needs docker-registry, skopeo, python3, curl (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;

use crate::support::processes::{
    Depproxy, Registry, dir_contents, require_tools, run, skopeo_pull, test_layouts,
};

/// Pushes the test layout `layout` (digests kept) to `registry` as `repository:v1`.
fn push(layouts: &Path, layout: &str, registry: &Registry, repository: &str) {
    run(Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false", "--preserve-digests"])
        .arg(format!("oci:{}:v1", layouts.join(layout).display()))
        .arg(format!("docker://{}/{repository}:v1", registry.address())));
}

/// `curl` of an admin API path with `token`, as JSON.
fn admin_json(proxy: &Depproxy, token: &str, path: &str) -> serde_json::Value {
    let body = run(Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{}{path}", proxy.admin_port)));
    serde_json::from_str(&body).unwrap()
}

fn failovers(proxy: &Depproxy, token: &str, upstream: &str) -> u64 {
    let upstreams = admin_json(proxy, token, "/api/v1/upstreams");
    let found = upstreams.as_array().unwrap().iter().find(|entry| entry["name"] == upstream).unwrap();
    found["failovers"].as_u64().unwrap()
}

#[test]
fn a_group_asks_its_upstreams_in_order_and_says_which_served() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let layouts = test_layouts();
    let mut internal = Registry::start();
    let hub = Registry::start();
    push(&layouts, "tiny", &internal, "lab/app");
    push(&layouts, "layers", &hub, "lab/app");
    push(&layouts, "layers", &hub, "lab/layers");
    push(&layouts, "tiny", &hub, "lab/later");
    let config = format!(
        r#"
[[upstream]]
name = "internal"
url = "http://{internal}"

[[upstream]]
name = "hub"
url = "http://{hub}"

[[group]]
path = "default"
upstreams = ["internal", "hub"]
manifest_recheck = "0s"     # every tag pull is checked again upstream

[timeouts]
connect = "1s"
recheck = "5s"
"#,
        internal = internal.address(),
        hub = hub.address()
    );
    let proxy = Depproxy::serve_with_config(&config);
    let config_file = proxy.data_dir.path().join("depproxy.toml");
    let work = tempfile::tempdir().unwrap();
    let direct = |registry: &Registry, image: &str| {
        let out = work.path().join(format!("direct-{}-{}", registry.port, image.replace('/', "-")));
        skopeo_pull(&format!("{}/{image}:v1", registry.address()), &out, false);
        dir_contents(&out)
    };
    let via_proxy = |image: &str| {
        let out = work.path().join("proxied");
        skopeo_pull(&format!("{}/{image}:v1", proxy.address()), &out, false);
        dir_contents(&out)
    };

    // Both have lab/app:v1, with different content: the first upstream's is served.
    let from_internal = direct(&internal, "lab/app");
    assert_ne!(from_internal, direct(&hub, "lab/app"));
    let hub_asked = hub.count("GET", "/v2/lab/app/");
    assert_eq!(via_proxy("lab/app"), from_internal, "the first upstream that has it serves it");
    assert_eq!(hub.count("GET", "/v2/lab/app/"), hub_asked, "hub was never asked for internal's image");

    // Only hub has lab/layers:v1: internal's 404 moves on.
    assert_eq!(via_proxy("lab/layers"), direct(&hub, "lab/layers"));
    assert!(internal.count("GET", "/v2/lab/layers/manifests/v1") >= 1, "internal was asked first");

    let token = run(Command::new(Depproxy::binary())
        .args(["token", "create", "--name", "ops", "--admin", "--config"])
        .arg(&config_file)
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    let token = token.lines().next().unwrap().trim().to_owned();
    assert_eq!(failovers(&proxy, &token, "internal"), 0, "a 404 is an answer, not a failure");

    // internal goes down. The tag hub served is checked at hub alone: it pulls, and internal's
    // outage is never met.
    internal.stop();
    assert_eq!(via_proxy("lab/layers"), direct(&hub, "lab/layers"));
    assert_eq!(failovers(&proxy, &token, "internal"), 0, "internal was not asked");

    // A new image: internal is asked first, is down, and the pull goes on to hub — counted
    // against internal's health.
    assert_eq!(via_proxy("lab/later"), direct(&hub, "lab/later"));
    assert!(failovers(&proxy, &token, "internal") >= 1);

    // Which upstream served what: `depproxy cache stats`, the admin API, the access log.
    let stats = run(Command::new(Depproxy::binary())
        .args(["cache", "stats", "--config"])
        .arg(&config_file)
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    let served = stats
        .lines()
        .find(|line| line.starts_with("default served by: "))
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(served.contains("internal ") && served.contains("hub "), "{stats}");
    let groups = admin_json(&proxy, &token, "/api/v1/groups");
    let default =
        groups["groups"].as_array().unwrap().iter().find(|group| group["group"] == "default").unwrap();
    assert_eq!(default["upstreams"], serde_json::json!(["internal", "hub"]));
    let shares: Vec<&str> = default["by_upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|share| share["upstream"].as_str().unwrap())
        .collect();
    assert_eq!(shares, ["hub", "internal"], "{default}");
    let log = std::fs::read_to_string(proxy.data_dir.path().join("serve.log")).unwrap();
    let misses = |upstream: &str| {
        log.lines()
            .filter(|line| line.contains("depproxy::access") && line.contains("decision=miss"))
            .filter(|line| line.contains(&format!("upstream={upstream} ")))
            .count()
    };
    assert!(misses("internal") > 0 && misses("hub") > 0, "{log}");
}
