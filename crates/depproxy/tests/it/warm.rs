//! `depproxy cache warm` (`depproxy::cli::warm`) against a running proxy: every platform of an index
//! ends up cached so the next pull asks upstream nothing, a missing tag fails by name without
//! stopping the rest, token groups take an access token, and (end to end) a real registry behind
//! split-mode processes.

use crate::support::{Options, TestProxy, client};
use depproxy::cli::warm::{WarmFailed, WarmOptions, WarmSummary, warm};
use http::StatusCode;
use oci::Digest;
use testkit::{FakeRegistry, Fault};

fn options(proxy: &TestProxy, group: &str, images: &[&str]) -> WarmOptions {
    WarmOptions {
        proxy: proxy.url.clone(),
        group: group.to_owned(),
        images: images.iter().map(|image| (*image).to_owned()).collect(),
        token: None,
        concurrency: 4,
        proxy_origin: "--proxy".into(),
        config: None,
    }
}

/// The summary of a run that failed as a whole (some object could not be fetched).
fn failed_summary(error: &anyhow::Error) -> &WarmSummary {
    &error.downcast_ref::<WarmFailed>().unwrap_or_else(|| panic!("not a WarmFailed: {error:#}")).summary
}

/// An index of two platforms and a BuildKit attestation, each with layers of its own (the config
/// blob is shared: warming fetches it once). Returns every digest it consists of.
struct MultiPlatform {
    index: Digest,
    manifests: Vec<Digest>,
    blobs: Vec<Digest>,
}

async fn put_multi_platform(upstream: &FakeRegistry, repository: &str, tag: &str) -> MultiPlatform {
    let (amd64, amd64_layers) =
        upstream.put_image(repository, "amd64", &[&vec![1u8; 200_000], b"amd64 second layer"]);
    let (arm64, arm64_layers) = upstream.put_image(repository, "arm64", &[&vec![2u8; 150_000]]);
    let (attestation, attestation_layers) =
        upstream.put_image(repository, "attestation", &[br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#]);
    let index = upstream.put_index(
        repository,
        tag,
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64"), (&attestation, "unknown/unknown")],
    );
    let config = config_digest(upstream, repository, &amd64).await;
    let mut blobs = vec![config];
    blobs.extend(amd64_layers.into_iter().chain(arm64_layers).chain(attestation_layers));
    MultiPlatform { index, manifests: vec![amd64, arm64, attestation], blobs }
}

/// The config digest of an image manifest, as the upstream serves it.
async fn config_digest(upstream: &FakeRegistry, repository: &str, manifest: &Digest) -> Digest {
    let url = format!("{}/v2/{repository}/manifests/{manifest}", upstream.url());
    let document: serde_json::Value = client().get(url).send().await.unwrap().json().await.unwrap();
    upstream.clear_log();
    document["config"]["digest"].as_str().unwrap().parse().unwrap()
}

/// Pulls the image as a client would (tag, then every child by digest, then every blob) and
/// checks each answer.
async fn pull(proxy: &TestProxy, prefix: &str, repository: &str, tag: &str, image: &MultiPlatform) {
    let base = format!("{}/v2/{prefix}{repository}", proxy.url);
    let accept = oci::media::manifest_accept_header();
    let response =
        client().get(format!("{base}/manifests/{tag}")).header("accept", &accept).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["docker-content-digest"], image.index.to_string().as_str());
    for digest in &image.manifests {
        let response = client()
            .get(format!("{base}/manifests/{digest}"))
            .header("accept", &accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "manifest {digest}");
        assert_eq!(&Digest::of(&response.bytes().await.unwrap()), digest);
    }
    for digest in &image.blobs {
        let response = client().get(format!("{base}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "blob {digest}");
        assert_eq!(&Digest::of(&response.bytes().await.unwrap()), digest);
    }
}

fn object_gets(upstream: &FakeRegistry) -> Vec<String> {
    upstream
        .log()
        .into_iter()
        .filter(|entry| {
            entry.method == http::Method::GET
                && (entry.path.contains("/blobs/") || entry.path.contains("/manifests/"))
        })
        .map(|entry| entry.path)
        .collect()
}

#[tokio::test]
async fn warming_caches_every_platform_and_the_next_pull_asks_upstream_nothing() {
    for split in [false, true] {
        let upstream = FakeRegistry::start().await;
        let image = put_multi_platform(&upstream, "lab/multi", "v1").await;
        let mut start = Options::upstream(&upstream.url());
        if split {
            start = start.split();
        }
        let proxy = TestProxy::start(start).await;

        let summary = warm(&options(&proxy, "default", &["lab/multi:v1"])).await.unwrap();
        assert_eq!(
            (summary.images, summary.images_failed, summary.manifests, summary.blobs),
            (1, 0, 4, image.blobs.len()),
            "split = {split}: {summary}"
        );
        assert!(summary.failures.is_empty());
        assert!(summary.bytes > 350_000, "{summary}");
        assert!(summary.to_string().starts_with("warmed 1 of 1 image(s): 4 manifest(s)"), "{summary}");
        assert_eq!(upstream.count("GET", "/blobs/"), image.blobs.len(), "each blob fetched upstream once");

        proxy.fills_settled().await;
        for digest in std::iter::once(&image.index).chain(&image.manifests).chain(&image.blobs) {
            assert!(proxy.has_object(digest), "split = {split}: {digest} is not cached");
        }

        upstream.clear_log();
        // Pulled the way clients name it: mirror form and group form of the same group.
        pull(&proxy, "", "lab/multi", "v1", &image).await;
        pull(&proxy, "default/dependency_proxy/containers/", "lab/multi", "v1", &image).await;
        assert_eq!(object_gets(&upstream), Vec::<String>::new(), "split = {split}: the pull went upstream");
    }
}

#[tokio::test]
async fn a_missing_tag_fails_by_name_and_the_other_images_are_still_warmed() {
    let upstream = FakeRegistry::start().await;
    let (manifest, layers) = upstream.put_image("lab/present", "latest", &[b"present layer"]);
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;

    // No tag means `latest`.
    let error = warm(&options(&proxy, "default", &["lab/present:nope", "lab/present"])).await.unwrap_err();
    let summary = failed_summary(&error);
    assert_eq!((summary.images, summary.images_failed, summary.manifests), (2, 1, 1), "{summary}");
    assert_eq!(summary.failures.len(), 1, "{summary}");
    let failure = &summary.failures[0];
    assert_eq!(failure.image, "lab/present:nope");
    assert_eq!(failure.object, "manifest nope");
    assert_eq!(failure.status, Some(404));
    assert!(failure.message.contains("MANIFEST_UNKNOWN"), "the OCI error is reported: {}", failure.message);
    let shown = format!("{error:#}");
    assert!(shown.contains("lab/present:nope") && shown.contains("404"), "{shown}");

    proxy.fills_settled().await;
    assert!(proxy.has_object(&manifest));
    assert!(proxy.has_object(&layers[0]));

    // Bad arguments fail before anything is fetched.
    upstream.clear_log();
    let error = warm(&options(&proxy, "default", &["lab/present", "Bad/Name"])).await.unwrap_err();
    assert!(error.to_string().contains("\"Bad/Name\""), "{error:#}");
    assert!(error.downcast_ref::<WarmFailed>().is_none());
    assert_eq!(object_gets(&upstream), Vec::<String>::new());
}

#[tokio::test]
async fn an_upstream_hiccup_is_retried_and_a_lasting_failure_is_reported_with_its_oci_error() {
    let upstream = FakeRegistry::start().await;
    let (_, layers) = upstream.put_image("lab/flaky", "v1", &[b"flaky layer", b"broken layer"]);
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let unavailable = Some(Fault::Status { status: 503, retry_after: None });
    upstream.set_fault_for(&layers[0], unavailable.clone());
    upstream.set_fault_for(&layers[1], unavailable);
    let recovering = upstream.clone();
    let flaky = layers[0].clone();
    tokio::spawn(async move {
        recovering.wait_for_requests("GET", &format!("/blobs/{flaky}"), 1).await;
        recovering.set_fault_for(&flaky, None);
    });

    let error = warm(&options(&proxy, "default", &["lab/flaky:v1"])).await.unwrap_err();
    let summary = failed_summary(&error);
    assert_eq!(summary.blobs, 2, "config and the recovered layer: {summary}");
    assert_eq!(summary.failures.len(), 1, "{summary}");
    let failure = &summary.failures[0];
    assert_eq!(failure.object, format!("blob {}", layers[1]));
    assert_eq!(failure.status, Some(502));
    assert!(failure.message.starts_with("UNAVAILABLE: "), "{}", failure.message);
    assert_eq!(upstream.count("GET", &format!("/blobs/{}", layers[1])), 3, "tried three times");
    proxy.fills_settled().await;
    assert!(proxy.has_object(&layers[0]));
    assert!(!proxy.has_object(&layers[1]));
}

#[tokio::test]
async fn an_unreachable_proxy_is_one_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let options = WarmOptions {
        proxy: format!("http://{address}"),
        group: "default".into(),
        images: vec!["alpine".into()],
        token: None,
        concurrency: 4,
        proxy_origin: "--proxy".into(),
        config: None,
    };
    let error = warm(&options).await.unwrap_err();
    assert!(error.to_string().contains("cannot reach the proxy"), "{error:#}");
}

#[tokio::test]
async fn a_token_group_is_warmed_with_an_access_token() {
    let upstream = FakeRegistry::start().await;
    let image = put_multi_platform(&upstream, "team/app", "1.0").await;
    let proxy = TestProxy::start(Options::toml(&format!(
        r#"
        [[upstream]]
        name = "lab"
        url = "{}"
        [[group]]
        path = "acme/platform"
        upstream = "lab"
        access = "token"
        "#,
        upstream.url()
    )))
    .await;
    let metadata = metadata::Metadata::connect(&proxy.config.database_url).await.unwrap();
    let group = oci::GroupPath::parse("acme/platform").unwrap();
    let created = access::create_token(&metadata, &metadata::Clock::system(), "ci", vec![group], false, None)
        .await
        .unwrap();

    let mut warming = options(&proxy, "acme/platform", &["team/app:1.0"]);
    let error = warm(&warming).await.unwrap_err();
    let shown = format!("{error:#}");
    assert!(shown.contains("needs an access token") && shown.contains("DEPPROXY_TOKEN"), "{shown}");

    warming.token = Some("dpp_wrong_guess".into());
    let error = warm(&warming).await.unwrap_err();
    assert!(error.to_string().contains("refused the access token"), "{error:#}");
    assert!(!error.to_string().contains("dpp_wrong_guess"), "the secret is never shown");
    assert_eq!(object_gets(&upstream), Vec::<String>::new(), "nothing is fetched without access");

    warming.token = Some(created.secret.clone());
    let summary = warm(&warming).await.unwrap();
    assert_eq!((summary.manifests, summary.blobs), (4, image.blobs.len()), "{summary}");
    proxy.fills_settled().await;
    for digest in std::iter::once(&image.index).chain(&image.manifests).chain(&image.blobs) {
        assert!(proxy.has_object(digest), "{digest} is not cached");
    }
}

/// End to end: a real `distribution` registry holding the test images, depproxy as real split-mode
/// processes (control + gateway), and skopeo pulling afterwards without any upstream blob or
/// manifest request.
#[test]
fn warms_a_real_registry_through_split_mode_processes() {
    use crate::support::processes::{Depproxy, Registry, push_test_images, require_tools, skopeo_pull};

    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let proxy = Depproxy::split(&format!("http://{}", registry.address()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options = WarmOptions {
        proxy: proxy.url(),
        group: "default".into(),
        images: vec!["lab/multi:v1".into(), "lab/tiny-docker:v1".into(), "lab/layers:v1".into()],
        token: None,
        concurrency: 4,
        proxy_origin: "--proxy".into(),
        config: None,
    };
    let summary = runtime.block_on(warm(&options)).unwrap();
    assert_eq!(summary.images, 3, "{summary}");
    assert!(summary.manifests >= 5, "the index, its platforms and two images: {summary}");

    // The gateway commits a fill after the last byte went out: wait until every upstream GET has
    // a finished fill in its metrics.
    let finished_fills = || {
        let url = format!("{}/metrics", proxy.url());
        let metrics = crate::support::processes::run(std::process::Command::new("curl").args(["-sf", &url]));
        metrics
            .lines()
            .filter(|line| line.starts_with("depproxy_fills_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as usize
    };
    crate::support::processes::wait_until("fills did not finish", std::time::Duration::from_secs(30), || {
        finished_fills() >= registry.count("GET", "/blobs/") + registry.count("GET", "/manifests/")
    });
    let blobs = registry.count("GET", "/blobs/");
    let manifests = registry.count("GET", "/manifests/");
    let work = tempfile::tempdir().unwrap();
    for (image, all) in [("lab/multi", true), ("lab/tiny-docker", false), ("lab/layers", false)] {
        skopeo_pull(
            &format!("{}/{image}:v1", proxy.address()),
            &work.path().join(image.replace('/', "-")),
            all,
        );
    }
    assert_eq!(registry.count("GET", "/blobs/"), blobs, "a pull after warming fetched blobs upstream");
    assert_eq!(
        registry.count("GET", "/manifests/"),
        manifests,
        "a pull after warming fetched manifests upstream"
    );
}
