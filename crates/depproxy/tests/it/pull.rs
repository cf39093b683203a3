//! The pull flow end to end in process, against the fake upstream: hits, misses, both URL forms,
//! HEAD/Range/conditional requests, error answers and the verified commit.

use std::time::Duration;

use crate::support::{Options, TestProxy, assert_objects_hash_to_their_names, client};
use http::StatusCode;
use oci::Digest;
use testkit::{FakeRegistry, Fault};

const GROUP_PREFIX: &str = "default/dependency_proxy/containers/";

async fn setup() -> (FakeRegistry, TestProxy) {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    (upstream, proxy)
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["errors"][0]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn base_endpoint_answers_api_version() {
    let (_upstream, proxy) = setup().await;
    let response = get(&format!("{}/v2/", proxy.url)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["docker-distribution-api-version"], "registry/2.0");
}

#[tokio::test]
async fn pulls_in_both_url_forms_and_second_pull_stays_local() {
    let (upstream, proxy) = setup().await;
    let layer = vec![7u8; 300_000];
    let (manifest_digest, layers) = upstream.put_image("lab/tiny", "v1", &[&layer]);
    for prefix in ["", GROUP_PREFIX] {
        let manifest = get(&format!("{}/v2/{prefix}lab/tiny/manifests/v1", proxy.url)).await;
        assert_eq!(manifest.status(), StatusCode::OK);
        assert_eq!(manifest.headers()["docker-content-digest"], manifest_digest.to_string().as_str());
        assert_eq!(manifest.headers()["content-type"], oci::media::OCI_MANIFEST);
        let bytes = manifest.bytes().await.unwrap();
        assert_eq!(Digest::of(&bytes), manifest_digest);
        let blob = get(&format!("{}/v2/{prefix}lab/tiny/blobs/{}", proxy.url, layers[0])).await;
        assert_eq!(blob.status(), StatusCode::OK);
        assert_eq!(blob.headers()["content-length"], "300000");
        assert_eq!(blob.bytes().await.unwrap().as_ref(), layer.as_slice());
    }
    proxy.fills_settled().await;
    assert_eq!(
        upstream.count("GET", "/blobs/"),
        1,
        "the second pull of a cached blob must not reach upstream"
    );
    assert_eq!(upstream.count("GET", "/manifests/"), 1);
    // Cached: by digest too, and nothing more upstream.
    let by_digest = get(&format!("{}/v2/lab/tiny/manifests/{manifest_digest}", proxy.url)).await;
    assert_eq!(by_digest.status(), StatusCode::OK);
    assert_eq!(upstream.count("GET", "/blobs/"), 1);
    assert_eq!(upstream.count("GET", "/manifests/"), 1);
    assert_objects_hash_to_their_names(&proxy);
    assert_eq!(proxy.temp_entries(), 0);
}

#[tokio::test]
async fn a_cached_blob_streams_to_several_http2_requests_on_one_connection() {
    // Bodies read from disk go to the connection one chunk at a time; with HTTP/2 several such
    // streams share a connection and its flow-control window. (HTTP/2 without TLS is off by
    // default.)
    let upstream = FakeRegistry::start().await;
    let proxy =
        TestProxy::start(Options::toml("[server]\nhttp2 = true\n").with_upstream(&upstream.url())).await;
    let layer: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (_, layers) = upstream.put_image("lab/h2", "v1", &[&layer]);
    let url = format!("{}/v2/lab/h2/blobs/{}", proxy.url, layers[0]);
    let cold = get(&url).await;
    assert_eq!(cold.bytes().await.unwrap().as_ref(), layer.as_slice());
    proxy.fills_settled().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let pulls = (0..4).map(|_| async {
        let response = h2.get(&url).send().await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.unwrap()
    });
    for body in futures_util::future::join_all(pulls).await {
        assert_eq!(body.as_ref(), layer.as_slice());
    }
    assert_eq!(upstream.count("GET", "/blobs/"), 1, "the hits came from disk");
}

#[tokio::test]
async fn head_requests_never_fill_and_hits_stay_local() {
    let (upstream, proxy) = setup().await;
    let (manifest_digest, layers) = upstream.put_image("lab/tiny", "v1", &[b"layer-bytes"]);
    let head = client().head(format!("{}/v2/lab/tiny/blobs/{}", proxy.url, layers[0])).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "11");
    assert_eq!(head.headers()["docker-content-digest"], layers[0].to_string().as_str());
    let head = client().head(format!("{}/v2/lab/tiny/manifests/v1", proxy.url)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["docker-content-digest"], manifest_digest.to_string().as_str());
    assert_eq!(upstream.count("GET", "/v2/lab"), 0, "HEAD must never start a fill");
    assert!(proxy.stored_objects().is_empty());
    // Once cached, HEAD is answered without upstream.
    get(&format!("{}/v2/lab/tiny/blobs/{}", proxy.url, layers[0])).await.bytes().await.unwrap();
    proxy.fills_settled().await;
    upstream.clear_log();
    let head = client().head(format!("{}/v2/lab/tiny/blobs/{}", proxy.url, layers[0])).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "11");
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());
}

#[tokio::test]
async fn ranges_and_conditional_requests_on_cached_blobs() {
    let (upstream, proxy) = setup().await;
    // Small objects are served from memory, big ones streamed from storage: both paths.
    for size in [10_000, 600_000] {
        ranges_and_conditional_requests_on(&upstream, &proxy, size).await;
    }
}

async fn ranges_and_conditional_requests_on(upstream: &FakeRegistry, proxy: &TestProxy, size: usize) {
    let data: Vec<u8> = (0..=255u8).cycle().take(size).collect();
    let digest = upstream.put_blob(data.clone());
    let url = format!("{}/v2/lab/x/blobs/{digest}", proxy.url);
    assert_eq!(get(&url).await.bytes().await.unwrap().as_ref(), data.as_slice());
    proxy.fills_settled().await;

    let partial = client().get(&url).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(partial.headers()["content-range"], format!("bytes 100-199/{size}").as_str());
    assert_eq!(partial.bytes().await.unwrap().as_ref(), &data[100..200]);

    let suffix = client().get(&url).header("range", "bytes=-10").send().await.unwrap();
    assert_eq!(suffix.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &data[size - 10..]);

    let beyond = format!("bytes={}-", size * 2);
    let unsatisfiable = client().get(&url).header("range", beyond).send().await.unwrap();
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(unsatisfiable.headers()["content-range"], format!("bytes */{size}").as_str());
    assert_eq!(error_code(unsatisfiable).await, "RANGE_INVALID");

    let not_modified =
        client().get(&url).header("if-none-match", format!("\"{digest}\"")).send().await.unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers()["etag"], format!("\"{digest}\"").as_str());
    assert_eq!(upstream.count("GET", &format!("/blobs/{digest}")), 1);
}

#[tokio::test]
async fn invalid_requests_get_oci_errors_and_never_reach_upstream() {
    let (upstream, proxy) = setup().await;
    let cases = [
        ("/v2/Bad/Name/manifests/v1", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/a/.hidden/manifests/v1", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/a/%2e%2e%2fb/manifests/v1", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/lab/x/blobs/sha256:%2f%2e%2e", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("/v2/lab/x/blobs/sha256:1234", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("/v2/lab/x/manifests/-v1", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("/v2/lab/x/manifests/.INVALID_MANIFEST_NAME", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("/v2/nogroup/dependency_proxy/containers/x/manifests/v1", StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        ("/v2/lab/x/nothing/here", StatusCode::NOT_FOUND, "UNSUPPORTED"),
        ("/other", StatusCode::NOT_FOUND, "UNSUPPORTED"),
    ];
    for (path, status, code) in cases {
        let response = get(&format!("{}{path}", proxy.url)).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json", "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }
    let push = client().post(format!("{}/v2/lab/x/blobs/uploads/", proxy.url)).send().await.unwrap();
    assert_eq!(push.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(push).await, "UNSUPPORTED");
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());
    assert!(proxy.stored_objects().is_empty());
}

#[tokio::test]
async fn upstream_errors_are_mapped() {
    let (upstream, proxy) = setup().await;
    let missing = get(&format!("{}/v2/lab/none/manifests/v1", proxy.url)).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "MANIFEST_UNKNOWN");
    let missing_blob = get(&format!("{}/v2/lab/none/blobs/{}", proxy.url, Digest::of(b"nope"))).await;
    assert_eq!(missing_blob.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing_blob).await, "BLOB_UNKNOWN");

    let digest = upstream.put_blob(b"data".to_vec());
    let url = format!("{}/v2/lab/x/blobs/{digest}", proxy.url);
    upstream.set_fault(Some(Fault::Status { status: 429, retry_after: Some("17".into()) }));
    let limited = get(&url).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "17");
    assert_eq!(error_code(limited).await, "TOOMANYREQUESTS");

    upstream.set_fault(Some(Fault::Status { status: 403, retry_after: None }));
    let refused = get(&url).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("upstream registry refused"));

    upstream.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    assert_eq!(get(&url).await.status(), StatusCode::BAD_GATEWAY);
    upstream.set_fault(None);
    assert_eq!(get(&url).await.bytes().await.unwrap().as_ref(), b"data");
    assert_objects_hash_to_their_names(&proxy);
}

#[tokio::test]
async fn connect_error_is_502_and_timeout_is_504() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = TestProxy::start(Options::upstream(&dead_url)).await;
    let response = get(&format!("{}/v2/lab/x/blobs/{}", proxy.url, Digest::of(b"x"))).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(response).await, "UNAVAILABLE");

    let upstream = FakeRegistry::start().await;
    let digest = upstream.put_blob(b"slow".to_vec());
    let options =
        Options::upstream(&upstream.url()).timeouts(Duration::from_millis(300), Duration::from_secs(5));
    let proxy = TestProxy::start(options).await;
    // Let the control plane discover the (anonymous) auth scheme before the upstream hangs.
    assert_eq!(
        get(&format!("{}/v2/lab/x/blobs/{}", proxy.url, Digest::of(b"nope"))).await.status(),
        StatusCode::NOT_FOUND
    );
    upstream.set_fault(Some(Fault::Hang));
    let response = get(&format!("{}/v2/lab/x/blobs/{digest}", proxy.url)).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn digest_mismatch_aborts_the_client_and_commits_nothing() {
    let (upstream, proxy) = setup().await;
    let data = vec![3u8; 200_000];
    let digest = upstream.put_blob(data.clone());
    upstream.set_fault(Some(Fault::WrongBytes));
    let url = format!("{}/v2/lab/x/blobs/{digest}", proxy.url);
    let response = get(&url).await;
    assert_eq!(response.status(), StatusCode::OK, "headers go out before the body is verified");
    assert!(response.bytes().await.is_err(), "a body that fails verification must not look complete");
    proxy.fills_settled().await;
    assert!(proxy.stored_objects().is_empty());
    assert_eq!(proxy.temp_entries(), 0);
    upstream.set_fault(None);
    assert_eq!(get(&url).await.bytes().await.unwrap().as_ref(), data.as_slice());
    assert_objects_hash_to_their_names(&proxy);
}

#[tokio::test]
async fn multi_arch_index_keeps_its_bytes_and_digest() {
    let (upstream, proxy) = setup().await;
    let (amd64, _) = upstream.put_image("lab/multi", "amd64-only", &[b"amd64 layer"]);
    let (arm64, _) = upstream.put_image("lab/multi", "arm64-only", &[b"arm64 layer"]);
    // Deliberately unusual formatting: a proxy that re-serialises would change the digest.
    let index = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"manifests\": [\n    {{\"mediaType\": \"{}\", \"digest\": \"{amd64}\", \"size\": 1, \"platform\": {{\"architecture\": \"amd64\", \"os\": \"linux\"}}}},\n    {{\"mediaType\": \"{}\", \"digest\": \"{arm64}\", \"size\": 1, \"platform\": {{\"architecture\": \"arm64\", \"os\": \"linux\"}}}}\n  ]\n}}\n",
        oci::media::OCI_INDEX,
        oci::media::OCI_MANIFEST,
        oci::media::OCI_MANIFEST
    );
    let index_digest = upstream.put_manifest("lab/multi", "v1", oci::media::OCI_INDEX, index.clone());
    for _ in 0..2 {
        let response = get(&format!("{}/v2/lab/multi/manifests/v1", proxy.url)).await;
        assert_eq!(response.headers()["content-type"], oci::media::OCI_INDEX);
        assert_eq!(response.headers()["docker-content-digest"], index_digest.to_string().as_str());
        assert_eq!(response.bytes().await.unwrap().as_ref(), index.as_bytes());
        proxy.fills_settled().await;
    }
    assert_eq!(upstream.count("GET", "/manifests/"), 1);
}

#[tokio::test]
async fn bearer_token_upstream_and_token_reuse() {
    let (upstream, proxy) = setup().await;
    upstream.require_token("secret-token");
    let (_, layers) = upstream.put_image("lab/private", "v1", &[b"private layer"]);
    let manifest = get(&format!("{}/v2/lab/private/manifests/v1", proxy.url)).await;
    assert_eq!(manifest.status(), StatusCode::OK);
    let blob = get(&format!("{}/v2/lab/private/blobs/{}", proxy.url, layers[0])).await;
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"private layer");
    assert_eq!(upstream.count("GET", "/token"), 1, "the token is cached for its lifetime");
    let blob_get = upstream.log().into_iter().find(|entry| entry.path.contains("/blobs/")).unwrap();
    assert_eq!(blob_get.authorization.as_deref(), Some("Bearer secret-token"));
}

#[tokio::test]
async fn split_mode_pulls_through_a_control_plane_over_http() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url()).split()).await;
    let (manifest_digest, layers) = upstream.put_image("lab/split", "v1", &[b"split layer"]);
    let manifest = get(&format!("{}/v2/lab/split/manifests/v1", proxy.url)).await;
    assert_eq!(manifest.headers()["docker-content-digest"], manifest_digest.to_string().as_str());
    let blob_url = format!("{}/v2/lab/split/blobs/{}", proxy.url, layers[0]);
    assert_eq!(get(&blob_url).await.bytes().await.unwrap().as_ref(), b"split layer");
    proxy.fills_settled().await;
    let again = get(&blob_url).await;
    assert!(again.headers().get(injector::SEND_DATA_HEADER).is_none());
    assert_eq!(again.bytes().await.unwrap().as_ref(), b"split layer");
    assert_eq!(upstream.count("GET", "/blobs/"), 1);
    assert_objects_hash_to_their_names(&proxy);
}

/// Whatever the umask, nothing the proxy creates is open to every local user: the data
/// directory, the directories and objects of the store, its spools, the SQLite database and its
/// journal.
#[tokio::test]
async fn nothing_the_proxy_creates_on_disk_is_world_readable() {
    use std::os::unix::fs::PermissionsExt as _;
    let upstream = FakeRegistry::start().await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[b"a private layer"]);
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("created/by/the/proxy");
    let mut options =
        Options::toml(&format!("data_dir = \"{}\"\n", data_dir.display())).with_upstream(&upstream.url());
    options.keep_data_dir = true;
    let proxy = TestProxy::start(options).await;
    for path in ["manifests/v1".to_owned(), format!("blobs/{}", layers[0])] {
        assert_eq!(get(&format!("{}/v2/lab/app/{path}", proxy.url)).await.status(), StatusCode::OK);
    }
    proxy.fills_settled().await;
    let mut seen = Vec::new();
    let mut pending = vec![parent.path().join("created")];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o007, 0, "{} is open to everyone", path.display());
        if metadata.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        seen.push(path);
    }
    for expected in ["depproxy.db", "depproxy.db-wal", "blobs/sha256", "tmp"] {
        assert!(seen.contains(&data_dir.join(expected)), "{expected} not created? {seen:?}");
    }
    assert!(seen.iter().filter(|path| path.starts_with(data_dir.join("blobs/sha256"))).count() >= 4);
}
