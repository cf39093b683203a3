//! The go command through depproxy end to end, with real parts: the lab's GOPROXY upstream and
//! checksum database `sum.example.com` (`scripts/lab/start-goproxy.sh`) serving modules made by
//! `scripts/lab/make-go-fixtures.sh` (one with an upper-case path, `example.com/dp/Beta`, which
//! the protocol writes `!beta` and the go command sends as `%21beta`), depproxy as a real process
//! with a Go group at `/go/golang`, and the real `go` (`go mod download`, `go build`), each client
//! with a fresh HOME, GOPATH and module cache. Upstream requests are counted in the upstream's log.
//!
//! Needs go, curl and flock (`scripts/install-test-deps.sh`).

use crate::support::go::{
    CONSUMER_MODULES, CONSUMER_OUTPUT, GoClient, GoFixtures, GoUpstream, SUMDB, SumDb, consumer_files,
    escape, go_proxy, go_proxy_over_tls, goproxy_url, module_file, zip_sha256,
};
use crate::support::packages::{create_token, curl_get, files_with_hash, proxy_warnings, run_all};
use crate::support::processes::{Depproxy, TestCertificates, require_tools};
use crate::support::webhook::{Answer, Webhook};

fn tools() {
    require_tools(&["go", "curl", "flock"]);
}

/// Each of the consumer's `.info`, `.mod` and `.zip` was fetched from `upstream` exactly once.
fn assert_each_file_fetched_once(upstream: &GoUpstream, proxy: &Depproxy) {
    for file in consumer_files() {
        assert_eq!(
            upstream.gets(&file),
            1,
            "upstream GETs of {file}; all upstream requests: {:#?}\nproxy warnings:\n{}",
            upstream.requests(),
            proxy_warnings(proxy)
        );
    }
}

fn zip_url(proxy: &Depproxy, module: &str, version: &str) -> String {
    format!("{}{}", goproxy_url(proxy), module_file(module, version, "zip"))
}

#[test]
fn go_downloads_and_builds_through_the_proxy_and_again_with_the_upstream_down() {
    tools();
    let fixtures = GoFixtures::get();
    let mut upstream = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, "");
    let goproxy = goproxy_url(&proxy);
    let verify = SumDb::Key(fixtures.sumdb_key());

    // Cold, verifying every hash through the proxy's checksum database.
    let client = GoClient::new(&fixtures, &goproxy, verify.clone());
    let trace = client.download().unwrap_or_else(|error| panic!("cold go mod download: {error}"));
    // The upper-case module, percent-escaped by the go command, served.
    assert!(trace.contains(&format!("{goproxy}/example.com/dp/%21beta/@v/v1.1.0.zip: 200 OK")), "{trace}");
    assert_eq!(client.build_and_run().unwrap_or_else(|error| panic!("go build: {error}")), CONSUMER_OUTPUT);
    assert_each_file_fetched_once(&upstream, &proxy);

    // Warm, with the upstream gone: a fresh client still downloads, verifies and builds.
    upstream.server.stop();
    let client = GoClient::new(&fixtures, &goproxy, verify);
    client.download().unwrap_or_else(|error| {
        panic!("warm go mod download, upstream down: {error}\nproxy warnings:\n{}", proxy_warnings(&proxy))
    });
    assert_eq!(
        client.build_and_run().unwrap_or_else(|error| panic!("warm go build, upstream down: {error}")),
        CONSUMER_OUTPUT
    );
}

#[test]
fn the_checksum_database_is_read_through_the_proxy_its_tiles_once() {
    tools();
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, "");
    let goproxy = goproxy_url(&proxy);

    for round in ["first", "second"] {
        let client = GoClient::new(&fixtures, &goproxy, SumDb::Key(fixtures.sumdb_key()));
        let trace = client.download().unwrap_or_else(|error| panic!("{round} client: {error}"));
        // The go command asked the database where GOPROXY is: supported, lookups, tiles.
        let sumdb = format!("{goproxy}/sumdb/{SUMDB}/");
        for asked in ["supported: 200 OK", "lookup/example.com/dp/%21beta@v1.1.0: 200 OK", "tile/"] {
            assert!(
                trace.contains(&format!("{sumdb}{asked}")),
                "{round} client: no {sumdb}{asked} in:\n{trace}"
            );
        }
        // Verified: its go.sum has the database's go.mod hashes, and the zips it kept hash as
        // the database says.
        let database = std::fs::read_to_string(fixtures.dir.join("sumdb/gosum")).unwrap();
        let sums = std::fs::read_to_string(client.project.join("go.sum")).unwrap();
        for (module, version) in CONSUMER_MODULES {
            let ziphash =
                client.modcache.join(format!("cache/download/{}/@v/{version}.ziphash", escape(module)));
            let ziphash = std::fs::read_to_string(&ziphash).unwrap();
            let expected =
                [format!("{module} {version} {}", ziphash.trim()), format!("{module} {version}/go.mod ")];
            assert!(
                database.lines().any(|line| line == expected[0]),
                "{round} client: {} is not the database's",
                expected[0]
            );
            assert!(
                sums.lines().any(|line| line.starts_with(&expected[1])),
                "{round} client's go.sum:\n{sums}"
            );
        }
        for line in sums.lines() {
            assert!(database.lines().any(|known| known == line), "{line} is not the database's");
        }
    }
    let upstream_log = upstream.requests();
    assert!(!upstream.sumdb_gets("supported").is_empty(), "{upstream_log:#?}");
    for (module, version) in CONSUMER_MODULES {
        let lookup = format!("lookup/{}@{version}", escape(module));
        let gets: usize = upstream.sumdb_gets(&lookup).iter().map(|(_, count)| count).sum();
        assert_eq!(gets, 1, "{lookup}: {upstream_log:#?}");
    }
    let tiles = upstream.sumdb_gets("tile/");
    assert!(!tiles.is_empty(), "no tile fetched upstream: {upstream_log:#?}");
    for (tile, count) in &tiles {
        assert_eq!(*count, 1, "{tile}, asked by two clients, fetched upstream {count} times");
    }
    assert_each_file_fetched_once(&upstream, &proxy);
}

#[test]
fn eight_concurrent_cold_go_mod_downloads_fetch_each_file_once() {
    tools();
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, "");
    let goproxy = goproxy_url(&proxy);
    let clients: Vec<GoClient> =
        (0..8).map(|_| GoClient::new(&fixtures, &goproxy, SumDb::Key(fixtures.sumdb_key()))).collect();
    let commands = clients.iter().map(|client| client.command(&["mod", "download"])).collect();
    for (i, result) in run_all(commands).iter().enumerate() {
        if let Err(error) = result {
            panic!("client {i}: {error}\nproxy warnings:\n{}", proxy_warnings(&proxy));
        }
    }
    for client in &clients {
        for (module, version) in CONSUMER_MODULES {
            let zip =
                client.modcache.join("cache/download").join(escape(module)).join(format!("@v/{version}.zip"));
            let bytes = std::fs::read(&zip).unwrap_or_else(|error| panic!("{}: {error}", zip.display()));
            assert_eq!(oci::Digest::of(&bytes).hex(), zip_sha256(&fixtures, module, version));
        }
    }
    assert_each_file_fetched_once(&upstream, &proxy);
    for (tile, count) in upstream.sumdb_gets("tile/") {
        assert_eq!(count, 1, "{tile}, asked by eight clients at once, fetched upstream {count} times");
    }
}

#[test]
fn with_verify_sumdb_a_tampered_zip_is_refused_by_the_proxy_and_not_stored() {
    tools();
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let tampered = upstream.tamper("example.com/dp/Beta", "v1.1.0");
    let proxy = go_proxy(&upstream, &format!("verify_sumdb = true\nsumdb = \"{SUMDB}\""));
    let goproxy = goproxy_url(&proxy);

    for attempt in 1..=2 {
        // The client checks nothing itself: the refusal is the proxy's.
        let client = GoClient::new(&fixtures, &goproxy, SumDb::Off);
        let error = client.download().expect_err("go downloaded the tampered zip");
        assert!(error.contains("example.com/dp/Beta@v1.1.0"), "attempt {attempt}: {error}");
        let (status, body, complete) = curl_get(&zip_url(&proxy, "example.com/dp/Beta", "v1.1.0"), &[]);
        assert!(
            !(status == 200 && complete),
            "attempt {attempt}: the proxy answered {status} with a complete body ({} bytes, sha256 {})",
            body.len(),
            oci::Digest::of(&body).hex()
        );
        let kept = files_with_hash(proxy.data_dir.path(), &tampered);
        assert!(kept.is_empty(), "attempt {attempt}: the tampered zip is stored: {kept:?}");
    }
    // Refused after the proxy asked the database (the client never did) and fetched the zip.
    let zip = module_file("example.com/dp/Beta", "v1.1.0", "zip");
    assert!(upstream.gets(&zip) >= 1, "{:#?}", upstream.requests());
    assert!(
        !upstream.sumdb_gets("lookup/example.com/dp/!beta@v1.1.0").is_empty(),
        "the proxy did not read the database: {:#?}",
        upstream.requests()
    );
    // An untampered module from the same upstream passes the same check.
    let client = GoClient::new(&fixtures, &goproxy, SumDb::Off);
    client.go(&["mod", "download", "-x", "example.com/dp/alpha@v1.1.0"]).unwrap_or_else(|error| {
        panic!("untampered module: {error}\nproxy warnings:\n{}", proxy_warnings(&proxy))
    });
    // With the upstream's zip restored, the consumer builds: nothing of the tampered one was kept.
    upstream.restore("example.com/dp/Beta", "v1.1.0");
    let client = GoClient::new(&fixtures, &goproxy, SumDb::Off);
    client.download().unwrap_or_else(|error| panic!("after the restore: {error}"));
    assert_eq!(client.build_and_run().unwrap_or_else(|error| panic!("go build: {error}")), CONSUMER_OUTPUT);
}

#[test]
fn without_verify_sumdb_a_tampered_zip_is_served_as_fetched_and_go_catches_it() {
    tools();
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let tampered = upstream.tamper("example.com/dp/Beta", "v1.1.0");
    let proxy = go_proxy(&upstream, "");
    let goproxy = goproxy_url(&proxy);

    let (status, body, complete) = curl_get(&zip_url(&proxy, "example.com/dp/Beta", "v1.1.0"), &[]);
    assert_eq!((status, complete), (200, true));
    assert_eq!(oci::Digest::of(&body).hex(), tampered, "not the bytes the upstream served");
    // The go command's own check, through the proxy's checksum database, refuses it.
    let client = GoClient::new(&fixtures, &goproxy, SumDb::Key(fixtures.sumdb_key()));
    let error = client.download().expect_err("go accepted the tampered zip");
    assert!(error.contains("example.com/dp/Beta@v1.1.0") && error.contains("checksum mismatch"), "{error}");
}

#[test]
fn a_token_group_over_https_refuses_anonymous_go_and_takes_the_token_from_netrc() {
    tools();
    require_tools(&["openssl"]);
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let tls = TestCertificates::generate();
    let proxy = go_proxy_over_tls(&upstream, "access = \"token\"", &tls);
    // The go command sends .netrc credentials over https only.
    let goproxy = format!("https://{}/go/golang", proxy.address());
    let verify = SumDb::Key(fixtures.sumdb_key());

    let anonymous = GoClient::new(&fixtures, &goproxy, verify.clone()).trust(&tls.ca_cert);
    let error = anonymous.download().expect_err("an anonymous go mod download succeeded");
    assert!(error.contains("401 Unauthorized"), "{error}");

    let secret = create_token(&proxy, "golang");
    let client = GoClient::new(&fixtures, &goproxy, verify.clone()).trust(&tls.ca_cert);
    client.netrc("127.0.0.1", "ci", &secret);
    client.download().unwrap_or_else(|error| panic!("with the token in .netrc: {error}"));
    assert_eq!(client.build_and_run().unwrap_or_else(|error| panic!("go build: {error}")), CONSUMER_OUTPUT);
    assert_each_file_fetched_once(&upstream, &proxy);

    let wrong = GoClient::new(&fixtures, &goproxy, verify).trust(&tls.ca_cert);
    wrong.netrc("127.0.0.1", "ci", "dpp_0123456789abcdef_wrong");
    let error = wrong.download().expect_err("a wrong token downloads");
    assert!(error.contains("401 Unauthorized"), "{error}");
}

/// Why a token group needs https for go: over plain http the go command sends no credentials
/// to a GOPROXY at all — it ignores `.netrc` and refuses credentials in the URL (`GOINSECURE`
/// does not change that for GOPROXY requests) — while the proxy takes them.
#[test]
fn over_plain_http_go_sends_no_credentials_so_a_token_group_needs_https() {
    tools();
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, "access = \"token\"");
    let goproxy = goproxy_url(&proxy);
    let secret = create_token(&proxy, "golang");
    let list = format!("{goproxy}/example.com/dp/alpha/@v/list");
    let (status, _, _) = curl_get(&list, &[]);
    assert_eq!(status, 401, "anonymous list");
    let (status, body, _) = curl_get(
        &format!("http://ci:{secret}@{}/go/golang/example.com/dp/alpha/@v/list", proxy.address()),
        &[],
    );
    assert_eq!(status, 200, "the token over http: {}", String::from_utf8_lossy(&body));

    let netrc_only = GoClient::new(&fixtures, &goproxy, SumDb::Off);
    netrc_only.netrc("127.0.0.1", "ci", &secret);
    let error = netrc_only.download().expect_err("go sent .netrc credentials over http");
    assert!(error.contains("401 Unauthorized"), "{error}");
    let in_url = format!("http://ci:{secret}@{}/go/golang", proxy.address());
    let error = GoClient::new(&fixtures, &in_url, SumDb::Off).download().expect_err("credentials over http");
    assert!(error.contains("refusing to pass credentials to insecure URL"), "{error}");
    assert_eq!(upstream.gets(&module_file("example.com/dp/alpha", "v1.1.0", "mod")), 0);
}

#[test]
fn a_denied_module_version_is_refused_to_go_and_never_fetched() {
    tools();
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, "deny = [\"example.com/dp/Beta@v1.1.*\"]");
    let goproxy = goproxy_url(&proxy);

    let client = GoClient::new(&fixtures, &goproxy, SumDb::Off);
    let error = client.download().expect_err("go downloaded a denied module version");
    assert!(error.contains("example.com/dp/Beta@v1.1.0") && error.contains("403"), "{error}");
    let (status, body, _) = curl_get(&zip_url(&proxy, "example.com/dp/Beta", "v1.1.0"), &[]);
    assert_eq!(status, 403);
    let message = String::from_utf8_lossy(&body);
    assert!(message.contains("example.com/dp/Beta@v1.1.0") && message.contains("deny"), "{message}");
    for extension in ["info", "mod", "zip"] {
        let file = module_file("example.com/dp/Beta", "v1.1.0", extension);
        assert_eq!(upstream.gets(&file), 0, "{file} was fetched: {:#?}", upstream.requests());
    }
    // What the rule does not name comes through.
    let (status, _, complete) = curl_get(&zip_url(&proxy, "example.com/dp/Beta", "v1.0.0"), &[]);
    assert_eq!((status, complete), (200, true));
    let (status, _, complete) = curl_get(&zip_url(&proxy, "example.com/dp/alpha", "v1.1.0"), &[]);
    assert_eq!((status, complete), (200, true));
}

#[test]
fn a_module_the_upstream_lacks_is_404_remembered_and_go_moves_to_the_next_goproxy() {
    tools();
    let fixtures = GoFixtures::get();
    // The proxy's upstream lacks Beta; another GOPROXY after it has everything.
    let upstream = GoUpstream::start_without(&fixtures, &["example.com/dp/Beta"]);
    let elsewhere = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, "negative_ttl = \"10m\"");
    let goproxy = goproxy_url(&proxy);
    let beta_zip = module_file("example.com/dp/Beta", "v1.1.0", "zip");

    for round in ["first", "second"] {
        let client = GoClient::new(&fixtures, &format!("{goproxy},{}", elsewhere.url()), SumDb::Off);
        let trace = client.download().unwrap_or_else(|error| panic!("{round} client: {error}"));
        assert!(
            trace.contains(&format!("{goproxy}/example.com/dp/%21beta/@v/v1.1.0.mod: 404 Not Found")),
            "{trace}"
        );
        assert_eq!(
            client.build_and_run().unwrap_or_else(|error| panic!("go build: {error}")),
            CONSUMER_OUTPUT
        );
    }
    // Each of Beta's files asked of the proxy's upstream once: the second client's 404s were
    // the remembered ones.
    for extension in ["info", "mod", "zip"] {
        let file = module_file("example.com/dp/Beta", "v1.1.0", extension);
        assert_eq!(upstream.gets(&file), 1, "{file}: {:#?}", upstream.requests());
    }
    assert_eq!(elsewhere.gets(&beta_zip), 2, "each client took Beta from the next GOPROXY");
    assert_eq!(elsewhere.gets(&module_file("example.com/dp/alpha", "v1.1.0", "zip")), 0);

    // With the proxy as the only GOPROXY, an unknown module is "not found", not a server error.
    let client = GoClient::new(&fixtures, &goproxy, SumDb::Off);
    let error =
        client.go(&["mod", "download", "example.com/dp/nothere@v1.0.0"]).expect_err("an unknown module");
    assert!(error.contains(": 404 Not Found") && !error.contains(": 5"), "{error}");
}

#[test]
fn an_admission_hook_refuses_a_module_go_resolves_and_allows_the_rest() {
    tools();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hook = runtime.block_on(Webhook::start());
    hook.answer("example.com/dp/Beta", Answer::Deny("CVE-2026-0003 (high)"));
    let fixtures = GoFixtures::get();
    let upstream = GoUpstream::start(&fixtures);
    let proxy = go_proxy(&upstream, &format!("admission_hook = \"{}\"", hook.url));
    let goproxy = goproxy_url(&proxy);

    let client = GoClient::new(&fixtures, &goproxy, SumDb::Off);
    let error = client.download().expect_err("go downloaded a module the hook refused");
    assert!(error.contains("example.com/dp/Beta@v1.1.0") && error.contains("403"), "{error}");
    let (status, body, _) = curl_get(&zip_url(&proxy, "example.com/dp/Beta", "v1.1.0"), &[]);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("CVE-2026-0003"), "{}", String::from_utf8_lossy(&body));
    let questions = hook.questions();
    assert!(
        questions.iter().any(|question| question["name"] == "example.com/dp/Beta"
            && question["format"] == "go"
            && question["tag"] == "v1.1.0"),
        "{questions:#?}"
    );
    // What the hook allows comes through.
    let (status, _, complete) = curl_get(&zip_url(&proxy, "example.com/dp/alpha", "v1.1.0"), &[]);
    assert_eq!((status, complete), (200, true));
    drop(runtime);
}
