//! The status page at `/` of the admin listener. Over plain HTTP: only an admin token logs in, the
//! session cookie is HttpOnly and SameSite=Strict, forms and API calls without the session's CSRF
//! token are refused, logging out ends the session. In a real browser — headless Chromium driven
//! through chromedriver (both installed by scripts/install-test-deps.sh) — a person logs in, sees
//! a slow fill's progress bar advance as the upstream lets more bytes through, sees the group's
//! traffic chart draw the hits and misses of the current hour (checked on a screenshot of the
//! chart, pixel by pixel), and purges a group through the confirmation step and sees its size
//! drop. Screenshots are written to `$DEPPROXY_TEST_DIR/status-page/`.
//!
//! The browser is driven by a small W3C WebDriver client over reqwest (below): the handful of
//! commands used here do not justify a WebDriver crate's dependency tree.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Options, TestProxy, body_digest, client, pattern};
use base64::Engine as _;
use http::StatusCode;
use metadata::{Clock, Metadata};
use oci::GroupPath;
use serde_json::{Value, json};
use testkit::FakeRegistry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const MIB: usize = 1 << 20;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

async fn token(proxy: &TestProxy, name: &str, admin: bool) -> String {
    let metadata = Metadata::connect(&proxy.config.database_url).await.unwrap();
    let groups = if admin { vec![] } else { vec![GroupPath::parse("default").unwrap()] };
    let created = access::create_token(&metadata, &Clock::system(), name, groups, admin, None).await.unwrap();
    proxy.access.tokens().reload().await.unwrap();
    created.secret
}

/// `name=value` of the session cookie a response sets, and the whole `Set-Cookie` line.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let line = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = line.split(';').next().unwrap().trim().to_owned();
    (pair, line)
}

/// The CSRF token a page carries.
fn csrf_of(page: &str) -> String {
    let start = page.find("<meta name=\"csrf-token\" content=\"").expect("no CSRF token in the page") + 33;
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn only_an_admin_token_logs_in_and_forms_need_the_sessions_csrf_token() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let puller = token(&proxy, "ci", false).await;

    let login_page = client().get(format!("{admin_url}/")).send().await.unwrap();
    assert_eq!(login_page.status(), StatusCode::OK);
    let policy = login_page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    let html = login_page.text().await.unwrap();
    assert!(html.contains("action=\"/login\"") && html.contains("name=\"viewport\""), "{html}");
    let css = client().get(format!("{admin_url}/ui/page.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(!css.text().await.unwrap().contains("http"), "nothing loaded from elsewhere");

    let login =
        |secret: String| client().post(format!("{admin_url}/login")).form(&[("token", secret)]).send();
    let wrong = login("dpp_0000000000000000_nope".into()).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert_eq!(login(puller).await.unwrap().status(), StatusCode::FORBIDDEN, "a pull token may not log in");
    let ok = login(admin.clone()).await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/");
    let (cookie, line) = session_cookie(&ok);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(flag), "{line}");
    }
    assert_eq!(cookie.split_once('=').unwrap().1.len(), 64, "a 256-bit session id: {line}");
    assert!(!line.contains(&admin), "the cookie is not the token");

    let page = client().get(format!("{admin_url}/")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Logged in as <strong>ops</strong>"), "{page}");
    assert!(page.contains("id=\"overview\"") && page.contains("data-group=\"default\""), "{page}");
    let csrf = csrf_of(&page);

    // A form without the session's CSRF token is refused; with it, the confirmation step comes.
    let purge = |fields: Vec<(&'static str, String)>| {
        client().post(format!("{admin_url}/ui/purge")).header("cookie", &cookie).form(&fields).send()
    };
    let forged = purge(vec![("group", "default".into())]).await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let wrong_csrf = purge(vec![("group", "default".into()), ("csrf", "0".repeat(64))]).await.unwrap();
    assert_eq!(wrong_csrf.status(), StatusCode::FORBIDDEN);
    let confirm = purge(vec![("group", "default".into()), ("csrf", csrf.clone())]).await.unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    let confirm = confirm.text().await.unwrap();
    assert!(confirm.contains("action=\"/ui/purge/confirm\""), "{confirm}");
    let no_session = client()
        .post(format!("{admin_url}/ui/purge"))
        .form(&[("group", "default"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(no_session.status(), StatusCode::UNAUTHORIZED);

    // The API takes the cookie for reads, and for changes only with the CSRF token in a header.
    let groups = client().get(format!("{admin_url}/api/v1/groups")).header("cookie", &cookie).send();
    assert_eq!(groups.await.unwrap().status(), StatusCode::OK);
    let delete =
        || client().delete(format!("{admin_url}/api/v1/groups/default/cache")).header("cookie", &cookie);
    assert_eq!(delete().send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let wrong_header = delete().header("x-csrf-token", "0".repeat(64)).send().await.unwrap();
    assert_eq!(wrong_header.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(delete().header("x-csrf-token", &csrf).send().await.unwrap().status(), StatusCode::ACCEPTED);

    // Without the script, the confirmation form starts the purge and the page shows its job.
    let purged = client()
        .post(format!("{admin_url}/ui/purge/confirm"))
        .header("cookie", &cookie)
        .form(&[("group", "default"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), StatusCode::SEE_OTHER);
    let location = purged.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/?done=purge&group=default&job="), "{location}");
    let page = client().get(format!("{admin_url}{location}")).header("cookie", &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Purge of group <code>default</code> started") && page.contains("id=\"job\""),
        "{page}"
    );

    // Logging out ends the session on the server, not only in the browser.
    let logout = client()
        .post(format!("{admin_url}/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&logout).1.contains("Max-Age=0"));
    let after = client().get(format!("{admin_url}/")).header("cookie", &cookie).send().await.unwrap();
    assert!(after.text().await.unwrap().contains("action=\"/login\""));
    let api = client().get(format!("{admin_url}/api/v1/groups")).header("cookie", &cookie).send();
    assert_eq!(api.await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// Revoking a token through the page: the confirmation step, then the token is refused.
#[tokio::test]
async fn a_token_is_revoked_through_the_confirmation_step() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let other = token(&proxy, "other-admin", true).await;
    let ok = client().post(format!("{admin_url}/login")).form(&[("token", &admin)]).send().await.unwrap();
    let (cookie, _) = session_cookie(&ok);
    let page = client().get(format!("{admin_url}/")).header("cookie", &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("data-token=\"other-admin\""), "{page}");
    let csrf = csrf_of(&page);
    let post = |path: &str, name: &str| {
        client()
            .post(format!("{admin_url}{path}"))
            .header("cookie", &cookie)
            .form(&[("name", name), ("csrf", &csrf)])
            .send()
    };
    let confirm = post("/ui/revoke", "other-admin").await.unwrap().text().await.unwrap();
    assert!(confirm.contains("action=\"/ui/revoke/confirm\""), "{confirm}");
    let done = post("/ui/revoke/confirm", "other-admin").await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/?done=revoked&token=other-admin");
    let groups = client().get(format!("{admin_url}/api/v1/groups")).bearer_auth(&other).send();
    assert_eq!(groups.await.unwrap().status(), StatusCode::UNAUTHORIZED, "the revoked token is refused");
}

/// A TCP relay in front of the upstream that lets upstream-to-proxy bytes through only as far as
/// the test allows: a fill that advances when the test says so.
struct Valve {
    url: String,
    allowed: watch::Sender<u64>,
    passed: Arc<Mutex<u64>>,
}

impl Valve {
    async fn start(target: SocketAddr) -> Valve {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (allowed, _) = watch::channel(u64::MAX);
        let passed = Arc::new(Mutex::new(0u64));
        let (sender, counter) = (allowed.clone(), passed.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(relay(inbound, target, sender.subscribe(), counter.clone()));
            }
        });
        Valve { url, allowed, passed }
    }

    /// From now on, `more` bytes more, then the upstream's answers stop.
    fn hold_after(&self, more: u64) {
        let passed = *self.passed.lock().unwrap();
        self.allowed.send_replace(passed + more);
    }

    /// `more` bytes more.
    fn let_through(&self, more: u64) {
        self.allowed.send_modify(|allowed| *allowed = allowed.saturating_add(more));
    }

    fn open(&self) {
        self.allowed.send_replace(u64::MAX);
    }
}

async fn relay(
    inbound: tokio::net::TcpStream,
    target: SocketAddr,
    mut allowed: watch::Receiver<u64>,
    passed: Arc<Mutex<u64>>,
) {
    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_upstream, mut to_upstream) = outbound.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_upstream).await;
        let _ = to_upstream.shutdown().await;
    });
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(read) = from_upstream.read(&mut buffer).await
        && read > 0
    {
        let mut sent = 0;
        while sent < read {
            let take = loop {
                let limit = *allowed.borrow_and_update();
                {
                    let mut passed = passed.lock().unwrap();
                    if limit > *passed {
                        let take = ((read - sent) as u64).min(limit - *passed);
                        *passed += take;
                        break take as usize;
                    }
                }
                if allowed.changed().await.is_err() {
                    return;
                }
            };
            if to_client.write_all(&buffer[sent..sent + take]).await.is_err() {
                return;
            }
            sent += take;
        }
    }
    let _ = to_client.shutdown().await;
}

/// A W3C WebDriver session with headless Chromium, through chromedriver on a free port.
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: scripts/install-test-deps.sh installs chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http.get(format!("{root}/status")).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let answer: Value = http
            .post(format!("{root}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id =
            answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {answer}"));
        Browser { http, session: format!("{root}/session/{id}"), _driver: driver, _profile: profile }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method.clone(), format!("{}{path}", self.session));
        let request = if method == reqwest::Method::GET { request } else { request.json(&body) };
        let response = request.send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {answer}");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .command(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css}))
            .await;
        let id = found["element-6066-11e4-a52e-4f735466cecf"].as_str();
        id.unwrap_or_else(|| panic!("no element {css:?}: {found}")).to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/click"), json!({})).await;
    }

    /// Runs `body` (a function body: `return …`) in the page.
    async fn script(&self, body: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", json!({ "script": body, "args": [] })).await
    }

    /// Polls `body` until it returns something other than `null`/`false` (up to 30 s).
    async fn wait_for(&self, what: &str, body: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.script(body).await;
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.script("return document.body ? document.body.innerText : ''").await;
                panic!("waited 30 s for {what}; the page says:\n{}", text.as_str().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn resize(&self, width: u32, height: u32) {
        self.command(reqwest::Method::POST, "/window/rect", json!({ "width": width, "height": height }))
            .await;
    }

    async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        save_png(dir, name, &png)
    }

    /// A screenshot of the element `css` alone (scrolled into view), saved as `name`.png; its bytes.
    async fn element_screenshot(&self, css: &str, dir: &Path, name: &str) -> Vec<u8> {
        let element = self.element(css).await;
        let png =
            self.command(reqwest::Method::GET, &format!("/element/{element}/screenshot"), Value::Null).await;
        std::fs::read(save_png(dir, name, &png)).unwrap()
    }
}

impl Drop for Browser {
    /// Ends the session — chromedriver then closes Chromium — also when the test failed: a
    /// chromedriver killed with a session open leaves its Chromium running. Blocking, over a plain
    /// socket, as there is no `.await` in `drop`.
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let Some((host, path)) = self.session.strip_prefix("http://").and_then(|rest| rest.split_once('/'))
        else {
            return;
        };
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
            let request = format!(
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read(&mut [0; 512]);
        }
    }
}

/// Writes a WebDriver screenshot (base64 PNG) to `dir`/`name`.png.
fn save_png(dir: &Path, name: &str, png: &Value) -> PathBuf {
    let png = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
    path
}

/// A decoded screenshot: RGB pixels, row by row.
struct Pixels {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Pixels {
    fn decode(png: &[u8]) -> Pixels {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buffer).unwrap();
        assert_eq!(frame.bit_depth, png::BitDepth::Eight, "{frame:?}");
        let samples = frame.color_type.samples();
        assert!(samples >= 3, "a colour screenshot: {frame:?}");
        let rgb = buffer[..frame.buffer_size()]
            .chunks_exact(samples)
            .map(|pixel| [pixel[0], pixel[1], pixel[2]])
            .collect();
        Pixels { width: frame.width as usize, height: frame.height as usize, rgb }
    }

    /// Pixels of `colour` (give or take a little) with x in `columns` and y in `rows`.
    fn count(&self, colour: [u8; 3], columns: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> usize {
        let near = |pixel: &[u8; 3]| pixel.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 16);
        rows.filter(|y| *y < self.height)
            .flat_map(|y| columns.clone().filter(|x| *x < self.width).map(move |x| (x, y)))
            .filter(|(x, y)| near(&self.rgb[y * self.width + x]))
            .count()
    }
}

fn screenshot_dir() -> PathBuf {
    let root = std::env::var_os("DEPPROXY_TEST_DIR")
        .map_or_else(|| std::env::temp_dir().join("depproxy-test"), PathBuf::from);
    let dir = root.join("status-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A script returning the default group's size on the page once `condition` (on `bytes`) holds.
fn group_bytes_when(condition: &str) -> String {
    format!(
        "const cell = document.querySelector('#groups tr[data-group=\"default\"] .bytes'); \
         if (!cell) return null; const bytes = Number(cell.dataset.bytes); return {condition} ? bytes : null;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_admin_logs_in_watches_a_fill_advance_and_purges_a_group() {
    let started = Instant::now();
    let upstream = FakeRegistry::start().await;
    let valve = Valve::start(upstream.address()).await;
    let proxy = TestProxy::start(Options::upstream(&valve.url)).await;
    let admin_url = proxy.admin_url.clone();
    let secret = token(&proxy, "ops", true).await;
    let dir = screenshot_dir();

    // Something cached already.
    let (_, small) = upstream.put_image("lab/small", "v1", &[&pattern(2 * MIB, 1)]);
    let small_url = format!("{}/v2/lab/small/blobs/{}", proxy.url, small[0]);
    body_digest(client().get(&small_url).send().await.unwrap()).await.unwrap();
    proxy.fills_settled().await;

    let browser = Browser::start(1280, 1400).await;
    let browser_up = started.elapsed();
    browser.goto(&format!("{admin_url}/")).await;
    browser.wait_for("the login form", "return !!document.querySelector('input[name=token]')").await;
    browser.screenshot(&dir, "01-login").await;
    browser.type_into("input[name=token]", &secret).await;
    browser.click("form[action='/login'] button").await;
    browser.wait_for("the overview", "return !!document.querySelector('#overview')").await;
    let cached =
        browser.wait_for("the default group's size", &group_bytes_when("true")).await.as_u64().unwrap();
    assert!(cached >= 2 * MIB as u64, "{cached}");
    // The script runs (the page's CSP lets only its own script in) and its polling gets answers.
    browser
        .wait_for(
            "the live updates",
            "return /^live, updated/.test(document.getElementById('live').textContent)",
        )
        .await;
    let cookie_visible = browser.script("return document.cookie").await;
    assert_eq!(cookie_visible, "", "the session cookie is HttpOnly");
    browser.screenshot(&dir, "02-overview").await;

    // Traffic: the first pull was a miss; three more are hits. Once the reads are flushed, the
    // chart of the default group draws them in the current hour.
    for _ in 0..3 {
        body_digest(client().get(&small_url).send().await.unwrap()).await.unwrap();
    }
    proxy.cache.flush_reads().await.unwrap();
    browser.goto(&format!("{admin_url}/")).await;
    let hours = browser
        .wait_for(
            "the default group's traffic chart",
            "const hours = document.querySelectorAll('figure.chart[data-group=\"default\"] svg g.hour'); \
             if (hours.length === 0) return null; \
             return [...hours].map(hour => [Number(hour.dataset.hits), Number(hour.dataset.misses), \
               Number(hour.dataset.saved), hour.querySelector('title').textContent]);",
        )
        .await;
    let hours = hours.as_array().unwrap();
    assert_eq!(hours.len(), 24, "one bar per hour of the last 24: {hours:?}");
    let count = |index: usize| hours.iter().map(|hour| hour[index].as_u64().unwrap()).collect::<Vec<u64>>();
    let (hits, misses, saved) = (count(0), count(1), count(2));
    assert_eq!((hits.iter().sum::<u64>(), misses.iter().sum::<u64>()), (3, 1), "{hours:?}");
    assert!(saved.iter().sum::<u64>() >= 3 * 2 * MIB as u64, "three hits of 2 MiB saved: {hours:?}");
    assert!(
        hits[22] + hits[23] == 3,
        "in the current hour (or the one before, at a turn of the hour): {hits:?}"
    );
    assert!(hours.iter().all(|hour| hour[3].as_str().unwrap().contains(" UTC: ")), "{hours:?}");
    let summary = browser
        .script("return document.querySelector('figure.chart[data-group=\"default\"] .summary').textContent")
        .await;
    assert!(
        summary.as_str().unwrap().starts_with("Last 24 hours: 3 hits, 1 miss (hit ratio 75.0 %)"),
        "{summary}"
    );

    // The screenshot of the chart: the bars are where the figures say, in their colours.
    let png = browser
        .element_screenshot("figure.chart[data-group=\"default\"] svg", &dir, "03-traffic-chart")
        .await;
    let pixels = Pixels::decode(&png);
    let view_box = browser
        .script(
            "return document.querySelector('figure.chart[data-group=\"default\"] svg').viewBox.baseVal.width",
        )
        .await
        .as_f64()
        .unwrap();
    // The chart's geometry (admin/src/page/chart.rs): 56 units of labels, then 24 slots of 14;
    // requests from 18 down to 88 units (the legend's colour keys above), bytes saved 112 to 152.
    let scale = pixels.width as f64 / view_box;
    let units = |from: f64, to: f64| (from * scale).round() as usize..(to * scale).round() as usize;
    let slot = |index: usize| units(56.0 + 14.0 * index as f64, 56.0 + 14.0 * (index + 1) as f64);
    let requests_panel = units(16.0, 90.0);
    let saved_panel = units(110.0, 154.0);
    const HIT: [u8; 3] = [0x1b, 0x7f, 0x3b];
    const MISS: [u8; 3] = [0xa1, 0x5c, 0x00];
    const SAVED: [u8; 3] = [0x24, 0x58, 0xc6];
    // 24 hours between 25 ticks under the requests (in the axis colour), quiet hours included.
    const AXIS: [u8; 3] = [0xdd, 0xe1, 0xe7];
    let tick_row = (90.0 * scale).round() as usize;
    let plot = units(50.0, 56.0 + 14.0 * 24.0 + 4.0);
    let ticks = plot
        .clone()
        .filter(|x| pixels.count(AXIS, *x..*x + 1, tick_row..tick_row + 1) == 1)
        .filter(|x| *x == plot.start || pixels.count(AXIS, *x - 1..*x, tick_row..tick_row + 1) == 0)
        .count();
    assert_eq!(ticks, 25, "the hours' edges on row {tick_row} of {}×{} px", pixels.width, pixels.height);
    for hour in 0..24 {
        let hit_pixels = pixels.count(HIT, slot(hour), requests_panel.clone());
        let miss_pixels = pixels.count(MISS, slot(hour), requests_panel.clone());
        let saved_pixels = pixels.count(SAVED, slot(hour), saved_panel.clone());
        let at = format!("hour {hour} ({}), {}×{} px", hours[hour][3], pixels.width, pixels.height);
        if hits[hour] > 0 {
            assert!(hit_pixels >= 20, "a hit bar: {hit_pixels} px at {at}");
            assert!(saved_pixels >= 20, "a bytes-saved bar: {saved_pixels} px at {at}");
        } else {
            assert_eq!((hit_pixels, saved_pixels), (0, 0), "no hit bar at {at}");
        }
        if misses[hour] > 0 {
            assert!(miss_pixels >= 5, "a miss bar: {miss_pixels} px at {at}");
        } else {
            assert_eq!(miss_pixels, 0, "no miss bar at {at}");
        }
    }

    // A slow fill: the upstream's answer stops after about 1 MiB until the test lets more through.
    let total = 16 * MIB;
    let big = upstream.put_blob(pattern(total, 2));
    valve.hold_after(MIB as u64);
    let big_url = format!("{}/v2/lab/big/blobs/{big}", proxy.url);
    let pull = tokio::spawn(async move { body_digest(client().get(&big_url).send().await.unwrap()).await });
    const BAR: &str = "const bar = document.querySelector('#fill-rows tr.fill progress'); \
                       return bar && bar.value > 0 ? [bar.value, bar.max] : null;";
    let first = browser.wait_for("the fill's progress bar", BAR).await;
    assert_eq!(first[1].as_u64(), Some(total as u64), "{first}");
    let first = first[0].as_u64().unwrap();
    assert!(first <= 2 * MIB as u64, "held at about 1 MiB: {first}");
    browser.screenshot(&dir, "04-fill-held").await;
    valve.let_through(4 * MIB as u64);
    let advanced = format!(
        "const bar = document.querySelector('#fill-rows tr.fill progress'); \
         return bar && bar.value > {} ? bar.value : null;",
        first + MIB as u64
    );
    let second = browser.wait_for("the progress bar to advance", &advanced).await.as_u64().unwrap();
    assert!(second > first && second < total as u64, "{first} -> {second}");
    browser.screenshot(&dir, "05-fill-advanced").await;
    valve.open();
    let (digest, length) = pull.await.unwrap().unwrap();
    assert_eq!((digest, length), (big.clone(), total as u64));
    proxy.fills_settled().await;
    browser
        .wait_for("the fill to leave the list", "return !!document.querySelector('#fill-rows tr.empty')")
        .await;

    // Purge the group through the confirmation step; its size drops on the overview.
    let counted = group_bytes_when(&format!("bytes >= {}", cached + total as u64));
    let full = browser.wait_for("the group's size to count the new blob", &counted).await.as_u64().unwrap();
    browser.click("#groups tr[data-group='default'] form button").await;
    browser.wait_for("the confirmation step", "return !!document.querySelector('#confirm')").await;
    browser.screenshot(&dir, "06-confirm-purge").await;
    browser.click("#confirm").await;
    browser.wait_for("the purge notice", "return !!document.querySelector('#job')").await;
    let dropped = group_bytes_when(&format!("bytes < {full}"));
    let after = browser.wait_for("the group's size to drop", &dropped).await.as_u64().unwrap();
    browser
        .wait_for("the purge job to end", "return /^done/.test(document.querySelector('#job').textContent)")
        .await;
    browser.screenshot(&dir, "07-purged").await;
    assert!(after < full, "{full} -> {after}");

    // Readable on a phone: one column, nothing wider than the screen but the scrolling tables.
    browser.resize(390, 844).await;
    let overflow = browser.script("return document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap() <= 0, "the page scrolls sideways on a phone: {overflow}");
    browser.screenshot(&dir, "08-phone").await;
    drop(browser);
    println!(
        "status page in a browser: {:.1} s in all ({:.1} s to start the proxy and the browser); \
         fill bar {first} -> {second} of {total}; group {full} -> {after} bytes",
        started.elapsed().as_secs_f64(),
        browser_up.as_secs_f64()
    );
}
