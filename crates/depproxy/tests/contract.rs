//! The gateway↔control contract at its edges: the control plane refuses anything unsigned on every
//! route, and the injector header only ever comes from the control plane.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use depproxy::config::{Config, FileConfig, Overrides};
use http::StatusCode;
use injector::{INTERNAL_TOKEN_HEADER, Purpose, RequestSigner, SEND_DATA_HEADER, Secret};
use support::{Options, TestProxy, client, spawn_server};
use testkit::FakeRegistry;

async fn control_plane(upstream: &str) -> (String, Secret, tempfile::TempDir) {
    support::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_owned()),
        upstream: Some(upstream.to_owned()),
        listen: None,
    };
    let config = Config::resolve(FileConfig::default(), &overrides).unwrap();
    let secret = Secret::from_bytes([9; 32]);
    let router =
        depproxy::app::control_router(&config, &secret, &depproxy::app::Runtime::default()).await.unwrap();
    (spawn_server(router).await, secret, dir)
}

#[tokio::test]
async fn control_plane_refuses_unsigned_and_mis_signed_requests_on_every_route() {
    let upstream = FakeRegistry::start().await;
    let digest = upstream.put_blob(b"x".to_vec());
    let (url, secret, _dir) = control_plane(&upstream.url()).await;
    let routes = [
        ("GET", "/v2/".to_owned()),
        ("GET", "/v2/lab/x/manifests/v1".to_owned()),
        ("HEAD", format!("/v2/lab/x/blobs/{digest}")),
        ("POST", format!("/v2/lab/x/blobs/{digest}/upload/authorize")),
        ("POST", format!("/v2/lab/x/blobs/{digest}/upload")),
        ("GET", "/v2/nowhere/at/all".to_owned()),
    ];
    let forged = RequestSigner::new(&Secret::from_bytes([1; 32])).sign(Purpose::Forward).unwrap();
    let forward = RequestSigner::new(&secret).sign(Purpose::Forward).unwrap();
    for (method, path) in &routes {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let unsigned = client().request(method.clone(), format!("{url}{path}")).send().await.unwrap();
        assert_eq!(unsigned.status(), StatusCode::FORBIDDEN, "unsigned {method} {path}");
        let forged = client()
            .request(method.clone(), format!("{url}{path}"))
            .header(INTERNAL_TOKEN_HEADER, &forged)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "forged {method} {path}");
        assert!(forged.headers().get(SEND_DATA_HEADER).is_none());
    }
    // A forwarded-request token cannot be used for an upload call.
    let replayed = client()
        .post(format!("{url}/v2/lab/x/blobs/{digest}/upload"))
        .header(INTERNAL_TOKEN_HEADER, &forward)
        .body(r#"{"v":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::FORBIDDEN);
    // A properly signed request is answered with an injector.
    let signed = client()
        .get(format!("{url}/v2/lab/x/blobs/{digest}"))
        .header(INTERNAL_TOKEN_HEADER, &forward)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    let injector = injector::Injector::decode(signed.headers()[SEND_DATA_HEADER].to_str().unwrap()).unwrap();
    assert_eq!(injector.kind(), "send-dependency");
    assert!(upstream.count("GET", "/blobs/") == 0, "the control plane never fetches blob bytes");
}

#[tokio::test]
async fn a_client_cannot_inject_an_injector() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let fake = injector::Injector::SendBlob(injector::SendBlob {
        v: 1,
        key: "blobs/sha256/aa/aa".into(),
        digest: oci::Digest::of(b"secret"),
        size: 6,
        media_type: "application/octet-stream".into(),
        headers: Vec::new(),
        group: String::new(),
    })
    .encode()
    .unwrap();
    let response = client()
        .get(format!("{}/v2/", proxy.url))
        .header(SEND_DATA_HEADER, &fake)
        .header(INTERNAL_TOKEN_HEADER, "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(SEND_DATA_HEADER).is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"{}");
}
