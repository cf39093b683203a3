//! npm and PyPI groups against a scripted upstream (what it answers, how often it was asked, down
//! or tampering on demand): documents rewritten and revalidated, files verified against the
//! checksums the documents published (and a file asked for first), remembered 404s, errors in
//! each ecosystem's shape, token groups, pass-throughs. Real clients against real servers are in
//! `e2e_npm` and `e2e_pypi`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

use crate::support::{Options, TestProxy, client, spawn_server};

/// A scripted answer: its content type and bytes.
type Served = (String, Vec<u8>);

/// A scripted package upstream: `files` by path (documents may say `{base}`, replaced by its
/// address), every request logged, and switches to answer 503 or to send other bytes.
#[derive(Clone, Default)]
struct Scripted {
    files: Arc<Mutex<HashMap<String, Served>>>,
    log: Arc<Mutex<Vec<String>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    tamper: Arc<std::sync::atomic::AtomicBool>,
    base: Arc<Mutex<String>>,
}

impl Scripted {
    async fn start() -> Scripted {
        let scripted = Scripted::default();
        let router = Router::new().fallback(answer).with_state(scripted.clone());
        let url = spawn_server(router).await;
        *scripted.base.lock().unwrap() = url;
        scripted
    }

    fn url(&self) -> String {
        self.base.lock().unwrap().clone()
    }

    fn serve(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) {
        self.files.lock().unwrap().insert(path.to_owned(), (content_type.to_owned(), body.into()));
    }

    /// How many requests asked for `path` (method and path, e.g. `GET /dp-a`).
    fn asked(&self, request: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|logged| *logged == request).count()
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn answer(
    State(scripted): State<Scripted>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accept = headers.get("accept").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    scripted.log.lock().unwrap().push(format!("{method} {}", uri.path()));
    if scripted.down.load(std::sync::atomic::Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if uri.path() == "/-/npm/v1/security/advisories/bulk" {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            format!("{{\"echo\":{}}}", body.len()),
        )
            .into_response();
    }
    // An abbreviated packument and a JSON project page are their own paths here, so tests see
    // which form was asked.
    let path = if accept.starts_with(npm::ABBREVIATED_MEDIA_TYPE) {
        format!("{}#abbreviated", uri.path())
    } else if accept.starts_with(pypi::JSON_MEDIA_TYPE) {
        format!("{}#json", uri.path())
    } else {
        uri.path().to_owned()
    };
    let found = {
        let files = scripted.files.lock().unwrap();
        files.get(&path).or_else(|| files.get(uri.path())).cloned()
    };
    match found {
        Some((content_type, mut bytes)) => {
            if scripted.tamper.load(std::sync::atomic::Ordering::SeqCst)
                && content_type == "application/octet-stream"
            {
                bytes[0] ^= 1;
            }
            let bytes = String::from_utf8(bytes.clone())
                .map(|text| text.replace("{base}", &scripted.url()).into_bytes())
                .unwrap_or(bytes);
            if method == axum::http::Method::HEAD {
                return (StatusCode::OK, [("content-type", content_type)]).into_response();
            }
            (StatusCode::OK, [("content-type", content_type)], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "{\"error\":\"not found\"}").into_response(),
    }
}

fn sha512_sri(bytes: &[u8]) -> String {
    format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes)))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A packument of `name` with one version whose tarball is `tarball`.
fn packument(name: &str, file: &str, tarball: &[u8]) -> String {
    serde_json::json!({
        "name": name,
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": name, "version": "1.0.0", "dist": {
            "tarball": format!("{{base}}/{name}/-/{file}"),
            "integrity": sha512_sri(tarball),
        }}}
    })
    .to_string()
}

const TARBALL: &[u8] = b"\x1f\x8b tarball bytes of dp-a 1.0.0";
const SCOPED_TARBALL: &[u8] = b"\x1f\x8b tarball bytes of @dp/util 1.0.0";

async fn npm_world(extra: &str) -> (TestProxy, Scripted) {
    npm_world_with(extra, false).await
}

async fn npm_world_with(extra: &str, split: bool) -> (TestProxy, Scripted) {
    let upstream = Scripted::start().await;
    let document = packument("dp-a", "dp-a-1.0.0.tgz", TARBALL);
    upstream.serve("/dp-a", "application/json", document.clone());
    upstream.serve("/dp-a#abbreviated", npm::ABBREVIATED_MEDIA_TYPE, document);
    upstream.serve("/dp-a/-/dp-a-1.0.0.tgz", "application/octet-stream", TARBALL);
    let scoped = packument("@dp/util", "util-1.0.0.tgz", SCOPED_TARBALL);
    upstream.serve("/@dp%2futil", "application/json", scoped.clone());
    upstream.serve("/@dp%2futil#abbreviated", npm::ABBREVIATED_MEDIA_TYPE, scoped);
    upstream.serve("/@dp/util/-/util-1.0.0.tgz", "application/octet-stream", SCOPED_TARBALL);
    let toml = format!(
        "[[upstream]]\nname = \"npmjs\"\nformat = \"npm\"\nurl = \"{}\"\n[[group]]\npath = \"js\"\nupstream = \"npmjs\"\nformat = \"npm\"\n{extra}",
        upstream.url()
    );
    let options = Options::toml(&toml);
    let proxy = TestProxy::start(if split { options.split() } else { options }).await;
    (proxy, upstream)
}

#[tokio::test]
async fn gateway_and_control_plane_apart_serve_npm_over_the_signed_contract() {
    let (proxy, upstream) = npm_world_with("", true).await;
    let tarball = client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(tarball.status(), StatusCode::OK);
    assert_eq!(tarball.bytes().await.unwrap(), TARBALL);
    let packument = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    let text = packument.text().await.unwrap();
    assert!(text.contains(&format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)), "{text}");
    proxy.settled().await;
    let again = client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), TARBALL);
    assert_eq!(upstream.asked("GET /dp-a/-/dp-a-1.0.0.tgz"), 1, "recorded through the upload calls");
}

#[tokio::test]
async fn a_packument_names_the_proxy_and_its_tarballs_are_fetched_once_and_verified() {
    let (proxy, upstream) = npm_world("").await;
    let packument = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert_eq!(packument.status(), StatusCode::OK);
    assert_eq!(packument.headers()["vary"], "Accept");
    let text = packument.text().await.unwrap();
    assert!(text.contains(&format!("\"tarball\":\"{}/npm/js/dp-a/-/dp-a-1.0.0.tgz\"", proxy.url)), "{text}");
    assert!(!text.contains(&upstream.url()), "the upstream's address never reaches the client: {text}");
    for _ in 0..3 {
        let tarball =
            client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
        assert_eq!(tarball.status(), StatusCode::OK);
        assert_eq!(tarball.bytes().await.unwrap(), TARBALL);
        proxy.settled().await;
    }
    assert_eq!(upstream.asked("GET /dp-a/-/dp-a-1.0.0.tgz"), 1, "{:?}", upstream.log.lock().unwrap());
    assert_eq!(upstream.asked("GET /dp-a"), 1, "the packument listed the tarball: not read again");
    // A stored document's ETag names its bytes and this client's rewrite.
    let hit = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert_eq!(hit.headers()["vary"], "Accept");
    let etag = hit.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(hit.text().await.unwrap(), text);
    let again = client()
        .get(format!("{}/npm/js/dp-a", proxy.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // Scoped names, written either way, are one package.
    for path in ["@dp%2futil", "@dp/util", "@dp%2Futil"] {
        let answer = client().get(format!("{}/npm/js/{path}", proxy.url)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(&format!("{}/npm/js/@dp/util/-/util-1.0.0.tgz", proxy.url)), "{text}");
    }
    assert_eq!(upstream.asked("GET /@dp%2futil"), 1);
    let tarball =
        client().get(format!("{}/npm/js/@dp/util/-/util-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(tarball.bytes().await.unwrap(), SCOPED_TARBALL);
}

#[tokio::test]
async fn the_abbreviated_packument_is_its_own_document() {
    let (proxy, upstream) = npm_world("").await;
    let abbreviated = client()
        .get(format!("{}/npm/js/dp-a", proxy.url))
        .header("accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*")
        .send()
        .await
        .unwrap();
    assert_eq!(abbreviated.status(), StatusCode::OK);
    assert_eq!(abbreviated.headers()["content-type"], npm::ABBREVIATED_MEDIA_TYPE);
    proxy.settled().await;
    assert_eq!(upstream.asked("GET /dp-a"), 1);
    let full = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert_eq!(full.headers()["content-type"], "application/json");
    assert_eq!(upstream.asked("GET /dp-a"), 2, "the full form is fetched too");
}

#[tokio::test]
async fn a_tarball_asked_for_first_is_verified_against_its_packument() {
    let (proxy, upstream) = npm_world("").await;
    let tarball = client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(tarball.status(), StatusCode::OK);
    assert_eq!(tarball.bytes().await.unwrap(), TARBALL);
    assert_eq!(upstream.asked("GET /dp-a"), 1, "the packument was read for the tarball's checksum");
    // A tarball its packument does not list is 404, in npm's shape.
    let unlisted = client().get(format!("{}/npm/js/dp-a/-/dp-a-9.9.9.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(unlisted.status(), StatusCode::NOT_FOUND);
    assert_eq!(unlisted.headers()["content-type"], "application/json");
    let body: serde_json::Value = unlisted.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("dp-a/-/dp-a-9.9.9.tgz"), "{body}");
}

#[tokio::test]
async fn a_tampered_tarball_is_refused_and_not_recorded() {
    let (proxy, upstream) = npm_world("").await;
    upstream.tamper.store(true, std::sync::atomic::Ordering::SeqCst);
    for attempt in 1..=2 {
        let answer =
            client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
        let complete = match answer.status() {
            StatusCode::OK => answer.bytes().await.map(|bytes| bytes.as_ref() == TARBALL).unwrap_or(false),
            _ => false,
        };
        assert!(!complete, "attempt {attempt}: the client never gets the bytes as verified");
        proxy.settled().await;
        assert_eq!(
            upstream.asked("GET /dp-a/-/dp-a-1.0.0.tgz"),
            attempt,
            "nothing was recorded: fetched again"
        );
    }
    let digest = oci::Digest::of(&{
        let mut bytes = TARBALL.to_vec();
        bytes[0] ^= 1;
        bytes
    });
    assert!(!proxy.has_object(&digest), "the tampered bytes are not stored");
    upstream.tamper.store(false, std::sync::atomic::Ordering::SeqCst);
    let good = client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(good.bytes().await.unwrap(), TARBALL);
}

#[tokio::test]
async fn bad_names_are_refused_in_npm_shape_and_missing_packages_are_remembered() {
    let (proxy, upstream) = npm_world("").await;
    for bad in ["Upper", "_private", "@scope", "a%20b", &"x".repeat(215)] {
        let answer = client().get(format!("{}/npm/js/{bad}", proxy.url)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    assert!(upstream.log.lock().unwrap().is_empty(), "a bad name never reaches the upstream");
    for _ in 0..3 {
        let missing = client().get(format!("{}/npm/js/no-such-package", proxy.url)).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        proxy.settled().await;
    }
    assert_eq!(upstream.asked("GET /no-such-package"), 1, "the 404 is remembered for negative_ttl");
}

#[tokio::test]
async fn a_stale_packument_is_served_while_the_upstream_is_down() {
    let clock = cache::Clock::manual(1_800_000_000_000);
    let upstream = Scripted::start().await;
    upstream.serve("/dp-a", "application/json", packument("dp-a", "dp-a-1.0.0.tgz", TARBALL));
    let toml = format!(
        "[[upstream]]\nname = \"npmjs\"\nformat = \"npm\"\nurl = \"{}\"\n[[group]]\npath = \"js\"\nupstream = \"npmjs\"\nformat = \"npm\"\ndocument_recheck = \"2m\"\n",
        upstream.url()
    );
    let proxy = TestProxy::start(Options::toml(&toml).clock(clock.clone())).await;
    let first = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    let first = first.text().await.unwrap();
    proxy.settled().await;
    clock.advance(Duration::from_secs(60));
    let fresh = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert!(fresh.headers().get("warning").is_none());
    assert_eq!(
        upstream.asked("GET /dp-a") + upstream.asked("HEAD /dp-a"),
        1,
        "fresh within document_recheck"
    );
    clock.advance(Duration::from_secs(120));
    upstream.set_down(true);
    let stale = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert!(stale.headers()["warning"].to_str().unwrap().contains("upstream unreachable"));
    assert_eq!(stale.text().await.unwrap(), first);
    assert_eq!(upstream.asked("HEAD /dp-a"), 1, "the stale document was revalidated");
    upstream.set_down(false);
    let refreshed = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert!(refreshed.headers().get("warning").is_none());
    assert_eq!(upstream.asked("GET /dp-a"), 2, "back up: fetched again");
}

#[tokio::test]
async fn a_token_group_takes_the_npm_bearer_and_basic_and_whoami_names_the_token() {
    let (proxy, upstream) = npm_world("access = \"token\"\n").await;
    let metadata = metadata::Metadata::connect(&proxy.config.database_url).await.unwrap();
    let group = oci::GroupPath::parse("js").unwrap();
    let created = access::create_token(&metadata, &cache::Clock::system(), "ci", vec![group], false, None)
        .await
        .unwrap();
    let anonymous = client().get(format!("{}/npm/js/dp-a", proxy.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert!(body["error"].is_string());
    assert!(upstream.log.lock().unwrap().is_empty());
    let bearer = client()
        .get(format!("{}/npm/js/dp-a", proxy.url))
        .header("authorization", format!("Bearer {}", created.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{}", created.secret));
    let tarball = client()
        .get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap();
    assert_eq!(tarball.status(), StatusCode::OK);
    let whoami = client()
        .get(format!("{}/npm/js/-/whoami", proxy.url))
        .header("authorization", format!("Bearer {}", created.secret))
        .send()
        .await
        .unwrap();
    let whoami: serde_json::Value = whoami.json().await.unwrap();
    assert_eq!(whoami["username"], "ci");
    let wrong = client()
        .get(format!("{}/npm/js/dp-a", proxy.url))
        .header("authorization", "Bearer dpp_not_a_token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ping_and_audit_pass_through_uncached() {
    let (proxy, upstream) = npm_world("").await;
    upstream.serve("/-/ping", "application/json", "{}");
    for _ in 0..2 {
        let ping = client().get(format!("{}/npm/js/-/ping", proxy.url)).send().await.unwrap();
        assert_eq!(ping.status(), StatusCode::OK);
    }
    assert_eq!(upstream.asked("GET /-/ping"), 2, "never cached");
    let audit = client()
        .post(format!("{}/npm/js/-/npm/v1/security/advisories/bulk", proxy.url))
        .header("content-type", "application/json")
        .body("{\"dp-a\":[\"1.0.0\"]}")
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), StatusCode::OK);
    assert_eq!(audit.text().await.unwrap(), "{\"echo\":18}", "the body reached the upstream");
}

const WHEEL: &[u8] = b"PK\x03\x04 wheel bytes of dp-alpha 1.0";
const SDIST: &[u8] = b"\x1f\x8b sdist bytes of dp-alpha 1.0";

async fn pypi_world() -> (TestProxy, Scripted, Scripted) {
    let upstream = Scripted::start().await;
    let files = Scripted::start().await;
    let page = format!(
        "<html><body>\n<a href=\"/packages/dp_alpha-1.0-py3-none-any.whl#sha256={}\" data-requires-python=\"&gt;=3.8\" data-core-metadata=\"sha256={}\">dp_alpha-1.0-py3-none-any.whl</a>\n<a href=\"{}/ab/dp-alpha-1.0.tar.gz#sha256={}\" data-yanked=\"\">dp-alpha-1.0.tar.gz</a>\n</body></html>",
        sha256_hex(WHEEL),
        sha256_hex(b"Metadata-Version: 2.1\nName: dp-alpha\n"),
        files.url(),
        sha256_hex(SDIST),
    );
    upstream.serve("/simple/dp-alpha/", "text/html", page);
    upstream.serve("/packages/dp_alpha-1.0-py3-none-any.whl", "application/octet-stream", WHEEL);
    upstream.serve(
        "/packages/dp_alpha-1.0-py3-none-any.whl.metadata",
        "application/octet-stream",
        &b"Metadata-Version: 2.1\nName: dp-alpha\n"[..],
    );
    files.serve("/ab/dp-alpha-1.0.tar.gz", "application/octet-stream", SDIST);
    let toml = format!(
        "[[upstream]]\nname = \"pypi\"\nformat = \"pypi\"\nurl = \"{}\"\nfiles_url = \"{}\"\n[[group]]\npath = \"python\"\nupstream = \"pypi\"\nformat = \"pypi\"\n",
        upstream.url(),
        files.url()
    );
    let proxy = TestProxy::start(Options::toml(&toml)).await;
    (proxy, upstream, files)
}

#[tokio::test]
async fn a_project_page_keeps_its_attributes_and_names_the_proxy_for_every_file() {
    let (proxy, upstream, files) = pypi_world().await;
    let page = client().get(format!("{}/pypi/python/simple/dp-alpha/", proxy.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["vary"], "Accept");
    let page = page.text().await.unwrap();
    assert!(page.contains("href=\"/pypi/python/packages/dp_alpha-1.0-py3-none-any.whl#sha256="), "{page}");
    assert!(
        page.contains(&format!("href=\"{}/pypi/python/files/ab/dp-alpha-1.0.tar.gz#sha256=", proxy.url)),
        "{page}"
    );
    assert!(page.contains("data-requires-python=\"&gt;=3.8\"") && page.contains("data-yanked=\"\""));
    assert!(page.contains("data-core-metadata=\"sha256="));
    assert!(!page.contains(&upstream.url()) && !page.contains(&files.url()), "{page}");
    for (path, bytes) in [
        ("packages/dp_alpha-1.0-py3-none-any.whl", WHEEL),
        ("files/ab/dp-alpha-1.0.tar.gz", SDIST),
        ("packages/dp_alpha-1.0-py3-none-any.whl.metadata", &b"Metadata-Version: 2.1\nName: dp-alpha\n"[..]),
    ] {
        for _ in 0..2 {
            let answer = client().get(format!("{}/pypi/python/{path}", proxy.url)).send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            assert_eq!(answer.bytes().await.unwrap(), bytes, "{path}");
            proxy.settled().await;
        }
    }
    assert_eq!(upstream.asked("GET /packages/dp_alpha-1.0-py3-none-any.whl"), 1);
    assert_eq!(files.asked("GET /ab/dp-alpha-1.0.tar.gz"), 1, "files_url is fetched through the proxy");
}

#[tokio::test]
async fn names_are_normalised_by_redirect_and_bad_ones_refused_in_plain_text() {
    let (proxy, upstream, _files) = pypi_world().await;
    for (path, location) in [
        ("simple/Dp.Alpha/", "../dp-alpha/"),
        ("simple/dp_alpha", "dp-alpha/"),
        ("simple/dp-alpha", "dp-alpha/"),
    ] {
        let answer = client().get(format!("{}/pypi/python/{path}", proxy.url)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(answer.headers()["location"], location, "{path}");
    }
    let root = client().get(format!("{}/pypi/python/simple/", proxy.url)).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::NOT_FOUND);
    assert!(root.text().await.unwrap().contains("not served"));
    let bad = client().get(format!("{}/pypi/python/simple/-bad-/", proxy.url)).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(upstream.log.lock().unwrap().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn a_file_asked_for_first_is_verified_and_json_is_chosen_by_accept() {
    let (proxy, upstream, _files) = pypi_world().await;
    let wheel = client()
        .get(format!("{}/pypi/python/packages/dp_alpha-1.0-py3-none-any.whl", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wheel.status(), StatusCode::OK);
    assert_eq!(wheel.bytes().await.unwrap(), WHEEL);
    assert_eq!(upstream.asked("GET /simple/dp-alpha/"), 1, "the page was read for the file's sha256");
    let json = client()
        .get(format!("{}/pypi/python/simple/dp-alpha/", proxy.url))
        .header("accept", "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert_eq!(json.headers()["vary"], "Accept");
}

#[tokio::test]
async fn a_json_project_page_names_the_proxy_and_keeps_its_hashes() {
    let (proxy, upstream, files) = pypi_world().await;
    let page = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "dp-alpha",
        "files": [
            {"filename": "dp_alpha-1.0-py3-none-any.whl", "url": "/packages/dp_alpha-1.0-py3-none-any.whl",
             "hashes": {"sha256": sha256_hex(WHEEL)}, "requires-python": ">=3.8", "core-metadata": false},
            {"filename": "dp-alpha-1.0.tar.gz", "url": format!("{}/ab/dp-alpha-1.0.tar.gz", files.url()),
             "hashes": {"sha256": sha256_hex(SDIST)}, "yanked": "broken"},
        ]
    })
    .to_string();
    // The upstream serves the JSON form only to a client asking for it.
    upstream.serve("/simple/dp-alpha/#json", pypi::JSON_MEDIA_TYPE, page);
    let json = client()
        .get(format!("{}/pypi/python/simple/dp-alpha/", proxy.url))
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert_eq!(json.headers()["content-type"], pypi::JSON_MEDIA_TYPE);
    assert_eq!(json.headers()["vary"], "Accept");
    let body: serde_json::Value = json.json().await.unwrap();
    let files_listed = body["files"].as_array().unwrap();
    assert_eq!(files_listed[0]["url"], "/pypi/python/packages/dp_alpha-1.0-py3-none-any.whl");
    assert_eq!(files_listed[1]["url"], format!("{}/pypi/python/files/ab/dp-alpha-1.0.tar.gz", proxy.url));
    assert_eq!(files_listed[0]["hashes"]["sha256"], sha256_hex(WHEEL));
    assert_eq!(files_listed[1]["yanked"], "broken");
    // The HTML form is its own document.
    let html = client().get(format!("{}/pypi/python/simple/dp-alpha/", proxy.url)).send().await.unwrap();
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let sdist =
        client().get(format!("{}/pypi/python/files/ab/dp-alpha-1.0.tar.gz", proxy.url)).send().await.unwrap();
    assert_eq!(sdist.bytes().await.unwrap(), SDIST);
}

#[tokio::test]
async fn a_package_groups_admission_hook_judges_each_file_before_anyone_gets_it() {
    let hook = crate::support::webhook::Webhook::start().await;
    hook.answer("@dp/util", crate::support::webhook::Answer::Deny("CVE-2026-0001 (critical)"));
    let (proxy, upstream) = npm_world(&format!("admission_hook = \"{}\"\n", hook.url)).await;
    // Documents are not held: the packument lists what the hook will judge.
    let packument = client().get(format!("{}/npm/js/@dp%2futil", proxy.url)).send().await.unwrap();
    assert_eq!(packument.status(), StatusCode::OK);
    let refused =
        client().get(format!("{}/npm/js/@dp/util/-/util-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Refused by the gateway (the held fill's verdict), in npm's shape all the same.
    assert_eq!(refused.headers()["content-type"], "application/json");
    let body: serde_json::Value = refused.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("CVE-2026-0001") && message.contains("@dp/util@1.0.0"), "{message}");
    proxy.settled().await;
    assert!(!proxy.has_object(&oci::Digest::of(SCOPED_TARBALL)), "refused bytes are not stored");
    assert_eq!(upstream.asked("GET /@dp/util/-/util-1.0.0.tgz"), 1);
    let allowed = client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.bytes().await.unwrap(), TARBALL);
    let question = hook.questions().into_iter().find(|question| question["name"] == "dp-a").unwrap();
    assert_eq!(
        (question["format"].as_str(), question["tag"].as_str()),
        (Some("npm"), Some("1.0.0")),
        "{question}"
    );
    proxy.settled().await;
    let again = client().get(format!("{}/npm/js/dp-a/-/dp-a-1.0.0.tgz", proxy.url)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "a remembered allow serves the stored file");
    assert_eq!(hook.asked_about("dp-a"), 1, "the verdict is remembered");
}
