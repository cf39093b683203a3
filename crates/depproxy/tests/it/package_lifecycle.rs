//! The operator's side of package groups (npm, PyPI), through a running proxy in front of a small
//! package upstream: statistics count documents and files (admin API, `cache stats`, metrics,
//! the status page), a package is purged by name (admin API and `cache purge --package`) and the
//! next request fetches it again, image flags on a package group are refused, pinned packages
//! outlive their TTL, and warming — `depproxy cache warm` and `warm = [{ packages = … }]` —
//! fetches a package's document and its version's files through the proxy.

use std::time::Duration;

use crate::support::fake_packages::FakePackages;
use crate::support::{Options, TestProxy, client};
use depproxy::cli::admin::PurgeOnly;
use depproxy::cli::warm::{WarmFailed, WarmKind, WarmOptions, warm};
use http::StatusCode;
use lifecycle::WarmOutcome;
use metadata::{Clock, Metadata};

/// An npm group `js` and a PyPI group `python` on `fake`, `js` with `extra` lines.
fn config(fake: &FakePackages, extra: &str) -> String {
    format!(
        "[[upstream]]\nname = \"npmjs\"\nformat = \"npm\"\nurl = \"{npm}\"\n\
         [[upstream]]\nname = \"pypi\"\nformat = \"pypi\"\nurl = \"{pypi}\"\n\
         [[group]]\npath = \"js\"\nupstream = \"npmjs\"\n{extra}\n\
         [[group]]\npath = \"python\"\nupstream = \"pypi\"\n\
         [cache]\nsweep_interval = \"1h\"\n",
        npm = fake.npm_url(),
        pypi = fake.pypi_url(),
    )
}

/// GETs `path` of the proxy, expecting 200; the body.
pub(crate) async fn get(proxy: &TestProxy, path: &str) -> Vec<u8> {
    let response = client().get(format!("{}{path}", proxy.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.bytes().await.unwrap().to_vec()
}

async fn admin_token(proxy: &TestProxy) -> String {
    let metadata = Metadata::connect(&proxy.config.database_url).await.unwrap();
    let created = access::create_token(&metadata, &Clock::system(), "ops", vec![], true, None).await.unwrap();
    proxy.access.tokens().reload().await.unwrap();
    created.secret
}

fn publish(fake: &FakePackages) {
    fake.npm_package("lodash", "4.17.21", &[("4.17.20", b"lodash 4.17.20"), ("4.17.21", b"lodash 4.17.21")]);
    fake.npm_package("@internal/tools", "0.1.0", &[("0.1.0", b"internal tools")]);
    fake.npm_package("react", "18.3.1", &[("18.3.1", b"react 18.3.1")]);
    fake.pypi_project(
        "requests",
        &[("requests-2.32.3-py3-none-any.whl", b"a wheel"), ("requests-2.32.3.tar.gz", b"an sdist")],
    );
}

/// Fetches lodash 4.17.21, react and requests' wheel through the proxy, as clients would.
async fn install(proxy: &TestProxy) {
    get(proxy, "/npm/js/lodash").await;
    assert_eq!(get(proxy, "/npm/js/lodash/-/lodash-4.17.21.tgz").await, b"lodash 4.17.21");
    get(proxy, "/npm/js/react").await;
    assert_eq!(get(proxy, "/npm/js/react/-/react-18.3.1.tgz").await, b"react 18.3.1");
    get(proxy, "/pypi/python/simple/requests/").await;
    assert_eq!(get(proxy, "/pypi/python/packages/requests-2.32.3-py3-none-any.whl").await, b"a wheel");
    proxy.settled().await;
    proxy.cache.flush_reads().await.unwrap();
}

async fn wait_for_job(proxy: &TestProxy, admin: &str, location: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job: serde_json::Value = client()
            .get(format!("{}{location}", proxy.admin_url))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["state"] != "running" {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn package_groups_count_documents_and_files_and_purge_one_package_by_name() {
    let fake = FakePackages::start().await;
    publish(&fake);
    let proxy = TestProxy::start(Options::toml(&config(&fake, ""))).await;
    install(&proxy).await;
    let admin = admin_token(&proxy).await;

    // Statistics: each package group with its format, its documents and stored files.
    let stats: serde_json::Value = client()
        .get(format!("{}/api/v1/groups", proxy.admin_url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group = |name: &str| {
        stats["groups"].as_array().unwrap().iter().find(|group| group["group"] == name).unwrap().clone()
    };
    let (js, python) = (group("js"), group("python"));
    assert_eq!(
        (&js["format"], &js["documents"], &js["artifacts"], &js["tags"]),
        (&"npm".into(), &2.into(), &2.into(), &0.into()),
        "{stats}"
    );
    assert_eq!(
        (&python["format"], &python["documents"], &python["artifacts"]),
        (&"pypi".into(), &1.into(), &1.into()),
        "{stats}"
    );
    let table = depproxy::cli::cache::stats(&proxy.config, Some("js"), false).await.unwrap();
    let row = table.lines().nth(1).unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((columns[0], columns[1]), ("js", "npm"), "{table}");
    proxy.lifecycle.publish_usage().await.unwrap();
    let metrics = proxy.metrics().await;
    let gauge = |name: &str, group: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && line.contains(&format!("group=\"{group}\"")))
            .unwrap_or_else(|| panic!("no {name} of {group} in:\n{metrics}"))
            .to_owned()
    };
    assert!(gauge("depproxy_cache_documents{", "js").ends_with(" 2"), "{metrics}");
    assert!(gauge("depproxy_cache_artifacts{", "js").ends_with(" 2"), "{metrics}");
    assert!(gauge("depproxy_cache_artifacts{", "python").ends_with(" 1"), "{metrics}");
    assert!(gauge("depproxy_group_info{", "python").contains("format=\"pypi\""), "{metrics}");
    let login = client().post(format!("{}/login", proxy.admin_url)).form(&[("token", &admin)]).send();
    let login = login.await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = client().get(format!("{}/", proxy.admin_url)).header("cookie", &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    let row =
        page.lines().find(|line| line.contains("<tr data-group=\"js\">")).unwrap_or_else(|| panic!("{page}"));
    assert!(row.contains("<td class=\"format\">npm</td>"), "{row}");
    assert!(row.contains("<td class=\"num artifacts\">2</td><td class=\"num documents\">2</td>"), "{row}");

    // Image flags on a package group: refused, saying what to use.
    let purge = |query: &str| {
        client()
            .delete(format!("{}/api/v1/groups/js/cache{query}", proxy.admin_url))
            .bearer_auth(&admin)
            .send()
    };
    let refused = purge("?image=library/alpine").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let message = refused.text().await.unwrap();
    assert!(message.contains("holds packages, not images") && message.contains("package"), "{message}");
    let refused = purge("?package=Lodash").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "npm names are lowercase");
    let only = PurgeOnly { image: Some("library/alpine"), package: None };
    let error = depproxy::cli::cache::purge(&proxy.config, "js", only, None).await.unwrap_err();
    assert!(format!("{error:#}").contains("npm group: it holds packages, not images"), "{error:#}");

    // A purge of lodash by the admin API: its packument and tarball go, react stays.
    let accepted = purge("?package=lodash").await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let job = wait_for_job(&proxy, &admin, &location).await;
    assert_eq!((&job["state"], &job["done"]), (&"done".into(), &2.into()), "{job}");
    assert!(job["description"].as_str().unwrap().contains("package lodash"), "{job}");
    let stats = proxy.lifecycle.stats(Some("js")).await.unwrap();
    assert_eq!((stats.groups[0].documents, stats.groups[0].artifacts), (1, 1), "react's");

    // The next install fetches lodash again; react is still a hit.
    fake.clear_log();
    install(&proxy).await;
    assert_eq!(fake.count("GET", "/npm/lodash/-/lodash-4.17.21.tgz"), 1, "{:?}", fake.log());
    assert_eq!(fake.count("GET", "/npm/react/-/"), 0, "{:?}", fake.log());

    // `depproxy cache purge --group python --package Requests` (written as pip users do).
    let only = PurgeOnly { image: None, package: Some("Requests") };
    let summary = depproxy::cli::cache::purge(&proxy.config, "python", only, None).await.unwrap();
    assert!(summary.starts_with("purge group python package Requests (pypi group"), "{summary}");
    assert!(summary.contains("removed 2 objects") && !summary.contains("tag"), "{summary}");
    let stats = proxy.lifecycle.stats(Some("python")).await.unwrap();
    assert_eq!((stats.groups[0].documents, stats.groups[0].artifacts), (0, 0));
    fake.clear_log();
    assert_eq!(get(&proxy, "/pypi/python/packages/requests-2.32.3-py3-none-any.whl").await, b"a wheel");
    assert_eq!(fake.count("GET", "/pypi/packages/requests-2.32.3-py3-none-any.whl"), 1, "{:?}", fake.log());
}

#[tokio::test]
async fn pinned_packages_outlive_their_ttl_and_the_rest_is_fetched_again() {
    let fake = FakePackages::start().await;
    publish(&fake);
    let clock = cache::Clock::manual(1_800_000_000_000);
    let pins = "ttl = \"1d\"\npin = [\"lodash@4.17.*\", \"@internal/*\"]";
    let proxy = TestProxy::start(Options::toml(&config(&fake, pins)).clock(clock.clone())).await;
    install(&proxy).await;
    get(&proxy, "/npm/js/@internal%2ftools").await;
    get(&proxy, "/npm/js/@internal/tools/-/tools-0.1.0.tgz").await;
    proxy.settled().await;
    proxy.cache.flush_reads().await.unwrap();
    let stats = proxy.lifecycle.stats(Some("js")).await.unwrap();
    assert_eq!((stats.groups[0].documents, stats.groups[0].artifacts), (3, 3));
    let pinned = stats.groups[0].pinned_bytes;

    clock.advance(Duration::from_secs(3 * 86_400));
    let report = proxy.lifecycle.sweep().await.unwrap();
    assert_eq!(report.ttl_objects, 2, "react's packument and tarball: {report:?}");
    let stats = proxy.lifecycle.stats(Some("js")).await.unwrap();
    assert_eq!(
        (stats.groups[0].documents, stats.groups[0].artifacts),
        (2, 2),
        "lodash's and @internal/tools'"
    );
    assert_eq!((stats.groups[0].bytes, stats.groups[0].pinned_bytes), (pinned, pinned));

    fake.clear_log();
    assert_eq!(get(&proxy, "/npm/js/lodash/-/lodash-4.17.21.tgz").await, b"lodash 4.17.21");
    assert_eq!(get(&proxy, "/npm/js/@internal/tools/-/tools-0.1.0.tgz").await, b"internal tools");
    assert_eq!(fake.count("GET", "/-/"), 0, "pinned tarballs are hits: {:?}", fake.log());
    assert_eq!(get(&proxy, "/npm/js/react/-/react-18.3.1.tgz").await, b"react 18.3.1");
    assert_eq!(fake.count("GET", "/npm/react/-/react-18.3.1.tgz"), 1, "expired: fetched again");
}

fn warm_options(proxy: &TestProxy, group: &str, packages: &[&str]) -> WarmOptions {
    WarmOptions {
        proxy: proxy.url.clone(),
        group: group.to_owned(),
        images: packages.iter().map(|package| (*package).to_owned()).collect(),
        token: None,
        concurrency: 4,
        proxy_origin: "--proxy".into(),
        config: None,
    }
}

#[tokio::test]
async fn cache_warm_fetches_a_package_s_document_and_its_version_s_files() {
    let fake = FakePackages::start().await;
    publish(&fake);
    fake.pypi_project(
        "zope-interface",
        &[("zope.interface-6.0.tar.gz", b"zope 6.0"), ("zope.interface-7.0rc1.tar.gz", b"zope 7.0rc1")],
    );
    let proxy = TestProxy::start(Options::toml(&config(&fake, ""))).await;

    // npm: an exact version, and a package without one (its `latest` dist-tag).
    let summary =
        warm(&warm_options(&proxy, "js", &["lodash@4.17.20", "@internal/tools", "react"])).await.unwrap();
    assert_eq!(
        (summary.kind, summary.images, summary.manifests, summary.blobs),
        (WarmKind::Packages, 3, 3, 3),
        "{summary}"
    );
    assert!(
        summary.to_string().starts_with("warmed 3 of 3 package(s): 3 document(s), 3 file(s)"),
        "{summary}"
    );
    for tarball in [
        "/npm/lodash/-/lodash-4.17.20.tgz",
        "/npm/@internal/tools/-/tools-0.1.0.tgz",
        "/npm/react/-/react-18.3.1.tgz",
    ] {
        assert_eq!(fake.count("GET", tarball), 1, "{tarball}: {:?}", fake.log());
    }
    assert_eq!(fake.count("GET", "lodash-4.17.21.tgz"), 0, "only the version asked for");
    proxy.settled().await;
    fake.clear_log();
    assert_eq!(get(&proxy, "/npm/js/lodash/-/lodash-4.17.20.tgz").await, b"lodash 4.17.20");
    assert!(fake.log().is_empty(), "warmed: a hit {:?}", fake.log());

    // PyPI: `==` names a version (every file of it); none: the newest final release.
    let summary =
        warm(&warm_options(&proxy, "python", &["requests==2.32.3", "Zope.Interface"])).await.unwrap();
    assert_eq!((summary.manifests, summary.blobs), (2, 3), "{summary}");
    assert_eq!(fake.count("GET", "/pypi/packages/requests-2.32.3"), 2, "the wheel and the sdist");
    assert_eq!(fake.count("GET", "zope.interface-6.0.tar.gz"), 1, "7.0rc1 is a pre-release");
    assert_eq!(fake.count("GET", "7.0rc1"), 0);
    proxy.settled().await;
    let stats = proxy.lifecycle.stats(Some("python")).await.unwrap();
    assert_eq!((stats.groups[0].documents, stats.groups[0].artifacts), (2, 3));

    // What cannot be warmed fails by name; a bad name stops the run before any request.
    let error = warm(&warm_options(&proxy, "js", &["lodash@9.9.9", "react"])).await.unwrap_err();
    let failed = &error.downcast_ref::<WarmFailed>().unwrap().summary;
    assert_eq!((failed.images, failed.images_failed), (2, 1), "{failed}");
    assert!(failed.failures[0].message.contains("version 9.9.9 is not listed"), "{failed}");
    let error = warm(&warm_options(&proxy, "js", &["Lodash", "react@"])).await.unwrap_err().to_string();
    assert!(error.contains("invalid package(s) for npm group js") && error.contains("lowercase"), "{error}");
    assert!(error.contains("\"react@\""), "{error}");
}

/// Waits (up to 30 s) for the first run of `group`'s schedule to end; its job.
async fn first_scheduled_run(proxy: &TestProxy, admin: &str, group: &str) -> admin::JobView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{}/api/v1/groups/{group}/warm", proxy.admin_url);
        let view: admin::WarmView =
            client().get(url).bearer_auth(admin).send().await.unwrap().json().await.unwrap();
        if let Some(job) = view.recent.first().filter(|job| job.state != "running") {
            return job.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no run of {group}'s schedule ended: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn versions(job: &admin::JobView, pattern: &str) -> Vec<(String, WarmOutcome)> {
    let report = job.warm.as_ref().unwrap_or_else(|| panic!("no report: {job:?}"));
    let found =
        report.entries.iter().flat_map(|entry| &entry.patterns).find(|found| found.pattern == pattern);
    let found = found.unwrap_or_else(|| panic!("no pattern {pattern} in {report:?}"));
    found.tags.iter().map(|tag| (tag.tag.clone(), tag.outcome)).collect()
}

#[tokio::test]
async fn scheduled_warming_picks_versions_from_the_document_and_fetches_their_files() {
    let fake = FakePackages::start().await;
    publish(&fake);
    let warm_js = r#"deny = ["react@18.*"]
warm = [{ packages = ["lodash@4.17.*", "@internal/tools", "react@18.3.1", "left-pad@1.*"], every = "1h", keep = 1 }]"#;
    let text = config(&fake, warm_js).replace(
        "[[group]]\npath = \"python\"\nupstream = \"pypi\"\n",
        "[[group]]\npath = \"python\"\nupstream = \"pypi\"\nwarm = [{ packages = [\"requests\"], every = \"1h\" }]\n",
    );
    let proxy = TestProxy::start(Options::toml(&text)).await;
    let admin = admin_token(&proxy).await;

    let js = first_scheduled_run(&proxy, &admin, "js").await;
    assert_eq!(
        versions(&js, "lodash@4.17.*"),
        [("4.17.21".to_owned(), WarmOutcome::Fetched)],
        "keep 1: the newest"
    );
    assert_eq!(
        versions(&js, "@internal/tools"),
        [("0.1.0".to_owned(), WarmOutcome::Fetched)],
        "its latest tag"
    );
    assert_eq!(versions(&js, "react@18.3.1"), [("18.3.1".to_owned(), WarmOutcome::Denied)]);
    let report = js.warm.as_ref().unwrap();
    let missing = &report.entries[0].patterns[3];
    assert!(
        missing.error.as_deref().is_some_and(|error| error.contains("cannot read its document")),
        "{report:?}"
    );
    assert_eq!((report.fetched, report.denied, report.blobs), (2, 1, 2), "{report:?}");
    assert_eq!(js.state, "failed", "left-pad has no document: {js:?}");
    assert_eq!(fake.count("GET", "/npm/lodash/-/lodash-4.17.21.tgz"), 1, "{:?}", fake.log());
    assert_eq!(fake.count("GET", "lodash-4.17.20"), 0);
    assert_eq!(fake.count("GET", "/npm/react/-/"), 0, "denied: not fetched");

    let python = first_scheduled_run(&proxy, &admin, "python").await;
    assert_eq!(python.state, "done", "{python:?}");
    assert_eq!(versions(&python, "requests"), [("2.32.3".to_owned(), WarmOutcome::Fetched)]);
    assert_eq!(python.warm.as_ref().unwrap().blobs, 2, "the wheel and the sdist");
    proxy.settled().await;
    let stats = proxy.lifecycle.stats(None).await.unwrap();
    let counts = |name: &str| {
        let group = stats.groups.iter().find(|group| group.group == name).unwrap();
        (group.documents, group.artifacts)
    };
    assert_eq!(counts("js"), (3, 2), "3 documents (react's was read: its name is allowed), 2 tarballs");
    assert_eq!(counts("python"), (1, 2));
}
