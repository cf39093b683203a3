//! The policy and routing rules on package groups, with the real clients and servers of
//! `e2e_npm` / `e2e_pypi`: `deny` with a `name@version` pattern refuses what npm resolves to it
//! (and nothing denied reaches the upstream), and a PyPI group with ordered `upstreams` gets each
//! project from the first upstream that has it, remembering the other's 404s; an admission hook
//! judges each file npm asks for.

use crate::support::packages::{
    NpmFixtures, PythonFixtures, Verdaccio, curl_get, file_hashes, npm, npm_project, npm_registry,
    package_proxy, pip, pypiserver,
};
use crate::support::processes::{Depproxy, require_tools};
use crate::support::webhook::{Answer, Webhook};

const PROJECT: &str =
    r#"{"name": "dp-e2e", "version": "1.0.0", "private": true, "dependencies": {"dp-app": "^1.0.0"}}"#;

#[test]
fn a_denied_version_is_refused_to_npm_and_never_fetched() {
    require_tools(&["node", "npm", "curl"]);
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    // dp-app's tree needs dp-left-pad 2.0.0 (through @dp/util): refused.
    let proxy = package_proxy("npm", &verdaccio.url(), "js", "", "deny = [\"dp-left-pad@2.*\"]");
    let registry = npm_registry(&proxy, "js");
    let project = npm_project(PROJECT);
    let installed = npm(project.path(), &format!("registry={registry}\n"), &["install"]);
    let error = installed.expect_err("npm installed a tree with a denied version");
    assert!(error.contains("403") || error.contains("dp-left-pad"), "{error}");
    let (status, body, _) = curl_get(&format!("{registry}dp-left-pad/-/dp-left-pad-2.0.0.tgz"), &[]);
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("dp-left-pad@2.0.0") && message.contains("deny"), "{message}");
    assert_eq!(verdaccio.server.count_matching("GET", "dp-left-pad-2.0.0.tgz"), 0, "never fetched");
    // The versions the rule does not name come through; the packument is judged by the name.
    let (status, _, complete) = curl_get(&format!("{registry}dp-left-pad/-/dp-left-pad-1.1.0.tgz"), &[]);
    assert_eq!((status, complete), (200, true));
    let (status, _, _) = curl_get(&format!("{registry}dp-left-pad"), &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_pypi_group_asks_its_upstreams_in_order_and_records_which_served() {
    require_tools(&["python3", "curl", "flock"]);
    let fixtures = PythonFixtures::get();
    let empty = tempfile::tempdir().unwrap();
    let internal = pypiserver(empty.path());
    let public = pypiserver(&fixtures.packages());
    let config = format!(
        "[[upstream]]\nname = \"internal\"\nformat = \"pypi\"\nurl = \"{}\"\n\
         [[upstream]]\nname = \"public\"\nformat = \"pypi\"\nurl = \"{}\"\n\
         [[group]]\npath = \"python\"\nupstreams = [\"internal\", \"public\"]\nformat = \"pypi\"\n",
        internal.url(),
        public.url()
    );
    let proxy = Depproxy::serve_with_config(&config);
    let index = format!("{}/pypi/python/simple/", proxy.url());
    let wheels: Vec<(String, String)> = {
        let mut wheels: Vec<_> =
            fixtures.gamma_wheels().into_iter().map(|file| (file.file, file.sha256)).collect();
        wheels.sort();
        wheels
    };
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        pip(&["download", "--index-url", &index, "-d", dir.path().to_str().unwrap(), "Dp.Gamma"])
            .unwrap_or_else(|error| panic!("pip download through two upstreams: {error}"));
        assert_eq!(file_hashes(dir.path()), wheels);
    }
    for (file, _) in &wheels {
        assert_eq!(public.count_matching("GET", file), 1, "{file}: from the second upstream, once");
        assert_eq!(internal.count_matching("GET", file), 0, "{file}: the first has no page listing it");
    }
    // The first upstream was asked for each project page once: the second download is all hits.
    for project in ["dp-gamma", "dp-alpha", "dp-beta"] {
        assert_eq!(internal.count("GET", &format!("/simple/{project}/")), 1, "{project}");
        assert_eq!(public.count("GET", &format!("/simple/{project}/")), 1, "{project}");
    }
}

#[test]
fn an_admission_hook_refuses_a_file_npm_resolves_and_allows_the_rest() {
    require_tools(&["node", "npm", "curl"]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hook = runtime.block_on(Webhook::start());
    hook.answer("dp-right-pad", Answer::Deny("CVE-2026-0002 (high)"));
    let fixtures = NpmFixtures::get();
    let verdaccio = Verdaccio::start(&fixtures);
    let proxy =
        package_proxy("npm", &verdaccio.url(), "js", "", &format!("admission_hook = \"{}\"", hook.url));
    let registry = npm_registry(&proxy, "js");
    let project = npm_project(PROJECT);
    let error = npm(project.path(), &format!("registry={registry}\n"), &["install"])
        .expect_err("npm installed a tree with a file the hook refused");
    assert!(error.contains("403") || error.contains("dp-right-pad"), "{error}");
    let (status, body, _) = curl_get(&format!("{registry}dp-right-pad/-/dp-right-pad-1.0.0.tgz"), &[]);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("CVE-2026-0002"));
    let judged: Vec<serde_json::Value> = hook.questions();
    assert!(judged.iter().any(|question| question["name"] == "dp-right-pad" && question["format"] == "npm"));
    // What the hook allows comes through.
    let (status, _, complete) = curl_get(&format!("{registry}dp-left-pad/-/dp-left-pad-1.1.0.tgz"), &[]);
    assert_eq!((status, complete), (200, true));
    drop(runtime);
}
