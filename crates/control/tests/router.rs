//! The control plane exercised as a `tower::Service` (`oneshot`, no socket): authentication, the
//! decisions it renders, the upload calls and their checks, against a real SQLite database and a
//! fake upstream registry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use control::{ControlParts, ControlPlane};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use injector::{
    Authorization, AuthorizeRequest, CONTRACT_VERSION, FinalizeRequest, INTERNAL_TOKEN_HEADER, Injector,
    Purpose, RequestSigner, RequestTarget, RequestVerifier, SEND_DATA_HEADER, SEND_DATA_SIGNATURE_HEADER,
    Secret, SignedRequest, UploadDecision,
};
use oci::{Digest, ObjectKind};
use testkit::FakeRegistry;
use tower::ServiceExt as _;

struct Setup {
    router: axum::Router,
    cache: std::sync::Arc<cache::Cache>,
    signer: RequestSigner,
    upstream: FakeRegistry,
    _database: tempfile::TempDir,
}

async fn setup() -> Setup {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let upstream = FakeRegistry::start().await;
    let test = cache::testing::test_cache(&upstream.url(), true, None).await;
    let secret = Secret::from_bytes([9; 32]);
    let tokens = access::TokenRegistry::new(test.metadata.clone(), test.clock.clone());
    let settings = access::AccessSettings {
        token_ttl: std::time::Duration::from_secs(300),
        refresh_token_ttl: std::time::Duration::from_secs(3600),
        failed_logins_per_minute: 10,
    };
    let access = access::Access::new(tokens, access::JwtKeys::new(&Secret::from_bytes([7; 32])), settings);
    let cache = std::sync::Arc::new(test.cache);
    let control = ControlPlane::new(ControlParts {
        cache: cache.clone(),
        verifier: RequestVerifier::new(&secret),
        access: std::sync::Arc::new(access),
        public_url: None,
        trusted_proxies: access::TrustedProxies::default(),
        fill_reports: None,
    });
    Setup {
        router: control.router(),
        cache,
        signer: RequestSigner::new(&secret),
        upstream,
        _database: test.dir,
    }
}

impl Setup {
    /// A one-time token for this request, as a gateway signs it.
    fn sign(&self, purpose: Purpose, method: &Method, path: &str, body: &[u8]) -> SignedRequest {
        let headers = http::HeaderMap::new();
        self.signer.sign(purpose, RequestTarget { method, path_and_query: path, headers: &headers }, body)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        purpose: Option<Purpose>,
        body: &[u8],
    ) -> Response<Body> {
        let token = purpose.map(|purpose| self.sign(purpose, &method, path, body).token);
        self.send(method, path, token.as_deref(), body).await
    }

    /// Sends a request with this token (or none) as is.
    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: &[u8]) -> Response<Body> {
        let mut request =
            Request::builder().method(method).uri(path).body(Body::from(body.to_vec())).unwrap();
        if let Some(token) = token {
            request.headers_mut().insert(INTERNAL_TOKEN_HEADER, token.parse().unwrap());
            request.headers_mut().insert(injector::CONTRACT_VERSION_HEADER, CONTRACT_VERSION.into());
        }
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, path: &str) -> Response<Body> {
        self.call(Method::GET, path, Some(Purpose::Forward), b"").await
    }

    async fn upload<T: serde::Serialize>(&self, path: &str, message: &T) -> Response<Body> {
        self.call(Method::POST, path, Some(Purpose::Upload), &serde_json::to_vec(message).unwrap()).await
    }
}

fn injector_of(response: &Response<Body>) -> Injector {
    assert_eq!(response.status(), StatusCode::OK);
    Injector::from_header_value(&response.headers()[SEND_DATA_HEADER]).unwrap()
}

async fn error_code(response: Response<Body>) -> String {
    error_of(response).await["code"].as_str().unwrap().to_owned()
}

/// The first error of an OCI error envelope.
async fn error_of(response: Response<Body>) -> serde_json::Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    value["errors"][0].clone()
}

fn authorize_call(digest: &Digest) -> AuthorizeRequest {
    AuthorizeRequest {
        v: CONTRACT_VERSION,
        kind: ObjectKind::Blob,
        digest: Some(digest.clone()),
        size: Some(5),
        node: "gateway-1".into(),
        renew: None,
    }
}

fn finalize_call(digest: &Digest) -> FinalizeRequest {
    FinalizeRequest {
        v: CONTRACT_VERSION,
        kind: ObjectKind::Blob,
        digest: digest.clone(),
        size: 5,
        media_type: "application/octet-stream".into(),
        key: injector::storage_key(digest),
        lease_id: None,
        references: Vec::new(),
        upstream: "lab".into(),
        files: Vec::new(),
    }
}

#[tokio::test]
async fn only_signed_requests_for_the_right_purpose_are_answered() {
    let setup = setup().await;
    let upload_route = format!("/v2/lab/app/blobs/{}/upload", Digest::of(b"x"));
    for (method, path, purpose) in [
        (Method::GET, "/v2/", None),
        (Method::GET, "/v2/", Some(Purpose::Upload)),
        (Method::POST, upload_route.as_str(), Some(Purpose::Forward)),
        (Method::POST, "/v2/token", Some(Purpose::Upload)),
    ] {
        let response = setup.call(method.clone(), path, purpose, b"").await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path} {purpose:?}");
        assert_eq!(error_code(response).await, "DENIED");
    }
    let response = setup.get("/v2/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[oci::API_VERSION_HEADER], oci::API_VERSION);
}

#[tokio::test]
async fn the_client_address_and_credentials_of_a_signed_request_cannot_be_swapped() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}");
    let mut signed_headers = http::HeaderMap::new();
    signed_headers.insert(injector::CLIENT_ADDRESS_HEADER, "10.0.0.7".parse().unwrap());
    signed_headers.insert(http::header::AUTHORIZATION, "Basic Y2xpZW50OnNlY3JldA==".parse().unwrap());
    let target = RequestTarget { method: &Method::GET, path_and_query: &path, headers: &signed_headers };
    let token = setup.signer.sign(Purpose::Forward, target, b"").token;
    let send = |headers: http::HeaderMap| {
        let mut request = Request::builder().method(Method::GET).uri(&path).body(Body::empty()).unwrap();
        *request.headers_mut() = headers;
        request.headers_mut().insert(INTERNAL_TOKEN_HEADER, token.parse().unwrap());
        request.headers_mut().insert(injector::CONTRACT_VERSION_HEADER, CONTRACT_VERSION.into());
        setup.router.clone().oneshot(request)
    };
    let mut other_address = signed_headers.clone();
    other_address.insert(injector::CLIENT_ADDRESS_HEADER, "192.0.2.66".parse().unwrap());
    let mut other_credentials = signed_headers.clone();
    other_credentials.insert(http::header::AUTHORIZATION, "Basic bWU6Z3Vlc3M=".parse().unwrap());
    let mut forwarded_for = signed_headers.clone();
    forwarded_for.insert("x-forwarded-for", "10.1.1.1".parse().unwrap());
    for (what, headers) in [
        ("another address", other_address),
        ("other credentials", other_credentials),
        ("an X-Forwarded-For", forwarded_for),
    ] {
        let response = send(headers).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(error_code(response).await, "DENIED", "{what}");
    }
    // The headers it was signed with: answered (once).
    let response = send(signed_headers).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_is_good_for_its_own_request_once() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}");
    let signed = setup.sign(Purpose::Forward, &Method::GET, &path, b"");
    // Used for another path, query or method: refused.
    for (method, other) in [
        (Method::GET, format!("/v2/lab/app/blobs/{}", Digest::of(b"other"))),
        (Method::GET, format!("{path}?ns={}", setup.upstream.address())),
        (Method::HEAD, path.clone()),
    ] {
        let response = setup.send(method.clone(), &other, Some(&signed.token), b"").await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {other}");
    }
    let first = setup.send(Method::GET, &path, Some(&signed.token), b"").await;
    assert_eq!(first.status(), StatusCode::OK);
    // The very same request again, token and all: a replay.
    let replayed = setup.send(Method::GET, &path, Some(&signed.token), b"").await;
    assert_eq!(replayed.status(), StatusCode::FORBIDDEN);
    assert!(!replayed.headers().contains_key(SEND_DATA_HEADER));
    assert_eq!(error_code(replayed).await, "DENIED");

    // An upload call is bound to its body: the same token with another body is refused, and
    // nothing is recorded.
    let finalize = format!("{path}/upload");
    let body = serde_json::to_vec(&finalize_call(&digest)).unwrap();
    let signed = setup.sign(Purpose::Upload, &Method::POST, &finalize, &body);
    let mut bigger = finalize_call(&digest);
    bigger.size = 6;
    let tampered = serde_json::to_vec(&bigger).unwrap();
    let response = setup.send(Method::POST, &finalize, Some(&signed.token), &tampered).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a body the token was not signed for");
    assert!(matches!(injector_of(&setup.get(&path).await), Injector::SendDependency(_)));
    // Signed without a body, sent with one: refused too.
    let signed = setup.sign(Purpose::Upload, &Method::POST, &finalize, b"");
    let response = setup.send(Method::POST, &finalize, Some(&signed.token), &body).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn injectors_are_signed_for_the_request_they_answer() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}");
    let signed = setup.sign(Purpose::Forward, &Method::GET, &path, b"");
    let other = setup.sign(Purpose::Forward, &Method::GET, &path, b"");
    let response = setup.send(Method::GET, &path, Some(&signed.token), b"").await;
    let value = response.headers()[SEND_DATA_HEADER].as_bytes();
    let signature = response.headers().get(SEND_DATA_SIGNATURE_HEADER).map(|value| value.as_bytes());
    assert!(signature.is_some(), "every injector is signed");
    setup.signer.verify_answer(&signed.id, value, signature).unwrap();
    assert!(
        setup.signer.verify_answer(&other.id, value, signature).is_err(),
        "an answer does not verify for another request"
    );
    let foreign = RequestSigner::new(&Secret::from_bytes([1; 32]));
    assert!(foreign.verify_answer(&signed.id, value, signature).is_err());
    // Answers without an injector carry no signature.
    let base = setup.get("/v2/").await;
    assert!(!base.headers().contains_key(SEND_DATA_SIGNATURE_HEADER));
}

/// `depproxy serve` hands requests over in memory, marked: no token, no signature, the injector
/// typed; the same request without the mark (as from a socket) is refused.
#[tokio::test]
async fn in_process_requests_need_no_token_and_get_unsigned_answers() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}");
    let request = || Request::builder().uri(path.as_str()).body(Body::empty()).unwrap();
    let mut marked = request();
    marked.extensions_mut().insert(injector::InProcessCall);
    let response = setup.router.clone().oneshot(marked).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let typed = response.extensions().get::<Injector>();
    assert!(matches!(typed, Some(Injector::SendDependency(_))), "the injector stays typed in process");
    assert!(!response.headers().contains_key(SEND_DATA_HEADER), "nothing encoded");
    assert!(!response.headers().contains_key(SEND_DATA_SIGNATURE_HEADER), "nothing signed");
    let unmarked = setup.router.clone().oneshot(request()).await.unwrap();
    assert_eq!(unmarked.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(unmarked).await, "DENIED");
}

#[tokio::test]
async fn a_miss_then_authorize_and_finalize_then_a_hit() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}");
    let params = match injector_of(&setup.get(&path).await) {
        Injector::SendDependency(params) => params,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        params.first_url(),
        format!("{}/v2/app/blobs/{digest}", setup.upstream.url()),
        "the path prefix is stripped"
    );
    assert_eq!(params.upload.authorize, format!("{path}/upload/authorize"));
    let namespace = format!("ns={}", setup.upstream.address());
    match injector_of(&setup.get(&format!("{path}?{namespace}")).await) {
        Injector::SendDependency(params) => {
            assert_eq!(params.first_url(), format!("{}/v2/lab/app/blobs/{digest}", setup.upstream.url()));
            assert_eq!(
                params.upload.finalize,
                format!("{path}/upload?{namespace}"),
                "the upload resolves alike"
            );
        }
        other => panic!("{other:?}"),
    }

    let authorization = setup.upload(&format!("{path}/upload/authorize"), &authorize_call(&digest)).await;
    assert_eq!(authorization.status(), StatusCode::OK);
    let body = authorization.into_body().collect().await.unwrap().to_bytes();
    let answer: Authorization = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer.decision, UploadDecision::Store);
    assert_eq!(answer.max_size, 1 << 20);
    assert!(answer.lease_id.is_some(), "a lease keeps the sweeper away while the object is filled");

    let finalize = FinalizeRequest { lease_id: answer.lease_id.clone(), ..finalize_call(&digest) };
    let finalized = setup.upload(&format!("{path}/upload"), &finalize).await;
    assert_eq!(finalized.status(), StatusCode::NO_CONTENT);
    match injector_of(&setup.get(&path).await) {
        Injector::SendBlob(params) => {
            assert_eq!(params.key, injector::storage_key(&digest));
            assert_eq!(params.size, 5);
            assert_eq!(params.upstream, "lab", "recorded with the object");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn upload_calls_that_do_not_fit_their_path_are_refused() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}/upload");
    let other = Digest::of(b"other");
    let mut wrong_key = finalize_call(&digest);
    wrong_key.key = injector::storage_key(&other);
    let mut wrong_kind = finalize_call(&digest);
    wrong_kind.kind = ObjectKind::Manifest;
    let mut future_version = finalize_call(&digest);
    future_version.v = CONTRACT_VERSION + 1;
    let mut too_large = finalize_call(&digest);
    too_large.size = (1 << 20) + 1;
    let mut elsewhere = finalize_call(&digest);
    elsewhere.upstream = "elsewhere".into();
    for (what, call) in [
        ("another digest", finalize_call(&other)),
        ("a key that is not the digest's", wrong_key),
        ("a manifest call on a blob path", wrong_kind),
        ("a contract version this build does not speak", future_version),
        ("a size over the limit", too_large),
        ("an upstream the group does not have", elsewhere),
    ] {
        let response = setup.upload(&path, &call).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    let manifest_path = "/v2/lab/app/manifests/v1/upload";
    let mut not_a_manifest = finalize_call(&digest);
    not_a_manifest.kind = ObjectKind::Manifest;
    assert_eq!(setup.upload(manifest_path, &not_a_manifest).await.status(), StatusCode::BAD_REQUEST);
    let garbage = setup.call(Method::POST, &path, Some(Purpose::Upload), b"{").await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let not_a_route = setup.upload("/v2/lab/app/blobs/uploads/", &finalize_call(&digest)).await;
    assert_eq!(not_a_route.status(), StatusCode::FORBIDDEN, "an upload token is good for upload routes only");
    // Nothing was recorded: the blob is still a miss.
    assert!(matches!(
        injector_of(&setup.get(&format!("/v2/lab/app/blobs/{digest}")).await),
        Injector::SendDependency(_)
    ));
}

#[tokio::test]
async fn heads_of_uncached_objects_are_answered_directly() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let response =
        setup.call(Method::HEAD, &format!("/v2/lab/app/blobs/{digest}"), Some(Purpose::Forward), b"").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key(SEND_DATA_HEADER));
    assert_eq!(response.headers()[oci::CONTENT_DIGEST_HEADER], digest.to_string().as_str());
    assert_eq!(response.headers()[http::header::CONTENT_LENGTH], "5");
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 0);
}

#[tokio::test]
async fn unknown_groups_registries_and_methods_get_oci_errors() {
    let setup = setup().await;
    let unknown_group = setup.get("/v2/nope/dependency_proxy/containers/app/manifests/v1").await;
    assert_eq!(unknown_group.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown_group).await, "NAME_UNKNOWN");
    let unknown_registry = setup.get("/v2/app/manifests/v1?ns=evil.example.com").await;
    assert_eq!(unknown_registry.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown_registry).await, "NAME_UNKNOWN");
    let delete = setup.call(Method::DELETE, "/v2/lab/app/manifests/v1", Some(Purpose::Forward), b"").await;
    assert_eq!(delete.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(delete).await, "UNSUPPORTED");
    let bad_name = setup.get("/v2/Lab/manifests/v1").await;
    assert_eq!(error_code(bad_name).await, "NAME_INVALID");
}

#[tokio::test]
async fn tag_lists_pass_through() {
    let setup = setup().await;
    setup.upstream.put_image("app", "v1", &[b"layer"]);
    let response = setup.get("/v2/lab/app/tags/list").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["tags"], serde_json::json!(["v1"]));
}

#[tokio::test]
async fn token_requests_are_bounded_and_foreign_logins_never_count() {
    let setup = setup().await;
    let scopes = |count: usize| -> String {
        let scopes: Vec<String> = (0..count).map(|i| format!("scope=repository:img{i}:pull")).collect();
        format!("/v2/token?service=depproxy&{}", scopes.join("&"))
    };
    let path = scopes(33);
    let token = setup.sign(Purpose::Forward, &Method::GET, &path, b"").token;
    let too_many = setup.send(Method::GET, &path, Some(&token), b"").await;
    assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
    let body = too_many.into_body().collect().await.unwrap().to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(value["errors"][0]["message"].as_str().unwrap().contains("at most 32 scopes"), "{value}");
    assert_eq!(setup.get(&scopes(32)).await.status(), StatusCode::OK);

    // docker sends its Docker Hub login to our realm: refused, and never counted as a guess.
    let hub_login = "Basic bWU6ZG9ja2VyLWh1Yi1wYXNzd29yZA=="; // me:docker-hub-password
    for attempt in 0..30 {
        let path = "/v2/token?service=depproxy&scope=repository:img:pull";
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static(hub_login));
        headers.insert(injector::CLIENT_ADDRESS_HEADER, "198.51.100.9".parse().unwrap());
        let target = RequestTarget { method: &Method::GET, path_and_query: path, headers: &headers };
        let token = setup.signer.sign(Purpose::Forward, target, b"").token;
        let mut request = Request::builder().uri(path).body(Body::empty()).unwrap();
        *request.headers_mut() = headers;
        request.headers_mut().insert(INTERNAL_TOKEN_HEADER, token.parse().unwrap());
        request.headers_mut().insert(injector::CONTRACT_VERSION_HEADER, CONTRACT_VERSION.into());
        let response = setup.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
}

#[tokio::test]
async fn a_fill_report_larger_than_one_mib_is_refused_unread() {
    let setup = setup().await;
    let fill = serde_json::json!({"upstream": "lab", "kind": "blob", "object": "app@sha256:00", "phase": "streaming",
        "bytes_done": 1, "bytes_total": null, "rate": 1, "clients": 1, "started_at": 1});
    let report = |fills: usize| {
        serde_json::to_vec(&serde_json::json!({"node": "gateway-1", "fills": vec![fill.clone(); fills]}))
            .unwrap()
    };
    let small = report(10);
    let response =
        setup.call(Method::POST, injector::FILLS_REPORT_PATH, Some(Purpose::Forward), &small).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let large = report(injector::MAX_FILL_REPORT_BYTES / small.len() * 20);
    assert!(large.len() > injector::MAX_FILL_REPORT_BYTES && large.len() < 4 << 20);
    let response =
        setup.call(Method::POST, injector::FILLS_REPORT_PATH, Some(Purpose::Forward), &large).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_deny_rule_refuses_cached_and_uncached_content_and_names_itself() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"hello".to_vec());
    let path = format!("/v2/lab/app/blobs/{digest}");
    assert_eq!(
        setup.upload(&format!("{path}/upload"), &finalize_call(&digest)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(matches!(injector_of(&setup.get(&path).await), Injector::SendBlob(_)), "cached");

    let mut policy = cache::PullPolicy::open(std::time::Duration::from_secs(60));
    policy.names = cache::NameRules::new(&[], &["app".to_owned(), "tools/*:old".to_owned()], ':').unwrap();
    assert!(setup.cache.groups().replace_policy("default", policy));
    for refused in [path.clone(), "/v2/lab/app/manifests/v1".to_owned(), "/v2/lab/app/tags/list".to_owned()] {
        let response = setup.get(&refused).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{refused}");
        assert!(!response.headers().contains_key(SEND_DATA_HEADER));
        let error = error_of(response).await;
        assert_eq!(error["code"], "DENIED");
        assert!(
            error["message"].as_str().unwrap().contains("group default's rule deny = \"app\""),
            "{error}"
        );
        assert_eq!(error["detail"]["rule"], "deny \"app\"");
    }
    let tag_refused = error_of(setup.get("/v2/lab/tools/x/manifests/old").await).await;
    assert!(tag_refused["message"].as_str().unwrap().starts_with("tools/x:old is refused"), "{tag_refused}");
    assert_eq!(setup.upstream.count("GET", "/"), 0, "refused before any upstream request");
    assert_eq!(setup.upstream.count("HEAD", "/"), 0);
    assert!(matches!(
        injector_of(&setup.get("/v2/lab/tools/x/manifests/new").await),
        Injector::SendDependency(_)
    ));

    let mut allow_only = cache::PullPolicy::open(std::time::Duration::from_secs(60));
    allow_only.names = cache::NameRules::new(&["library/*".to_owned()], &[], ':').unwrap();
    assert!(setup.cache.groups().replace_policy("default", allow_only));
    let error = error_of(setup.get("/v2/lab/app/manifests/v1").await).await;
    assert_eq!((error["code"].as_str(), error["detail"]["rule"].as_str()), (Some("DENIED"), Some("allow")));
    assert!(error["message"].as_str().unwrap().contains("none of its allow patterns matches"), "{error}");
}

#[tokio::test]
async fn an_upstream_404_a_fill_reports_is_answered_from_memory() {
    let setup = setup().await;
    let path = "/v2/lab/app/manifests/v9";
    let params = match injector_of(&setup.get(path).await) {
        Injector::SendDependency(params) => params,
        other => panic!("{other:?}"),
    };
    assert_eq!(params.upload.not_found, format!("{path}/upload/not-found"));
    let wrong_kind = injector::NotFoundReport { v: CONTRACT_VERSION, kind: ObjectKind::Blob };
    assert_eq!(setup.upload(&params.upload.not_found, &wrong_kind).await.status(), StatusCode::BAD_REQUEST);
    let report = injector::NotFoundReport { v: CONTRACT_VERSION, kind: ObjectKind::Manifest };
    assert_eq!(setup.upload(&params.upload.not_found, &report).await.status(), StatusCode::NO_CONTENT);
    let response = setup.get(path).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error = error_of(response).await;
    assert_eq!(error["code"], "MANIFEST_UNKNOWN");
    assert!(error["message"].as_str().unwrap().contains("remembered for 1m"), "{error}");
    // Another tag is asked for as usual.
    assert!(matches!(injector_of(&setup.get("/v2/lab/app/manifests/v8").await), Injector::SendDependency(_)));
}
