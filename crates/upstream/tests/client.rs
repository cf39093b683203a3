//! The registry client against a fake upstream: auth discovered from the challenge (anonymous,
//! Basic, Bearer with cached tokens), HEADs, metadata documents, and how failures are classified.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oci::{ObjectKind, Reference, RepositoryName};
use testkit::{FakeRegistry, Fault, RecordingProxy};
use upstream::{
    Credentials, HttpOptions, RequestKind, UpstreamClient, UpstreamConfig, UpstreamError, UpstreamMetrics,
};

fn client(url: &str, credentials: Option<Credentials>, metrics: &UpstreamMetrics) -> UpstreamClient {
    client_allowing(url, credentials, &[], metrics)
}

fn repository(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

#[tokio::test]
async fn an_anonymous_upstream_gets_no_authorization_and_heads_describe_objects() {
    let upstream = FakeRegistry::start().await;
    let (manifest, layers) = upstream.put_image("app", "v1", &[b"layer"]);
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    let headers = client.request_headers(&repository("app"), ObjectKind::Manifest).await.unwrap();
    assert!(!headers.contains_key(http::header::AUTHORIZATION));
    assert_eq!(headers[http::header::ACCEPT], oci::media::manifest_accept_header().as_str());
    let blob_headers = client.request_headers(&repository("app"), ObjectKind::Blob).await.unwrap();
    assert!(!blob_headers.contains_key(http::header::ACCEPT));

    let head = client
        .head(&repository("app"), ObjectKind::Manifest, &Reference::parse("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(head.digest.as_ref(), Some(&manifest));
    assert_eq!(head.media_type.as_deref(), Some(oci::media::OCI_MANIFEST));
    let blob = client
        .head(&repository("app"), ObjectKind::Blob, &Reference::Digest(layers[0].clone()))
        .await
        .unwrap();
    assert_eq!(blob.size, Some(5));
    assert_eq!(metrics.get(&client.host_port(), RequestKind::Ping), 1, "the scheme is discovered once");
    assert_eq!(metrics.get(&client.host_port(), RequestKind::HeadManifest), 1);
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_per_scope_and_reused() {
    let upstream = FakeRegistry::start().await;
    upstream.require_token("t0k3n");
    upstream.put_image("app", "v1", &[b"layer"]);
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    for _ in 0..3 {
        assert_eq!(client.authorization(&repository("app")).await.unwrap().as_deref(), Some("Bearer t0k3n"));
    }
    assert_eq!(upstream.count("GET", "/token"), 1, "cached until it expires");
    client.authorization(&repository("other")).await.unwrap();
    assert_eq!(upstream.count("GET", "/token"), 2, "another repository is another scope");
    let head = client.head(&repository("app"), ObjectKind::Manifest, &Reference::parse("v1").unwrap()).await;
    assert!(head.is_ok(), "{head:?}");
    let authorized = upstream.log().into_iter().rfind(|entry| entry.path.ends_with("/manifests/v1")).unwrap();
    assert_eq!(authorized.authorization.as_deref(), Some("Bearer t0k3n"), "the HEAD carried the token");
}

#[tokio::test]
async fn basic_upstreams_get_the_configured_credentials_or_a_clear_refusal() {
    let upstream = FakeRegistry::start().await;
    upstream.require_basic("me", "s3cret");
    upstream.put_image("app", "v1", &[b"layer"]);
    let metrics = UpstreamMetrics::default();
    let with = client(
        &upstream.url(),
        Some(Credentials { username: "me".into(), password: "s3cret".into() }),
        &metrics,
    );
    let head = with.head(&repository("app"), ObjectKind::Manifest, &Reference::parse("v1").unwrap()).await;
    assert!(head.is_ok(), "{head:?}");
    let without = client(&upstream.url(), None, &metrics);
    match without.authorization(&repository("app")).await {
        Err(UpstreamError::Refused { status, .. }) => assert_eq!(status, http::StatusCode::UNAUTHORIZED),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failures_are_classified_for_clients() {
    let upstream = FakeRegistry::start().await;
    let (_, layers) = upstream.put_image("app", "v1", &[b"layer"]);
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    let layer = Reference::Digest(layers[0].clone());
    let missing =
        client.head(&repository("app"), ObjectKind::Manifest, &Reference::parse("nope").unwrap()).await;
    assert!(matches!(missing, Err(UpstreamError::NotFound(ObjectKind::Manifest))), "{missing:?}");
    upstream.set_fault(Some(Fault::Status { status: 429, retry_after: Some("17".into()) }));
    match client.head(&repository("app"), ObjectKind::Blob, &layer).await {
        Err(UpstreamError::RateLimited { retry_after }) => assert_eq!(retry_after.as_deref(), Some("17")),
        other => panic!("{other:?}"),
    }
    upstream.set_fault(Some(Fault::Status { status: 500, retry_after: None }));
    let error = client.head(&repository("app"), ObjectKind::Blob, &layer).await.unwrap_err();
    assert!(error.is_outage());
    assert_eq!(error.to_oci().status, http::StatusCode::BAD_GATEWAY);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = client_for_closed_port(closed.port(), &metrics);
    match unreachable.request_headers(&repository("app"), ObjectKind::Blob).await {
        Err(error @ UpstreamError::Connect(_)) => {
            assert_eq!(error.to_oci().status, http::StatusCode::BAD_GATEWAY)
        }
        other => panic!("{other:?}"),
    }
}

fn client_for_closed_port(port: u16, metrics: &UpstreamMetrics) -> UpstreamClient {
    client(&format!("http://127.0.0.1:{port}"), None, metrics)
}

#[tokio::test]
async fn tag_lists_come_back_with_their_pagination_link() {
    let upstream = FakeRegistry::start().await;
    for tag in ["a", "b", "c"] {
        upstream.put_image("app", tag, &[tag.as_bytes()]);
    }
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    let document =
        client.get_metadata(&repository("app"), "tags/list?n=2", ObjectKind::Manifest).await.unwrap();
    let value: serde_json::Value = serde_json::from_slice(&document.body).unwrap();
    assert_eq!(value["tags"], serde_json::json!(["a", "b"]));
    assert!(document.link.as_deref().is_some_and(|link| link.contains("last=b")), "{:?}", document.link);
}

#[tokio::test]
async fn a_tag_listing_is_read_page_after_page() {
    let upstream = FakeRegistry::start().await;
    // More than one page of 1000: the listing follows the `Link` of the first.
    for index in 0..1203 {
        upstream.put_image("many", &format!("t{index:04}"), &[b"shared layer"]);
    }
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    let listed = client.list_tags(&repository("many")).await.unwrap();
    assert!(!listed.truncated);
    assert_eq!(listed.tags.len(), 1203);
    assert_eq!((listed.tags[0].as_str(), listed.tags[1202].as_str()), ("t0000", "t1202"));
    assert_eq!(upstream.count("GET", "/tags/list"), 2, "two pages");
    match client.list_tags(&repository("absent")).await {
        Err(UpstreamError::NotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn docker_hub_official_images_live_under_library() {
    let metrics = UpstreamMetrics::default();
    let hub = client("https://registry-1.docker.io", None, &metrics);
    assert!(hub.is_docker_hub());
    assert_eq!(hub.upstream_repository(&repository("alpine")).as_str(), "library/alpine");
    assert_eq!(hub.upstream_repository(&repository("bitnami/redis")).as_str(), "bitnami/redis");
    let url = hub.object_url(
        &repository("library/alpine"),
        ObjectKind::Manifest,
        &Reference::parse("3.20").unwrap(),
    );
    assert_eq!(url, "https://registry-1.docker.io/v2/library/alpine/manifests/3.20");
    let other = client("https://ghcr.io", None, &metrics);
    assert!(!other.is_docker_hub());
    assert_eq!(other.upstream_repository(&repository("alpine")).as_str(), "alpine");
}

fn client_allowing(
    url: &str,
    credentials: Option<Credentials>,
    allow: &[&str],
    metrics: &UpstreamMetrics,
) -> UpstreamClient {
    client_with(url, credentials, allow, &[], metrics)
}

fn entries(list: &[&str]) -> Vec<upstream::AllowEntry> {
    list.iter().map(|entry| upstream::AllowEntry::parse(entry).unwrap()).collect()
}

fn client_with(
    url: &str,
    credentials: Option<Credentials>,
    redirect_allow: &[&str],
    realm_allow: &[&str],
    metrics: &UpstreamMetrics,
) -> UpstreamClient {
    UpstreamClient::new(UpstreamConfig {
        name: "lab".into(),
        url: url.parse().unwrap(),
        credentials,
        http: HttpOptions {
            connect_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(5),
            extra_ca_pem: Vec::new(),
            redirect_allow: entries(redirect_allow),
            realm_allow: entries(realm_allow),
            proxy: None,
        },
        metrics: metrics.clone(),
        files_url: None,
    })
    .unwrap()
}

#[tokio::test]
async fn credentials_go_only_to_a_realm_on_the_own_host_or_in_realm_allow() {
    let upstream = FakeRegistry::start().await;
    upstream.require_token("t0ken");
    let token_service = FakeRegistry::start().await;
    token_service.require_token("t0ken");
    // `localhost` is another host than the upstream's 127.0.0.1, and it resolves to a private
    // address.
    upstream.set_realm(&format!("http://localhost:{}/token", token_service.address().port()));
    let metrics = UpstreamMetrics::default();
    let credentials = || Some(Credentials { username: "u".into(), password: "p4ss".into() });
    let refused = client(&upstream.url(), credentials(), &metrics).authorization(&repository("app")).await;
    assert!(
        matches!(refused, Err(UpstreamError::Egress(upstream::EgressRefusal::UntrustedRealm))),
        "{refused:?}"
    );
    let message = refused.unwrap_err().to_oci().message;
    assert!(message.contains("realm_allow") && !message.contains("localhost"), "{message}");
    // Where redirects may go is not where credentials may go.
    let redirects_only = client_allowing(&upstream.url(), credentials(), &["localhost"], &metrics);
    let refused = redirects_only.authorization(&repository("app")).await;
    assert!(
        matches!(refused, Err(UpstreamError::Egress(upstream::EgressRefusal::UntrustedRealm))),
        "{refused:?}"
    );
    let anonymous = client(&upstream.url(), None, &metrics).authorization(&repository("app")).await;
    assert!(
        matches!(anonymous, Err(UpstreamError::Egress(upstream::EgressRefusal::PrivateAddress))),
        "{anonymous:?}"
    );
    assert!(token_service.log().is_empty(), "{:?}", token_service.log());
    let message = anonymous.unwrap_err().to_oci().message;
    assert!(!message.contains("localhost") && !message.contains("token"), "{message}");

    let listed = client_with(&upstream.url(), credentials(), &[], &["localhost"], &metrics);
    assert_eq!(listed.authorization(&repository("app")).await.unwrap().as_deref(), Some("Bearer t0ken"));
    let asked = token_service.log();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].authorization.as_deref().is_some_and(|value| value.starts_with("Basic ")), "{asked:?}");
}

#[tokio::test]
async fn a_realm_that_moves_to_another_host_is_a_warning_and_an_event() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let _log =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry::events::EventsLayer));
    let upstream = FakeRegistry::start().await;
    upstream.require_token("t0ken");
    upstream.put_image("app", "v1", &[b"layer"]);
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    let tag = Reference::parse("v1").unwrap();
    client.head(&repository("app"), ObjectKind::Manifest, &tag).await.unwrap();
    let moved = |events: &[telemetry::events::RecordedEvent]| {
        events.iter().any(|event| event.kind == "warning" && event.message.contains("token realm moved"))
    };
    assert!(!moved(
        &telemetry::events::recent_events().latest(50, &[telemetry::events::EventClass::Problems])
    ));
    // The challenge now names a realm elsewhere (and the old token stops working, so the scheme
    // is discovered again).
    let elsewhere = FakeRegistry::start().await;
    elsewhere.require_token("n3w");
    upstream.require_token("n3w");
    upstream.set_realm(&format!("{}/token", elsewhere.url().replace("127.0.0.1", "localhost")));
    let refused = client.head(&repository("app"), ObjectKind::Manifest, &tag).await;
    assert!(matches!(refused, Err(UpstreamError::Refused { .. })), "{refused:?}");
    let _ = client.head(&repository("app"), ObjectKind::Manifest, &tag).await;
    let events = telemetry::events::recent_events().latest(50, &[telemetry::events::EventClass::Problems]);
    assert!(moved(&events), "{events:?}");
    let event = events.iter().find(|event| event.message.contains("token realm moved")).unwrap();
    assert!(
        event.message.contains("before=127.0.0.1") && event.message.contains("now=localhost"),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_token_answer_larger_than_64_kib_is_refused() {
    let upstream = FakeRegistry::start().await;
    upstream.require_token("t0ken");
    let metrics = UpstreamMetrics::default();
    upstream.set_token_padding(65 << 10);
    let answer = client(&upstream.url(), None, &metrics).authorization(&repository("app")).await;
    assert!(matches!(&answer, Err(UpstreamError::Token(text)) if text.contains("larger")), "{answer:?}");
    upstream.set_token_padding(1000);
    let answer = client(&upstream.url(), None, &metrics).authorization(&repository("app")).await;
    assert_eq!(answer.unwrap().as_deref(), Some("Bearer t0ken"));
}

#[tokio::test]
async fn the_auth_scheme_is_discovered_again_after_a_401() {
    let upstream = FakeRegistry::start().await;
    upstream.put_image("app", "v1", &[b"layer"]);
    let metrics = UpstreamMetrics::default();
    let client = client(&upstream.url(), None, &metrics);
    let tag = Reference::parse("v1").unwrap();
    client.head(&repository("app"), ObjectKind::Manifest, &tag).await.unwrap();
    // The registry starts requiring tokens: the cached "anonymous" costs one 401, not all of them.
    upstream.require_token("t0ken");
    let first = client.head(&repository("app"), ObjectKind::Manifest, &tag).await;
    assert!(matches!(first, Err(UpstreamError::Refused { .. })), "{first:?}");
    client.head(&repository("app"), ObjectKind::Manifest, &tag).await.unwrap();
    assert_eq!(metrics.get(&client.host_port(), RequestKind::Ping), 2);
    assert_eq!(metrics.get(&client.host_port(), RequestKind::Token), 1);
}

#[tokio::test]
async fn upstream_error_bodies_reach_clients_only_as_error_codes() {
    let upstream = FakeRegistry::start().await;
    upstream.require_token("t0ken");
    upstream.set_realm("http://127.0.0.1:9/token");
    let metrics = UpstreamMetrics::default();
    // Listed, so the realm is asked and fails to connect: the client hears "token service", not where.
    let client = client_allowing(&upstream.url(), None, &["127.0.0.1:9"], &metrics);
    let error = client.authorization(&repository("app")).await.unwrap_err();
    let answer = String::from_utf8(error.to_oci().to_http_response().into_body()).unwrap();
    assert!(answer.contains("token service"), "{answer}");
    assert!(!answer.contains("127.0.0.1") && !answer.contains("error sending"), "{answer}");
    assert!(error.to_string().contains("127.0.0.1"), "the log keeps the detail: {error}");
}

fn proxied_client(
    origin: &str,
    proxy: &RecordingProxy,
    no_proxy: &[&str],
    redirect_allow: &[&str],
) -> upstream::EgressClient {
    let no_proxy: Vec<String> = no_proxy.iter().map(|entry| (*entry).to_owned()).collect();
    let options = HttpOptions {
        connect_timeout: Duration::from_secs(2),
        header_timeout: Duration::from_secs(5),
        extra_ca_pem: Vec::new(),
        redirect_allow: entries(redirect_allow),
        realm_allow: Vec::new(),
        proxy: Some(upstream::EgressProxy::parse(&proxy.url(), &no_proxy).unwrap()),
    };
    upstream::build_http_client(&options, &origin.parse().unwrap()).unwrap()
}

#[tokio::test]
async fn through_the_configured_proxy_each_hop_is_checked_before_the_proxy_is_asked() {
    let upstream = FakeRegistry::start().await;
    let layer = upstream.put_blob(&b"layer"[..]);
    let cdn = FakeRegistry::start().await;
    cdn.put_blob(&b"layer"[..]);
    let proxy = RecordingProxy::start().await;
    let metrics = UpstreamMetrics::default();
    let url = format!("{}/v2/app/blobs/{layer}", upstream.url());
    let get = |client: upstream::EgressClient| {
        let url = url.clone();
        let metrics = metrics.clone();
        async move {
            let timeout = Duration::from_secs(5);
            upstream::open_stream(&client, &url, http::HeaderMap::new(), ObjectKind::Blob, timeout, &metrics)
                .await
        }
    };
    // The upstream itself, through the proxy.
    let response = get(proxied_client(&upstream.url(), &proxy, &[], &[])).await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"layer");
    assert!(proxy.was_asked(&format!("GET {url} ")), "{:?}", proxy.asked());

    // Redirects to a name resolving to loopback, or not resolving here: refused, the proxy never
    // asked to go there.
    let cdn_port = cdn.address().port();
    for (location, refusal) in [
        (format!("https://localhost:{cdn_port}"), upstream::EgressRefusal::PrivateAddress),
        ("https://internal.test".to_owned(), upstream::EgressRefusal::Unresolvable),
    ] {
        upstream.set_fault_for(&layer, Some(Fault::Redirect { location: location.clone() }));
        let refused = get(proxied_client(&upstream.url(), &proxy, &[], &[])).await;
        assert!(
            matches!(&refused, Err(UpstreamError::Egress(r)) if *r == refusal),
            "{location}: {refused:?}"
        );
    }
    assert!(!proxy.was_asked("localhost") && !proxy.was_asked("internal.test"), "{:?}", proxy.asked());
    assert!(cdn.log().is_empty());

    // A place the operator allowed is reached through the proxy.
    upstream
        .set_fault_for(&layer, Some(Fault::Redirect { location: format!("http://localhost:{cdn_port}") }));
    let response = get(proxied_client(&upstream.url(), &proxy, &[], &["localhost"])).await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"layer");
    assert!(
        proxy.was_asked(&format!("GET http://localhost:{cdn_port}/v2/app/blobs/")),
        "{:?}",
        proxy.asked()
    );

    // `no_proxy` hosts are reached directly.
    upstream.set_fault_for(&layer, None);
    let before = proxy.asked().len();
    let response = get(proxied_client(&upstream.url(), &proxy, &["127.0.0.1"], &[])).await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"layer");
    assert_eq!(proxy.asked().len(), before, "{:?}", proxy.asked());
}
