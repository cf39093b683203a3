//! mvn through depproxy end to end, with real parts: Maven repositories deployed by mvn
//! (`scripts/lab/make-maven-fixtures.sh`: repo-a, repo-b, repo-nosum without checksums) and
//! Debian's `/usr/share/maven-repo` (the plugins), each served by Python's http.server, depproxy as
//! a real process with a Maven group at `/maven/java/` over them in order, and the real `mvn`
//! (`dependency:resolve` of the fixtures' project, `dependency:get`) with a fresh local repository
//! each run. Upstream requests are counted in the servers' access logs.
//!
//! Needs mvn, javac and Debian's maven plugins (`scripts/install-test-deps.sh`), curl, flock.

use crate::support::maven::{
    MavenFixtures, Mvn, debian_repo, get_artifact, group_url, maven_proxy, maven_repo, project_dependencies,
    repo_copy, resolve_project, resolved, tamper,
};
use crate::support::packages::{
    LabServer, create_token, curl_get, curl_head_and_body, files_with_hash, proxy_warnings, run_all,
};
use crate::support::processes::{Depproxy, require_tools, run, wait_until};
use crate::support::webhook::{Answer, Webhook};

const REPO_A_READY: &str = "/com/example/dp/";
const REPO_B_READY: &str = "/com/example/dp/";

fn tools() {
    require_tools(&["mvn", "javac", "jar", "python3", "curl", "flock"]);
}

/// The three upstreams of the ordered group: repo-a, repo-b, Debian's tree.
struct Upstreams {
    a: LabServer,
    b: LabServer,
    debian: LabServer,
}

impl Upstreams {
    fn start(fixtures: &MavenFixtures) -> Upstreams {
        Upstreams {
            a: maven_repo(&fixtures.repo("repo-a"), REPO_A_READY),
            b: maven_repo(&fixtures.repo("repo-b"), REPO_B_READY),
            debian: debian_repo(),
        }
    }

    fn proxy(&self, group_extra: &str) -> Depproxy {
        maven_proxy(&[("repo-a", &self.a), ("repo-b", &self.b), ("debian", &self.debian)], group_extra)
    }

    fn of(&self, repo: &str) -> &LabServer {
        match repo {
            "repo-a" => &self.a,
            "repo-b" => &self.b,
            other => panic!("no upstream {other}"),
        }
    }

    fn stop(&mut self) {
        self.a.stop();
        self.b.stop();
        self.debian.stop();
    }
}

/// `dependency:resolve` of the project succeeded and left the fixtures' bytes in the local
/// repository.
fn assert_resolved(fixtures: &MavenFixtures, mvn: &mut Mvn, what: &str, proxy: &Depproxy) {
    let output = mvn.run().unwrap_or_else(|error| {
        panic!("{what}: mvn failed: {error}\nproxy warnings:\n{}", proxy_warnings(proxy))
    });
    assert_eq!(resolved(&output), project_dependencies(), "{what}");
    for file in fixtures.project_files() {
        assert_eq!(
            mvn.local_sha256(&file.path).as_deref(),
            Some(file.sha256.as_str()),
            "{what}: {}",
            file.path
        );
    }
}

/// Each of the project's files was fetched once, from the repository that has it, and never from
/// the other.
fn assert_each_file_fetched_once(fixtures: &MavenFixtures, upstreams: &Upstreams, proxy: &Depproxy) {
    for file in fixtures.project_files() {
        let other = if file.repo == "repo-a" { "repo-b" } else { "repo-a" };
        assert_eq!(
            upstreams.of(&file.repo).count("GET", &file.url_path()),
            1,
            "GETs of {} from {}: {:#?}\nproxy warnings:\n{}",
            file.path,
            file.repo,
            upstreams.of(&file.repo).requests(),
            proxy_warnings(proxy)
        );
        assert_eq!(upstreams.of(other).count("GET", &file.url_path()), 0, "{} from {other}", file.path);
    }
}

/// No upstream was asked twice for a jar or a pom (the plugin's tree from Debian's included).
fn assert_every_artifact_fetched_at_most_once(upstreams: &Upstreams) {
    for upstream in [&upstreams.a, &upstreams.b, &upstreams.debian] {
        let requests = upstream.requests();
        let again: Vec<_> = requests
            .iter()
            .filter(|(request, n)| {
                request.starts_with("GET ")
                    && (request.ends_with(".jar") || request.ends_with(".pom"))
                    && **n > 1
            })
            .collect();
        assert!(again.is_empty(), "fetched more than once from {}: {again:#?}", upstream.url());
    }
}

/// Cold, warm and with every upstream stopped, each with an empty local repository; the group's
/// upstreams are asked in order (dp-extra only repo-b has, the rest repo-a, the plugins Debian's
/// tree), each file fetched once; the SNAPSHOT's metadata is a document (rechecked each time with
/// `document_recheck = "0s"`, served stale while the upstream is down), its timestamped files are
/// artifacts (fetched once).
#[test]
fn mvn_resolves_through_ordered_upstreams_and_again_with_them_stopped() {
    tools();
    let fixtures = MavenFixtures::get();
    let mut upstreams = Upstreams::start(&fixtures);
    let proxy = upstreams.proxy("document_recheck = \"0s\"");
    let mirror = group_url(&proxy);

    assert_resolved(&fixtures, &mut resolve_project(&fixtures, &mirror, None), "cold", &proxy);
    assert_each_file_fetched_once(&fixtures, &upstreams, &proxy);
    assert_resolved(&fixtures, &mut resolve_project(&fixtures, &mirror, None), "warm", &proxy);
    assert_each_file_fetched_once(&fixtures, &upstreams, &proxy);
    assert_every_artifact_fetched_at_most_once(&upstreams);

    // dp-extra: repo-a was asked once whether it has it (its .sha1, then the file), however often
    // the proxy was asked; repo-b served it.
    for file in ["dp-extra-1.0.jar", "dp-extra-1.0.pom"] {
        let path = format!("/com/example/dp/dp-extra/1.0/{file}");
        let (status, _, complete) = curl_get(&format!("{}/maven/java{path}", proxy.url()), &[]);
        assert_eq!((status, complete), (200, true), "{path}");
        assert_eq!(upstreams.a.count("GET", &format!("{path}.sha1")), 1, "{:#?}", upstreams.a.requests());
        assert_eq!(upstreams.a.count("HEAD", &path), 1, "{:#?}", upstreams.a.requests());
        assert_eq!(upstreams.a.count("GET", &path), 0, "{:#?}", upstreams.a.requests());
        assert_eq!(upstreams.b.count("GET", &format!("{path}.sha1")), 1, "{:#?}", upstreams.b.requests());
    }
    // The SNAPSHOT's version-level metadata is a document, asked of repo-a for each resolve.
    let snapshot_metadata = "/com/example/dp/dp-snap/1.0-SNAPSHOT/maven-metadata.xml";
    assert_eq!(upstreams.a.count("GET", snapshot_metadata), 2, "{:#?}", upstreams.a.requests());

    upstreams.stop();
    assert_resolved(&fixtures, &mut resolve_project(&fixtures, &mirror, None), "upstreams stopped", &proxy);
}

#[test]
fn eight_concurrent_cold_mvn_resolves_fetch_each_file_once() {
    tools();
    let fixtures = MavenFixtures::get();
    let upstreams = Upstreams::start(&fixtures);
    let proxy = upstreams.proxy("");
    let mirror = group_url(&proxy);

    let mut runs: Vec<Mvn> = (0..8).map(|_| resolve_project(&fixtures, &mirror, None)).collect();
    let commands = runs
        .iter_mut()
        .map(|mvn| std::mem::replace(&mut mvn.command, std::process::Command::new("true")))
        .collect();
    for (i, result) in run_all(commands).iter().enumerate() {
        let output = result.as_ref().unwrap_or_else(|error| panic!("mvn {i} failed: {error}"));
        assert_eq!(resolved(output), project_dependencies(), "mvn {i}");
    }
    for mvn in &runs {
        for file in fixtures.project_files() {
            assert_eq!(mvn.local_sha256(&file.path).as_deref(), Some(file.sha256.as_str()), "{}", file.path);
        }
    }
    assert_each_file_fetched_once(&fixtures, &upstreams, &proxy);
    assert_every_artifact_fetched_at_most_once(&upstreams);
    // The plugin too: Debian's tree was asked for its jar once.
    let plugin = "/org/apache/maven/plugins/maven-dependency-plugin/3.5.0/maven-dependency-plugin-3.5.0.jar";
    assert_eq!(upstreams.debian.count("GET", plugin), 1, "{:#?}", upstreams.debian.requests());
}

/// The check: Debian's tree as the only upstream, `dependency:get` of the commons-io it
/// ships resolves through the proxy (Debian publishes no checksums: stored unverified).
#[test]
fn dependency_get_of_debians_commons_io_resolves_through_the_proxy() {
    tools();
    let fixtures = MavenFixtures::get();
    let debian = debian_repo();
    let version = std::fs::read_dir("/usr/share/maven-repo/commons-io/commons-io")
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .expect("Debian's tree has a numbered commons-io version");
    let proxy = maven_proxy(&[("debian", &debian)], "");
    let mut mvn =
        get_artifact(&fixtures, &group_url(&proxy), &format!("commons-io:commons-io:{version}"), true);
    let output =
        mvn.run().unwrap_or_else(|error| panic!("dependency:get: {error}\n{}", proxy_warnings(&proxy)));
    assert!(output.contains("BUILD SUCCESS"), "{output}");
    let jar = format!("commons-io/commons-io/{version}/commons-io-{version}.jar");
    let shipped = std::fs::read(format!("/usr/share/maven-repo/{jar}")).unwrap();
    assert_eq!(mvn.local_sha256(&jar).as_deref(), Some(oci::Digest::of(&shipped).hex()));
    assert_eq!(debian.count("GET", &format!("/{jar}")), 1, "{:#?}", debian.requests());
}

/// A file from repo-a is verified against its .sha1: tampered, it is refused (mvn fails) and not
/// stored; restored, it comes through.
#[test]
fn a_jar_that_does_not_match_its_sha1_is_refused_and_not_recorded() {
    tools();
    let fixtures = MavenFixtures::get();
    let repo = repo_copy(&fixtures, "repo-a");
    let path = "com/example/dp/dp-tampered/1.0/dp-tampered-1.0.jar";
    let original = std::fs::read(repo.path().join(path)).unwrap();
    let tampered = tamper(repo.path(), path);
    let upstream = maven_repo(repo.path(), REPO_A_READY);
    let debian = debian_repo();
    let proxy = maven_proxy(&[("repo-a", &upstream), ("debian", &debian)], "");
    let mirror = group_url(&proxy);

    for attempt in 1..=2 {
        let mut mvn = get_artifact(&fixtures, &mirror, "com.example.dp:dp-tampered:1.0", false);
        let error = mvn.run().expect_err("mvn got the tampered jar");
        assert!(error.contains("dp-tampered-1.0.jar"), "attempt {attempt}: {error}");
        assert_ne!(mvn.local_sha256(path).as_deref(), Some(tampered.as_str()), "attempt {attempt}");
        let (status, body, complete) = curl_get(&format!("{mirror}{path}"), &[]);
        assert!(
            !(status == 200 && complete),
            "attempt {attempt}: the proxy answered 200 with a complete body ({} bytes)",
            body.len()
        );
        let kept = files_with_hash(proxy.data_dir.path(), &tampered);
        assert!(kept.is_empty(), "attempt {attempt}: the tampered bytes are stored: {kept:?}");
    }
    // Refused after fetching it: the upstream was asked for the jar.
    assert!(upstream.count("GET", &format!("/{path}")) >= 1, "{:#?}", upstream.requests());

    // Fixed upstream: the intact jar comes through and is what is stored.
    std::fs::write(repo.path().join(path), &original).unwrap();
    let mut mvn = get_artifact(&fixtures, &mirror, "com.example.dp:dp-tampered:1.0", false);
    mvn.run().unwrap_or_else(|error| panic!("restored: {error}\n{}", proxy_warnings(&proxy)));
    let intact = oci::Digest::of(&original).hex().to_owned();
    assert_eq!(mvn.local_sha256(path).as_deref(), Some(intact.as_str()));
    assert!(!files_with_hash(proxy.data_dir.path(), &intact).is_empty(), "the intact jar is stored");
}

/// The checksum sidecars: a verified file's .sha1 (and .sha256) are answered by the proxy once it
/// is stored, without asking the upstream again; a file whose repository publishes no checksum
/// (repo-nosum) is stored and counted unverified, in the metrics and the admin API.
#[test]
fn sidecars_come_from_the_verified_file_and_a_file_without_checksums_is_counted_unverified() {
    tools();
    let fixtures = MavenFixtures::get();
    let repo_a = maven_repo(&fixtures.repo("repo-a"), REPO_A_READY);
    let nosum = maven_repo(&fixtures.repo("repo-nosum"), "/com/example/dp/");
    let verified = maven_proxy(&[("repo-a", &repo_a)], "");
    let jar = fixtures.file("repo-a", "com/example/dp/dp-core/1.1/dp-core-1.1.jar");
    let url = format!("{}{}", group_url(&verified), jar.path);
    let (status, body, complete) = curl_get(&url, &[]);
    assert_eq!((status, complete), (200, true));
    assert_eq!(oci::Digest::of(&body).hex(), jar.sha256);
    for _ in 0..3 {
        let (status, body, _) = curl_get(&format!("{url}.sha1"), &[]);
        assert_eq!((status, String::from_utf8_lossy(&body).trim()), (200, jar.sha1.as_str()));
        let (status, body, _) = curl_get(&format!("{url}.sha256"), &[]);
        assert_eq!((status, String::from_utf8_lossy(&body).trim()), (200, jar.sha256.as_str()));
    }
    assert_eq!(repo_a.count("GET", &format!("{}.sha1", jar.url_path())), 1, "{:#?}", repo_a.requests());
    assert_eq!(repo_a.count("GET", &format!("{}.sha256", jar.url_path())), 0, "{:#?}", repo_a.requests());
    assert_eq!(repo_a.count("GET", &jar.url_path()), 1);

    let unverified = maven_proxy(&[("repo-nosum", &nosum)], "");
    for file in ["dp-util-1.0.jar", "dp-util-1.0.pom"] {
        let path = format!("com/example/dp/dp-util/1.0/{file}");
        let (status, body, complete) = curl_get(&format!("{}{path}", group_url(&unverified)), &[]);
        assert_eq!((status, complete), (200, true), "{path}");
        let published = std::fs::read(fixtures.repo("repo-nosum").join(&path)).unwrap();
        assert_eq!(body, published, "{path}");
        let stored = files_with_hash(unverified.data_dir.path(), oci::Digest::of(&published).hex());
        assert!(!stored.is_empty(), "{path} is not stored");
    }
    let metric = "depproxy_package_files_unverified_total{group=\"java\"} 2";
    wait_until(&format!("no {metric:?} in /metrics"), std::time::Duration::from_secs(30), || {
        let (_, body, _) = curl_get(&format!("{}/metrics", unverified.url()), &[]);
        String::from_utf8_lossy(&body).lines().any(|line| line == metric)
    });
    // Stored (counted above): its .sha256 is what it was stored under; its .sha1 a 404 the probe
    // already learnt, so repo-nosum was asked for it once (by the probe) however often mvn asks.
    let jar = "com/example/dp/dp-util/1.0/dp-util-1.0.jar";
    let published = oci::Digest::of(&std::fs::read(fixtures.repo("repo-nosum").join(jar)).unwrap());
    for _ in 0..3 {
        let (status, body, _) = curl_get(&format!("{}{jar}.sha256", group_url(&unverified)), &[]);
        assert_eq!((status, String::from_utf8_lossy(&body).trim()), (200, published.hex()));
        let (status, _, _) = curl_get(&format!("{}{jar}.sha1", group_url(&unverified)), &[]);
        assert_eq!(status, 404);
    }
    assert_eq!(nosum.count("GET", &format!("/{jar}.sha1")), 1, "{:#?}", nosum.requests());
    assert_eq!(nosum.count("GET", &format!("/{jar}.sha256")), 1, "{:#?}", nosum.requests());
    let admin = admin_token(&unverified);
    let groups = format!("http://127.0.0.1:{}/api/v1/groups", unverified.admin_port);
    let mut last = String::new();
    wait_until("unverified_artifacts is not 2", std::time::Duration::from_secs(30), || {
        let (_, body, _) = curl_get(&groups, &[&format!("Authorization: Bearer {admin}")]);
        last = String::from_utf8_lossy(&body).into_owned();
        serde_json::from_str::<serde_json::Value>(&last).ok().is_some_and(|stats| {
            stats["groups"].as_array().is_some_and(|groups| {
                groups.iter().any(|g| g["group"] == "java" && g["unverified_artifacts"] == 2)
            })
        })
    });
    // The verified group counts none.
    let (_, body, _) = curl_get(&format!("{}/metrics", verified.url()), &[]);
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.lines().any(|line| line.starts_with("depproxy_package_files_unverified_total{") && !line.ends_with(" 0")),
        "{text}"
    );
}

fn admin_token(proxy: &Depproxy) -> String {
    let output = run(std::process::Command::new(Depproxy::binary())
        .args(["token", "create", "--name", "ops", "--admin", "--expires", "1d", "--config"])
        .arg(proxy.data_dir.path().join("depproxy.toml"))
        .arg("--data-dir")
        .arg(proxy.data_dir.path()));
    output.lines().next().unwrap().trim().to_owned()
}

/// A token group: mvn without credentials is refused (the proxy's 401 asks for Basic), with the
/// token as the `<server>`'s password it resolves.
#[test]
fn a_token_group_refuses_anonymous_mvn_and_takes_the_servers_password() {
    tools();
    let fixtures = MavenFixtures::get();
    let upstreams = Upstreams::start(&fixtures);
    let proxy = upstreams.proxy("access = \"token\"");
    let mirror = group_url(&proxy);

    let (status, headers, _) =
        curl_head_and_body(&format!("{mirror}com/example/dp/dp-core/1.1/dp-core-1.1.pom"), &[]);
    assert_eq!(status, 401);
    // Maven sends a <server>'s credentials only when challenged for Basic.
    assert!(headers.get("www-authenticate").is_some_and(|value| value.starts_with("Basic")), "{headers:?}");
    let error = resolve_project(&fixtures, &mirror, None).run().expect_err("anonymous mvn resolved");
    assert!(error.contains("401"), "{error}");
    // A wrong password is refused. Once, with curl: mvn asks again and again, and the proxy's
    // throttle of failed logins (429, retry in 5s) makes that take most of a minute.
    let (status, _, _) = curl_get(
        &format!("{mirror}com/example/dp/dp-core/1.1/dp-core-1.1.pom"),
        &["Authorization: Basic Y2k6ZHBwXzAxMjM0NTY3ODlhYmNkZWZfd3Jvbmc="],
    );
    assert_eq!(status, 401, "ci:dpp_0123456789abcdef_wrong");

    let secret = create_token(&proxy, "java");
    assert_resolved(
        &fixtures,
        &mut resolve_project(&fixtures, &mirror, Some(("ci", &secret))),
        "token",
        &proxy,
    );
}

/// `deny = ["com.example.dp:dp-extra@1.*"]`: mvn fails on dp-extra, which is never asked of any
/// upstream; what the rule does not name still comes through.
#[test]
fn a_denied_version_is_refused_to_mvn_and_never_fetched() {
    tools();
    let fixtures = MavenFixtures::get();
    let upstreams = Upstreams::start(&fixtures);
    let proxy = upstreams.proxy("deny = [\"com.example.dp:dp-extra@1.*\"]");
    let mirror = group_url(&proxy);

    let error = resolve_project(&fixtures, &mirror, None).run().expect_err("mvn resolved a denied version");
    assert!(error.contains("dp-extra"), "{error}");
    let (status, body, _) = curl_get(&format!("{mirror}com/example/dp/dp-extra/1.0/dp-extra-1.0.jar"), &[]);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let message = String::from_utf8_lossy(&body);
    assert!(message.contains("com.example.dp:dp-extra") && message.contains("deny"), "{message}");
    for upstream in [&upstreams.a, &upstreams.b] {
        assert_eq!(upstream.count_matching("GET", "dp-extra-1.0"), 0, "{:#?}", upstream.requests());
        assert_eq!(upstream.count_matching("HEAD", "dp-extra-1.0"), 0, "{:#?}", upstream.requests());
    }
    let (status, _, complete) = curl_get(&format!("{mirror}com/example/dp/dp-core/1.1/dp-core-1.1.jar"), &[]);
    assert_eq!((status, complete), (200, true));
}

/// A path no upstream has: the second and third asks within `negative_ttl` reach no upstream, for
/// mvn as for a plain GET.
#[test]
fn a_path_no_upstream_has_is_a_404_remembered_for_negative_ttl() {
    tools();
    let fixtures = MavenFixtures::get();
    let upstreams = Upstreams::start(&fixtures);
    let proxy = upstreams.proxy("negative_ttl = \"10m\"");
    let mirror = group_url(&proxy);
    let pom = "/com/example/dp/dp-missing/1.0/dp-missing-1.0.pom";

    for attempt in 1..=3 {
        let (status, body, _) = curl_get(&format!("{}/maven/java{pom}", proxy.url()), &[]);
        assert_eq!(status, 404, "attempt {attempt}: {}", String::from_utf8_lossy(&body));
    }
    let error = get_artifact(&fixtures, &mirror, "com.example.dp:dp-missing:1.0", false)
        .run()
        .expect_err("mvn got an artifact no upstream has");
    assert!(error.contains("dp-missing"), "{error}");
    for upstream in [&upstreams.a, &upstreams.b, &upstreams.debian] {
        // Whether it has the pom: its .sha1, then (none) the file itself — once.
        assert_eq!(upstream.count("GET", &format!("{pom}.sha1")), 1, "{:#?}", upstream.requests());
        assert_eq!(upstream.count("HEAD", pom), 1, "{:#?}", upstream.requests());
        assert_eq!(upstream.count("GET", pom), 0, "{:#?}", upstream.requests());
    }
}

/// An admission hook refusing dp-extra: mvn fails on it, the rest of the project comes through.
#[test]
fn an_admission_hook_refuses_a_file_mvn_resolves_and_allows_the_rest() {
    tools();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hook = runtime.block_on(Webhook::start());
    hook.answer("com.example.dp:dp-extra", Answer::Deny("CVE-2026-0003 (high)"));
    let fixtures = MavenFixtures::get();
    let upstreams = Upstreams::start(&fixtures);
    let proxy = upstreams.proxy(&format!("admission_hook = \"{}\"", hook.url));
    let mirror = group_url(&proxy);

    let error = resolve_project(&fixtures, &mirror, None).run().expect_err("mvn resolved a refused file");
    assert!(error.contains("dp-extra"), "{error}");
    let (status, body, _) = curl_get(&format!("{mirror}com/example/dp/dp-extra/1.0/dp-extra-1.0.pom"), &[]);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("CVE-2026-0003"));
    let judged = hook.questions();
    assert!(
        judged
            .iter()
            .any(|question| question["name"] == "com.example.dp:dp-extra" && question["format"] == "maven"),
        "{judged:#?}"
    );
    let files = files_with_hash(
        proxy.data_dir.path(),
        &fixtures.file("repo-b", "com/example/dp/dp-extra/1.0/dp-extra-1.0.pom").sha256,
    );
    assert!(files.is_empty(), "the refused pom is stored: {files:?}");
    let (status, _, complete) = curl_get(&format!("{mirror}com/example/dp/dp-core/1.1/dp-core-1.1.jar"), &[]);
    assert_eq!((status, complete), (200, true));
    drop(runtime);
}
