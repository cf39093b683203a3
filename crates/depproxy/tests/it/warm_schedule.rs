//! Warming on a schedule (`[[group]] warm = [...]`): a proxy in this process against a
//! `testkit::FakeRegistry` whose tag list is served — the entry runs once it is due (at start),
//! warms the newest `keep` tags a glob matches and an exact tag, through the proxy's own pull path;
//! a run asked for through the admin API fetches nothing that did not change, and re-fetches a
//! tag that moved upstream. End to end: `depproxy cache warm --now` against a real registry behind
//! split-mode processes, for a group that takes access tokens.

use std::time::Duration;

use admin::{JobStarted, JobView, WarmView};
use lifecycle::WarmOutcome;
use oci::Digest;
use testkit::FakeRegistry;

use crate::support::{Options, TestProxy, client};

/// An admin token's secret for `proxy`.
async fn admin_token(proxy: &TestProxy) -> String {
    let metadata = metadata::Metadata::connect(&proxy.config.database_url).await.unwrap();
    access::create_token(&metadata, &metadata::Clock::system(), "ops", Vec::new(), true, None)
        .await
        .unwrap()
        .secret
}

/// The group's warming as the admin API shows it.
async fn warm_view(proxy: &TestProxy, token: &str, group: &str) -> WarmView {
    let url = format!("{}/api/v1/groups/{group}/warm", proxy.admin_url);
    let response = client().get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    response.json().await.unwrap()
}

/// Waits (up to 30 s) until the group's latest warm run has ended; the group's warm view then,
/// and that run.
async fn latest_run(proxy: &TestProxy, token: &str, group: &str) -> (WarmView, JobView) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = warm_view(proxy, token, group).await;
        if let Some(job) = view.recent.first().filter(|job| job.state != "running") {
            let job = job.clone();
            return (view, job);
        }
        assert!(tokio::time::Instant::now() < deadline, "no scheduled run: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 30 s) until the job has ended; the job as it ended.
async fn finished(proxy: &TestProxy, token: &str, job: &str) -> JobView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{}/api/v1/jobs/{job}", proxy.admin_url);
        let view: JobView = client().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        if view.state != "running" {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {job} did not end: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tags a job's report names for `pattern`, with their outcomes.
fn outcomes(job: &JobView, pattern: &str) -> Vec<(String, WarmOutcome)> {
    let report = job.warm.as_ref().unwrap_or_else(|| panic!("no report: {job:?}"));
    let found =
        report.entries.iter().flat_map(|entry| &entry.patterns).find(|found| found.pattern == pattern);
    let found = found.unwrap_or_else(|| panic!("no pattern {pattern} in {report:?}"));
    found.tags.iter().map(|tag| (tag.tag.clone(), tag.outcome)).collect()
}

fn object_gets(upstream: &FakeRegistry) -> usize {
    upstream.count("GET", "/blobs/") + upstream.count("GET", "/manifests/")
}

#[tokio::test]
async fn a_schedule_warms_the_newest_matching_tags_then_only_what_moved() {
    let upstream = FakeRegistry::start().await;
    let mut images = std::collections::HashMap::new();
    for tag in ["1.0", "1.1", "1.2", "2.0", "latest"] {
        let layer = format!("app {tag} layer");
        images.insert(tag, upstream.put_image("lab/app", tag, &[layer.as_bytes()]));
    }
    let (tool, tool_layers) = upstream.put_image("lab/tool", "stable", &[b"tool layer"]);
    let proxy = TestProxy::start(Options::toml(&format!(
        r#"
        [[upstream]]
        name = "lab"
        url = "{}"
        [[group]]
        path = "default"
        upstream = "lab"
        warm = [{{ images = ["lab/app:1.*", "lab/tool:stable"], every = "1h", keep = 2 }}]
        "#,
        upstream.url()
    )))
    .await;
    let token = admin_token(&proxy).await;

    // Due at once (never run before): the schedule's own run.
    let (view, first) = latest_run(&proxy, &token, "default").await;
    assert_eq!(view.schedules.len(), 1);
    assert_eq!(view.schedules[0].schedule, "lab/app:1.*, lab/tool:stable every 1h, keep 2");
    assert!(view.schedules[0].due_at.is_some_and(|due| due > first.created_at), "{view:?}");
    assert_eq!(view.schedules[0].last_job.as_deref(), Some(first.id.as_str()));
    assert_eq!(first.state, "done", "{first:?}");
    let report = first.warm.as_ref().unwrap();
    assert_eq!(report.trigger, "schedule");
    assert_eq!((report.fetched, report.unchanged, report.failed), (3, 0, 0), "{report}");
    assert_eq!(
        outcomes(&first, "lab/app:1.*"),
        [("1.2".to_owned(), WarmOutcome::Fetched), ("1.1".to_owned(), WarmOutcome::Fetched)],
        "the newest two matching tags"
    );
    assert_eq!(outcomes(&first, "lab/tool:stable"), [("stable".to_owned(), WarmOutcome::Fetched)]);
    let listed = &report.entries[0].patterns[0];
    assert_eq!((listed.listed, listed.upstream.as_deref()), (Some(5), Some("lab")), "{report}");
    assert_eq!(report.entries[0].patterns[1].listed, None, "an exact tag needs no listing");
    proxy.fills_settled().await;
    for tag in ["1.2", "1.1"] {
        let (manifest, layers) = &images[tag];
        assert!(proxy.has_object(manifest) && proxy.has_object(&layers[0]), "{tag} is not cached");
    }
    assert!(proxy.has_object(&tool) && proxy.has_object(&tool_layers[0]));
    for tag in ["1.0", "2.0", "latest"] {
        assert!(!proxy.has_object(&images[tag].0), "{tag} was not asked for");
    }

    // Asked for now: nothing moved, nothing is fetched (HEADs and the listing only).
    upstream.clear_log();
    let now = format!("{}/api/v1/groups/default/warm", proxy.admin_url);
    let response = client().post(&now).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), http::StatusCode::ACCEPTED);
    let started: JobStarted = response.json().await.unwrap();
    let second = finished(&proxy, &token, &started.job).await;
    assert_eq!(second.state, "done", "{second:?}");
    let report = second.warm.as_ref().unwrap();
    assert_eq!(report.trigger, "now");
    assert_eq!((report.fetched, report.unchanged), (0, 3), "{report}");
    assert_eq!(object_gets(&upstream), 0, "nothing changed, nothing fetched: {:?}", upstream.log());
    assert_eq!(upstream.count("HEAD", "/manifests/"), 3, "one HEAD per tag");

    // 1.2 moves upstream: only it is fetched again, and a client then gets the new one from cache.
    let (moved, moved_layers) = upstream.put_image("lab/app", "1.2", &[b"app 1.2 rebuilt"]);
    upstream.clear_log();
    let started: JobStarted =
        client().post(&now).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let third = finished(&proxy, &token, &started.job).await;
    assert_eq!(
        outcomes(&third, "lab/app:1.*"),
        [("1.2".to_owned(), WarmOutcome::Fetched), ("1.1".to_owned(), WarmOutcome::Unchanged)]
    );
    let tag = &third.warm.as_ref().unwrap().entries[0].patterns[0].tags[0];
    assert_eq!(tag.digest.as_deref(), Some(moved.to_string().as_str()));
    assert_eq!(tag.previous.as_deref(), Some(images["1.2"].0.to_string().as_str()));
    assert_eq!(upstream.count("GET", "/manifests/"), 1, "the moved manifest: {:?}", upstream.log());
    assert_eq!(upstream.count("GET", "/blobs/"), 1, "its new layer (the config is cached)");
    proxy.fills_settled().await;
    assert!(proxy.has_object(&moved) && proxy.has_object(&moved_layers[0]));
    upstream.clear_log();
    let accept = oci::media::manifest_accept_header();
    let pulled = client()
        .get(format!("{}/v2/lab/app/manifests/1.2", proxy.url))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.headers()["docker-content-digest"], moved.to_string().as_str());
    assert_eq!(Digest::of(&pulled.bytes().await.unwrap()), moved);
    assert_eq!(upstream.log().len(), 0, "the warmed tag is fresh: no upstream request");

    // A group without a schedule, and one that does not exist.
    let unknown = client()
        .post(format!("{}/api/v1/groups/nope/warm", proxy.admin_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_group_without_a_schedule_says_so_and_a_denied_tag_is_not_asked_for() {
    let upstream = FakeRegistry::start().await;
    upstream.put_image("lab/app", "1.0", &[b"one"]);
    upstream.put_image("lab/app", "1.1-rc", &[b"rc"]);
    let proxy = TestProxy::start(Options::toml(&format!(
        r#"
        [[upstream]]
        name = "lab"
        url = "{}"
        [[group]]
        path = "default"
        upstream = "lab"
        deny = ["lab/app:*-rc"]
        warm = [{{ images = ["lab/app:1.*", "lab/app:9.9"], every = "1h" }}]
        [[group]]
        path = "plain"
        upstream = "lab"
        "#,
        upstream.url()
    )))
    .await;
    let token = admin_token(&proxy).await;
    let plain = client()
        .post(format!("{}/api/v1/groups/plain/warm", proxy.admin_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), http::StatusCode::CONFLICT);
    let message = plain.text().await.unwrap();
    assert!(message.contains("no warm schedule"), "{message}");

    let (_, job) = latest_run(&proxy, &token, "default").await;
    assert_eq!(
        outcomes(&job, "lab/app:1.*"),
        [("1.1-rc".to_owned(), WarmOutcome::Denied), ("1.0".to_owned(), WarmOutcome::Fetched)]
    );
    assert_eq!(outcomes(&job, "lab/app:9.9"), [("9.9".to_owned(), WarmOutcome::Failed)]);
    assert_eq!(job.state, "failed", "a tag that cannot be warmed fails the run: {job:?}");
    assert!(job.error.as_deref().is_some_and(|error| error.contains("1 failed")), "{job:?}");
    assert_eq!(upstream.count("HEAD", "/manifests/1.1-rc"), 0, "a denied tag is not asked about");
}

/// End to end: a real `distribution` registry, depproxy as real split-mode processes (the control
/// plane pulls what it warms through the gateway at `public_url`, with a registry token of its
/// own: the group takes access tokens), `depproxy cache warm --now` following the run, and skopeo
/// pulling a warmed tag afterwards without any upstream blob or manifest request.
#[test]
fn cache_warm_now_runs_a_token_groups_schedule_through_split_mode_processes() {
    use crate::support::processes::{Depproxy, Registry, push_test_images, require_tools, run, run_to_exit};
    use std::process::Command;

    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let copy = |from: &str, to: &str, all: bool| {
        let mut command = Command::new("skopeo");
        command.args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ]);
        if all {
            command.arg("--all");
        }
        let address = registry.address();
        run(command.arg(format!("docker://{address}/{from}")).arg(format!("docker://{address}/{to}")));
    };
    copy("lab/layers:v1", "lab/tiny:v2", false);
    let proxy = Depproxy::split_with_config(|gateway, signing_key| {
        format!(
            r#"
            public_url = "{gateway}"
            [auth]
            signing_key_file = "{}"
            [[upstream]]
            name = "lab"
            url = "http://{}"
            [[group]]
            path = "acme/team"
            upstream = "lab"
            access = "token"
            warm = [{{ images = ["lab/tiny:v*", "lab/multi:v1"], every = "24h", keep = 2 }}]
            "#,
            signing_key.display(),
            registry.address()
        )
    });
    let config = proxy.data_dir.path().join("depproxy.toml");
    let token = |args: &[&str]| {
        let mut command = Command::new(Depproxy::binary());
        command.args(["token", "create", "--quiet"]).args(args).arg("--config").arg(&config);
        run(command.arg("--data-dir").arg(proxy.data_dir.path())).trim().to_owned()
    };
    let admin = token(&["--name", "ops", "--admin"]);
    let puller = token(&["--name", "ci", "--group", "acme/team"]);
    let admin_url = format!("http://127.0.0.1:{}", proxy.admin_port);
    let warm_now = |group: &str| {
        let mut command = Command::new(Depproxy::binary());
        command.args(["cache", "warm", "--now", "--group", group, "--admin-url", &admin_url]);
        run_to_exit(command.env("DEPPROXY_ADMIN_TOKEN", &admin), Duration::from_secs(120))
    };

    // The schedule's own first run (due at start) ends before the run asked for below.
    crate::support::processes::wait_until("no scheduled warm run ended", Duration::from_secs(60), || {
        let answer = run(Command::new("curl")
            .args(["-sf", "-H", &format!("Authorization: Bearer {admin}")])
            .arg(format!("{admin_url}/api/v1/groups/acme/team/warm")));
        let view: WarmView = serde_json::from_str(&answer).unwrap();
        view.recent.first().is_some_and(|job| job.state != "running")
    });
    let answer = run(Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {admin}")])
        .arg(format!("{admin_url}/api/v1/groups/acme/team/warm")));
    let view: WarmView = serde_json::from_str(&answer).unwrap();
    let first = &view.recent[0];
    assert_eq!(first.state, "done", "{first:?}");
    assert_eq!(
        outcomes(first, "lab/tiny:v*"),
        [("v2".to_owned(), WarmOutcome::Fetched), ("v1".to_owned(), WarmOutcome::Fetched)]
    );
    assert_eq!(outcomes(first, "lab/multi:v1"), [("v1".to_owned(), WarmOutcome::Fetched)]);

    // A new tag upstream: the multi-platform index as lab/tiny:v3.
    copy("lab/multi:v1", "lab/tiny:v3", true);
    let blobs = registry.count("GET", "/blobs/");
    let (status, output) = warm_now("acme/team");
    assert!(status.success(), "{output}");
    assert!(output.contains("fetched    v3"), "{output}");
    assert!(output.contains("unchanged  v2"), "{output}");
    assert!(output.contains("1 tag(s) fetched, 2 unchanged, 0 failed"), "{output}");
    assert_eq!(registry.count("GET", "/blobs/"), blobs, "lab/multi's blobs were cached already");

    // Pulled afterwards: nothing from upstream.
    let manifests = registry.count("GET", "/manifests/");
    let work = tempfile::tempdir().unwrap();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false", "--src-creds", &format!("ci:{puller}")])
        .arg(format!("docker://{}/acme/team/dependency_proxy/containers/lab/tiny:v3", proxy.address()))
        .arg(format!("dir:{}", work.path().join("v3").display())));
    assert_eq!(registry.count("GET", "/blobs/"), blobs, "the pull after warming fetched blobs upstream");
    assert_eq!(registry.count("GET", "/manifests/"), manifests, "the pull after warming fetched manifests");

    // Again: nothing moved, nothing fetched.
    let (status, output) = warm_now("acme/team");
    assert!(status.success(), "{output}");
    assert!(output.contains("0 tag(s) fetched, 3 unchanged"), "{output}");
    assert_eq!(registry.count("GET", "/manifests/"), manifests);
    let (status, output) = warm_now("acme/nope");
    assert!(!status.success(), "{output}");
    assert!(output.contains("404") && output.contains("acme/nope"), "{output}");
}
