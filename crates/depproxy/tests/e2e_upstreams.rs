//! End to end with real parts, several upstreams: two real `distribution` registries behind one
//! depproxy, pulled by `skopeo` in group, root-mirror and path-prefix form and by a real containerd
//! (`ctr`, `hosts.toml` mirror, which sends `?ns=`); then both registries stop and the cached
//! images still pull.
//!
//! Needs docker-registry, skopeo, containerd, python3, curl (`scripts/install-test-deps.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::processes::{
    Containerd, Depproxy, Process, Registry, TestCertificates, dir_contents, free_port, push_test_images,
    require_tools, run, skopeo_pull, wait_http_ok,
};

#[test]
fn two_registries_every_convention_and_an_outage() {
    require_tools(&["docker-registry", "skopeo", "containerd", "ctr", "python3", "curl"]);
    let mut hub = Registry::start();
    let mut lab = Registry::start();
    push_test_images(&hub);
    push_test_images(&lab);
    let config = format!(
        r#"
[[upstream]]
name = "hub"
url = "http://{hub}"

[[upstream]]
name = "second"
url = "http://{lab}"
path_prefix = true

[[group]]
path = "default"
upstream = "hub"
manifest_recheck = "0s"     # every tag pull revalidates: the outage below must hit the stale path

[[group]]
path = "acme/platform"
upstream = "second"

[timeouts]
connect = "1s"
recheck = "2s"
"#,
        hub = hub.address(),
        lab = lab.address()
    );
    let proxy = Depproxy::serve_with_config(&config);
    let work = tempfile::tempdir().unwrap();
    let direct = |registry: &Registry, image: &str, all: bool| {
        let out = work.path().join(format!("direct-{}", image.replace('/', "-")));
        skopeo_pull(&format!("{}/{image}:v1", registry.address()), &out, all);
        dir_contents(&out)
    };
    let via_proxy = |reference: &str, all: bool| {
        let out = work.path().join("proxied");
        skopeo_pull(&format!("{}/{reference}", proxy.address()), &out, all);
        dir_contents(&out)
    };

    // (form, reference through the proxy, registry that must serve it, image, --all)
    let forms = [
        ("root", "lab/tiny:v1", 0, "lab/tiny", false),
        ("group", "acme/platform/dependency_proxy/containers/lab/layers:v1", 1, "lab/layers", false),
        ("prefix", "second/lab/medium:v1", 1, "lab/medium", false),
        ("root index", "lab/multi:v1", 0, "lab/multi", true),
    ];
    let registries = [&hub, &lab];
    for (form, reference, serving, image, all) in forms {
        let expected = direct(registries[serving], image, all);
        let other = registries[1 - serving];
        let blobs_before = (registries[serving].count("GET", "/blobs/"), other.count("GET", "/blobs/"));
        assert_eq!(via_proxy(reference, all), expected, "{form}: content differs from upstream");
        let blobs_after = (registries[serving].count("GET", "/blobs/"), other.count("GET", "/blobs/"));
        assert!(blobs_after.0 > blobs_before.0, "{form}: the right registry served no blob");
        assert_eq!(blobs_after.1, blobs_before.1, "{form}: the other registry was asked for blobs");
    }

    // containerd with a hosts.toml mirror: it sends ?ns=<lab>, which routes to the lab upstream.
    let containerd = Containerd::start();
    containerd.mirror(&lab.address(), &proxy.address());
    let proxied_before = lab.access_lines().iter().filter(|line| line.contains("depproxy/")).count();
    containerd.pull(&format!("{}/lab/multi:v1", lab.address()));
    let proxied_after = lab.access_lines().iter().filter(|line| line.contains("depproxy/")).count();
    assert!(proxied_after > proxied_before, "containerd's pull did not go through depproxy");
    let ctr_direct = lab.access_lines().iter().filter(|line| line.contains("containerd/")).count();
    assert_eq!(ctr_direct, 0, "containerd bypassed the mirror");

    // Tag listing passes through.
    let tags = run(std::process::Command::new("curl")
        .args(["-sf", &format!("http://{}/v2/lab/tiny/tags/list", proxy.address())]));
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));

    // Both upstreams gone: everything cached still pulls, in every form.
    hub.stop();
    lab.stop();
    for (form, reference, _, image, all) in forms {
        let out = work.path().join("offline");
        skopeo_pull(&format!("{}/{reference}", proxy.address()), &out, all);
        assert!(!dir_contents(&out).is_empty(), "{form} ({image}) did not pull with the upstream down");
    }
    let offline_containerd = Containerd::start();
    offline_containerd.mirror(&lab.address(), &proxy.address());
    offline_containerd.pull(&format!("{}/lab/multi:v1", lab.address()));
}

#[test]
fn metrics_can_live_on_a_listener_of_their_own() {
    require_tools(&["curl"]);
    let data_dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let mut command = std::process::Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", "http://127.0.0.1:9"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data_dir.path());
    let _serve = Process::spawn("depproxy serve", &mut command, &data_dir.path().join("serve.log"));
    wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
    let status = |url: String| {
        run(std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]))
    };
    assert_eq!(status(format!("http://127.0.0.1:{port}/metrics")), "404", "not on the public listener");
    // One request that goes upstream (and fails: nothing listens there), so it is counted.
    status(format!("http://127.0.0.1:{port}/v2/lab/x/manifests/v1"));
    let metrics =
        run(std::process::Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{metrics_port}/metrics")]));
    assert!(metrics.contains("depproxy_connections_open"), "{metrics}");
    assert!(metrics.contains("depproxy_fills"), "the gateway's metrics are there: {metrics}");

    // Every metric the Grafana dashboard in docs/ queries is one the proxy serves.
    let dashboard = include_str!("../../../docs/grafana-dashboard.json");
    let _: serde_json::Value = serde_json::from_str(dashboard).unwrap();
    let mut queried: Vec<&str> = dashboard
        .match_indices("depproxy_")
        .map(|(at, _)| {
            let name = &dashboard[at..];
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
            let name = &name[..end];
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .fold(name, |name, suffix| name.strip_suffix(suffix).unwrap_or(name))
        })
        .filter(|name| name.len() > "depproxy_".len())
        .collect();
    queried.sort_unstable();
    queried.dedup();
    assert!(queried.len() >= 10, "{queried:?}");
    for name in queried {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "the dashboard queries {name}, which /metrics does not serve"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_have_one_access_line_per_request_without_secrets() {
    require_tools(&["curl"]);
    let upstream = testkit::FakeRegistry::start().await;
    upstream.put_image("app", "v1", &[b"layer"]);
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = std::process::Command::new(Depproxy::binary());
    command
        .args(["serve", "--log-format", "json", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &upstream.url(), "--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data_dir.path());
    let log = data_dir.path().join("serve.log");
    let serve = Process::spawn("depproxy serve", &mut command, &log);
    let url = format!("http://127.0.0.1:{port}/v2/app/manifests/v1");
    let health = format!("http://127.0.0.1:{port}/healthz");
    tokio::task::spawn_blocking(move || wait_http_ok(&health, "depproxy serve")).await.unwrap();
    let client = reqwest::Client::new();
    let pull = || async {
        let response =
            client.get(&url).header("authorization", "Bearer not-ours-s3cret").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    };
    pull().await;
    // The fill records the manifest after the client has it: wait for that before the hit.
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    tokio::task::spawn_blocking(move || {
        support::processes::wait_until("the fill was not stored", std::time::Duration::from_secs(30), || {
            run(std::process::Command::new("curl").args(["-sf", &metrics]))
                .lines()
                .any(|line| line.starts_with("depproxy_fills_total{outcome=\"stored\"} 1"))
        })
    })
    .await
    .unwrap();
    pull().await;
    let tags = client.get(format!("http://127.0.0.1:{port}/v2/app/tags/list")).send().await.unwrap();
    assert_eq!(tags.status(), 200);
    tags.bytes().await.unwrap();
    let access_lines = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["target"] == "depproxy::access")
            .collect()
    };
    // Lines go out through a writer thread of their own: the last one may still be on its way.
    let written = log.clone();
    tokio::task::spawn_blocking(move || {
        support::processes::wait_until("three access lines", std::time::Duration::from_secs(10), || {
            access_lines(&std::fs::read_to_string(&written).unwrap_or_default()).len() >= 3
        })
    })
    .await
    .unwrap();
    drop(serve);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("s3cret"), "a credential reached the log");
    let access = access_lines(&text);
    assert_eq!(access.len(), 3, "one line per request: {access:#?}");
    let decisions: Vec<&str> = access.iter().map(|line| line["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["miss", "hit", "relay"]);
    for line in &access[..2] {
        assert_eq!(line["status"], 200);
        assert_eq!(line["image"], "app");
        assert_eq!(line["reference"], "v1");
        assert_eq!(line["group"], "default");
        assert_eq!(line["client"], "127.0.0.1");
        assert_eq!(line["complete"], true);
        assert!(line["bytes"].as_u64().unwrap() > 0, "{line}");
        assert!(line["duration_ms"].as_f64().is_some() && line["head_ms"].as_f64().is_some(), "{line}");
    }
    assert_eq!(
        (access[2]["status"].as_u64(), access[2]["reference"].as_str()),
        (Some(200), Some("tags/list"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_cli_shows_status_fills_events_and_purges() {
    require_tools(&["curl"]);
    let upstream = testkit::FakeRegistry::start().await;
    upstream.put_image("app", "v1", &[b"layer"]);
    let data_dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let mut command = std::process::Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream.url()])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .arg("--data-dir")
        .arg(data_dir.path());
    let _serve = Process::spawn("depproxy serve", &mut command, &data_dir.path().join("serve.log"));
    let health = format!("http://127.0.0.1:{port}/healthz");
    tokio::task::spawn_blocking(move || wait_http_ok(&health, "depproxy serve")).await.unwrap();
    let pulled = reqwest::get(format!("http://127.0.0.1:{port}/v2/app/manifests/v1")).await.unwrap();
    assert_eq!(pulled.status(), 200);
    pulled.bytes().await.unwrap();
    let dir = data_dir.path().to_owned();
    let admin = move |args: &[&str]| {
        let mut command = std::process::Command::new(Depproxy::binary());
        command.arg("admin").args(["--admin-url", &format!("http://127.0.0.1:{admin_port}")]).args(args);
        command.env("DEPPROXY_DATA_DIR", &dir);
        command
    };
    let secret = run(std::process::Command::new(Depproxy::binary())
        .args(["token", "create", "--name", "ops", "--admin", "--data-dir"])
        .arg(data_dir.path()));
    let secret = secret.lines().next().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let refused = admin(&["--token", "dpp_0000000000000000_wrong", "status"]).output().unwrap();
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{refused:?}");
        let status = run(admin(&["--token", &secret, "status"]).arg("--json").env_remove("NO_COLOR"));
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["groups"]["groups"][0]["group"], "default", "{status}");
        let table = run(&mut admin(&["--token", &secret, "status"]));
        assert!(
            table.contains("GROUP") && table.contains("default") && table.contains("REACHABLE"),
            "{table}"
        );
        assert_eq!(run(&mut admin(&["--token", &secret, "fills"])).trim(), "no fill running");
        let purged = run(&mut admin(&["--token", &secret, "purge", "--group", "default"]));
        assert!(purged.starts_with("purged 1 object(s) of group default"), "the manifest: {purged}");
    })
    .await
    .unwrap();
}

#[test]
fn a_private_ca_per_upstream() {
    require_tools(&["docker-registry", "skopeo", "openssl", "python3", "curl"]);
    let certificates = TestCertificates::generate();
    let registry = Registry::start_tls(&certificates);
    push_test_images(&registry);
    let config = |ca_line: &str| {
        format!(
            "[[upstream]]\nname = \"private\"\nurl = \"https://{}\"\n{ca_line}\n[[group]]\npath = \"default\"\nupstream = \"private\"\n",
            registry.address()
        )
    };
    let trusted =
        Depproxy::serve_with_config(&config(&format!("ca_file = \"{}\"", certificates.ca_cert.display())));
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("pulled");
    skopeo_pull(&format!("{}/lab/tiny:v1", trusted.address()), &out, false);
    assert!(!dir_contents(&out).is_empty());

    // Without the CA the upstream's certificate is refused, and the client is told why.
    let untrusted = Depproxy::serve_with_config(&config(""));
    let answer = run(std::process::Command::new("curl").args([
        "-s",
        "-w",
        "\n%{http_code}",
        &format!("http://{}/v2/lab/tiny/manifests/v1", untrusted.address()),
    ]));
    assert!(answer.ends_with("\n502"), "{answer}");
    assert!(answer.contains("UNAVAILABLE"), "{answer}");

    // One upstream's CA is trusted for that upstream only: the gateway's client of another
    // upstream (here: the same server, configured without ca_file) refuses its certificate.
    let two = format!(
        "{}[[upstream]]\nname = \"other\"\nurl = \"https://{}\"\n",
        config(&format!("ca_file = \"{}\"", certificates.ca_cert.display())),
        registry.address()
    );
    let resolved = depproxy::config::Config::resolve(
        toml::from_str(&two).unwrap(),
        &depproxy::config::Overrides::default(),
    )
    .unwrap();
    support::install_crypto();
    let clients = depproxy::app::upstream_http(&resolved).unwrap();
    let url = format!("https://{}/v2/", registry.address());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let private = clients.client("private").unwrap().get(&url).await;
        assert!(private.is_ok(), "the upstream with the CA connects: {private:?}");
        let other = clients.client("other").unwrap().get(&url).await;
        let error = other.expect_err("the lab CA must not be trusted for another upstream");
        assert!(error.to_string().to_lowercase().contains("certificate"), "{error:?}");
    });
}
