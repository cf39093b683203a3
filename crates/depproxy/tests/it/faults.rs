//! The fault matrix: the fake upstream misbehaves in every way we know of, and for each case the
//! client gets an honest answer (an error status, or a body that is cut short — never a
//! complete-looking 200), nothing is committed, no temp data is left, and a later pull with the
//! fault removed starts a new fill and gets the right bytes.

use std::time::Duration;

use crate::support::{Options, TestProxy, assert_objects_hash_to_their_names, body_digest, client, pattern};
use http::StatusCode;
use oci::Digest;
use testkit::{FakeRegistry, Fault, Gate};

const BLOB_SIZE: usize = 1024 * 1024;
/// Where upstream holds a faulty body until the client has its status line.
const GATE_AT: usize = 100_000;

/// What a client of the faulty fill must see.
#[derive(Debug, Clone, Copy)]
enum ClientSees {
    /// This status, before any byte of the object.
    Status(StatusCode),
    /// A 200 whose body ends in a transport error.
    Aborted,
}

struct Setup {
    upstream: FakeRegistry,
    proxy: TestProxy,
    digest: Digest,
    url: String,
}

/// The fake CDNs and raw servers of these tests listen on 127.0.0.1 beside the upstream: another
/// origin on a private address, which a redirect may lead to only when `redirect_allow` lists it.
fn loopback_redirects(url: &str) -> Options {
    Options::toml(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://replaced.invalid\"\nredirect_allow = [\"127.0.0.1\"]\n\
         [[group]]\npath = \"default\"\nupstream = \"lab\"\n",
    )
    .with_upstream(url)
}

async fn setup(options: impl FnOnce(&str) -> Options) -> Setup {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(options(&upstream.url())).await;
    let digest = upstream.put_blob(pattern(BLOB_SIZE, 1));
    let url = format!("{}/v2/lab/faults/blobs/{digest}", proxy.url);
    Setup { upstream, proxy, digest, url }
}

impl Setup {
    /// Pulls once with `fault` set and checks the answer and that the fill left nothing behind;
    /// returns the headers the client got.
    async fn pull_with_fault(&self, fault: Fault, sees: ClientSees) -> http::HeaderMap {
        self.upstream.set_fault_for(&self.digest, Some(fault.clone()));
        // For a body fault, upstream holds its body at a gate until this client has its status
        // line: the client is attached to the fill before the fault strikes (a client arriving
        // after a failure gets an error status instead, which is fine but not this case).
        let gate = match (&fault, sees) {
            (_, ClientSees::Status(_)) | (Fault::Stall { .. }, _) => None,
            (Fault::Truncate { after, .. } | Fault::Reset { after }, _) => {
                Some(Gate::new((*after).min(GATE_AT)))
            }
            _ => Some(Gate::new(GATE_AT)),
        };
        self.upstream.set_gate(gate.clone());
        let before = self.upstream.count("GET", "/blobs/");
        let response = client().get(&self.url).send().await.unwrap();
        let headers = response.headers().clone();
        if let Some(gate) = gate {
            gate.open();
            self.upstream.set_gate(None);
        }
        match sees {
            ClientSees::Status(status) => {
                assert_eq!(response.status(), status, "{fault:?}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert!(body["errors"][0]["code"].is_string(), "{fault:?}: an OCI error body, got {body}");
            }
            ClientSees::Aborted => {
                assert_eq!(
                    response.status(),
                    StatusCode::OK,
                    "{fault:?}: headers go out before the fill ends"
                );
                let (received, outcome) = read_counting(response).await;
                assert!(
                    outcome.is_err(),
                    "{fault:?}: the body must be cut short, got a complete one of {received} bytes"
                );
                assert!(
                    received < BLOB_SIZE as u64,
                    "{fault:?}: the client got {received} bytes: the last byte is withheld until \
                     the fill is verified"
                );
            }
        }
        assert_eq!(self.upstream.count("GET", "/blobs/"), before + 1, "{fault:?}: one upstream GET");
        self.assert_nothing_committed(&format!("{fault:?}")).await;
        headers
    }

    async fn assert_nothing_committed(&self, case: &str) {
        self.proxy.fills_settled().await;
        assert!(!self.proxy.has_object(&self.digest), "{case}: a failed fill must commit nothing");
        assert!(self.proxy.stored_names().is_empty(), "{case}: {:?}", self.proxy.stored_names());
        assert_eq!(self.proxy.temp_entries(), 0, "{case}: temp data left behind");
    }

    /// Removes the fault and checks that the next pull fetches again, serves the right bytes and
    /// commits them.
    async fn pull_succeeds_without_fault(&self) {
        self.upstream.set_fault_for(&self.digest, None);
        let before = self.upstream.count("GET", "/blobs/");
        let response = client().get(&self.url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if let Some(length) = response.headers().get("content-length") {
            assert_eq!(length, BLOB_SIZE.to_string().as_str());
        }
        assert_eq!(body_digest(response).await.unwrap(), (self.digest.clone(), BLOB_SIZE as u64));
        assert_eq!(
            self.upstream.count("GET", "/blobs/"),
            before + 1,
            "the failed fill is not reused: a new one starts"
        );
        self.proxy.fills_settled().await;
        assert!(self.proxy.has_object(&self.digest));
        assert_eq!(self.proxy.temp_entries(), 0);
        assert_objects_hash_to_their_names(&self.proxy);
    }
}

/// Reads a body to its end or first error, counting the bytes that arrived.
async fn read_counting(mut response: reqwest::Response) -> (u64, Result<(), reqwest::Error>) {
    let mut received = 0u64;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len() as u64,
            Ok(None) => return (received, Ok(())),
            Err(error) => return (received, Err(error)),
        }
    }
}

async fn fault_case(fault: Fault, sees: ClientSees) -> http::HeaderMap {
    let setup = setup(loopback_redirects).await;
    let headers = setup.pull_with_fault(fault, sees).await;
    setup.pull_succeeds_without_fault().await;
    headers
}

#[tokio::test]
async fn truncation_with_content_length_aborts_the_body() {
    let headers =
        fault_case(Fault::Truncate { after: 300_000, content_length: true }, ClientSees::Aborted).await;
    assert_eq!(headers["content-length"], BLOB_SIZE.to_string().as_str());
}

#[tokio::test]
async fn truncation_without_content_length_aborts_the_body() {
    // Upstream ends its chunked body cleanly, only short: the digest check is what catches it.
    let headers =
        fault_case(Fault::Truncate { after: 300_000, content_length: false }, ClientSees::Aborted).await;
    assert!(headers.get("content-length").is_none(), "{headers:?}");
}

#[tokio::test]
async fn wrong_bytes_fail_the_digest_check() {
    fault_case(Fault::WrongBytes, ClientSees::Aborted).await;
}

#[tokio::test]
async fn body_faults_abort_a_chunked_body_too() {
    // Without Content-Length the client cannot tell a short body from a whole one; only the
    // missing end of the chunked body tells it, and the last byte is held back until verified: a
    // client that stops at the size it knows from the manifest never has a full wrong body.
    let setup = setup(Options::upstream).await;
    setup.upstream.set_chunked(true);
    for fault in [
        Fault::WrongBytes,
        Fault::Reset { after: 500_000 },
        Fault::Truncate { after: 300_000, content_length: false },
    ] {
        let headers = setup.pull_with_fault(fault, ClientSees::Aborted).await;
        assert!(headers.get("content-length").is_none(), "{headers:?}");
    }
    setup.pull_succeeds_without_fault().await;
}

#[tokio::test]
async fn a_stall_past_the_idle_timeout_aborts_the_body() {
    let setup =
        setup(|url| Options::upstream(url).timeouts(Duration::from_secs(10), Duration::from_millis(500)))
            .await;
    setup.pull_with_fault(Fault::Stall { after: 200_000 }, ClientSees::Aborted).await;
    setup.pull_succeeds_without_fault().await;
}

#[tokio::test]
async fn a_connection_reset_aborts_the_body() {
    fault_case(Fault::Reset { after: 500_000 }, ClientSees::Aborted).await;
}

#[tokio::test]
async fn a_reset_before_the_first_byte_aborts_the_body() {
    fault_case(Fault::Reset { after: 0 }, ClientSees::Aborted).await;
}

#[tokio::test]
async fn upstream_server_errors_are_502() {
    let setup = setup(Options::upstream).await;
    for status in [500, 502, 503] {
        let fault = Fault::Status { status, retry_after: None };
        setup.pull_with_fault(fault, ClientSees::Status(StatusCode::BAD_GATEWAY)).await;
    }
    setup.pull_succeeds_without_fault().await;
}

#[tokio::test]
async fn upstream_429_keeps_retry_after() {
    let headers = fault_case(
        Fault::Status { status: 429, retry_after: Some("120".into()) },
        ClientSees::Status(StatusCode::TOO_MANY_REQUESTS),
    )
    .await;
    assert_eq!(headers["retry-after"], "120");
}

#[tokio::test]
async fn content_length_larger_than_the_body_aborts() {
    let headers =
        fault_case(Fault::LyingLength { claimed: BLOB_SIZE as u64 + 1000 }, ClientSees::Aborted).await;
    assert_eq!(headers["content-length"], (BLOB_SIZE + 1000).to_string().as_str());
}

#[tokio::test]
async fn content_length_smaller_than_the_body_aborts() {
    // The proxy reads exactly the announced length; what it got fails the digest check.
    let headers =
        fault_case(Fault::LyingLength { claimed: BLOB_SIZE as u64 - 1000 }, ClientSees::Aborted).await;
    assert_eq!(headers["content-length"], (BLOB_SIZE - 1000).to_string().as_str());
}

#[tokio::test]
async fn a_redirect_to_another_host_does_not_carry_the_upstream_token() {
    let setup = setup(loopback_redirects).await;
    setup.upstream.require_token("upstream-secret");
    let cdn = FakeRegistry::start().await;
    assert_eq!(cdn.put_blob(pattern(BLOB_SIZE, 1)), setup.digest);
    setup.upstream.set_fault_for(&setup.digest, Some(Fault::Redirect { location: cdn.url() }));
    let response = client().get(&setup.url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_digest(response).await.unwrap(), (setup.digest.clone(), BLOB_SIZE as u64));

    let asked = setup
        .upstream
        .log()
        .into_iter()
        .filter(|entry| entry.method == http::Method::GET && entry.path.contains("/blobs/"))
        .collect::<Vec<_>>();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0].authorization.as_deref(),
        Some("Bearer upstream-secret"),
        "the upstream itself gets the token"
    );
    let followed = cdn.log();
    assert_eq!(followed.len(), 1, "{followed:?}");
    assert!(followed[0].path.ends_with(&format!("/blobs/{}", setup.digest)));
    assert_eq!(
        followed[0].authorization, None,
        "the upstream's token must not follow a redirect to another host"
    );
    setup.proxy.fills_settled().await;
    assert!(setup.proxy.has_object(&setup.digest));
    assert_eq!(setup.proxy.temp_entries(), 0);
    assert_objects_hash_to_their_names(&setup.proxy);
}

#[tokio::test]
async fn redirects_to_private_addresses_plain_http_or_unlisted_places_are_refused() {
    let setup = setup(Options::upstream).await;
    let cdn = FakeRegistry::start().await;
    assert_eq!(cdn.put_blob(pattern(BLOB_SIZE, 1)), setup.digest);
    let port = cdn.address().port().to_string();
    let locations = [
        cdn.url(),                           // another origin, private address, plain http
        format!("https://127.0.0.1:{port}"), // a private address written into the URL
        format!("https://localhost:{port}"), // a name that resolves to a private address
        "http://169.254.169.254".to_owned(), // cloud metadata
    ];
    for location in locations {
        setup.upstream.set_fault_for(&setup.digest, Some(Fault::Redirect { location: location.clone() }));
        let response = client().get(&setup.url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{location}");
        let body = response.text().await.unwrap();
        assert!(body.contains("UNAVAILABLE") && body.contains("redirect_allow"), "{location}: {body}");
        assert!(!body.contains(&port) && !body.contains("169.254"), "{location}: names the target: {body}");
        setup.assert_nothing_committed(&location).await;
    }
    assert!(cdn.log().is_empty(), "a refused location was contacted: {:?}", cdn.log());
}

#[tokio::test]
async fn a_blob_over_max_blob_size_is_refused_and_not_stored() {
    let setup = setup(|url| Options::toml("[limits]\nmax_blob_size = \"512KiB\"\n").with_upstream(url)).await;
    // Announced too large: refused before any byte. (A `Truncate` past the end is the whole body,
    // here with its Content-Length, below without.)
    let headers = setup
        .pull_with_fault(
            Fault::Truncate { after: usize::MAX, content_length: true },
            ClientSees::Status(StatusCode::FORBIDDEN),
        )
        .await;
    assert!(headers.get("docker-content-digest").is_none());
    // Not announced (chunked): cut off when the limit is crossed.
    setup
        .pull_with_fault(Fault::Truncate { after: usize::MAX, content_length: false }, ClientSees::Aborted)
        .await;
    // A blob within the limit is cached as usual.
    let small = pattern(100_000, 2);
    let small_digest = setup.upstream.put_blob(small.clone());
    let response =
        client().get(format!("{}/v2/lab/faults/blobs/{small_digest}", setup.proxy.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), small.as_slice());
    setup.proxy.fills_settled().await;
    assert!(setup.proxy.has_object(&small_digest));
    assert!(!setup.proxy.has_object(&setup.digest));
    assert_eq!(setup.proxy.temp_entries(), 0);
}

/// Reads until at least `n` bytes arrived; returns how many did.
async fn read_at_least(response: &mut reqwest::Response, n: u64) -> u64 {
    let mut received = 0u64;
    while received < n {
        let chunk = response.chunk().await.unwrap().expect("body ended early");
        received += chunk.len() as u64;
    }
    received
}

#[tokio::test]
async fn the_last_byte_waits_for_verification() {
    // A chunked upstream sends every byte, then holds the end of its body at a gate: the proxy
    // cannot know yet whether the body is whole, so clients get all but the last byte.
    let setup = setup(Options::upstream).await;
    setup.upstream.set_chunked(true);
    let all_but_last = BLOB_SIZE as u64 - 1;
    for (fault, whole) in [(Some(Fault::WrongBytes), false), (None, true)] {
        setup.upstream.set_fault_for(&setup.digest, fault.clone());
        let gate = Gate::new(BLOB_SIZE);
        setup.upstream.set_gate(Some(gate.clone()));
        let mut response = client().get(&setup.url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            read_at_least(&mut response, all_but_last).await,
            all_but_last,
            "{fault:?}: the last byte must not go out before the fill is verified"
        );
        gate.open();
        setup.upstream.set_gate(None);
        let (rest, outcome) = read_counting(response).await;
        if whole {
            outcome.unwrap();
            assert_eq!(rest, 1, "the last byte follows the verification");
        } else {
            assert!(outcome.is_err(), "{fault:?}");
            assert_eq!(rest, 0, "{fault:?}: the client never gets the last byte");
        }
        setup.proxy.fills_settled().await;
        assert_eq!(setup.proxy.has_object(&setup.digest), whole);
        assert_eq!(setup.proxy.temp_entries(), 0);
    }
    assert_objects_hash_to_their_names(&setup.proxy);
}

#[tokio::test]
async fn manifest_faults_answer_an_error_status_and_store_nothing() {
    // Manifests are answered only once verified, so a fault is always an error status.
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(loopback_redirects(&upstream.url())).await;
    let (digest, _) = upstream.put_image("lab/faulty", "v1", &[b"layer"]);
    let by_tag = format!("{}/v2/lab/faulty/manifests/v1", proxy.url);
    let by_digest = format!("{}/v2/lab/faulty/manifests/{digest}", proxy.url);
    let cases = [
        (&by_digest, Fault::WrongBytes, StatusCode::BAD_GATEWAY),
        (&by_tag, Fault::Truncate { after: 50, content_length: true }, StatusCode::BAD_GATEWAY),
        (&by_tag, Fault::Reset { after: 50 }, StatusCode::BAD_GATEWAY),
        (&by_tag, Fault::LyingLength { claimed: 10_000 }, StatusCode::BAD_GATEWAY),
        (&by_digest, Fault::Status { status: 503, retry_after: None }, StatusCode::BAD_GATEWAY),
    ];
    for (url, fault, status) in cases {
        upstream.set_fault_for(&digest, Some(fault.clone()));
        let response = client().get(url.as_str()).send().await.unwrap();
        assert_eq!(response.status(), status, "{fault:?}");
        assert!(response.headers().get("docker-content-digest").is_none());
        proxy.fills_settled().await;
        assert!(proxy.stored_names().is_empty(), "{fault:?}");
        assert_eq!(proxy.temp_entries(), 0, "{fault:?}");
    }
    upstream.set_fault_for(&digest, None);
    let response = client().get(&by_tag).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());
    assert_eq!(Digest::of(&response.bytes().await.unwrap()), digest);
    proxy.fills_settled().await;
    assert!(proxy.has_object(&digest));
    assert_objects_hash_to_their_names(&proxy);
}
