//! TLS on the public listener and on the admin API, as real `depproxy serve` and `gateway`
//! processes: `--tls-cert`/`--tls-key` (HTTP/2 and HTTP/1.1 by ALPN; the files re-read on SIGHUP,
//! new connections getting the new certificate), `--admin-tls-cert`/`--admin-tls-key` (the status
//! page's session cookie then `Secure`), and the warning for an admin API reachable beyond this
//! host without TLS.
//!
//! Needs `openssl` and `curl` (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::processes::{
    Depproxy, Process, TestCertificates, free_port, require_tools, run, wait_http_ok, wait_until,
};
use http::StatusCode;
use testkit::FakeRegistry;

/// A client that trusts only `ca` (PEM file).
fn trusting(ca: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn install(tls: &TestCertificates, dir: &Path) {
    std::fs::copy(&tls.server_cert, dir.join("cert.pem")).unwrap();
    std::fs::copy(&tls.server_key, dir.join("key.pem")).unwrap();
}

/// An admin token, created in `data_dir`'s database before the server starts.
fn admin_token(data_dir: &Path) -> String {
    let output = run(Command::new(Depproxy::binary())
        .args(["token", "create", "--admin", "--name", "ops", "--data-dir"])
        .arg(data_dir));
    output.split_whitespace().find(|word| word.starts_with("dpp_")).expect("a token secret").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_speaks_http2_and_http1_and_takes_a_new_certificate_on_sighup() {
    require_tools(&["openssl", "curl"]);
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let (first, second) =
        tokio::task::spawn_blocking(|| (TestCertificates::generate(), TestCertificates::generate()))
            .await
            .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    install(&first, files.path());
    let port = free_port();
    let log = data_dir.path().join("serve.log");
    let mut command = Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream.url()])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data_dir.path())
        .arg("--tls-cert")
        .arg(files.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(files.path().join("key.pem"));
    let process = Process::spawn("depproxy serve", &mut command, &log);
    let url = format!("https://127.0.0.1:{port}");
    let ready = format!("{url}/healthz");
    tokio::task::spawn_blocking(move || wait_http_ok(&ready, "depproxy serve over TLS")).await.unwrap();

    // ALPN: HTTP/2 for a client that offers it, HTTP/1.1 for one that does not.
    let response = trusting(&first.ca_cert).get(format!("{url}/v2/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&first.ca_cert).unwrap()).unwrap();
    let http1 = reqwest::Client::builder().tls_certs_only([ca]).http1_only().build().unwrap();
    let response = http1.get(format!("{url}/v2/")).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);
    // Plain HTTP gets no HTTP answer on a TLS listener.
    assert!(crate::support::client().get(format!("http://127.0.0.1:{port}/v2/")).send().await.is_err());
    // A client trusting another CA is refused.
    assert!(trusting(&second.ca_cert).get(format!("{url}/v2/")).send().await.is_err());

    // New files, then SIGHUP: new connections get the new certificate.
    install(&second, files.path());
    run(Command::new("kill").args(["-HUP", &process.pid().to_string()]));
    let reload_log = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("no reload logged", Duration::from_secs(10), || {
            std::fs::read_to_string(&reload_log).unwrap_or_default().contains("TLS certificate reloaded")
        })
    })
    .await
    .unwrap();
    let response = trusting(&second.ca_cert).get(format!("{url}/v2/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        trusting(&first.ca_cert).get(format!("{url}/v2/")).send().await.is_err(),
        "the old certificate is no longer offered"
    );

    // A pair that does not load leaves the current certificate in place, and says so.
    std::fs::write(files.path().join("cert.pem"), "not a certificate").unwrap();
    run(Command::new("kill").args(["-HUP", &process.pid().to_string()]));
    let failed_log = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("no failed reload logged", Duration::from_secs(10), || {
            std::fs::read_to_string(&failed_log).unwrap_or_default().contains("TLS certificate not reloaded")
        })
    })
    .await
    .unwrap();
    let response = trusting(&second.ca_cert).get(format!("{url}/v2/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_session_cookie_is_secure_over_tls_and_a_plain_admin_api_beyond_loopback_is_warned_about() {
    require_tools(&["openssl", "curl"]);
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let tls = tokio::task::spawn_blocking(TestCertificates::generate).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let log = data_dir.path().join("serve.log");
    let mut command = Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream.url()])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .arg("--data-dir")
        .arg(data_dir.path())
        .arg("--admin-tls-cert")
        .arg(&tls.server_cert)
        .arg("--admin-tls-key")
        .arg(&tls.server_key);
    let process = Process::spawn("depproxy serve", &mut command, &log);
    let ready = format!("https://127.0.0.1:{admin_port}/ui/page.css");
    tokio::task::spawn_blocking(move || wait_http_ok(&ready, "the admin API over TLS")).await.unwrap();
    // Made once serve has made its database (a CLI command does not make one).
    let token = admin_token(data_dir.path());
    let login = trusting(&tls.ca_cert)
        .post(format!("https://127.0.0.1:{admin_port}/login"))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.ends_with("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("without TLS"), "no warning for a TLS admin API on loopback:\n{text}");
    drop(process);

    // The same admin API without TLS, on every address: it still works, and the start-up says
    // what crosses the network in clear text.
    let data_dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let log = data_dir.path().join("serve.log");
    let mut command = Command::new(Depproxy::binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream.url()])
        .args(["--admin-listen", &format!("0.0.0.0:{admin_port}")])
        .arg("--data-dir")
        .arg(data_dir.path());
    let _process = Process::spawn("depproxy serve", &mut command, &log);
    let ready = format!("http://127.0.0.1:{admin_port}/ui/page.css");
    tokio::task::spawn_blocking(move || wait_http_ok(&ready, "the admin API")).await.unwrap();
    let token = admin_token(data_dir.path());
    let login = crate::support::client()
        .post(format!("http://127.0.0.1:{admin_port}/login"))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("the admin API is reachable beyond this host without TLS"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_clients_over_tls_with_the_same_flags() {
    require_tools(&["openssl", "curl"]);
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let layer = crate::support::pattern(200_000, 23);
    let digest = upstream.put_blob(layer.clone());
    let tls = tokio::task::spawn_blocking(TestCertificates::generate).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let secret = data_dir.path().join("secret");
    run(Command::new(Depproxy::binary()).arg("gen-secret").arg(&secret));
    let (control_port, port) = (free_port(), free_port());
    let mut control = Command::new(Depproxy::binary());
    control
        .args(["control", "--listen", &format!("127.0.0.1:{control_port}"), "--upstream", &upstream.url()])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--secret-file")
        .arg(&secret)
        .arg("--data-dir")
        .arg(data_dir.path());
    let _control = Process::spawn("depproxy control", &mut control, &data_dir.path().join("control.log"));
    // The gateway answers /healthz on its own: the control plane must listen before a request.
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", control_port)).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "depproxy control did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut gateway = Command::new(Depproxy::binary());
    gateway
        .args(["gateway", "--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream.url()])
        .args(["--control-url", &format!("http://127.0.0.1:{control_port}")])
        .arg("--secret-file")
        .arg(&secret)
        .arg("--data-dir")
        .arg(data_dir.path())
        .arg("--tls-cert")
        .arg(&tls.server_cert)
        .arg("--tls-key")
        .arg(&tls.server_key);
    let _gateway = Process::spawn("depproxy gateway", &mut gateway, &data_dir.path().join("gateway.log"));
    let ready = format!("https://127.0.0.1:{port}/healthz");
    tokio::task::spawn_blocking(move || wait_http_ok(&ready, "depproxy gateway over TLS")).await.unwrap();
    let response = trusting(&tls.ca_cert)
        .get(format!("https://127.0.0.1:{port}/v2/lab/x/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.bytes().await.unwrap().as_ref(), layer.as_slice());
    assert!(crate::support::client().get(format!("http://127.0.0.1:{port}/v2/")).send().await.is_err());
}
