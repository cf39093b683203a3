//! End to end with real parts, several upstreams: two real `distribution` registries behind one
//! depproxy, pulled by `skopeo` in group, root-mirror and path-prefix form and by a real containerd
//! (`ctr`, `hosts.toml` mirror, which sends `?ns=`); then both registries stop and the cached
//! images still pull. Also the `serve` process's listeners: metrics apart, the admin API (its
//! address and how to get a token logged at start-up, a taken port stops the start), JSON logs.
//!
//! Needs docker-registry, skopeo, containerd, python3, curl (`scripts/install-test-deps.sh`).

use crate::support::processes::{
    Containerd, Depproxy, Process, Registry, TestCertificates, dir_contents, free_port, push_test_images,
    require_tools, run, run_to_exit, skopeo_pull, wait_http_ok,
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
    let dashboard = include_str!("../../../../docs/grafana-dashboard.json");
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
        crate::support::processes::wait_until(
            "the fill was not stored",
            std::time::Duration::from_secs(30),
            || {
                run(std::process::Command::new("curl").args(["-sf", &metrics]))
                    .lines()
                    .any(|line| line.starts_with("depproxy_fills_total{outcome=\"stored\"} 1"))
            },
        )
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
        crate::support::processes::wait_until(
            "three access lines",
            std::time::Duration::from_secs(10),
            || access_lines(&std::fs::read_to_string(&written).unwrap_or_default()).len() >= 3,
        )
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
        // The wrong token above is a denial, listed apart from errors.
        let events = run(&mut admin(&["--token", &secret, "events"]));
        let (errors, denials) = events.split_once("denials:").unwrap_or_else(|| panic!("{events}"));
        assert!(errors.starts_with("errors and warnings:"), "{events}");
        assert!(denials.contains("admin API login refused") && denials.contains("127.0.0.1"), "{events}");
        assert!(!errors.contains("login refused"), "{events}");
        let events: serde_json::Value =
            serde_json::from_str(&run(admin(&["--token", &secret, "events"]).arg("--json"))).unwrap();
        assert_eq!(events["denials"][0]["kind"], "denied", "{events}");
        assert_eq!(events["denials"][0]["client"], "127.0.0.1", "{events}");
        let purged = run(&mut admin(&["--token", &secret, "purge", "--group", "default"]));
        assert!(purged.starts_with("purged 1 object(s) of group default"), "the manifest: {purged}");
    })
    .await
    .unwrap();
}

#[test]
fn serve_logs_its_admin_address_and_a_token_command_that_works() {
    require_tools(&["curl"]);
    let work = tempfile::tempdir().unwrap();
    // A data directory whose path needs quoting in a shell.
    let data_dir = work.path().join("data dir");
    let config = work.path().join("depproxy.toml");
    std::fs::write(&config, "[[upstream]]\nname = \"up\"\nurl = \"http://127.0.0.1:9\"\n").unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let mut command = std::process::Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}"), "--config"])
        .arg(&config)
        .current_dir(work.path())
        .env("DEPPROXY_DATA_DIR", "data dir");
    let log = work.path().join("serve.log");
    let _serve = Process::spawn("depproxy serve", &mut command, &log);
    wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
    let text = std::fs::read_to_string(&log).unwrap();
    let announced = format!("admin API and status page at http://127.0.0.1:{admin_port}/");
    let line = text.lines().find(|line| line.contains(&announced)).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" INFO "), "{line}");
    let printed = line.split("log in with: `").nth(1).unwrap_or_else(|| panic!("{line}"));
    let printed = printed.split('`').next().unwrap().trim();
    assert!(printed.starts_with("depproxy token create --name ops --admin --config /"), "{printed}");
    assert!(printed.contains(&format!("--data-dir '{}'", data_dir.display())), "{printed}");

    // Run as printed, from another directory, with `depproxy` found on the PATH.
    let binary_dir = std::path::Path::new(Depproxy::binary()).parent().unwrap();
    let path = format!("{}:{}", binary_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = run(std::process::Command::new("sh")
        .args(["-c", printed])
        .current_dir("/")
        .env("PATH", path)
        .env_remove("DEPPROXY_DATA_DIR"));
    let secret = output.lines().next().unwrap().trim().to_owned();
    assert!(secret.starts_with("dpp_"), "{output}");
    let status = run(std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {secret}"))
        .arg(format!("http://127.0.0.1:{admin_port}/api/v1/groups")));
    assert_eq!(status, "200", "the token the printed command made is an admin token of this proxy");
}

#[test]
fn a_taken_admin_port_stops_serve_and_names_the_flag() {
    let data_dir = tempfile::tempdir().unwrap();
    let serve = |port: u16, admin: Option<&str>| {
        let mut command = std::process::Command::new(Depproxy::binary());
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", "http://127.0.0.1:9"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env_remove("DEPPROXY_ADMIN_LISTEN");
        if let Some(admin) = admin {
            command.args(["--admin-listen", admin]);
        }
        command
    };
    let refused = |output: &str, address: &str| {
        assert!(output.contains(&format!("cannot listen on {address} for the admin API")), "{output}");
        assert!(output.contains("--admin-listen ADDR") && output.contains("--admin-listen off"), "{output}");
        assert!(output.contains("DEPPROXY_ADMIN_LISTEN"), "{output}");
    };
    // An address given and taken.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap().to_string();
    let (status, output) =
        run_to_exit(&mut serve(free_port(), Some(&address)), std::time::Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    refused(&output, &address);
    // The default address taken (held here, or by something else on this host): the same.
    let _default = std::net::TcpListener::bind("127.0.0.1:5080");
    let (status, output) = run_to_exit(&mut serve(free_port(), None), std::time::Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    refused(&output, "127.0.0.1:5080");

    // `off` runs without it, and says so.
    let port = free_port();
    let mut command = serve(port, None);
    command.env("DEPPROXY_ADMIN_LISTEN", "off");
    let log = data_dir.path().join("off.log");
    let _serve = Process::spawn("depproxy serve", &mut command, &log);
    wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("admin API off (--admin-listen off)"), "{text}");
}

/// What a `serve` process logs reads as people write: a client's 404 is no warning, reports are
/// fields (not Rust's debug format), durations in the units people use.
#[tokio::test(flavor = "multi_thread")]
async fn a_clients_404_is_no_warning_and_reports_are_fields() {
    require_tools(&["curl"]);
    let upstream = testkit::FakeRegistry::start().await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[b"layer bytes"]);
    let data_dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let mut command = std::process::Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream.url()])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .arg("--data-dir")
        .arg(data_dir.path());
    let log = data_dir.path().join("serve.log");
    let serve = Process::spawn("depproxy serve", &mut command, &log);
    let health = format!("http://127.0.0.1:{port}/healthz");
    tokio::task::spawn_blocking(move || wait_http_ok(&health, "depproxy serve")).await.unwrap();
    let proxy = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // A typo in a tag, and a digest upstream does not have: the client's 404s.
    for path in ["/v2/lab/app/manifests/v1-typo", "/v2/lab/apq/manifests/v1"] {
        assert_eq!(client.get(format!("{proxy}{path}")).send().await.unwrap().status(), 404, "{path}");
    }
    let missing = oci::Digest::of(b"nobody has this");
    let blob = client.get(format!("{proxy}/v2/lab/app/blobs/{missing}")).send().await.unwrap();
    assert_eq!(blob.status(), 404);
    // A pull, then purges through the admin API (one of what was not read for 30 days).
    for path in ["/v2/lab/app/manifests/v1".to_owned(), format!("/v2/lab/app/blobs/{}", layers[0])] {
        let response = client.get(format!("{proxy}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap();
    }
    let secret = run(std::process::Command::new(Depproxy::binary())
        .args(["token", "create", "--name", "ops", "--admin", "--data-dir"])
        .arg(data_dir.path()));
    let secret = secret.lines().next().unwrap().to_owned();
    let admin = format!("http://127.0.0.1:{admin_port}");
    // The pull's fills are recorded after the client has its bytes: the purge waits for them.
    let metrics = format!("{proxy}/metrics");
    tokio::task::spawn_blocking(move || {
        crate::support::processes::wait_until(
            "the fills were not stored",
            std::time::Duration::from_secs(30),
            || {
                run(std::process::Command::new("curl").args(["-sf", &metrics]))
                    .lines()
                    .any(|line| line.starts_with("depproxy_fills_total{outcome=\"stored\"} 2"))
            },
        )
    })
    .await
    .unwrap();
    for query in ["?older_than=30d", ""] {
        let url = format!("{admin}/api/v1/groups/default/cache{query}");
        let started = client.delete(url).bearer_auth(&secret).send().await.unwrap();
        assert_eq!(started.status(), 202);
        let job: serde_json::Value = started.json().await.unwrap();
        let job_url = format!("{admin}{}", job["status"].as_str().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let job: serde_json::Value =
                client.get(&job_url).bearer_auth(&secret).send().await.unwrap().json().await.unwrap();
            if job["state"] != "running" {
                assert_eq!(job["state"], "done", "{job}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{job}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // The log is written by a thread of its own: wait for the last purge's line.
    let written = log.clone();
    tokio::task::spawn_blocking(move || {
        crate::support::processes::wait_until("two purges logged", std::time::Duration::from_secs(10), || {
            std::fs::read_to_string(&written).unwrap_or_default().matches("purge done").count() == 2
        })
    })
    .await
    .unwrap();
    drop(serve);

    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> =
        text.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
    assert!(warnings.is_empty(), "a client's 404 is not the operator's problem: {warnings:#?}");
    assert!(
        text.lines()
            .any(|line| line.contains(" INFO ") && line.contains("fill ended") && line.contains("no such")),
        "{text}"
    );
    assert!(
        !text.contains("Report {") && !text.contains("report="),
        "Rust's debug format in the log:\n{text}"
    );
    assert!(text.contains("purge group default not read for 30d"), "{text}");
    let done: Vec<&str> = text.lines().filter(|line| line.contains("purge done")).collect();
    assert!(done[1].contains(" objects=2 ") && done[1].contains(" deleted_objects="), "{done:#?}");
    // The first sweep (at start-up) found nothing to do: it says nothing at info.
    for line in text.lines().filter(|line| line.contains("sweep done")) {
        assert!(line.contains("_objects=") || line.contains("stale_") || line.contains("_tags="), "{line}");
    }
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
    crate::support::install_crypto();
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
