//! Access control through the whole proxy (gateway + control plane, in process, on real sockets):
//! the isolation matrix — every kind of caller × every group × every URL form × every endpoint —
//! the docker token flow (GET with Basic, the OAuth2 POST form, refresh tokens), revocation of
//! registry tokens issued before it, failed-login limits per address, and `GET /v2/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use metadata::{Clock, Metadata};
use oci::{Digest, GroupPath};
use support::{Options, TestProxy, client};
use testkit::FakeRegistry;

/// One upstream's image.
struct Image {
    manifest: Digest,
    layer: Digest,
    layer_bytes: Vec<u8>,
}

struct World {
    proxy: TestProxy,
    upstreams: HashMap<&'static str, (FakeRegistry, Image)>,
    secrets: HashMap<&'static str, String>,
    metadata: Metadata,
}

async fn upstream(tag: &str) -> (FakeRegistry, Image) {
    let registry = FakeRegistry::start().await;
    let layer_bytes = format!("layer of upstream {tag}").into_bytes();
    let (manifest, layers) = registry.put_image("img", "v1", &[&layer_bytes]);
    registry.put_referrer("img", &manifest, "application/vnd.example.sbom");
    (registry, Image { manifest, layer: layers[0].clone(), layer_bytes })
}

/// Three upstreams, each with its own group: `default` (token; also the root-mirror form),
/// `team-b` (token), `open` (anonymous); all reachable by group form, `?ns=` and path prefix.
async fn world(top: &str, tables: &str) -> World {
    world_with(top, tables, false).await
}

/// [`world`], in split mode when `split`: the gateway reaches the control plane over HTTP.
async fn world_with(top: &str, tables: &str, split: bool) -> World {
    let mut upstreams = HashMap::new();
    for name in ["ua", "ub", "uc"] {
        upstreams.insert(name, upstream(name).await);
    }
    let config = format!(
        r#"
        {top}
        [[upstream]]
        name = "ua"
        url = "{}"
        path_prefix = true
        [[upstream]]
        name = "ub"
        url = "{}"
        path_prefix = true
        [[upstream]]
        name = "uc"
        url = "{}"
        path_prefix = true
        [[group]]
        path = "default"
        upstream = "ua"
        access = "token"
        [[group]]
        path = "team-b"
        upstream = "ub"
        access = "token"
        [[group]]
        path = "open"
        upstream = "uc"
        access = "anonymous"
        {tables}
        "#,
        upstreams["ua"].0.url(),
        upstreams["ub"].0.url(),
        upstreams["uc"].0.url()
    );
    let options = Options::toml(&config);
    let proxy = TestProxy::start(if split { options.split() } else { options }).await;
    let metadata = Metadata::connect(&proxy.config.database_url).await.unwrap();
    let clock = Clock::system();
    let group = |path: &str| GroupPath::parse(path).unwrap();
    let mut secrets = HashMap::new();
    for (name, groups, admin, expires_at) in [
        ("a", vec![group("default")], false, None),
        ("b", vec![group("team-b")], false, None),
        ("revoked", vec![group("default")], false, None),
        ("expired", vec![group("default")], false, Some(1)),
        ("admin", vec![], true, None),
    ] {
        let created = access::create_token(&metadata, &clock, name, groups, admin, expires_at).await.unwrap();
        secrets.insert(name, created.secret);
    }
    assert!(metadata.revoke_access_token("revoked", clock.now_ms()).await.unwrap());
    World { proxy, upstreams, secrets, metadata }
}

fn basic(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

impl World {
    /// A registry token from the token endpoint, as docker gets one (GET with Basic).
    async fn jwt(&self, secret: &str, scope: &str) -> String {
        let response = client()
            .get(format!("{}/v2/token?service=depproxy&scope={scope}", self.proxy.url))
            .header("authorization", basic("someone", secret))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["token"], body["access_token"]);
        body["token"].as_str().unwrap().to_owned()
    }

    async fn request(&self, method: &str, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut request = client().request(method.parse().unwrap(), format!("{}{path}", self.proxy.url));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap()
    }

    fn host(&self, upstream: &str) -> String {
        self.upstreams[upstream].0.address().to_string()
    }
}

/// Who calls, and how it presents itself.
struct Caller {
    name: &'static str,
    authorization: Option<String>,
    /// Groups it may pull from (beyond anonymous ones).
    grants: &'static [&'static str],
    /// Whether the proxy knows who it is (a valid token of ours): then 403, not 401.
    authenticated: bool,
}

#[tokio::test]
async fn isolation_matrix_every_caller_group_form_and_endpoint() {
    let world = world("", "[auth]\nfailed_logins_per_minute = 1000000\n").await;
    let jwt_a = world.jwt(&world.secrets["a"], "repository:img:pull").await;
    let jwt_b =
        world.jwt(&world.secrets["b"], "repository:team-b/dependency_proxy/containers/img:pull").await;
    let callers = [
        Caller { name: "anonymous", authorization: None, grants: &[], authenticated: false },
        Caller {
            name: "token a (Basic)",
            authorization: Some(basic("x", &world.secrets["a"])),
            grants: &["default"],
            authenticated: true,
        },
        Caller {
            name: "token a (JWT)",
            authorization: Some(format!("Bearer {jwt_a}")),
            grants: &["default"],
            authenticated: true,
        },
        Caller {
            name: "token b (Basic)",
            authorization: Some(basic("x", &world.secrets["b"])),
            grants: &["team-b"],
            authenticated: true,
        },
        Caller {
            name: "token b (JWT)",
            authorization: Some(format!("Bearer {jwt_b}")),
            grants: &["team-b"],
            authenticated: true,
        },
        Caller {
            name: "revoked",
            authorization: Some(basic("x", &world.secrets["revoked"])),
            grants: &[],
            authenticated: false,
        },
        Caller {
            name: "expired",
            authorization: Some(basic("x", &world.secrets["expired"])),
            grants: &[],
            authenticated: false,
        },
        Caller {
            name: "admin only",
            authorization: Some(basic("x", &world.secrets["admin"])),
            grants: &[],
            authenticated: true,
        },
        Caller {
            name: "docker hub credentials",
            authorization: Some(basic("me", "hub-password")),
            grants: &[],
            authenticated: false,
        },
        Caller {
            name: "forged JWT",
            authorization: Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x".into()),
            grants: &[],
            authenticated: false,
        },
    ];
    // (group, upstream, [(form, path prefix before the endpoint, query)])
    let ns = |upstream: &str| format!("?ns={}", world.host(upstream));
    let groups = [
        (
            "default",
            "ua",
            vec![
                ("group", "/v2/default/dependency_proxy/containers/img".to_owned(), String::new()),
                ("root", "/v2/img".to_owned(), String::new()),
                ("ns", "/v2/img".to_owned(), ns("ua")),
                ("prefix", "/v2/ua/img".to_owned(), String::new()),
            ],
        ),
        (
            "team-b",
            "ub",
            vec![
                ("group", "/v2/team-b/dependency_proxy/containers/img".to_owned(), String::new()),
                ("ns", "/v2/img".to_owned(), ns("ub")),
                ("prefix", "/v2/ub/img".to_owned(), String::new()),
            ],
        ),
        (
            "open",
            "uc",
            vec![
                ("group", "/v2/open/dependency_proxy/containers/img".to_owned(), String::new()),
                ("ns", "/v2/img".to_owned(), ns("uc")),
                ("prefix", "/v2/uc/img".to_owned(), String::new()),
            ],
        ),
    ];
    let mut cells = 0;
    for (group, upstream, forms) in &groups {
        let image = &world.upstreams[upstream].1;
        let endpoints = [
            ("GET", "manifest by tag", "/manifests/v1".to_owned()),
            ("GET", "manifest by digest", format!("/manifests/{}", image.manifest)),
            ("HEAD", "manifest HEAD", "/manifests/v1".to_owned()),
            ("GET", "blob", format!("/blobs/{}", image.layer)),
            ("HEAD", "blob HEAD", format!("/blobs/{}", image.layer)),
            ("GET", "tags/list", "/tags/list".to_owned()),
            ("GET", "referrers", format!("/referrers/{}", image.manifest)),
        ];
        for (form, base, query) in forms {
            for caller in &callers {
                let expected = if *group == "open" || caller.grants.contains(group) {
                    StatusCode::OK
                } else if caller.authenticated {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                };
                for (method, endpoint, suffix) in &endpoints {
                    let path = format!("{base}{suffix}{query}");
                    let response = world.request(method, &path, caller.authorization.as_deref()).await;
                    let status = response.status();
                    assert_eq!(
                        status, expected,
                        "{} × group {group} × {form} form × {endpoint} ({method} {path})",
                        caller.name
                    );
                    if status == StatusCode::UNAUTHORIZED {
                        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
                        let written = base.trim_start_matches("/v2/");
                        assert!(
                            challenge.starts_with(&format!("Bearer realm=\"{}/v2/token\"", world.proxy.url)),
                            "{challenge}"
                        );
                        assert!(
                            challenge.contains(&format!("scope=\"repository:{written}:pull\"")),
                            "{challenge}"
                        );
                        if *method == "GET" {
                            let body: serde_json::Value = response.json().await.unwrap();
                            assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
                        }
                    } else if status == StatusCode::FORBIDDEN && *method == "GET" {
                        let body: serde_json::Value = response.json().await.unwrap();
                        assert_eq!(body["errors"][0]["code"], "DENIED");
                    } else if *endpoint == "blob" {
                        assert_eq!(
                            response.bytes().await.unwrap(),
                            image.layer_bytes,
                            "{} got another upstream's bytes",
                            caller.name
                        );
                    }
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, 10 * 10 * 7);

    // A blob cached for one group is never served to another, whatever the form: their own
    // upstreams do not have it.
    world.proxy.fills_settled().await;
    let cached_in_a = &world.upstreams["ua"].1.layer;
    assert!(world.proxy.has_object(cached_in_a));
    for (path, authorization) in [
        (
            format!("/v2/team-b/dependency_proxy/containers/img/blobs/{cached_in_a}"),
            Some(basic("x", &world.secrets["b"])),
        ),
        (format!("/v2/ub/img/blobs/{cached_in_a}"), Some(basic("x", &world.secrets["b"]))),
        (format!("/v2/img/blobs/{cached_in_a}{}", ns("ub")), Some(basic("x", &world.secrets["b"]))),
        (format!("/v2/open/dependency_proxy/containers/img/blobs/{cached_in_a}"), None),
        (format!("/v2/uc/img/blobs/{cached_in_a}"), None),
    ] {
        let response = world.request("GET", &path, authorization.as_deref()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_token_endpoint_grants_only_allowed_scopes_by_get_and_by_oauth2_post() {
    let world = world("", "").await;
    let granted = |token: &str| -> Vec<String> {
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
        )
        .unwrap();
        assert!(claims.get("tid").is_some() || claims["sub"] == "anonymous");
        assert!(!claims.to_string().contains("dpp_"), "no secret in a JWT: {claims}");
        claims["access"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // GET with Basic, scopes repeated and space-separated; b may not have `default`'s image.
    let response = client()
        .get(format!(
            "{}/v2/token?service=depproxy&scope=repository:team-b/dependency_proxy/containers/img:pull&scope=repository:img:pull%20repository:open/dependency_proxy/containers/img:pull&offline_token=true&client_id=docker",
            world.proxy.url
        ))
        .header("authorization", basic("anyone", &world.secrets["b"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        granted(body["token"].as_str().unwrap()),
        vec!["open/dependency_proxy/containers/img", "team-b/dependency_proxy/containers/img"]
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // The OAuth2 form, as containerd sends it.
    for form in [
        vec![
            ("grant_type", "password"),
            ("username", "ci"),
            ("password", world.secrets["a"].as_str()),
            ("scope", "repository:img:pull"),
            ("service", "depproxy"),
            ("client_id", "containerd"),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("scope", "repository:team-b/dependency_proxy/containers/img:pull"),
            ("service", "depproxy"),
        ],
    ] {
        let response =
            client().post(format!("{}/v2/token", world.proxy.url)).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{form:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(granted(token).len(), 1, "{form:?}");
        // The token works for a pull.
        let path = if form[0].1 == "password" {
            "/v2/img/manifests/v1"
        } else {
            "/v2/team-b/dependency_proxy/containers/img/manifests/v1"
        };
        let pull = world.request("GET", path, Some(&format!("Bearer {token}"))).await;
        assert_eq!(pull.status(), StatusCode::OK);
    }

    // Without credentials: an anonymous token, with only anonymous scopes.
    let response = client()
        .get(format!("{}/v2/token?scope=repository:img:pull&scope=repository:open/dependency_proxy/containers/img:pull", world.proxy.url))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(granted(body["token"].as_str().unwrap()), vec!["open/dependency_proxy/containers/img"]);
    assert!(body.get("refresh_token").is_none());

    // Wrong credentials: 401 with the OCI body.
    for wrong in [basic("x", "dpp_0123456789abcdef_wrong"), basic("x", "hunter2")] {
        let response = client()
            .get(format!("{}/v2/token?scope=repository:img:pull", world.proxy.url))
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    }
    let bad_grant = client()
        .post(format!("{}/v2/token", world.proxy.url))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_grant.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_version_check_needs_credentials_when_a_group_does() {
    let world = world("", "").await;
    let anonymous = world.request("GET", "/v2/", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(challenge, format!("Bearer realm=\"{}/v2/token\",service=\"depproxy\"", world.proxy.url));
    let jwt = world.jwt(&world.secrets["b"], "").await;
    assert_eq!(world.request("GET", "/v2/", Some(&format!("Bearer {jwt}"))).await.status(), StatusCode::OK);
    assert_eq!(
        world.request("GET", "/v2/", Some(&basic("x", &world.secrets["admin"]))).await.status(),
        StatusCode::OK
    );

    // Zero-config serve: anonymous, so /v2/ answers without credentials.
    let upstream = FakeRegistry::start().await;
    let open = TestProxy::start(Options::upstream(&upstream.url())).await;
    let response = client().get(format!("{}/v2/", open.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_token_and_its_registry_tokens_stop_working_within_the_check_interval() {
    let world = world("", "[auth]\ntoken_check_interval = \"200ms\"\n").await;
    let jwt = world.jwt(&world.secrets["a"], "repository:img:pull").await;
    let bearer = format!("Bearer {jwt}");
    assert_eq!(world.request("GET", "/v2/img/manifests/v1", Some(&bearer)).await.status(), StatusCode::OK);
    world.metadata.revoke_access_token("a", Clock::system().now_ms()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = world.request("GET", "/v2/img/manifests/v1", Some(&bearer)).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(std::time::Instant::now() < deadline, "the revoked token still works after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let basic_again =
        world.request("GET", "/v2/img/manifests/v1", Some(&basic("x", &world.secrets["a"]))).await;
    assert_eq!(basic_again.status(), StatusCode::UNAUTHORIZED);
    // The token's last use was recorded (in a batch).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while world
        .metadata
        .list_access_tokens()
        .await
        .unwrap()
        .iter()
        .all(|token| token.name != "a" || token.last_used_at.is_none())
    {
        assert!(std::time::Instant::now() < deadline, "last use never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failed_logins_are_limited_per_address_and_right_ones_elsewhere_still_work() {
    // The test's client is the trusted proxy; X-Forwarded-For says which client it is.
    let world = world("trusted_proxies = [\"127.0.0.1\"]", "").await;
    let from = |address: &str, authorization: String| {
        client()
            .get(format!("{}/v2/img/manifests/v1", world.proxy.url))
            .header("x-forwarded-for", address)
            .header("authorization", authorization)
    };
    let mut limited = 0;
    for attempt in 0..50 {
        let response = from("198.51.100.7", basic("x", &format!("dpp_0123456789abcdef_guess{attempt}")))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(wait >= 1);
            }
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert!(limited >= 35, "only {limited} of 50 wrong attempts were limited");
    // Past the limit even a right secret from that address waits; another address is not affected.
    let right = basic("x", &world.secrets["a"]);
    assert_eq!(
        from("198.51.100.7", right.clone()).send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(from("198.51.100.8", right).send().await.unwrap().status(), StatusCode::OK);
    // Someone else's credentials sent to an open group are ignored, not counted.
    for _ in 0..20 {
        let response = client()
            .get(format!("{}/v2/open/dependency_proxy/containers/img/manifests/v1", world.proxy.url))
            .header("x-forwarded-for", "198.51.100.9")
            .header("authorization", basic("me", "docker-hub-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        from("198.51.100.9", basic("x", &world.secrets["a"])).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn split_mode_keeps_the_realm_the_token_form_and_forwarded_addresses() {
    // The test's client is the trusted proxy; the gateway calls the control plane over HTTP.
    let world = world_with("trusted_proxies = [\"127.0.0.1\"]", "", true).await;
    // The realm names the gateway the client reached, not the control plane the gateway called.
    let anonymous = world.request("GET", "/v2/", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(challenge, format!("Bearer realm=\"{}/v2/token\",service=\"depproxy\"", world.proxy.url));
    // The OAuth2 form: a body, bound to its internal token, over the socket.
    let form = [
        ("grant_type", "password"),
        ("username", "ci"),
        ("password", world.secrets["a"].as_str()),
        ("scope", "repository:img:pull"),
        ("service", "depproxy"),
    ];
    let response = client().post(format!("{}/v2/token", world.proxy.url)).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let pull = world.request("GET", "/v2/img/manifests/v1", Some(&format!("Bearer {token}"))).await;
    assert_eq!(pull.status(), StatusCode::OK);
    // X-Forwarded-For from a trusted proxy still names the client: failed logins count against
    // the forwarded address, not the gateway's.
    let from = |address: &str, authorization: String| {
        client()
            .get(format!("{}/v2/img/manifests/v1", world.proxy.url))
            .header("x-forwarded-for", address)
            .header("authorization", authorization)
    };
    let mut limited = false;
    for attempt in 0..30 {
        let wrong = basic("x", &format!("dpp_0123456789abcdef_guess{attempt}"));
        if from("198.51.100.7", wrong).send().await.unwrap().status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "failed logins were not limited");
    let right = basic("x", &world.secrets["a"]);
    assert_eq!(from("198.51.100.8", right).send().await.unwrap().status(), StatusCode::OK);
}
