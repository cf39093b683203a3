//! Split mode with TLS on the control listener, as real processes: `depproxy control --tls-cert
//! --tls-key` and `depproxy gateway --control-url https://… --control-ca`. A pull goes through;
//! the control listener speaks nothing but TLS; a gateway that does not trust its CA gets no
//! answer from it.
//!
//! Needs `openssl` and `curl` (`scripts/install-test-deps.sh`).

use std::process::Command;

use crate::support::client;
use crate::support::processes::{
    Depproxy, Process, TestCertificates, free_port, require_tools, run, wait_http_ok,
};
use http::StatusCode;
use testkit::FakeRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_mode_over_tls_serves_and_refuses_plain_or_untrusted_peers() {
    require_tools(&["openssl", "curl"]);
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let layer = crate::support::pattern(300_000, 14);
    let digest = upstream.put_blob(layer.clone());
    let tls = tokio::task::spawn_blocking(TestCertificates::generate).await.unwrap();
    let upstream_url = upstream.url();
    let (proxy, tls) =
        tokio::task::spawn_blocking(move || (Depproxy::split_tls(&upstream_url, &tls), tls)).await.unwrap();
    let control_port = proxy.control_port.unwrap();

    // A miss and then a hit through the gateway: decided by the control plane over TLS.
    for round in ["miss", "hit"] {
        let response = client().get(format!("{}/v2/lab/x/blobs/{digest}", proxy.url())).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{round}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), layer.as_slice(), "{round}");
    }
    assert_eq!(upstream.count("GET", "/blobs/"), 1, "the hit was decided over TLS too");

    // Plain HTTP to the control listener gets no HTTP answer.
    let plain = client().get(format!("http://127.0.0.1:{control_port}/v2/")).send().await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    // Over TLS, trusting the CA, an unsigned request is the control plane's 403.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&tls.ca_cert).unwrap()).unwrap();
    let trusting = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    let unsigned = trusting.get(format!("https://127.0.0.1:{control_port}/v2/")).send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);

    // A gateway with the right secret but without --control-ca does not trust the certificate.
    let untrusting = tokio::task::spawn_blocking(move || {
        let port = free_port();
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(Depproxy::binary());
        command
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}"), "--upstream", "http://127.0.0.1:9"])
            .args(["--control-url", &format!("https://127.0.0.1:{control_port}")])
            .arg("--secret-file")
            .arg(proxy.data_dir.path().join("secret"))
            .arg("--data-dir")
            .arg(data_dir.path());
        let process = Process::spawn("depproxy gateway", &mut command, &data_dir.path().join("gateway.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "untrusting gateway");
        (process, port, data_dir, proxy)
    })
    .await
    .unwrap();
    let (_process, port, _dir, _proxy) = untrusting;
    let refused =
        client().get(format!("http://127.0.0.1:{port}/v2/lab/x/blobs/{digest}")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "control plane unreachable without its CA");

    // --control-ca with an http:// URL is refused at start-up.
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(Depproxy::binary());
    command
        .args(["gateway", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"])
        .args(["--control-url", &format!("http://127.0.0.1:{control_port}")])
        .arg("--control-ca")
        .arg(&tls.ca_cert)
        .arg("--secret-file")
        .arg(data_dir.path().join("secret"))
        .arg("--data-dir")
        .arg(data_dir.path());
    run(Command::new(Depproxy::binary()).arg("gen-secret").arg(data_dir.path().join("secret")));
    let output = command.env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("https://"), "{output:?}");
}
