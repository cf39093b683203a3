//! Access control through the whole proxy (gateway + control plane, in process, on real sockets):
//! the isolation matrix — every kind of caller × every group × every URL form × every endpoint —
//! the docker token flow (GET with Basic, the OAuth2 POST form, refresh tokens), revocation of
//! registry tokens issued before it, failed-login limits per address, and `GET /v2/`.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{Options, TestProxy, client};
use base64::Engine as _;
use http::StatusCode;
use metadata::{Clock, Metadata};
use oci::{Digest, GroupPath};
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

    /// A registry token for pulling `repository` (named as the request names it), from the
    /// realm a request with `query` is challenged with (it carries `?ns=`).
    async fn jwt_for(&self, secret: &str, repository: &str, query: &str) -> String {
        let separator = if query.is_empty() { "?" } else { "&" };
        let response = client()
            .get(format!(
                "{}/v2/token{query}{separator}service=depproxy&scope=repository:{repository}:pull",
                self.proxy.url
            ))
            .header("authorization", basic("someone", secret))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
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
    /// A registry token of this access token, minted for the repository each request names (as
    /// docker asks for one per repository, through the challenge's realm).
    jwt_of: Option<&'static str>,
    /// Groups it may pull from (beyond anonymous ones).
    grants: &'static [&'static str],
    /// Whether the proxy knows who it is (a valid token of ours): then 403, not 401.
    authenticated: bool,
}

#[tokio::test]
async fn isolation_matrix_every_caller_group_form_and_endpoint() {
    let world = world("", "[auth]\nfailed_logins_per_minute = 1000000\n").await;
    let callers = [
        Caller { name: "anonymous", authorization: None, jwt_of: None, grants: &[], authenticated: false },
        Caller {
            name: "token a (Basic)",
            authorization: Some(basic("x", &world.secrets["a"])),
            jwt_of: None,
            grants: &["default"],
            authenticated: true,
        },
        Caller {
            name: "token a (JWT)",
            authorization: None,
            jwt_of: Some("a"),
            grants: &["default"],
            authenticated: true,
        },
        Caller {
            name: "token b (Basic)",
            authorization: Some(basic("x", &world.secrets["b"])),
            jwt_of: None,
            grants: &["team-b"],
            authenticated: true,
        },
        Caller {
            name: "token b (JWT)",
            authorization: None,
            jwt_of: Some("b"),
            grants: &["team-b"],
            authenticated: true,
        },
        Caller {
            name: "revoked",
            authorization: Some(basic("x", &world.secrets["revoked"])),
            jwt_of: None,
            grants: &[],
            authenticated: false,
        },
        Caller {
            name: "expired",
            authorization: Some(basic("x", &world.secrets["expired"])),
            jwt_of: None,
            grants: &[],
            authenticated: false,
        },
        Caller {
            name: "admin only",
            authorization: Some(basic("x", &world.secrets["admin"])),
            jwt_of: None,
            grants: &[],
            authenticated: true,
        },
        Caller {
            name: "docker hub credentials",
            authorization: Some(basic("me", "hub-password")),
            jwt_of: None,
            grants: &[],
            authenticated: false,
        },
        Caller {
            name: "forged JWT",
            authorization: Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x".into()),
            jwt_of: None,
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
                let authorization = match caller.jwt_of {
                    Some(token) => {
                        let written = base.trim_start_matches("/v2/");
                        Some(format!("Bearer {}", world.jwt_for(&world.secrets[token], written, query).await))
                    }
                    None => caller.authorization.clone(),
                };
                let expected = if *group == "open" || caller.grants.contains(group) {
                    StatusCode::OK
                } else if caller.authenticated {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                };
                for (method, endpoint, suffix) in &endpoints {
                    let path = format!("{base}{suffix}{query}");
                    let response = world.request(method, &path, authorization.as_deref()).await;
                    let status = response.status();
                    assert_eq!(
                        status, expected,
                        "{} × group {group} × {form} form × {endpoint} ({method} {path})",
                        caller.name
                    );
                    if status == StatusCode::UNAUTHORIZED {
                        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
                        let written = base.trim_start_matches("/v2/");
                        // The realm carries `ns`, so the token endpoint resolves the scope alike.
                        let realm_query = query.replace(':', "%3A");
                        assert!(
                            challenge.starts_with(&format!(
                                "Bearer realm=\"{}/v2/token{realm_query}\"",
                                world.proxy.url
                            )),
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

/// The JSON claims of a JWT (not verified: the proxy did that).
fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

impl World {
    /// A request as the trusted proxy (the test's client) forwards it for `address`.
    async fn request_from(&self, address: &str, path: &str, authorization: Option<&str>) -> StatusCode {
        let mut request =
            client().get(format!("{}{path}", self.proxy.url)).header("x-forwarded-for", address);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap().status()
    }

    /// How many of 30 requests from `address` with these credentials got 429 (the others 401).
    async fn limited(&self, address: &str, path: &str, authorization: impl Fn(usize) -> String) -> usize {
        let mut limited = 0;
        for attempt in 0..30 {
            match self.request_from(address, path, Some(&authorization(attempt))).await {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::TOO_MANY_REQUESTS => limited += 1,
                other => panic!("{address} attempt {attempt}: {other}"),
            }
        }
        limited
    }
}

/// One NAT, one kube-proxy SNAT, one CI runner: many clients behind one address. Someone there
/// guessing must not lock the others out: valid credentials are served whatever the address's
/// failure count, only unrecognised ones get 429.
#[tokio::test]
async fn valid_credentials_are_served_from_an_address_past_its_failure_quota() {
    // The test's client is the trusted proxy; X-Forwarded-For says which client it is.
    let world = world("trusted_proxies = [\"127.0.0.1\"]", "").await;
    let jwt = format!("Bearer {}", world.jwt(&world.secrets["a"], "repository:img:pull").await);
    let nat = "198.51.100.7";
    let path = "/v2/img/manifests/v1";
    let mut limited = 0;
    for attempt in 0..50 {
        let guess = basic("x", &format!("dpp_0123456789abcdef_guess{attempt}"));
        match world.request_from(nat, path, Some(&guess)).await {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert!(limited >= 35, "only {limited} of 50 wrong attempts were limited");
    // Behind the same address, a right secret and a registry token pull …
    let right = basic("x", &world.secrets["a"]);
    assert_eq!(world.request_from(nat, path, Some(&right)).await, StatusCode::OK, "a right secret");
    assert_eq!(world.request_from(nat, path, Some(&jwt)).await, StatusCode::OK, "a registry token");
    // … and log in at the token endpoint.
    let login = client()
        .get(format!("{}/v2/token?service=depproxy&scope=repository:img:pull", world.proxy.url))
        .header("x-forwarded-for", nat)
        .header("authorization", right)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    // The guesser is still refused without a check.
    let guess = basic("x", "dpp_0123456789abcdef_again");
    let refused = client()
        .get(format!("{}{path}", world.proxy.url))
        .header("x-forwarded-for", nat)
        .header("authorization", guess)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    // Another address is not affected at all.
    assert_eq!(
        world.request_from("198.51.100.8", path, Some(&basic("x", "dpp_0123456789abcdef_one"))).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Failures count per address (an IPv6 address by its /64, an IPv4-mapped one as IPv4) and per
/// token they name; credentials that are not ours (docker's Docker Hub login, a JWT we did not
/// sign) never count.
#[tokio::test]
async fn failures_count_per_address_and_token_and_foreign_credentials_never_count() {
    let world = world("trusted_proxies = [\"127.0.0.1\"]", "").await;
    let path = "/v2/img/manifests/v1";
    // docker sends its Docker Hub login to our token realm, and anything may send a JWT of
    // another issuer: refused, never counted.
    let hub = "198.51.100.9";
    for attempt in 0..30 {
        let response = client()
            .get(format!("{}/v2/token?service=depproxy&scope=repository:img:pull", world.proxy.url))
            .header("x-forwarded-for", hub)
            .header("authorization", basic("me", &format!("docker-hub-password{attempt}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "hub login {attempt}");
    }
    let foreign_jwt = |attempt: usize| format!("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ7{attempt}In0.x");
    assert_eq!(world.limited(hub, path, foreign_jwt).await, 0, "a JWT we did not sign counted");
    assert_eq!(world.limited(hub, path, |attempt| basic("me", &format!("hub{attempt}"))).await, 0);
    assert_eq!(
        world.request_from(hub, path, Some(&basic("x", "dpp_0123456789abcdef_first"))).await,
        StatusCode::UNAUTHORIZED,
        "nothing was counted against {hub}"
    );

    // A CI runner with a revoked token keeps trying: it blocks that token at that address, not
    // other tokens there, nor the guesses of other token ids.
    let runner = "198.51.100.10";
    let revoked = basic("x", &world.secrets["revoked"]);
    assert!(world.limited(runner, path, |_| revoked.clone()).await >= 15);
    assert_eq!(world.request_from(runner, path, Some(&revoked)).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        world.request_from(runner, path, Some(&basic("x", &world.secrets["a"]))).await,
        StatusCode::OK
    );
    let b_id = &world.secrets["b"][4..20];
    assert_eq!(
        world.request_from(runner, path, Some(&basic("x", &format!("dpp_{b_id}_wrong")))).await,
        StatusCode::UNAUTHORIZED,
        "a wrong secret for another token is its own count"
    );

    // IPv6: one /64 is one address.
    let subnet = |attempt: usize| format!("2001:db8:1:2::{:x}", attempt + 1);
    let mut limited_v6 = 0;
    for attempt in 0..30 {
        let guess = basic("x", &format!("dpp_0123456789abcdef_v6guess{attempt}"));
        if world.request_from(&subnet(attempt), path, Some(&guess)).await == StatusCode::TOO_MANY_REQUESTS {
            limited_v6 += 1;
        }
    }
    assert!(limited_v6 >= 15, "guesses spread over a /64 were limited {limited_v6} times");
    let guess = basic("x", "dpp_0123456789abcdef_neighbour");
    assert_eq!(
        world.request_from("2001:db8:1:2::ffff", path, Some(&guess)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(world.request_from("2001:db8:1:3::1", path, Some(&guess)).await, StatusCode::UNAUTHORIZED);

    // An IPv4-mapped IPv6 address is its IPv4 address.
    let mapped = |attempt: usize| basic("x", &format!("dpp_0123456789abcdef_mapped{attempt}"));
    assert!(world.limited("::ffff:198.51.100.11", path, mapped).await >= 15);
    assert_eq!(
        world.request_from("198.51.100.11", path, Some(&mapped(99))).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A token request names at most 32 scopes, and the token it gets must fit the 8 KiB we accept:
/// a JWT of hundreds of scopes (tens of KB) would otherwise be cached for its whole lifetime.
#[tokio::test]
async fn token_requests_are_bounded_in_scopes_and_length() {
    let world = world("", "").await;
    let request = |names: Vec<String>, authorization: Option<String>| {
        let query: Vec<String> = names.iter().map(|name| format!("scope=repository:{name}:pull")).collect();
        let mut request =
            client().get(format!("{}/v2/token?service=depproxy&{}", world.proxy.url, query.join("&")));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request
    };
    let open = |count: usize| -> Vec<String> {
        (0..count).map(|i| format!("open/dependency_proxy/containers/img{i}")).collect()
    };
    // Anonymous, 33 scopes of an open group: 400, and it says why.
    let too_many = request(open(33), None).send().await.unwrap();
    assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = too_many.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("32"), "{body}");
    // 32 are fine.
    let fine = request(open(32), None).send().await.unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
    // 32 long names would make a token past 8 KiB: refused before it is signed.
    let long: Vec<String> = (0..32).map(|i| format!("{}{i:02}", "x".repeat(200))).collect();
    let too_long = request(long, Some(basic("x", &world.secrets["a"]))).send().await.unwrap();
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = too_long.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("8 KiB"), "{body}");
    // A bearer value longer than 8 KiB is refused unread (not counted: it is not ours).
    let huge = format!("Bearer {}", "a".repeat(9 * 1024));
    assert_eq!(
        world.request("GET", "/v2/img/manifests/v1", Some(&huge)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A registry token minted for some repositories pulls those and no other, as Docker Hub's:
/// outside its scopes, 401 with a challenge for the right scope (the client then asks for it).
#[tokio::test]
async fn a_registry_token_pulls_only_the_repositories_of_its_scopes() {
    let world = world("", "").await;
    let jwt = world.jwt(&world.secrets["a"], "repository:img:pull").await;
    let bearer = format!("Bearer {jwt}");
    let image = &world.upstreams["ua"].1;
    for path in [
        "/v2/img/manifests/v1".to_owned(),
        format!("/v2/img/blobs/{}", image.layer),
        "/v2/img/tags/list".to_owned(),
    ] {
        assert_eq!(world.request("GET", &path, Some(&bearer)).await.status(), StatusCode::OK, "{path}");
    }
    // Token a may pull these (group `default`), but this JWT was not minted for them.
    for name in ["default/dependency_proxy/containers/img", "ua/img", "other"] {
        let response = world.request("GET", &format!("/v2/{name}/manifests/v1"), Some(&bearer)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(&format!("scope=\"repository:{name}:pull\"")), "{challenge}");
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    }
    // A registry token cannot be traded for a wider one.
    let widened = client()
        .get(format!("{}/v2/token?scope=repository:other:pull", world.proxy.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    if widened.status() == StatusCode::OK {
        let body: serde_json::Value = widened.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        assert_eq!(claims_of(token)["access"], serde_json::json!([]), "a JWT for img widened to other");
        let pull = world.request("GET", "/v2/other/manifests/v1", Some(&format!("Bearer {token}"))).await;
        assert_eq!(pull.status(), StatusCode::UNAUTHORIZED);
    } else {
        assert_eq!(widened.status(), StatusCode::UNAUTHORIZED);
    }
    // containerd's `?ns=` form: the challenge's realm carries `ns`, so the token endpoint resolves
    // the scope as the pull does, and the token it grants works.
    let ns = format!("?ns={}", world.host("ub"));
    let path = format!("/v2/img/manifests/v1{ns}");
    let challenge =
        world.request("GET", &path, None).await.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let realm = challenge.split('"').nth(1).unwrap().to_owned();
    assert!(realm.starts_with(&format!("{}/v2/token?ns=", world.proxy.url)), "{challenge}");
    let response = client()
        .get(format!("{realm}&service=depproxy&scope=repository:img:pull"))
        .header("authorization", basic("x", &world.secrets["b"]))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(claims_of(token)["access"][0]["name"], "img");
    assert_eq!(world.request("GET", &path, Some(&format!("Bearer {token}"))).await.status(), StatusCode::OK);
}

/// A refresh token lives no longer than the access token it stands for, and ends with it.
#[tokio::test]
async fn refresh_tokens_end_with_their_access_token() {
    let world = world("", "").await;
    let expires_at = Clock::system().now_ms() + 3_600_000;
    let created = access::create_token(
        &world.metadata,
        &Clock::system(),
        "hourly",
        vec![GroupPath::parse("default").unwrap()],
        false,
        Some(expires_at),
    )
    .await
    .unwrap();
    let response = client()
        .get(format!("{}/v2/token?scope=repository:img:pull&offline_token=true", world.proxy.url))
        .header("authorization", basic("x", &created.secret))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(claims_of(&refresh)["exp"].as_u64().unwrap() * 1000 <= u64::try_from(expires_at).unwrap());
    let exchange = |refresh: String| {
        client().post(format!("{}/v2/token", world.proxy.url)).form(&[
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh),
            ("scope", "repository:img:pull".to_owned()),
        ])
    };
    let answer: serde_json::Value = exchange(refresh.clone()).send().await.unwrap().json().await.unwrap();
    let next = answer["refresh_token"].as_str().unwrap();
    assert!(
        claims_of(next)["exp"].as_u64() <= claims_of(&refresh)["exp"].as_u64(),
        "a refresh extended itself"
    );
    world.metadata.revoke_access_token("hourly", Clock::system().now_ms()).await.unwrap();
    world.proxy.access.tokens().reload().await.unwrap();
    assert_eq!(exchange(refresh).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// Behind a TLS terminator in `trusted_proxies`, the realm is https as the client reached it;
/// nobody else can choose the realm's scheme.
#[tokio::test]
async fn the_realm_follows_x_forwarded_proto_from_trusted_proxies_only() {
    for (top, scheme) in [("trusted_proxies = [\"127.0.0.1\"]", "https"), ("", "http")] {
        let world = world(top, "").await;
        let response = client()
            .get(format!("{}/v2/", world.proxy.url))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        let authority = world.proxy.url.trim_start_matches("http://");
        assert!(
            challenge.starts_with(&format!("Bearer realm=\"{scheme}://{authority}/v2/token\"")),
            "{top}: {challenge}"
        );
    }
}

/// `::ffff:a.b.c.d` is a.b.c.d for `anonymous_networks` and `trusted_proxies`.
#[tokio::test]
async fn ipv4_mapped_addresses_match_networks_as_ipv4() {
    let world = world(
        "trusted_proxies = [\"127.0.0.1\", \"192.0.2.1\"]",
        "[[group]]\npath = \"lan\"\nupstream = \"ua\"\naccess = \"token\"\nanonymous_networks = [\"198.51.100.0/24\"]\n",
    )
    .await;
    let path = "/v2/lan/dependency_proxy/containers/img/manifests/v1";
    assert_eq!(world.request_from("::ffff:198.51.100.7", path, None).await, StatusCode::OK);
    // A hop that is a trusted proxy written as IPv4-mapped is still trusted.
    assert_eq!(world.request_from("198.51.100.7, ::ffff:192.0.2.1", path, None).await, StatusCode::OK);
    assert_eq!(world.request_from("::ffff:203.0.113.7", path, None).await, StatusCode::UNAUTHORIZED);
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
