//! The gateway↔control contract at its edges, on real sockets: the control plane refuses anything
//! unsigned, mis-signed or replayed on every route; the injector header only ever comes from the
//! control plane, and a gateway acts on none that is not signed for the request it answers.

use std::sync::Arc;

use crate::support::{Options, TestProxy, client, spawn_server};
use axum::response::IntoResponse as _;
use depproxy::app::{ControlAddress, ListenOptions, Runtime};
use depproxy::config::{AdminListen, Config, FileConfig, Overrides};
use http::StatusCode;
use injector::{
    CONTRACT_VERSION, CONTRACT_VERSION_HEADER, INTERNAL_TOKEN_HEADER, Purpose, RequestSigner, RequestTarget,
    RequestVerifier, SEND_DATA_HEADER, SEND_DATA_SIGNATURE_HEADER, Secret,
};
use testkit::FakeRegistry;

/// A role's configuration on a port of the system's choice, without the admin API.
fn config_for(upstream: &str, dir: &tempfile::TempDir) -> Config {
    let overrides = Overrides {
        data_dir: Some(dir.path().to_owned()),
        upstream: Some(upstream.to_owned()),
        listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    let file = FileConfig { admin_listen: Some(AdminListen::Off), ..FileConfig::default() };
    Config::resolve(file, &overrides).unwrap()
}

async fn control_plane(upstream: &str) -> (String, Secret, tempfile::TempDir) {
    crate::support::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(upstream, &dir);
    let secret = Secret::from_bytes([9; 32]);
    let control =
        depproxy::app::run_control(&config, &secret, ListenOptions::default(), Runtime::default(), never())
            .await
            .unwrap();
    (format!("http://{}", control.address), secret, dir)
}

/// A gateway started as `depproxy gateway` starts, deciding through the control plane at
/// `control_url`: its URL, and the supervisor of its fills.
async fn gateway_of(config: &Config, control_url: &str, secret: &Secret) -> (String, supervisor::Supervisor) {
    let control = ControlAddress { url: control_url.to_owned(), ca: None };
    let gateway = depproxy::app::run_gateway(
        config,
        &control,
        secret,
        ListenOptions::default(),
        Runtime::default(),
        never(),
    )
    .await
    .unwrap();
    (format!("http://{}", gateway.address), gateway.supervisor)
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

fn token(secret: &Secret, purpose: Purpose, method: &http::Method, path: &str, body: &[u8]) -> String {
    // Signed for the headers the control plane will see: reqwest sends `Accept: */*`.
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    RequestSigner::new(secret)
        .sign(purpose, RequestTarget { method, path_and_query: path, headers: &headers }, body)
        .token
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
    let other_secret = Secret::from_bytes([1; 32]);
    for (method, path) in &routes {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let purpose = if method == http::Method::POST { Purpose::Upload } else { Purpose::Forward };
        let unsigned = client().request(method.clone(), format!("{url}{path}")).send().await.unwrap();
        assert_eq!(unsigned.status(), StatusCode::FORBIDDEN, "unsigned {method} {path}");
        let forged = client()
            .request(method.clone(), format!("{url}{path}"))
            .header(INTERNAL_TOKEN_HEADER, token(&other_secret, purpose, &method, path, b""))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "forged {method} {path}");
        assert!(forged.headers().get(SEND_DATA_HEADER).is_none());
    }
    // A forwarded-request token cannot be used for an upload call.
    let upload = format!("/v2/lab/x/blobs/{digest}/upload");
    let replayed = client()
        .post(format!("{url}{upload}"))
        .header(INTERNAL_TOKEN_HEADER, token(&secret, Purpose::Forward, &http::Method::POST, &upload, b""))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::FORBIDDEN);
    // A properly signed request is answered with a signed injector.
    let blob = format!("/v2/lab/x/blobs/{digest}");
    let signed = client()
        .get(format!("{url}{blob}"))
        .header(INTERNAL_TOKEN_HEADER, token(&secret, Purpose::Forward, &http::Method::GET, &blob, b""))
        .header(CONTRACT_VERSION_HEADER, CONTRACT_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    assert!(signed.headers().contains_key(SEND_DATA_SIGNATURE_HEADER));
    let injector = injector::Injector::decode(signed.headers()[SEND_DATA_HEADER].to_str().unwrap()).unwrap();
    assert_eq!(injector.kind(), "send-dependency");
    assert!(upstream.count("GET", "/blobs/") == 0, "the control plane never fetches blob bytes");
}

#[tokio::test]
async fn a_recorded_internal_request_cannot_be_sent_again() {
    let upstream = FakeRegistry::start().await;
    let digest = upstream.put_blob(b"x".to_vec());
    let (url, secret, _dir) = control_plane(&upstream.url()).await;
    let blob = format!("/v2/lab/x/blobs/{digest}");
    let recorded = token(&secret, Purpose::Forward, &http::Method::GET, &blob, b"");
    let send = || {
        client()
            .get(format!("{url}{blob}"))
            .header(INTERNAL_TOKEN_HEADER, &recorded)
            .header(CONTRACT_VERSION_HEADER, CONTRACT_VERSION)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().contains_key(SEND_DATA_HEADER));
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN, "the replayed token is refused");
    assert!(again.headers().get(SEND_DATA_HEADER).is_none());
    // An upload call replayed, body and all, records nothing twice.
    let authorize = format!("{blob}/upload/authorize");
    let body = serde_json::to_vec(&injector::AuthorizeRequest {
        v: injector::CONTRACT_VERSION,
        kind: oci::ObjectKind::Blob,
        digest: Some(digest.clone()),
        size: Some(1),
        node: "gateway-1".into(),
        renew: None,
    })
    .unwrap();
    let recorded = token(&secret, Purpose::Upload, &http::Method::POST, &authorize, &body);
    let send = || {
        client()
            .post(format!("{url}{authorize}"))
            .header(INTERNAL_TOKEN_HEADER, &recorded)
            .header(CONTRACT_VERSION_HEADER, CONTRACT_VERSION)
            .body(body.clone())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_client_cannot_inject_an_injector() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let fake = injector::Injector::SendBlob(injector::SendBlob {
        v: injector::CONTRACT_VERSION,
        key: "blobs/sha256/aa/aa".into(),
        digest: oci::Digest::of(b"secret"),
        size: 6,
        media_type: "application/octet-stream".into(),
        headers: Vec::new(),
        digest_header: None,
        may_redirect: false,
        group: String::new(),
        upstream: String::new(),
        transform: Vec::new(),
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

/// How the fake control plane signs its injector.
#[derive(Clone, Copy, Debug)]
enum Signing {
    /// Not at all.
    Unsigned,
    /// With a signature recorded from another request.
    ForAnotherRequest,
    /// With the shared secret, for this request: what a real control plane does.
    Genuine,
}

/// A fake control plane that answers every request with `send-dependency` for `url` — what a
/// man in the middle would send to make the gateway fetch a URL of its choosing.
async fn fake_control_plane(
    secret: &Secret,
    upstream: String,
    url: String,
    digest: oci::Digest,
    signing: Signing,
) -> String {
    let verifier = RequestVerifier::new(secret);
    let signer = RequestSigner::new(secret);
    let injector = injector::Injector::SendDependency(Box::new(injector::SendDependency {
        v: injector::CONTRACT_VERSION,
        kind: oci::ObjectKind::Blob,
        fill_key: "default/blob/ssrf".into(),
        // The upstream `--upstream` makes (see `config_for`), named after its host.
        sources: vec![injector::Source {
            upstream,
            url,
            headers: vec![("Authorization".into(), "Bearer stolen".into())],
        }],
        group: "default".into(),
        verify: Some(injector::Checksum::from(&digest)),
        max_size: 1 << 20,
        upload: injector::UploadRoutes::for_object("/v2/x/blobs/sha256:00", None),
        response_headers: Vec::new(),
        digest_header: Some(oci::CONTENT_DIGEST_HEADER.into()),
        delivery: injector::Delivery::Streamed,
        accept: None,
        default_media_type: oci::media::OCTET_STREAM.into(),
        references: None,
        object: String::new(),
        transform: Vec::new(),
        client: None,
        hold: None,
        errors: Default::default(),
        archive_check: None,
    }))
    .encode()
    .unwrap();
    let state = Arc::new((verifier, signer, injector));
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let state = state.clone();
        async move {
            let (verifier, signer, injector) = &*state;
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(SEND_DATA_HEADER, injector.parse().unwrap());
            let signature = match signing {
                Signing::Unsigned => None,
                Signing::ForAnotherRequest => {
                    let get = http::Method::GET;
                    let none = http::HeaderMap::new();
                    let other = signer.sign(
                        Purpose::Forward,
                        RequestTarget { method: &get, path_and_query: "/v2/", headers: &none },
                        b"",
                    );
                    let target = RequestTarget { method: &get, path_and_query: "/v2/", headers: &none };
                    let verified = verifier.verify(Some(&other.token), Purpose::Forward, target).unwrap();
                    verifier.sign_answer(&verified, injector.as_bytes())
                }
                Signing::Genuine => {
                    let token =
                        request.headers().get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
                    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
                    let target = RequestTarget {
                        method: request.method(),
                        path_and_query: path,
                        headers: request.headers(),
                    };
                    // Upload calls (Purpose::Upload) are not this fake's business.
                    match verifier.verify(token, Purpose::Forward, target) {
                        Ok(verified) => verifier.sign_answer(&verified, injector.as_bytes()),
                        Err(_) => return StatusCode::FORBIDDEN.into_response(),
                    }
                }
            };
            if let Some(signature) = signature {
                response.headers_mut().insert(SEND_DATA_SIGNATURE_HEADER, signature.parse().unwrap());
            }
            response
        }
    });
    spawn_server(router).await
}

#[tokio::test]
async fn a_gateway_acts_on_no_injector_its_control_plane_did_not_sign_for_the_request() {
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    // The "internal" target the forged injector points at, with credentials attached.
    let target = upstream.put_blob(b"internal secret".to_vec());
    let target_url = format!("{}/v2/x/blobs/{target}", upstream.url());
    let secret = Secret::from_bytes([5; 32]);
    for signing in [Signing::Unsigned, Signing::ForAnotherRequest, Signing::Genuine] {
        upstream.clear_log();
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&upstream.url(), &dir);
        let name = config.upstreams[0].name.clone();
        let control_url =
            fake_control_plane(&secret, name, target_url.clone(), target.clone(), signing).await;
        let (gateway_url, _) = gateway_of(&config, &control_url, &secret).await;
        let response = client().get(format!("{gateway_url}/v2/lab/x/blobs/{target}")).send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        match signing {
            Signing::Genuine => {
                // The harness works: a signed injector is executed.
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body.as_ref(), b"internal secret");
                assert_eq!(upstream.count("GET", "/blobs/"), 1);
            }
            Signing::Unsigned | Signing::ForAnotherRequest => {
                assert_eq!(status, StatusCode::BAD_GATEWAY, "{signing:?}");
                let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(error["errors"][0]["code"], "UNKNOWN", "an OCI error: {error}");
                assert_eq!(upstream.count("GET", "/blobs/"), 0, "{signing:?}: the forged URL was fetched");
            }
        }
    }
}

/// The verdicts a control plane was asked for.
type VerdictCalls = Arc<std::sync::Mutex<Vec<injector::VerdictRequest>>>;

/// A control plane that answers every client request with `send-dependency` for `url`, verified
/// against `verify`; authorizes every upload to be stored and records the finalize calls. With
/// `held`, the fill is held for an admission verdict, which it answers as given, recording the
/// calls.
async fn verifying_control_plane(
    secret: &Secret,
    upstream: String,
    url: String,
    verify: Option<injector::Checksum>,
    transform: Vec<injector::Replace>,
    held: Option<(injector::Verdict, VerdictCalls)>,
) -> (String, Arc<std::sync::Mutex<Vec<injector::FinalizeRequest>>>) {
    let finalized = Arc::new(std::sync::Mutex::new(Vec::new()));
    let injector = injector::Injector::SendDependency(Box::new(injector::SendDependency {
        v: CONTRACT_VERSION,
        kind: oci::ObjectKind::Blob,
        fill_key: format!("default/file/{verify:?}"),
        sources: vec![injector::Source { upstream, url, headers: Vec::new() }],
        group: "default".into(),
        verify,
        max_size: 1 << 20,
        upload: injector::UploadRoutes::for_object("/v2/x/blobs/sha256:00", None),
        response_headers: Vec::new(),
        digest_header: Some(oci::CONTENT_DIGEST_HEADER.into()),
        delivery: injector::Delivery::Streamed,
        accept: None,
        default_media_type: oci::media::OCTET_STREAM.into(),
        references: None,
        object: String::new(),
        transform,
        client: None,
        hold: held.is_some().then_some(injector::Hold { decides_within_ms: 5_000 }),
        errors: Default::default(),
        archive_check: None,
    }))
    .encode()
    .unwrap();
    let state = Arc::new((RequestVerifier::new(secret), injector, finalized.clone(), held));
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let state = state.clone();
        async move {
            let (verifier, injector, finalized, held) = &*state;
            let path = request.uri().path().to_owned();
            if path.ends_with("/upload/verdict") {
                let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
                let (verdict, calls) = held.as_ref().expect("a verdict asked of an unheld fill");
                calls.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                return axum::Json(verdict.clone()).into_response();
            }
            if path.ends_with("/upload/authorize") {
                let answer = injector::Authorization {
                    v: CONTRACT_VERSION,
                    decision: injector::UploadDecision::Store,
                    max_size: 1 << 20,
                    lease_id: Some("lease".into()),
                    lease_seconds: Some(30),
                };
                return axum::Json(answer).into_response();
            }
            if path.ends_with("/upload") {
                let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
                finalized.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                return StatusCode::NO_CONTENT.into_response();
            }
            let token = request.headers().get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
            let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let target =
                RequestTarget { method: request.method(), path_and_query, headers: request.headers() };
            let Ok(verified) = verifier.verify(token, Purpose::Forward, target) else {
                return StatusCode::FORBIDDEN.into_response();
            };
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(SEND_DATA_HEADER, injector.parse().unwrap());
            let signature = verifier.sign_answer(&verified, injector.as_bytes()).unwrap();
            response.headers_mut().insert(SEND_DATA_SIGNATURE_HEADER, signature.parse().unwrap());
            response
        }
    });
    (spawn_server(router).await, finalized)
}

/// A file an upstream published a sha512 (npm's `integrity`) or a sha1 (Maven's `.sha1`) for:
/// the gateway verifies it in that algorithm while it stores it under its sha256; a mismatch
/// stores nothing, records nothing and cuts the client off.
#[tokio::test]
async fn a_fill_is_verified_in_the_algorithm_the_control_plane_names() {
    use injector::{Checksum, ChecksumAlgorithm};
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let bytes = b"a package file, checked in its upstream's own algorithm".to_vec();
    let stored = upstream.put_blob(bytes.clone());
    let file_url = format!("{}/v2/x/blobs/{stored}", upstream.url());
    let secret = Secret::from_bytes([6; 32]);
    for algorithm in [ChecksumAlgorithm::Sha512, ChecksumAlgorithm::Sha1] {
        for right in [true, false] {
            let declared = Checksum::of(algorithm, if right { &bytes } else { b"something else" });
            let dir = tempfile::tempdir().unwrap();
            let config = config_for(&upstream.url(), &dir);
            let name = config.upstreams[0].name.clone();
            let (control_url, finalized) = verifying_control_plane(
                &secret,
                name,
                file_url.clone(),
                Some(declared.clone()),
                Vec::new(),
                None,
            )
            .await;
            let (gateway_url, supervisor) = gateway_of(&config, &control_url, &secret).await;
            let response =
                client().get(format!("{gateway_url}/v2/lab/x/blobs/{stored}")).send().await.unwrap();
            let status = response.status();
            let body = response.bytes().await;
            supervisor.shutdown(std::time::Duration::from_secs(10)).await;
            let object = dir.path().join("blobs/sha256").join(&stored.hex()[..2]).join(stored.hex());
            let finalized = finalized.lock().unwrap().clone();
            if right {
                assert_eq!(status, StatusCode::OK, "{declared}");
                assert_eq!(body.unwrap().as_ref(), bytes.as_slice(), "{declared}");
                assert_eq!(finalized.len(), 1, "{declared}: recorded once");
                assert_eq!(finalized[0].digest, stored, "stored under its sha256");
                assert_eq!(std::fs::read(&object).unwrap(), bytes, "{declared}");
            } else {
                // Cut off mid-body, or — when the fill failed before this client had its status
                // line — an error status: never a complete 200.
                let complete = status == StatusCode::OK && body.is_ok();
                assert!(!complete, "{declared}: a mismatch never reaches the client as a whole body");
                assert!(finalized.is_empty(), "{declared}: nothing recorded");
                assert!(!object.exists(), "{declared}: nothing stored");
            }
        }
    }
}

/// A gateway of an older contract version — 1 (no version header), or 2 (one upstream per fill,
/// before ordered upstreams) — meeting this control plane is told so, in words that say what to
/// do, instead of being handed injectors it would misread.
#[tokio::test]
async fn a_gateway_of_another_contract_version_is_refused_clearly() {
    let upstream = FakeRegistry::start().await;
    let digest = upstream.put_blob(b"x".to_vec());
    let (url, secret, _dir) = control_plane(&upstream.url()).await;
    let blob = format!("/v2/lab/x/blobs/{digest}");
    for version in [None, Some("1"), Some("2")] {
        let mut request = client()
            .get(format!("{url}{blob}"))
            .header(INTERNAL_TOKEN_HEADER, token(&secret, Purpose::Forward, &http::Method::GET, &blob, b""));
        if let Some(version) = version {
            request = request.header(CONTRACT_VERSION_HEADER, version);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{version:?}");
        assert!(response.headers().get(SEND_DATA_HEADER).is_none());
        let body = response.text().await.unwrap();
        assert!(body.contains("same depproxy version on gateways and control planes"), "{body}");
    }
}

/// A document whose URLs must name the proxy: the client gets it rewritten as it streams (no
/// `Content-Length`: the length changes), and what is stored and recorded is the upstream's bytes.
#[tokio::test]
async fn a_document_reaches_the_client_rewritten_and_is_stored_as_the_upstream_sent_it() {
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let document =
        br#"{"versions":{"1.0.0":{"dist":{"tarball":"https://npm.example.com/a/-/a-1.0.0.tgz"}}}}"#.to_vec();
    let stored = upstream.put_blob(document.clone());
    let secret = Secret::from_bytes([7; 32]);
    let transform = vec![injector::Replace {
        from: "https://npm.example.com/".into(),
        to: "http://proxy.example.com:5000/npm/js/".into(),
    }];
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&upstream.url(), &dir);
    let name = config.upstreams[0].name.clone();
    let url = format!("{}/v2/x/blobs/{stored}", upstream.url());
    let (control_url, finalized) = verifying_control_plane(&secret, name, url, None, transform, None).await;
    let (gateway_url, supervisor) = gateway_of(&config, &control_url, &secret).await;
    let response = client().get(format!("{gateway_url}/v2/lab/x/blobs/{stored}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(http::header::CONTENT_LENGTH).is_none());
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        r#"{"versions":{"1.0.0":{"dist":{"tarball":"http://proxy.example.com:5000/npm/js/a/-/a-1.0.0.tgz"}}}}"#
    );
    supervisor.shutdown(std::time::Duration::from_secs(10)).await;
    let finalized = finalized.lock().unwrap().clone();
    assert_eq!(finalized.len(), 1);
    assert_eq!(finalized[0].digest, stored, "recorded as the upstream's bytes");
    let object = dir.path().join("blobs/sha256").join(&stored.hex()[..2]).join(stored.hex());
    assert_eq!(std::fs::read(object).unwrap(), document);
}

/// A held fill (its group's admission hook must allow it) of an artifact served as it streams:
/// the gateway gives its clients nothing — not a status line — before the verdict, asked with the
/// digest and size of the bytes; allowed, the clients get them (a range too) and the object is
/// stored; refused, they get 403 with the control plane's reason and nothing is stored.
#[tokio::test]
async fn a_held_fill_answers_its_clients_only_after_the_verdict() {
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let bytes = b"a package archive a scanner must see first".to_vec();
    let stored = upstream.put_blob(bytes.clone());
    let file_url = format!("{}/v2/x/blobs/{stored}", upstream.url());
    let secret = Secret::from_bytes([7; 32]);
    for allow in [true, false] {
        upstream.clear_log();
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&upstream.url(), &dir);
        let name = config.upstreams[0].name.clone();
        let reason = if allow {
            String::new()
        } else {
            "x@1.0 is refused by group default's admission hook: malware".into()
        };
        let verdict = injector::Verdict { v: CONTRACT_VERSION, allow, reason: reason.clone() };
        let calls = VerdictCalls::default();
        let checksum = Some(injector::Checksum::from(&stored));
        let (control_url, finalized) = verifying_control_plane(
            &secret,
            name.clone(),
            file_url.clone(),
            checksum,
            Vec::new(),
            Some((verdict, calls.clone())),
        )
        .await;
        let (gateway_url, supervisor) = gateway_of(&config, &control_url, &secret).await;
        let url = format!("{gateway_url}/v2/lab/x/blobs/{stored}");
        let whole = client().get(&url).send().await.unwrap();
        let ranged = client().get(&url).header(http::header::RANGE, "bytes=2-8").send().await.unwrap();
        let object = dir.path().join("blobs/sha256").join(&stored.hex()[..2]).join(stored.hex());
        if allow {
            assert_eq!(whole.status(), StatusCode::OK);
            assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());
            assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(ranged.bytes().await.unwrap().as_ref(), &bytes[2..=8]);
        } else {
            for response in [whole, ranged] {
                assert_eq!(response.status(), StatusCode::FORBIDDEN);
                let error: serde_json::Value = response.json().await.unwrap();
                assert_eq!(error["errors"][0]["code"], "DENIED", "{error}");
                assert_eq!(error["errors"][0]["message"], reason.as_str(), "{error}");
                assert_eq!(error["errors"][0]["detail"]["rule"], "admission_hook", "{error}");
            }
        }
        supervisor.shutdown(std::time::Duration::from_secs(10)).await;
        // This control plane answers every request with a fill: the second request joins the
        // first fill while it commits, or starts one of its own. Each fill asks once.
        let calls = calls.lock().unwrap().clone();
        let fills = upstream.count("GET", "/blobs/");
        assert!(fills >= 1 && calls.len() == fills, "each fill asked once: {calls:?}, {fills} fills");
        assert!(
            calls.iter().all(|call| call.digest == stored
                && call.size == bytes.len() as u64
                && call.upstream == name),
            "{calls:?}"
        );
        let finalized = finalized.lock().unwrap().clone();
        assert_eq!(
            finalized.len(),
            if allow { fills } else { 0 },
            "allow {allow}: recorded only when allowed"
        );
        assert_eq!(object.exists(), allow, "allow {allow}: stored only when allowed");
    }
}
