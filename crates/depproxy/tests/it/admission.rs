//! A hold for new artifacts (`admission_hook`), in process, in front of a fake registry, with a
//! small webhook in the test: a new image's manifest is served only once the hook allowed it; a
//! refusal is a 403 naming the hook's reason, remembered (not asked, not fetched again) and
//! audited; a hook that does not answer is what `admission_on_timeout` says; the clients of one
//! fill share one hook call; `DELETE /api/v1/verdicts/{digest}` makes the hook be asked again.

use std::sync::Arc;

use cache::Clock;
use http::StatusCode;
use metadata::Metadata;
use testkit::FakeRegistry;

use crate::support::webhook::{Answer, Webhook};
use crate::support::{Options, TestProxy, client};

/// `default` held by `hook` (refused when it does not answer within `timeout`), `open` held by it
/// too but serving what it does not judge in time, `plain` not held.
fn config(registry: &FakeRegistry, hook: &Webhook, timeout: &str) -> String {
    format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"{}\"\n\
         [[group]]\npath = \"default\"\nupstream = \"lab\"\nadmission_hook = \"{hook}\"\nadmission_timeout = \"{timeout}\"\n\
         [[group]]\npath = \"open\"\nupstream = \"lab\"\nadmission_hook = \"{hook}\"\nadmission_timeout = \"{timeout}\"\n\
         admission_on_timeout = \"allow\"\n\
         [[group]]\npath = \"plain\"\nupstream = \"lab\"\n",
        registry.url(),
        hook = hook.url,
    )
}

async fn admin_token(proxy: &TestProxy) -> String {
    let metadata = Metadata::connect(&proxy.config.database_url).await.unwrap();
    let created = access::create_token(&metadata, &Clock::system(), "ops", vec![], true, None).await.unwrap();
    proxy.access.tokens().reload().await.unwrap();
    created.secret
}

/// Events the proxy logs reach `GET /api/v1/events` through the layer `depproxy serve` installs.
fn record_events() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry().with(telemetry::events::EventsLayer).try_init();
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

/// The OCI error envelope's first error.
async fn error_of(response: reqwest::Response) -> serde_json::Value {
    let body: serde_json::Value = response.json().await.unwrap();
    body["errors"][0].clone()
}

#[tokio::test]
async fn a_new_image_is_served_once_the_hook_allows_it_and_a_refusal_is_remembered_audited_and_forgotten_on_request()
 {
    record_events();
    for split in [false, true] {
        let mode = if split { "split" } else { "serve" };
        let registry = FakeRegistry::start().await;
        let hook = Webhook::start().await;
        let options = Options::toml(&config(&registry, &hook, "10s"));
        let proxy = TestProxy::start(if split { options.split() } else { options }).await;
        let (good, good_layers) = registry.put_image("lab/good", "v1", &[b"a clean layer"]);
        let (bad, _) = registry.put_image("lab/bad", "v1", &[b"a vulnerable layer"]);
        hook.answer("lab/bad", Answer::Deny("CVE-2024-0001 (critical) in openssl"));

        // Allowed: served, with its digest; the hook was told what it is and where it comes from.
        let response = get(&format!("{}/v2/lab/good/manifests/v1", proxy.url)).await;
        assert_eq!(response.status(), StatusCode::OK, "{mode}");
        assert_eq!(response.headers()["docker-content-digest"], good.to_string().as_str());
        assert_eq!(oci::Digest::of(&response.bytes().await.unwrap()), good);
        let question = hook.questions()[0].clone();
        assert_eq!(
            (&question["group"], &question["format"], &question["kind"], &question["name"], &question["tag"]),
            (&"default".into(), &"oci".into(), &"manifest".into(), &"lab/good".into(), &"v1".into()),
            "{mode}: {question}"
        );
        assert_eq!(question["digest"], good.to_string());
        assert_eq!(
            (&question["upstream"], &question["upstream_url"]),
            (&"lab".into(), &registry.url().into())
        );
        assert!(question["size"].as_u64().unwrap() > 0 && question["media_type"].is_string(), "{question}");
        // Its layer is not held; the manifest's hits are not asked about again.
        let layer = get(&format!("{}/v2/lab/good/blobs/{}", proxy.url, good_layers[0])).await;
        assert_eq!(layer.bytes().await.unwrap().as_ref(), b"a clean layer");
        proxy.fills_settled().await;
        assert!(proxy.has_object(&good), "{mode}: stored");
        for reference in ["v1".to_owned(), good.to_string()] {
            let again = get(&format!("{}/v2/lab/good/manifests/{reference}", proxy.url)).await;
            assert_eq!(again.status(), StatusCode::OK, "{mode}: {reference}");
        }
        assert_eq!(hook.questions().len(), 1, "{mode}: one question, about the manifest");

        // Refused: 403 DENIED with the hook's reason; nothing stored.
        let refused = get(&format!("{}/v2/lab/bad/manifests/v1", proxy.url)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{mode}");
        let error = error_of(refused).await;
        assert_eq!(error["code"], "DENIED", "{error}");
        assert_eq!(error["detail"]["rule"], "admission_hook", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("lab/bad:v1")
                && message.contains(
                    "refused by group default's admission hook: CVE-2024-0001 (critical) in openssl"
                ),
            "{mode}: {message}"
        );
        proxy.fills_settled().await;
        assert!(!proxy.has_object(&bad), "{mode}: a refused manifest is not stored");
        assert_eq!(proxy.temp_entries(), 0, "{mode}");

        // Remembered: refused again by tag and by digest, without asking the hook or the upstream.
        let fetched = registry.count("GET", "/lab/bad/manifests/");
        for reference in ["v1".to_owned(), bad.to_string()] {
            let again = get(&format!("{}/v2/lab/bad/manifests/{reference}", proxy.url)).await;
            assert_eq!(again.status(), StatusCode::FORBIDDEN, "{mode}: {reference}");
            let error = error_of(again).await;
            assert!(error["message"].as_str().unwrap().contains("CVE-2024-0001"), "{error}");
        }
        assert_eq!(hook.asked_about("lab/bad"), 1, "{mode}");
        assert_eq!(registry.count("GET", "/lab/bad/manifests/"), fetched, "{mode}: not fetched again");

        // Audited: the admin API's denials name the image, the rule and the reason.
        let token = admin_token(&proxy).await;
        let denials: serde_json::Value = client()
            .get(format!("{}/api/v1/events?kind=denied", proxy.admin_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = denials.as_array().unwrap();
        assert!(
            rows.iter().any(|row| row["image"] == "lab/bad:v1"
                && row["group"] == "default"
                && row["message"].as_str().unwrap().contains("refused by the admission hook")
                && row["message"].as_str().unwrap().contains("CVE-2024-0001")),
            "{mode}: {denials}"
        );

        // Forgotten on request: asked again at the next pull, which the hook now allows.
        let forget = |digest: &oci::Digest| {
            client()
                .delete(format!("{}/api/v1/verdicts/{digest}", proxy.admin_url))
                .bearer_auth(&token)
                .send()
        };
        let forgotten = forget(&bad).await.unwrap();
        assert_eq!(forgotten.status(), StatusCode::OK, "{mode}");
        let forgotten: serde_json::Value = forgotten.json().await.unwrap();
        assert_eq!(
            (forgotten["digest"].as_str(), forgotten["forgotten"].as_u64()),
            (Some(bad.to_string().as_str()), Some(1))
        );
        hook.answer("lab/bad", Answer::Allow);
        let now_allowed = get(&format!("{}/v2/lab/bad/manifests/v1", proxy.url)).await;
        assert_eq!(now_allowed.status(), StatusCode::OK, "{mode}");
        assert_eq!(oci::Digest::of(&now_allowed.bytes().await.unwrap()), bad);
        assert_eq!(hook.asked_about("lab/bad"), 2, "{mode}");
        proxy.fills_settled().await;
        assert!(proxy.has_object(&bad), "{mode}");

        // A cached object whose verdict is forgotten is judged again on its next hit.
        assert_eq!(forget(&good).await.unwrap().status(), StatusCode::OK);
        hook.answer("lab/good", Answer::Deny("withdrawn"));
        let rejudged = get(&format!("{}/v2/lab/good/manifests/v1", proxy.url)).await;
        assert_eq!(rejudged.status(), StatusCode::FORBIDDEN, "{mode}");
        assert!(error_of(rejudged).await["message"].as_str().unwrap().contains("withdrawn"));
        assert_eq!(hook.asked_about("lab/good"), 2, "{mode}");
        let unknown = forget(&oci::Digest::of(b"never judged")).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "{mode}");
        let not_a_digest = client()
            .delete(format!("{}/api/v1/verdicts/latest", proxy.admin_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(not_a_digest.status(), StatusCode::BAD_REQUEST);

        // A group without a hook holds nothing and asks nobody.
        let asked = hook.questions().len();
        let (plain, _) = registry.put_image("lab/plain", "v1", &[b"plain layer"]);
        let response =
            get(&format!("{}/v2/plain/dependency_proxy/containers/lab/plain/manifests/v1", proxy.url)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(oci::Digest::of(&response.bytes().await.unwrap()), plain);
        assert_eq!(hook.questions().len(), asked, "{mode}");
    }
}

#[tokio::test]
async fn a_hook_that_does_not_answer_in_time_is_what_admission_on_timeout_says() {
    let registry = FakeRegistry::start().await;
    let hook = Webhook::start().await;
    let proxy = TestProxy::start(Options::toml(&config(&registry, &hook, "1s"))).await;
    let (slow, _) = registry.put_image("lab/slow", "v1", &[b"a layer nobody judges"]);
    hook.answer("lab/slow", Answer::Never);

    // `default` refuses what its hook did not judge within admission_timeout, and stores nothing.
    let refused = get(&format!("{}/v2/lab/slow/manifests/v1", proxy.url)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let error = error_of(refused).await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("held by group default's admission hook")
            && message.contains("no answer within 1s")
            && message.contains("admission_on_timeout = \"deny\""),
        "{message}"
    );
    proxy.fills_settled().await;
    assert!(!proxy.has_object(&slow));
    // That silence is remembered a while: the next pull is refused at once, the hook not asked.
    let asked = hook.asked_about("lab/slow");
    let again = get(&format!("{}/v2/lab/slow/manifests/v1", proxy.url)).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert_eq!(hook.asked_about("lab/slow"), asked);

    // `open` serves it (and stores it) when its hook does not answer.
    let served =
        get(&format!("{}/v2/open/dependency_proxy/containers/lab/slow/manifests/v1", proxy.url)).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(oci::Digest::of(&served.bytes().await.unwrap()), slow);
    proxy.fills_settled().await;
    assert!(proxy.has_object(&slow));
    let metrics = proxy.metrics().await;
    for sample in [
        "depproxy_admission_decisions_total{group=\"default\",outcome=\"no_answer_denied\"} 1",
        "depproxy_admission_decisions_total{group=\"open\",outcome=\"no_answer_allowed\"} 1",
    ] {
        assert!(metrics.lines().any(|line| line == sample), "{sample} in:\n{metrics}");
    }
}

#[tokio::test]
async fn the_clients_of_one_fill_wait_for_one_hook_call_and_get_the_bytes_at_once() {
    for split in [false, true] {
        let mode = if split { "split" } else { "serve" };
        let registry = FakeRegistry::start().await;
        let hook = Webhook::start().await;
        let options = Options::toml(&config(&registry, &hook, "30s"));
        let proxy = Arc::new(TestProxy::start(if split { options.split() } else { options }).await);
        let (manifest, _) = registry.put_image("lab/popular", "v1", &[b"everyone wants this"]);
        hook.hold_answers();
        let mut asked = hook.asked();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let url = format!("{}/v2/lab/popular/manifests/v1", proxy.url);
                tokio::spawn(async move { get(&url).await })
            })
            .collect();
        // The hook is asked (the bytes are in and verified by then); nobody has an answer yet.
        asked.wait_for(|asked| *asked >= 1).await.unwrap();
        assert!(clients.iter().all(|client| !client.is_finished()), "{mode}: held");
        // Operators see it waiting for its verdict (a split gateway reports every second).
        let token = admin_token(&proxy).await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let fills: serde_json::Value = client()
                .get(format!("{}/api/v1/fills", proxy.admin_url))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let waiting = fills.as_array().unwrap().iter().any(|fill| {
                fill["object"] == "lab/popular:v1" && fill["phase"] == "verdict" && fill["clients"] == 0
            });
            if waiting {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{mode}: no fill waiting for its verdict: {fills}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        hook.release_answers();
        for client in clients {
            let response = client.await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{mode}");
            assert_eq!(oci::Digest::of(&response.bytes().await.unwrap()), manifest);
        }
        assert_eq!(hook.asked_about("lab/popular"), 1, "{mode}: one hook call for every client");
        assert_eq!(registry.count("GET", "/lab/popular/manifests/"), 1, "{mode}: one fill");
        proxy.fills_settled().await;
        assert!(proxy.has_object(&manifest), "{mode}");
    }
}
