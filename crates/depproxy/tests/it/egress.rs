//! Where depproxy's outbound traffic goes through a forward proxy. When only the environment
//! names one: nowhere near it (real `depproxy control` and `depproxy gateway` processes with S3
//! storage, all started with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` pointing at a proxy that
//! records what it is asked, while a malicious upstream redirects a tag to an internal name).
//! When `[egress] proxy` names one: through it, under the egress rules.
//!
//! Needs python3 with moto and curl (`scripts/install-test-deps.sh`).

use std::process::Command;
use std::time::Duration;

use crate::support::backends::S3Server;
use crate::support::processes::{Depproxy, Process, free_port, require_tools, run, wait_http_ok, wait_until};
use crate::support::{Options, TestProxy, client};
use http::StatusCode;
use testkit::{FakeRegistry, Fault, RecordingProxy};

const PROXY_VARIABLES: &[&str] =
    &["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"];

/// `depproxy <role> …` with every proxy variable of the environment naming `proxy`.
fn with_proxy_environment(command: &mut Command, proxy: &RecordingProxy) {
    for variable in PROXY_VARIABLES {
        command.env(variable, proxy.url());
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_proxies_are_used_by_no_client() {
    require_tools(&["python3", "curl"]);
    let upstream = FakeRegistry::start().await;
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[b"an ordinary layer"]);
    // A tag whose manifest GET the upstream answers with a 307 to an internal name.
    let (evil, _) = upstream.put_image("lab/evil", "v1", &[b"another layer"]);
    upstream.set_fault_for(&evil, Some(Fault::Redirect { location: "https://internal.test".into() }));
    let proxy = RecordingProxy::start().await;
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("depproxy.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"lab\"\nurl = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n{}",
            upstream.url(),
            s3.storage_toml()
        ),
    )
    .unwrap();
    for role in ["control", "gateway"] {
        std::fs::create_dir(dir.path().join(role)).unwrap();
    }
    let secret = dir.path().join("secret");
    run(Command::new(Depproxy::binary()).arg("gen-secret").arg(&secret));
    let control_port = free_port();
    let mut control = Command::new(Depproxy::binary());
    control
        .args(["control", "--listen", &format!("127.0.0.1:{control_port}")])
        .arg("--config")
        .arg(&config)
        .arg("--secret-file")
        .arg(&secret)
        .arg("--data-dir")
        .arg(dir.path().join("control"));
    with_proxy_environment(&mut control, &proxy);
    let _control = Process::spawn("depproxy control", &mut control, &dir.path().join("control.log"));
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", control_port)).is_err() {
        let log = std::fs::read_to_string(dir.path().join("control.log")).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(30), "depproxy control did not start:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = free_port();
    let mut gateway = Command::new(Depproxy::binary());
    gateway
        .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--control-url", &format!("http://127.0.0.1:{control_port}")])
        .arg("--config")
        .arg(&config)
        .arg("--secret-file")
        .arg(&secret)
        .arg("--data-dir")
        .arg(dir.path().join("gateway"));
    with_proxy_environment(&mut gateway, &proxy);
    let _gateway = Process::spawn("depproxy gateway", &mut gateway, &dir.path().join("gateway.log"));
    let base = format!("http://127.0.0.1:{port}");
    let ready = format!("{base}/healthz");
    tokio::task::spawn_blocking(move || wait_http_ok(&ready, "depproxy gateway")).await.unwrap();

    // An ordinary pull: the control plane asks upstream, the gateway asks the control plane,
    // fetches from upstream and stores in the bucket.
    let response = client().get(format!("{base}/v2/lab/app/manifests/v1")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["docker-content-digest"], manifest.to_string().as_str());
    let response = client().get(format!("{base}/v2/lab/app/blobs/{}", layers[0])).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"an ordinary layer");
    tokio::task::block_in_place(|| {
        wait_until("the manifest and the layer did not reach the bucket", Duration::from_secs(20), || {
            s3.keys().len() >= 2
        })
    });

    // The redirect to an internal name: not followed through anyone's proxy.
    let response = client().get(format!("{base}/v2/lab/evil/manifests/v1")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(upstream.count("GET", "/v2/lab/evil/manifests/v1") >= 1, "the upstream was asked");

    assert!(proxy.asked().is_empty(), "the environment's proxy was asked: {:?}", proxy.asked());
}

/// `[egress] proxy`, in process: upstream traffic of control plane and gateway goes through it,
/// a redirect is checked on what its target resolves to before the proxy is asked, and `no_proxy`
/// hosts are reached directly.
#[tokio::test]
async fn the_configured_proxy_carries_upstream_traffic_under_the_egress_rules() {
    let upstream = FakeRegistry::start().await;
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[b"an ordinary layer"]);
    let (evil, _) = upstream.put_image("lab/evil", "v1", &[b"another layer"]);
    let cdn = FakeRegistry::start().await;
    let proxy = RecordingProxy::start().await;
    let config = |no_proxy: &str| {
        format!(
            "[[upstream]]\nname = \"lab\"\nurl = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n\
             [egress]\nproxy = \"{}\"\nno_proxy = [{no_proxy}]\n",
            upstream.url(),
            proxy.url()
        )
    };
    let depproxy = TestProxy::start(Options::toml(&config(""))).await;
    let response = client().get(format!("{}/v2/lab/app/manifests/v1", depproxy.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["docker-content-digest"], manifest.to_string().as_str());
    let response =
        client().get(format!("{}/v2/lab/app/blobs/{}", depproxy.url, layers[0])).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"an ordinary layer");
    for path in ["/v2/ ", "/v2/lab/app/manifests/v1 ", &format!("/v2/lab/app/blobs/{} ", layers[0])] {
        assert!(proxy.was_asked(&format!("GET {}{path}", upstream.url())), "{path}: {:?}", proxy.asked());
    }

    // A tag redirected to a name that resolves to loopback, or does not resolve here: 502, and
    // the proxy is never asked to go there.
    let cdn_port = cdn.address().port();
    for location in [format!("https://localhost:{cdn_port}"), "https://internal.test".to_owned()] {
        upstream.set_fault_for(&evil, Some(Fault::Redirect { location: location.clone() }));
        let response =
            client().get(format!("{}/v2/lab/evil/manifests/v1", depproxy.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{location}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("localhost") && !body.contains("internal.test"), "{location}: {body}");
    }
    assert!(!proxy.was_asked("localhost") && !proxy.was_asked("internal.test"), "{:?}", proxy.asked());
    assert!(cdn.log().is_empty());

    // The upstream listed in no_proxy: reached directly.
    let direct = TestProxy::start(Options::toml(&config("\"127.0.0.1\""))).await;
    let before = proxy.asked().len();
    let response = client().get(format!("{}/v2/lab/app/manifests/v1", direct.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(proxy.asked().len(), before, "{:?}", proxy.asked());
}

/// A manifest by tag is trusted for its declared type only: an answer that is not a manifest (an
/// internal JSON document a redirect led to) is refused before any byte reaches the client, and
/// nothing is stored.
#[tokio::test]
async fn a_tag_answered_with_something_not_a_manifest_is_refused() {
    let upstream = FakeRegistry::start().await;
    let (manifest, _) = upstream.put_image("lab/app", "v1", &[b"a layer"]);
    let internal = axum::Router::new().fallback(|| async {
        ([(http::header::CONTENT_TYPE, "application/json")], r#"{"AccessKeyId":"internal-s3cret"}"#)
    });
    let internal = crate::support::spawn_server(internal).await;
    upstream.set_fault_for(&manifest, Some(Fault::Redirect { location: internal.clone() }));
    let depproxy = TestProxy::start(Options::toml(&format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"{}\"\nredirect_allow = [\"127.0.0.1\"]\n\
         [[group]]\npath = \"default\"\nupstream = \"lab\"\n",
        upstream.url()
    )))
    .await;
    let response = client().get(format!("{}/v2/lab/app/manifests/v1", depproxy.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert!(!body.contains("internal-s3cret") && body.contains("not a manifest"), "{body}");
    depproxy.fills_settled().await;
    assert!(depproxy.stored_objects().is_empty(), "{:?}", depproxy.stored_names());
    // With the redirect gone, the real manifest is served.
    upstream.set_fault_for(&manifest, None);
    let response = client().get(format!("{}/v2/lab/app/manifests/v1", depproxy.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["docker-content-digest"], manifest.to_string().as_str());
}
