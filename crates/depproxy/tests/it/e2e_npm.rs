//! npm through depproxy end to end, with real parts: Verdaccio as the upstream holding fixtures
//! published with `npm publish` (`scripts/lab/make-npm-fixtures.sh`: scoped and unscoped packages,
//! several versions, a dependency tree), depproxy as a real process with an npm group at
//! `/npm/js/`, and the real npm client (`npm install`, `npm ci`), each run with a fresh cache.
//! Upstream requests are counted in Verdaccio's log.
//!
//! Needs node, npm, Verdaccio 6.8.0 and curl (`scripts/install-test-deps.sh`).

use std::path::Path;

use crate::support::packages::{
    NpmFixtures, Verdaccio, create_token, curl_get, files_with_hash, node_require, npm, npm_command,
    npm_project, npm_registry, package_proxy, proxy_warnings, run_all,
};
use crate::support::processes::{Depproxy, require_tools};

/// A project whose one dependency, dp-app ^1.0.0, pulls the whole fixture tree.
const PROJECT: &str =
    r#"{"name": "dp-e2e", "version": "1.0.0", "private": true, "dependencies": {"dp-app": "^1.0.0"}}"#;

fn tools() {
    require_tools(&["node", "npm", "curl", "flock"]);
}

fn npm_proxy(verdaccio: &Verdaccio, group_extra: &str) -> Depproxy {
    package_proxy("npm", &verdaccio.url(), "js", "", group_extra)
}

/// The tree `PROJECT` installs, each package the version its range picks, with the published bytes.
fn assert_tree(project: &Path, fixtures: &NpmFixtures) {
    let installed = [
        ("dp-app", "node_modules/dp-app", "1.0.0"),
        ("dp-left-pad", "node_modules/dp-left-pad", "1.1.0"),
        ("dp-right-pad", "node_modules/dp-right-pad", "1.0.0"),
        ("@dp/util", "node_modules/@dp/util", "1.0.0"),
        ("dp-left-pad", "node_modules/@dp/util/node_modules/dp-left-pad", "2.0.0"),
    ];
    for (name, dir, version) in installed {
        let exported = node_require(project, &format!("./{dir}"));
        assert_eq!(exported, serde_json::json!({"name": name, "version": version}), "{dir}");
        let data = std::fs::read(project.join(dir).join("data.bin")).unwrap();
        let published = std::fs::read(fixtures.source(name, version).join("data.bin")).unwrap();
        assert!(data == published, "{dir}/data.bin differs from what {name}@{version} published");
    }
}

/// Each tarball of the tree was fetched from Verdaccio exactly once (`proxy` for its log, when
/// one is in between).
fn assert_one_upstream_get_per_tarball(
    verdaccio: &Verdaccio,
    fixtures: &NpmFixtures,
    proxy: Option<&Depproxy>,
) {
    let requests = verdaccio.server.requests();
    let warnings = proxy.map(proxy_warnings).unwrap_or_default();
    for tarball in fixtures.project_tarballs() {
        assert_eq!(
            verdaccio.server.count("GET", &tarball.path),
            1,
            "upstream GETs of {}; all upstream requests: {requests:#?}\nproxy warnings:\n{warnings}",
            tarball.path
        );
    }
}

/// The control: the fixtures install straight from Verdaccio, each tarball fetched once, so what
/// the tests below see through the proxy is the proxy's doing.
#[test]
fn npm_installs_the_fixture_tree_straight_from_verdaccio() {
    tools();
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    let project = npm_project(PROJECT);
    npm(project.path(), &format!("registry={}/\n", verdaccio.url()), &["install"])
        .unwrap_or_else(|error| panic!("install from Verdaccio: {error}"));
    assert_tree(project.path(), &fixtures);
    assert_one_upstream_get_per_tarball(&verdaccio, &fixtures, None);
    // The tampered tarball no longer matches the integrity Verdaccio lists: npm itself refuses it.
    verdaccio.tamper("dp-tampered", "1.0.0");
    let tampered = npm_project(
        r#"{"name": "dp-e2e-tampered", "version": "1.0.0", "private": true, "dependencies": {"dp-tampered": "1.0.0"}}"#,
    );
    let error = npm(tampered.path(), &format!("registry={}/\n", verdaccio.url()), &["install"]).unwrap_err();
    assert!(error.contains("EINTEGRITY"), "{error}");
}

#[test]
fn npm_install_through_the_proxy_and_again_with_the_upstream_down() {
    tools();
    let fixtures = NpmFixtures::get();
    let mut verdaccio = Verdaccio::start(&fixtures);
    let proxy = npm_proxy(&verdaccio, "");
    let registry = npm_registry(&proxy, "js");
    let npmrc = format!("registry={registry}\n");

    // The packument, full and abbreviated, unscoped and scoped: every tarball URL is the proxy's,
    // every checksum the one published.
    for (name, path, accept) in [
        ("dp-left-pad", "dp-left-pad", "application/json"),
        ("@dp/util", "@dp%2futil", "application/vnd.npm.install-v1+json"),
    ] {
        let (status, body, complete) =
            curl_get(&format!("{registry}{path}"), &[&format!("Accept: {accept}")]);
        assert_eq!((status, complete), (200, true), "{path}: {}", String::from_utf8_lossy(&body));
        let packument: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let versions = packument["versions"].as_object().unwrap();
        assert!(!versions.is_empty(), "{path}: no versions");
        for (version, manifest) in versions {
            let tarball = manifest["dist"]["tarball"].as_str().unwrap();
            assert!(
                tarball.starts_with(&registry),
                "{name}@{version}: tarball URL {tarball} is not the proxy's"
            );
            assert_eq!(manifest["dist"]["integrity"], fixtures.tarball(name, version).integrity.as_str());
        }
    }

    let cold = npm_project(PROJECT);
    let output =
        npm(cold.path(), &npmrc, &["install"]).unwrap_or_else(|error| panic!("cold install: {error}"));
    assert_tree(cold.path(), &fixtures);
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cold.path().join("package-lock.json")).unwrap())
            .unwrap();
    for (path, entry) in lock["packages"].as_object().unwrap() {
        if let Some(resolved) = entry["resolved"].as_str() {
            assert!(resolved.starts_with(&registry), "{path} resolved at {resolved}:\n{output}");
        }
    }
    assert_one_upstream_get_per_tarball(&verdaccio, &fixtures, Some(&proxy));

    // Warm, with the upstream gone: a new project and an empty npm cache install the same tree.
    verdaccio.server.stop();
    let warm = npm_project(PROJECT);
    npm(warm.path(), &npmrc, &["install"])
        .unwrap_or_else(|error| panic!("warm install, upstream down: {error}"));
    assert_tree(warm.path(), &fixtures);
}

#[test]
fn eight_concurrent_cold_npm_installs_fetch_each_tarball_once() {
    tools();
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    let proxy = npm_proxy(&verdaccio, "");
    let npmrc = format!("registry={}\n", npm_registry(&proxy, "js"));

    let projects: Vec<tempfile::TempDir> = (0..8).map(|_| npm_project(PROJECT)).collect();
    let (commands, _homes): (Vec<_>, Vec<_>) =
        projects.iter().map(|project| npm_command(project.path(), &npmrc, &["install"])).unzip();
    for (i, result) in run_all(commands).iter().enumerate() {
        if let Err(error) = result {
            panic!("install {i} failed: {error}");
        }
    }
    for project in &projects {
        assert_tree(project.path(), &fixtures);
    }
    assert_one_upstream_get_per_tarball(&verdaccio, &fixtures, Some(&proxy));
}

#[test]
fn a_tampered_tarball_upstream_is_refused_and_not_recorded() {
    tools();
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    let tampered = verdaccio.tamper("dp-tampered", "1.0.0");
    let tampered_hex = oci::Digest::of(&tampered).hex().to_owned();
    let proxy = npm_proxy(&verdaccio, "");
    let registry = npm_registry(&proxy, "js");
    let npmrc = format!("registry={registry}\n");
    let project = npm_project(
        r#"{"name": "dp-e2e-tampered", "version": "1.0.0", "private": true, "dependencies": {"dp-tampered": "1.0.0"}}"#,
    );

    let mut before = String::new();
    for attempt in 1..=2 {
        let installed = npm(project.path(), &npmrc, &["install"]);
        let left = project.path().join("node_modules/dp-tampered");
        assert!(
            installed.is_err() && !left.exists(),
            "attempt {attempt}: npm installed a tampered package:\n{installed:?}\nnode_modules/dp-tampered \
             exists: {}\nthe attempt before: {before}\nproxy: {}",
            left.exists(),
            proxy_warnings(&proxy)
        );
        before = format!("{installed:?}");
        // What the proxy answers for that tarball: an error, or a body cut short — never the
        // tampered bytes as a complete answer.
        let (status, body, complete) =
            curl_get(&format!("{registry}dp-tampered/-/dp-tampered-1.0.0.tgz"), &[]);
        assert!(
            !(status == 200 && complete),
            "attempt {attempt}: the proxy answered 200 with a complete body for the tampered tarball ({} bytes, tampered: {})",
            body.len(),
            body == tampered
        );
        let kept = files_with_hash(proxy.data_dir.path(), &tampered_hex);
        assert!(kept.is_empty(), "attempt {attempt}: the tampered bytes are stored: {kept:?}");
    }
    // Refused after fetching it (not for want of a route): the upstream was asked for the tarball.
    let path = "/dp-tampered/-/dp-tampered-1.0.0.tgz";
    assert!(verdaccio.server.count("GET", path) >= 1, "{:#?}", verdaccio.server.requests());
    // An intact package from the same upstream still installs.
    let intact = npm_project(
        r#"{"name": "dp-e2e-intact", "version": "1.0.0", "private": true, "dependencies": {"dp-left-pad": "2.0.0"}}"#,
    );
    npm(intact.path(), &npmrc, &["install"]).unwrap_or_else(|error| panic!("intact install: {error}"));
    assert_eq!(node_require(intact.path(), "dp-left-pad")["version"], "2.0.0");
}

#[test]
fn a_token_group_refuses_anonymous_npm_and_takes_the_npmrc_token() {
    tools();
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    let proxy = npm_proxy(&verdaccio, "access = \"token\"");
    let registry = npm_registry(&proxy, "js");

    let (status, body, _) = curl_get(&format!("{registry}dp-app"), &[]);
    assert_eq!(status, 401, "anonymous packument: {}", String::from_utf8_lossy(&body));
    let anonymous = npm_project(PROJECT);
    let error = npm(anonymous.path(), &format!("registry={registry}\n"), &["install"]).unwrap_err();
    assert!(error.contains("401") || error.contains("E401"), "anonymous install: {error}");
    assert!(!anonymous.path().join("node_modules/dp-app").exists());

    let secret = create_token(&proxy, "js");
    // What `npm login` / a CI secret puts in .npmrc: the token for the registry's path.
    let npmrc = format!("registry={registry}\n//127.0.0.1:{}/npm/js/:_authToken={secret}\n", proxy.port);
    let project = npm_project(PROJECT);
    npm(project.path(), &npmrc, &["install"])
        .unwrap_or_else(|error| panic!("install with the token: {error}"));
    assert_tree(project.path(), &fixtures);

    // Basic with the token as password (`_auth`, other clients) and a wrong token.
    let (status, _, _) =
        curl_get(&format!("{registry}dp-app"), &[&format!("Authorization: Bearer {secret}")]);
    assert_eq!(status, 200, "Bearer token");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{secret}"));
    let (status, _, _) = curl_get(&format!("{registry}dp-app"), &[&format!("Authorization: Basic {basic}")]);
    assert_eq!(status, 200, "Basic with the token as password");
    let (status, _, _) =
        curl_get(&format!("{registry}dp-app"), &["Authorization: Bearer dpp_0123456789abcdef_wrong"]);
    assert_eq!(status, 401, "a wrong token");
}

#[test]
fn a_tarball_asked_first_and_npm_ci_from_a_lockfile_pointing_at_the_proxy() {
    tools();
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    let proxy = npm_proxy(&verdaccio, "");
    let base = format!("{}/npm/js", proxy.url());

    // Tarballs before any packument (the proxy has none): the right bytes, verified.
    for (name, version) in [("dp-left-pad", "1.0.0"), ("@dp/util", "1.0.0")] {
        let tarball = fixtures.tarball(name, version);
        for round in ["cold", "cached"] {
            let (status, body, complete) = curl_get(&format!("{base}{}", tarball.path), &[]);
            assert_eq!(
                (status, complete),
                (200, true),
                "{round} {}: {}",
                tarball.path,
                String::from_utf8_lossy(&body)
            );
            assert!(body == fixtures.tarball_bytes(name, version), "{round} {}: other bytes", tarball.path);
        }
        assert_eq!(
            verdaccio.server.count("GET", &tarball.path),
            1,
            "{:#?}\nproxy warnings:\n{}",
            verdaccio.server.requests(),
            proxy_warnings(&proxy)
        );
    }

    // `npm ci` from a lockfile whose resolved URLs are the proxy's: npm fetches those tarballs
    // directly, never a packument, so the proxy resolves each checksum on its own.
    let entry = |name: &str, version: &str, dependencies: serde_json::Value| {
        let tarball = fixtures.tarball(name, version);
        serde_json::json!({
            "version": version,
            "resolved": format!("{base}{}", tarball.path),
            "integrity": tarball.integrity,
            "dependencies": dependencies,
        })
    };
    let lock = serde_json::json!({
        "name": "dp-e2e",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": true,
        "packages": {
            "": {"name": "dp-e2e", "version": "1.0.0", "dependencies": {"dp-app": "^1.0.0"}},
            "node_modules/dp-app": entry("dp-app", "1.0.0", serde_json::json!({
                "dp-left-pad": "^1.0.0", "dp-right-pad": "~1.0.0", "@dp/util": "^1.0.0"
            })),
            "node_modules/dp-left-pad": entry("dp-left-pad", "1.1.0", serde_json::json!({})),
            "node_modules/dp-right-pad": entry("dp-right-pad", "1.0.0", serde_json::json!({"dp-left-pad": "^1.0.0"})),
            "node_modules/@dp/util": entry("@dp/util", "1.0.0", serde_json::json!({"dp-left-pad": "^2.0.0"})),
            "node_modules/@dp/util/node_modules/dp-left-pad": entry("dp-left-pad", "2.0.0", serde_json::json!({})),
        }
    });
    let project = npm_project(PROJECT);
    std::fs::write(project.path().join("package-lock.json"), serde_json::to_string_pretty(&lock).unwrap())
        .unwrap();
    // A registry that does not exist: whatever npm fetches must come from the lockfile's URLs.
    let npmrc = "registry=http://127.0.0.1:9/\n";
    npm(project.path(), npmrc, &["ci"]).unwrap_or_else(|error| panic!("npm ci: {error}"));
    assert_tree(project.path(), &fixtures);
    assert_one_upstream_get_per_tarball(&verdaccio, &fixtures, Some(&proxy));
}
