//! Warming Maven, Go and Cargo groups end to end: a real lab upstream (as the e2e_maven, e2e_go
//! and e2e_cargo tests start it), depproxy as a real process with a group of that format and a
//! `warm = [{ packages = ["NAME@GLOB"], every = "1h", keep = 1 }]` schedule, its own run (due at
//! start) and one asked for on the admin listener (`POST /api/v1/groups/<group>/warm`, followed
//! as a job) picking the newest matching version and reading its files through the proxy; then
//! the upstream is stopped and the real client (mvn, go, cargo) with an empty local cache gets the
//! warmed version from the proxy alone. The cargo test also runs `depproxy cache warm` (the
//! binary) for one exact version. Upstream requests are counted in the servers' access logs.
//!
//! Needs mvn, javac and Debian's maven plugins, go, cargo, python3, curl and flock
//! (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use admin::{JobStarted, JobView, WarmView};
use lifecycle::WarmOutcome;

use crate::support::cargo::{
    CargoFixtures, SparseRegistry, cargo, cargo_index, cargo_proxy, locked_checksums,
};
use crate::support::go::{
    GoClient, GoFixtures, GoUpstream, SumDb, go_proxy, goproxy_url, module_file, zip_sha256,
};
use crate::support::maven::{
    MavenFixtures, debian_repo, get_artifact, group_url, maven_proxy, maven_repo, repo_copy,
};
use crate::support::packages::proxy_warnings;
use crate::support::processes::{Depproxy, require_tools, run, run_to_exit, try_run, wait_until};

/// How long a warm run (the schedule's own, or one asked for) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// `depproxy token create --admin` against the running proxy's config and data: the secret.
fn admin_token(proxy: &Depproxy) -> String {
    let output = run(Command::new(Depproxy::binary())
        .args(["token", "create", "--quiet", "--name", "ops", "--admin", "--config"])
        .arg(proxy.data_dir.path().join("depproxy.toml"))
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    let secret = output.trim().to_owned();
    assert!(secret.starts_with("dpp_"), "{output}");
    secret
}

fn admin_url(proxy: &Depproxy, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", proxy.admin_port)
}

/// `curl` of the admin API with the admin token: the status and the body.
fn admin_request(proxy: &Depproxy, token: &str, method: &str, path: &str) -> (u16, String) {
    let output = run(Command::new("curl")
        .args(["-s", "-X", method, "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(admin_url(proxy, path)));
    let (body, status) = output.rsplit_once('\n').unwrap_or(("", output.as_str()));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Waits for the group's schedule's own first run (due at start) to end; that run. (The token is
/// taken once the proxy reloads its tokens, within `token_check_interval`: a 401 is waited out.)
fn scheduled_run(proxy: &Depproxy, token: &str, group: &str) -> JobView {
    let path = format!("/api/v1/groups/{group}/warm");
    let mut ended = None;
    wait_until(&format!("no scheduled warm run of {group} ended"), RUN_TIMEOUT, || {
        let (status, body) = admin_request(proxy, token, "GET", &path);
        if status != 200 {
            return false;
        }
        let view: WarmView = serde_json::from_str(&body).unwrap();
        ended = view.recent.first().filter(|job| job.state != "running").cloned();
        ended.is_some()
    });
    let job = ended.unwrap();
    assert_eq!(job.warm.as_ref().map(|report| report.trigger.as_str()), Some("schedule"), "{job:?}");
    job
}

/// `POST /api/v1/groups/<group>/warm`, then the job followed until it ended; the job.
fn run_now(proxy: &Depproxy, token: &str, group: &str) -> JobView {
    let (status, body) = admin_request(proxy, token, "POST", &format!("/api/v1/groups/{group}/warm"));
    assert_eq!(status, 202, "{body}");
    let started: JobStarted = serde_json::from_str(&body).unwrap();
    let mut ended = None;
    wait_until(&format!("warm job {} did not end", started.job), RUN_TIMEOUT, || {
        let (status, body) = admin_request(proxy, token, "GET", &started.status);
        assert_eq!(status, 200, "{body}");
        let job: JobView = serde_json::from_str(&body).unwrap();
        ended = (job.state != "running").then_some(job);
        ended.is_some()
    });
    let job = ended.unwrap();
    assert_eq!(job.warm.as_ref().map(|report| report.trigger.as_str()), Some("now"), "{job:?}");
    job
}

/// The run ended `done`, picked exactly the version given for each pattern (fetched), and read
/// a document per pattern and `files` files in all through the proxy.
fn assert_warmed(job: &JobView, picks: &[(&str, &str)], files: usize, proxy: &Depproxy) {
    let context = || format!("{job:#?}\nproxy warnings:\n{}", proxy_warnings(proxy));
    assert_eq!(job.state, "done", "{}", context());
    let report = job.warm.as_ref().unwrap();
    for (pattern, version) in picks {
        let found =
            report.entries.iter().flat_map(|entry| &entry.patterns).find(|found| found.pattern == *pattern);
        let found = found.unwrap_or_else(|| panic!("no pattern {pattern}: {}", context()));
        assert_eq!(found.error, None, "{}", context());
        let picked: Vec<(&str, WarmOutcome)> =
            found.tags.iter().map(|tag| (tag.tag.as_str(), tag.outcome)).collect();
        assert_eq!(picked, [(*version, WarmOutcome::Fetched)], "keep = 1: the newest match; {}", context());
    }
    assert_eq!((report.fetched, report.failed, report.denied), (picks.len(), 0, 0), "{}", context());
    assert_eq!(
        (report.manifests, report.blobs),
        (picks.len(), files),
        "the documents and the versions' files; {}",
        context()
    );
}

/// Maven: `com.example.dp:dp-core@1.*` picks 1.1 from its `maven-metadata.xml` and reads its pom
/// and jar; dp-util, made pom-only on a copy of repo-a (as a parent or a BOM is: no jar), is warmed
/// by its pom alone (the jar's 404 is no failure). With repo-a stopped, `dependency:get` of dp-core
/// 1.1 with an empty local repository gets both (and their `.sha1`, answered from what they were
/// verified against) from the proxy. Debian's tree stays up behind repo-a for the plugin mvn runs,
/// and is not asked for dp-core.
#[test]
fn a_maven_group_s_schedule_warms_the_newest_matching_version_for_mvn_with_the_upstream_down() {
    require_tools(&["mvn", "javac", "python3", "curl", "flock"]);
    let fixtures = MavenFixtures::get();
    let copy = repo_copy(&fixtures, "repo-a");
    let util = copy.path().join("com/example/dp/dp-util/1.0");
    for sidecar in ["", ".sha1", ".md5"] {
        std::fs::remove_file(util.join(format!("dp-util-1.0.jar{sidecar}"))).unwrap();
    }
    let mut repo = maven_repo(copy.path(), "/com/example/dp/");
    let debian = debian_repo();
    let warm = r#"warm = [{ packages = ["com.example.dp:dp-core@1.*", "com.example.dp:dp-util@1.*"], every = "1h", keep = 1 }]"#;
    let proxy = maven_proxy(&[("repo-a", &repo), ("debian", &debian)], warm);
    let token = admin_token(&proxy);

    let picks = [("com.example.dp:dp-core@1.*", "1.1"), ("com.example.dp:dp-util@1.*", "1.0")];
    // dp-core's pom and jar, dp-util's pom.
    assert_warmed(&scheduled_run(&proxy, &token, "java"), &picks, 3, &proxy);
    assert_warmed(&run_now(&proxy, &token, "java"), &picks, 3, &proxy);
    let files = ["dp-core-1.1.pom", "dp-core-1.1.jar"]
        .map(|file| fixtures.file("repo-a", &format!("com/example/dp/dp-core/1.1/{file}")));
    for file in &files {
        assert_eq!(repo.count("GET", &file.url_path()), 1, "{}: {:#?}", file.path, repo.requests());
    }
    assert_eq!(
        repo.count_matching("GET", "/dp-core/1.0/"),
        0,
        "1.0 is not the newest: {:#?}",
        repo.requests()
    );
    let util_pom = "/com/example/dp/dp-util/1.0/dp-util-1.0.pom";
    assert_eq!(repo.count("GET", util_pom), 1, "{:#?}", repo.requests());

    // Warming asked Debian's tree, behind repo-a, for dp-util's jar too: counted from here on.
    let asked_of_debian =
        || debian.count_matching("GET", "/com/example/") + debian.count_matching("HEAD", "/com/example/");
    let asked_while_warming = asked_of_debian();
    repo.stop();
    let mut mvn = get_artifact(&fixtures, &group_url(&proxy), "com.example.dp:dp-core:1.1", false);
    let output = mvn.run().unwrap_or_else(|error| {
        panic!("dependency:get, repo-a down: {error}\nproxy warnings:\n{}", proxy_warnings(&proxy))
    });
    assert!(output.contains("BUILD SUCCESS"), "{output}");
    for file in &files {
        assert_eq!(mvn.local_sha256(&file.path).as_deref(), Some(file.sha256.as_str()), "{}", file.path);
    }
    assert_eq!(asked_of_debian(), asked_while_warming, "dp-core from the cache: {:#?}", debian.requests());

    // The control: 1.0, which was not warmed, cannot be had while repo-a is down.
    let mut unwarmed = get_artifact(&fixtures, &group_url(&proxy), "com.example.dp:dp-core:1.0", false);
    let error = unwarmed.run().expect_err("dp-core 1.0 was not warmed: repo-a is down");
    assert!(error.contains("dp-core"), "{error}");
}

/// Go: `example.com/dp/alpha@v1.*` picks v1.1.0 from `@v/list` and reads its `.info`, `.mod` and
/// `.zip`; with the upstream stopped, `go mod download` of that module version with an empty module
/// cache gets the same zip from the proxy. (The checksum database is not warmed — its lookups and
/// tiles are another module's worth of documents — so the client checks none: `GOSUMDB=off`.)
#[test]
fn a_go_group_s_schedule_warms_the_newest_matching_version_for_go_with_the_upstream_down() {
    require_tools(&["go", "curl", "flock"]);
    let fixtures = GoFixtures::get();
    let mut upstream = GoUpstream::start(&fixtures);
    let warm = r#"warm = [{ packages = ["example.com/dp/alpha@v1.*"], every = "1h", keep = 1 }]"#;
    let proxy = go_proxy(&upstream, warm);
    let token = admin_token(&proxy);

    let (module, version) = ("example.com/dp/alpha", "v1.1.0");
    let pattern = "example.com/dp/alpha@v1.*";
    assert_warmed(&scheduled_run(&proxy, &token, "golang"), &[(pattern, version)], 3, &proxy);
    assert_warmed(&run_now(&proxy, &token, "golang"), &[(pattern, version)], 3, &proxy);
    for extension in ["info", "mod", "zip"] {
        let file = module_file(module, version, extension);
        assert_eq!(upstream.gets(&file), 1, "{file}: {:#?}", upstream.requests());
        assert_eq!(upstream.gets(&module_file(module, "v1.0.0", extension)), 0, "v1.0.0 is not the newest");
    }

    upstream.server.stop();
    let client = GoClient::new(&fixtures, &goproxy_url(&proxy), SumDb::Off);
    // Outside any module: only the module version asked for is resolved.
    let outside = tempfile::tempdir().unwrap();
    let mut download = client.command(&["mod", "download", "-json", &format!("{module}@{version}")]);
    download.current_dir(outside.path()).env("GOFLAGS", "-modcacherw");
    let printed = try_run(&mut download).unwrap_or_else(|error| {
        panic!("go mod download, upstream down: {error}\nproxy warnings:\n{}", proxy_warnings(&proxy))
    });
    let downloaded: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(downloaded.get("Error"), None, "{printed}");
    assert_eq!((downloaded["Path"].as_str(), downloaded["Version"].as_str()), (Some(module), Some(version)));
    let zip = Path::new(downloaded["Zip"].as_str().unwrap());
    assert!(zip.starts_with(&client.modcache), "{printed}");
    let zip_hash = oci::Digest::of(&std::fs::read(zip).unwrap()).hex().to_owned();
    assert_eq!(zip_hash, zip_sha256(&fixtures, module, version), "the zip the upstream served");

    // The control: v1.0.0, which was not warmed, cannot be had while the upstream is down.
    let mut unwarmed = client.command(&["mod", "download", "-json", &format!("{module}@v1.0.0")]);
    unwarmed.current_dir(outside.path()).env("GOFLAGS", "-modcacherw");
    let error = try_run(&mut unwarmed).expect_err("v1.0.0 was not warmed: the upstream is down");
    assert!(error.contains("v1.0.0"), "{error}");
}

/// A project depending on `dp-alpha = "<requirement>"` from the default registry, replaced by the
/// proxy's group at `index_url`.
fn alpha_project(requirement: &str, index_url: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let file = |path: &str, text: String| {
        let path = project.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    file(
        "Cargo.toml",
        format!(
            "[package]\nname = \"warm-consumer\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\ndp-alpha = \"{requirement}\"\n"
        ),
    );
    file("src/lib.rs", String::new());
    file(
        ".cargo/config.toml",
        format!(
            "[source.crates-io]\nreplace-with = \"proxy\"\n\n[source.proxy]\nregistry = \"sparse+{index_url}\"\n"
        ),
    );
    project
}

/// Cargo: `depproxy cache warm` of dp-alpha 1.0.0 (the binary, against the listener), then the
/// schedule's `dp-alpha@1.*` picks 1.1.0 from the index file (1.2.0 is yanked) and reads its
/// `.crate`; with both registry servers stopped, `cargo fetch` with an empty `CARGO_HOME` of a
/// project needing `1` (→ 1.1.0) and of one needing `=1.0.0` gets each from the proxy.
#[test]
fn a_cargo_group_s_schedule_and_cache_warm_serve_cargo_with_the_upstream_down() {
    require_tools(&["cargo", "python3", "curl", "flock"]);
    let fixtures = CargoFixtures::get();
    let mut registry = SparseRegistry::start(&fixtures);
    let warm = r#"warm = [{ packages = ["dp-alpha@1.*"], every = "1h", keep = 1 }]"#;
    let proxy = cargo_proxy(&registry, warm);
    let token = admin_token(&proxy);

    let mut command = Command::new(Depproxy::binary());
    command.args(["cache", "warm", "--group", "rust", "--proxy", &proxy.url(), "dp-alpha@1.0.0"]);
    let (status, output) = run_to_exit(&mut command, RUN_TIMEOUT);
    assert!(status.success(), "{output}\nproxy warnings:\n{}", proxy_warnings(&proxy));
    assert!(output.contains("warmed 1 of 1 package(s): 1 document(s), 1 file(s)"), "{output}");

    let pattern = "dp-alpha@1.*";
    assert_warmed(&scheduled_run(&proxy, &token, "rust"), &[(pattern, "1.1.0")], 1, &proxy);
    assert_warmed(&run_now(&proxy, &token, "rust"), &[(pattern, "1.1.0")], 1, &proxy);
    let downloads = registry.dl_requests();
    for version in ["1.0.0", "1.1.0"] {
        let path = format!("GET {}", fixtures.crate_file("dp-alpha", version).dl_path);
        assert_eq!(downloads.get(&path).copied(), Some(1), "{path}: {downloads:#?}");
    }
    let yanked = format!("GET {}", fixtures.crate_file("dp-alpha", "1.2.0").dl_path);
    assert_eq!(downloads.get(&yanked), None, "a yanked version is not warmed: {downloads:#?}");

    registry.stop();
    for (requirement, version) in [("1", "1.1.0"), ("=1.0.0", "1.0.0")] {
        let project = alpha_project(requirement, &cargo_index(&proxy));
        let home = tempfile::tempdir().unwrap();
        cargo(project.path(), home.path(), &["fetch"], &[]).unwrap_or_else(|error| {
            panic!(
                "cargo fetch {requirement}, upstream down: {error}\nproxy warnings:\n{}",
                proxy_warnings(&proxy)
            )
        });
        let expected = fixtures.crate_file("dp-alpha", version);
        assert_eq!(
            locked_checksums(project.path()).get("dp-alpha"),
            Some(&(version.to_owned(), expected.cksum.clone())),
            "{requirement}"
        );
        let fetched = std::fs::read_dir(home.path().join("registry/cache"))
            .unwrap()
            .flatten()
            .map(|registry| registry.path().join(&expected.file))
            .find(|file| file.is_file())
            .unwrap_or_else(|| panic!("no {} in CARGO_HOME's registry cache", expected.file));
        let fetched_hash = oci::Digest::of(&std::fs::read(fetched).unwrap()).hex().to_owned();
        assert_eq!(fetched_hash, expected.cksum, "{requirement}");
    }
}
