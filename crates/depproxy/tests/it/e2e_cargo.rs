//! cargo through depproxy end to end, with real parts: the lab sparse registry as the upstream
//! (an index server whose `config.json` sends downloads to a second server, as a registry and its
//! CDN are) serving crates `cargo package` made (`scripts/lab/make-cargo-fixtures.sh`: a dependency
//! tree, a yanked version, index paths of every length, upper case, a feature enabling an optional
//! dependency), depproxy as a real process with a cargo group at `/cargo/rust/`, and the real
//! cargo (`cargo fetch`, `cargo run --offline`, `cargo update`) replacing its default registry
//! with the group, each run with a fresh `CARGO_HOME`. Upstream requests are counted in the two
//! servers' logs, the proxy's answers in its access log.
//!
//! Needs cargo, python3, curl and flock.

use std::path::Path;

use crate::support::cargo::{
    CONSUMER_OUTPUT, CargoFixtures, SparseRegistry, access_field, access_lines, cargo, cargo_command,
    cargo_index, cargo_proxy, fetch_and_run, files_containing, locked_checksums,
};
use crate::support::packages::{
    create_token, curl_get, curl_head_and_body, files_with_hash, proxy_warnings, run_all,
};
use crate::support::processes::{Depproxy, require_tools};
use crate::support::webhook::{Answer, Webhook};

fn tools() {
    require_tools(&["cargo", "python3", "curl", "flock"]);
}

/// The consumer built: what it printed is what the fixtures say, and its lockfile pins each crate
/// to the cksum the index lists.
fn assert_consumer(project: &Path, fixtures: &CargoFixtures, printed: &str) {
    assert_eq!(printed, CONSUMER_OUTPUT, "what the consumer printed");
    let locked = locked_checksums(project);
    for file in fixtures.consumer_crates() {
        assert_eq!(
            locked.get(&file.name),
            Some(&(file.version.clone(), file.cksum.clone())),
            "{} in Cargo.lock: {locked:#?}",
            file.name
        );
    }
    assert_eq!(locked.len(), fixtures.consumer_crates().len(), "{locked:#?}");
}

/// Each crate of the consumer was fetched from the download server exactly once, and none from the
/// index server.
fn assert_one_download_per_crate(
    registry: &SparseRegistry,
    fixtures: &CargoFixtures,
    proxy: Option<&Depproxy>,
) {
    let downloads = registry.dl_requests();
    let warnings = proxy.map(proxy_warnings).unwrap_or_default();
    for file in fixtures.consumer_crates() {
        assert_eq!(
            downloads.get(&format!("GET {}", file.dl_path)).copied().unwrap_or(0),
            1,
            "download-server GETs of {}: {downloads:#?}\nproxy warnings:\n{warnings}",
            file.dl_path
        );
    }
    let index = registry.index_requests();
    assert!(
        !index.keys().any(|request| request.ends_with(".crate") || request.ends_with("/download")),
        "crates asked of the index server: {index:#?}"
    );
}

/// The control: the consumer fetches and builds straight from the lab registry, each crate
/// downloaded once, and cargo itself refuses the tampered crate, so what the tests below see
/// through the proxy is the proxy's doing.
#[test]
fn cargo_fetches_the_fixtures_straight_from_the_sparse_registry() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let project = fixtures.project("consumer", &registry.index_url());
    let home = tempfile::tempdir().unwrap();
    let printed = fetch_and_run(project.path(), home.path(), &[])
        .unwrap_or_else(|error| panic!("from the lab registry: {error}"));
    assert_consumer(project.path(), &fixtures, &printed);
    assert_one_download_per_crate(&registry, &fixtures, None);

    registry.tamper("dp-tampered", "1.0.0");
    let tampered = fixtures.project("consumer-tampered", &registry.index_url());
    let home = tempfile::tempdir().unwrap();
    let error = cargo(tampered.path(), home.path(), &["fetch"], &[]).unwrap_err();
    assert!(error.contains("failed to verify the checksum of `dp-tampered v1.0.0"), "{error}");
}

#[test]
fn cargo_fetch_through_the_proxy_builds_offline_and_again_with_the_upstream_down() {
    tools();
    let fixtures = CargoFixtures::get();
    let mut registry = SparseRegistry::start(&fixtures);
    let proxy = cargo_proxy(&registry, "");
    let index = cargo_index(&proxy);
    let dl_host = registry.dl_host();

    // config.json is the proxy's: downloads and the API at the group, nothing of the upstream's.
    let (status, body, complete) = curl_get(&format!("{index}config.json"), &[]);
    assert_eq!((status, complete), (200, true), "{}", String::from_utf8_lossy(&body));
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let group = index.trim_end_matches('/');
    assert_eq!(config["dl"], format!("{group}/api/v1/crates"), "{config}");
    assert_eq!(config["api"], group, "{config}");
    assert!(config.get("auth-required").is_none(), "an open group: {config}");
    // The registry's web API is not served: cargo's error shape, saying why.
    let (status, body, _) = curl_get(&format!("{index}api/v1/crates?q=dp"), &[]);
    assert_eq!(status, 404);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(answer["errors"][0]["detail"].as_str().unwrap().contains("read-only"), "{answer}");

    // Cold: cargo resolves through the group (dp-alpha ^1.0 → 1.1.0: 1.2.0 is yanked), downloads
    // every crate from it, and builds without the network.
    let cold = fixtures.project("consumer", &index);
    let cold_home = tempfile::tempdir().unwrap();
    let printed = fetch_and_run(cold.path(), cold_home.path(), &[])
        .unwrap_or_else(|error| panic!("cold fetch through the proxy: {error}\n{}", proxy_warnings(&proxy)));
    assert_consumer(cold.path(), &fixtures, &printed);
    assert_one_download_per_crate(&registry, &fixtures, Some(&proxy));
    for file in fixtures.consumer_crates() {
        let asked = registry.index_requests().get(&format!("GET {}", file.index_path)).copied();
        assert_eq!(asked, Some(1), "index server GETs of {}", file.index_path);
    }
    // Nothing cargo got names the download server: its config.json, index files and crates all
    // came from the group.
    let leaked = files_containing(cold_home.path(), &dl_host);
    assert!(leaked.is_empty(), "cargo's home names the download server {dl_host}: {leaked:?}");
    let downloads: Vec<String> = access_lines(&proxy)
        .into_iter()
        .filter(|line| access_field(line, "reference").is_some_and(|reference| reference != "index"))
        .filter(|line| access_field(line, "group") == Some("rust"))
        .collect();
    assert_eq!(
        downloads.len(),
        fixtures.consumer_crates().len(),
        "downloads through the group: {downloads:#?}"
    );

    // Warm, with both upstream servers gone: a new project and an empty CARGO_HOME get the same.
    registry.stop();
    let warm = fixtures.project("consumer", &index);
    let warm_home = tempfile::tempdir().unwrap();
    let printed = fetch_and_run(warm.path(), warm_home.path(), &[])
        .unwrap_or_else(|error| panic!("warm fetch, upstream down: {error}\n{}", proxy_warnings(&proxy)));
    assert_consumer(warm.path(), &fixtures, &printed);
}

#[test]
fn eight_concurrent_cold_cargo_fetches_fetch_each_crate_once() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let proxy = cargo_proxy(&registry, "");
    let index = cargo_index(&proxy);

    let projects: Vec<tempfile::TempDir> = (0..8).map(|_| fixtures.project("consumer", &index)).collect();
    let homes: Vec<tempfile::TempDir> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let commands = projects
        .iter()
        .zip(&homes)
        .map(|(project, home)| cargo_command(project.path(), home.path(), &["fetch"], &[]))
        .collect();
    for (i, result) in run_all(commands).iter().enumerate() {
        if let Err(error) = result {
            panic!("fetch {i} failed: {error}\n{}", proxy_warnings(&proxy));
        }
    }
    for (project, home) in projects.iter().zip(&homes) {
        let printed = cargo(project.path(), home.path(), &["run", "--offline", "--quiet"], &[])
            .unwrap_or_else(|error| panic!("offline build after the concurrent fetch: {error}"));
        assert_consumer(project.path(), &fixtures, &printed);
    }
    assert_one_download_per_crate(&registry, &fixtures, Some(&proxy));
    let asked = registry.index_requests();
    for file in fixtures.consumer_crates() {
        assert_eq!(
            asked.get(&format!("GET {}", file.index_path)).copied(),
            Some(1),
            "index server GETs of {}: {asked:#?}",
            file.index_path
        );
    }
}

#[test]
fn index_files_are_revalidated_from_the_cache_with_etag_and_last_modified() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let proxy = cargo_proxy(&registry, "");
    let index = cargo_index(&proxy);

    // With curl: the first answer (streamed from the upstream) carries Last-Modified; the cached
    // one an ETag too; each validator is answered 304 without asking the upstream.
    let url = format!("{index}dp/-a/dp-alpha");
    let (status, first, body) = curl_head_and_body(&url, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(first.contains_key("last-modified"), "the miss: {first:?}");
    let listed = std::fs::read(registry.tree.path().join("index/dp/-a/dp-alpha")).unwrap();
    assert_eq!(body, listed, "the index file as the registry lists it");
    let (status, cached, body) = curl_head_and_body(&url, &[]);
    assert_eq!((status, body == listed), (200, true));
    let etag = cached.get("etag").unwrap_or_else(|| panic!("no ETag on the hit: {cached:?}"));
    let modified = cached.get("last-modified").unwrap_or_else(|| panic!("no Last-Modified: {cached:?}"));
    for validator in [
        format!("If-None-Match: {etag}"),
        format!("If-Modified-Since: {modified}"),
        format!("If-Modified-Since: {}", first["last-modified"]),
    ] {
        let (status, _, body) = curl_head_and_body(&url, &[&validator]);
        assert_eq!((status, body.len()), (304, 0), "{validator}");
    }
    let (status, _, _) = curl_head_and_body(&url, &["If-None-Match: \"sha256:0000\""]);
    assert_eq!(status, 200, "another ETag");
    assert_eq!(registry.index_requests().get("GET /dp/-a/dp-alpha").copied(), Some(1), "upstream asked once");

    // With cargo: a second resolution with the same CARGO_HOME revalidates every index file it
    // uses and gets 304s from the cache — no body again, nothing upstream.
    let project = fixtures.project("consumer", &index);
    let home = tempfile::tempdir().unwrap();
    cargo(project.path(), home.path(), &["fetch"], &[])
        .unwrap_or_else(|error| panic!("cargo fetch: {error}"));
    let before = access_lines(&proxy).len();
    let upstream_before = (registry.index_requests(), registry.dl_requests());
    cargo(project.path(), home.path(), &["update"], &[])
        .unwrap_or_else(|error| panic!("cargo update: {error}"));
    let revalidated: Vec<String> = access_lines(&proxy)
        .into_iter()
        .skip(before)
        .filter(|line| access_field(line, "reference") == Some("index"))
        .collect();
    let names: Vec<&str> = revalidated.iter().filter_map(|line| access_field(line, "image")).collect();
    for file in fixtures.consumer_crates() {
        assert!(
            names.contains(&file.name.to_ascii_lowercase().as_str()),
            "{} not revalidated: {revalidated:#?}",
            file.name
        );
    }
    for line in &revalidated {
        assert_eq!(access_field(line, "status"), Some("304"), "{line}");
        assert_eq!(access_field(line, "bytes"), Some("0"), "{line}");
    }
    assert_eq!(
        (registry.index_requests(), registry.dl_requests()),
        upstream_before,
        "the upstream was asked"
    );
}

#[test]
fn a_crate_that_does_not_match_its_index_cksum_is_refused_and_not_recorded() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let served = registry.tamper("dp-tampered", "1.0.0");
    let listed = fixtures.crate_file("dp-tampered", "1.0.0");
    let proxy = cargo_proxy(&registry, "");
    let index = cargo_index(&proxy);
    let project = fixtures.project("consumer-tampered", &index);
    let download = format!("{index}api/v1/crates/dp-tampered/1.0.0/download");

    for attempt in 1..=2 {
        let home = tempfile::tempdir().unwrap();
        let fetched = cargo(project.path(), home.path(), &["fetch"], &[]);
        assert!(fetched.is_err(), "attempt {attempt}: cargo fetched the tampered crate:\n{fetched:?}");
        // The proxy's answer for the crate: an error, or a body cut short — never the tampered
        // bytes as a complete answer.
        let (status, body, complete) = curl_get(&download, &[]);
        assert!(
            !(status == 200 && complete),
            "attempt {attempt}: the proxy answered 200 with a complete body ({} bytes, sha256 {}; listed {})",
            body.len(),
            oci::Digest::of(&body).hex(),
            listed.cksum
        );
        let kept = files_with_hash(proxy.data_dir.path(), &served);
        assert!(kept.is_empty(), "attempt {attempt}: the tampered bytes are stored: {kept:?}");
    }
    // Refused after fetching it (not for want of a route): the download server was asked.
    let asked =
        |registry: &SparseRegistry| registry.dl_requests().get(&format!("GET {}", listed.dl_path)).copied();
    let refused = asked(&registry).unwrap_or(0);
    assert!(refused >= 1, "{:#?}", registry.dl_requests());

    // The download server serves the published bytes again: the crate was not stored, so the
    // proxy fetches it anew, and cargo takes it.
    registry.restore(&fixtures, "dp-tampered", "1.0.0");
    let home = tempfile::tempdir().unwrap();
    cargo(project.path(), home.path(), &["fetch"], &[])
        .unwrap_or_else(|error| panic!("fetch after the restore: {error}\n{}", proxy_warnings(&proxy)));
    assert_eq!(asked(&registry), Some(refused + 1), "{:#?}", registry.dl_requests());
    let locked = locked_checksums(project.path());
    assert_eq!(locked.get("dp-tampered"), Some(&("1.0.0".to_owned(), listed.cksum.clone())));
}

#[test]
fn a_token_group_says_auth_required_and_cargo_sends_its_token() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let proxy = cargo_proxy(&registry, "access = \"token\"");
    let index = cargo_index(&proxy);
    // The project names the group as the registry `dp` (credential-provider "cargo:token").
    let project = fixtures.project("consumer-dp", &index);

    let (status, body, _) = curl_get(&format!("{index}config.json"), &[]);
    assert_eq!(status, 401, "anonymous config.json: {}", String::from_utf8_lossy(&body));
    let anonymous = tempfile::tempdir().unwrap();
    let error = cargo(project.path(), anonymous.path(), &["fetch"], &[]).unwrap_err();
    assert!(error.contains("no token found for `dp`"), "anonymous fetch: {error}");
    let wrong = tempfile::tempdir().unwrap();
    let error = cargo(
        project.path(),
        wrong.path(),
        &["fetch"],
        &[("CARGO_REGISTRIES_DP_TOKEN", "dpp_0123456789abcdef_wrong")],
    )
    .unwrap_err();
    assert!(error.contains("token rejected") && error.contains("401"), "a wrong token: {error}");
    assert!(!project.path().join("Cargo.lock").exists(), "resolved without a token");
    assert_eq!(registry.dl_requests().keys().filter(|r| r.ends_with(".crate")).count(), 0);

    let secret = create_token(&proxy, "rust");
    // cargo sends the bare token (RFC 3139); config.json then says a token is required.
    let (status, body, _) = curl_get(&format!("{index}config.json"), &[&format!("Authorization: {secret}")]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["auth-required"], true, "{config}");
    let home = tempfile::tempdir().unwrap();
    let printed = fetch_and_run(project.path(), home.path(), &[("CARGO_REGISTRIES_DP_TOKEN", &secret)])
        .unwrap_or_else(|error| panic!("fetch with the token: {error}\n{}", proxy_warnings(&proxy)));
    assert_consumer(project.path(), &fixtures, &printed);
    assert_one_download_per_crate(&registry, &fixtures, Some(&proxy));
}

#[test]
fn a_denied_version_is_refused_to_cargo_and_never_fetched() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    // The consumer's tree resolves dp-alpha ^1.0 to 1.1.0: refused.
    let proxy = cargo_proxy(&registry, "deny = [\"dp-alpha@1.1.0\"]");
    let index = cargo_index(&proxy);
    let project = fixtures.project("consumer", &index);
    let home = tempfile::tempdir().unwrap();
    let error =
        cargo(project.path(), home.path(), &["fetch"], &[]).expect_err("cargo fetched a denied version");
    assert!(error.contains("dp-alpha") && error.contains("403"), "{error}");
    let denied = fixtures.crate_file("dp-alpha", "1.1.0");
    let (status, body, _) = curl_get(&format!("{index}api/v1/crates/dp-alpha/1.1.0/download"), &[]);
    assert_eq!(status, 403);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let message = answer["errors"][0]["detail"].as_str().unwrap();
    assert!(message.contains("dp-alpha@1.1.0") && message.contains("deny"), "{message}");
    assert_eq!(registry.dl_requests().get(&format!("GET {}", denied.dl_path)), None, "never fetched");
    // What the rule does not name comes through; the index file is judged by the name.
    let (status, body, complete) = curl_get(&format!("{index}api/v1/crates/dp-alpha/1.0.0/download"), &[]);
    assert_eq!((status, complete), (200, true));
    assert_eq!(oci::Digest::of(&body).hex(), fixtures.crate_file("dp-alpha", "1.0.0").cksum);
    let (status, _, _) = curl_get(&format!("{index}dp/-a/dp-alpha"), &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_crate_the_registry_does_not_have_is_asked_upstream_once_within_negative_ttl() {
    tools();
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let proxy = cargo_proxy(&registry, "negative_ttl = \"10m\"");
    let index = cargo_index(&proxy);
    let project = fixtures.project("consumer", &index);
    // A dependency no index lists (cargo also asks for the other spelling, dp_nope).
    let manifest = std::fs::read_to_string(project.path().join("Cargo.toml")).unwrap();
    std::fs::write(project.path().join("Cargo.toml"), format!("{manifest}dp-nope = \"1\"\n")).unwrap();
    for attempt in 1..=2 {
        let home = tempfile::tempdir().unwrap();
        let error = cargo(project.path(), home.path(), &["fetch"], &[]).unwrap_err();
        assert!(error.contains("no matching package named `dp-nope`"), "attempt {attempt}: {error}");
    }
    let asked = registry.index_requests();
    let missing: Vec<(&String, &usize)> =
        asked.iter().filter(|(request, _)| request.contains("dp_no") || request.contains("dp-no")).collect();
    assert!(asked.contains_key("GET /dp/-n/dp-nope"), "{asked:#?}");
    for (request, count) in &missing {
        assert_eq!(**count, 1, "{request} asked again within negative_ttl: {asked:#?}");
    }
    let (status, _, _) = curl_get(&format!("{index}dp/-n/dp-nope"), &[]);
    assert_eq!(status, 404);
    assert_eq!(registry.index_requests().get("GET /dp/-n/dp-nope"), Some(&1), "remembered");

    // The control: with the memory off, each ask reaches the upstream.
    let forgetful = cargo_proxy(&registry, "negative_ttl = \"0s\"");
    for _ in 0..2 {
        let (status, _, _) = curl_get(&format!("{}dp/-n/dp-nope", cargo_index(&forgetful)), &[]);
        assert_eq!(status, 404);
    }
    assert_eq!(registry.index_requests().get("GET /dp/-n/dp-nope"), Some(&3), "negative_ttl = 0s");
}

#[test]
fn an_admission_hook_refuses_a_crate_cargo_resolves_and_allows_the_rest() {
    tools();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hook = runtime.block_on(Webhook::start());
    hook.answer("dp-beta", Answer::Deny("CVE-2026-0003 (high)"));
    let fixtures = CargoFixtures::get();
    let registry = SparseRegistry::start(&fixtures);
    let proxy = cargo_proxy(&registry, &format!("admission_hook = \"{}\"", hook.url));
    let index = cargo_index(&proxy);
    let project = fixtures.project("consumer", &index);
    let home = tempfile::tempdir().unwrap();
    let error = cargo(project.path(), home.path(), &["fetch"], &[])
        .expect_err("cargo fetched a tree with a crate the hook refused");
    assert!(error.contains("dp-beta") && error.contains("403"), "{error}");
    let (status, body, _) = curl_get(&format!("{index}api/v1/crates/dp-beta/0.1.0/download"), &[]);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("CVE-2026-0003"), "{}", String::from_utf8_lossy(&body));
    let judged = hook.questions();
    assert!(
        judged.iter().any(|question| question["name"] == "dp-beta"
            && question["format"] == "cargo"
            && question["tag"] == "0.1.0"),
        "{judged:#?}"
    );
    // What the hook allows comes through, verified.
    let (status, body, complete) = curl_get(&format!("{index}api/v1/crates/dp-alpha/1.1.0/download"), &[]);
    assert_eq!((status, complete), (200, true));
    assert_eq!(oci::Digest::of(&body).hex(), fixtures.crate_file("dp-alpha", "1.1.0").cksum);
    drop(runtime);
}
