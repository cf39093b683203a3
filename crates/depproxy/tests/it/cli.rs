//! The command line as a new operator meets it (issue 22), with the built binary against real
//! `depproxy serve` processes: what `token create` prints where, commands that must not create a
//! database, closed pipes, how `cache warm` finds the proxy, `--upstream` without a scheme.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::processes::{Depproxy, Process, free_port, require_tools, wait_http_ok};

/// The binary with none of the operator's environment, run in `cwd`. A packaged configuration
/// of this machine (/etc/depproxy) is hidden: the tests name the one they mean.
fn depproxy(cwd: &Path) -> Command {
    let mut command = Command::new(Depproxy::binary());
    command.current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DEPPROXY_") {
            command.env_remove(&name);
        }
    }
    command.env("DEPPROXY_PACKAGED_CONFIG", cwd.join("no-packaged-config.toml")).env_remove("RUST_BACKTRACE");
    command
}

fn output(command: &mut Command) -> Output {
    command.env_remove("LD_LIBRARY_PATH").output().unwrap_or_else(|error| panic!("{command:?}: {error}"))
}

fn succeeded(command: &mut Command) -> Output {
    let output = output(command);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn failed(command: &mut Command) -> String {
    let output = output(command);
    assert!(!output.status.success(), "{command:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A real `depproxy serve` whose configuration file names everything (listen, admin_listen,
/// data_dir): the CLI commands then need only `--config`.
struct Serve {
    port: u16,
    admin_port: u16,
    config: PathBuf,
    dir: tempfile::TempDir,
    _process: Process,
}

impl Serve {
    /// `body`: the upstreams and groups (and anything else) of the configuration.
    fn start(body: &str) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let config = dir.path().join("depproxy.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\ndata_dir = \"{}\"\n{body}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut command = depproxy(dir.path());
        command.arg("serve").arg("--config").arg(&config);
        let process = Process::spawn("depproxy serve", &mut command, &dir.path().join("serve.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
        wait_http_ok(&format!("http://127.0.0.1:{admin_port}/api/v1/openapi.json"), "the admin API");
        Serve { port, admin_port, config, dir, _process: process }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// One default group pulling from `upstream`.
fn default_group(upstream: &str) -> String {
    format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"{upstream}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n"
    )
}

/// Issue 22, point 1: `token create > token`, `TOKEN=$(token create …)` and `--password-stdin`
/// need the secret alone on stdout; the advice goes to stderr, `--quiet` drops it, `--json`
/// gives the whole record.
#[test]
fn token_create_prints_the_secret_alone_on_stdout() {
    require_tools(&["curl"]);
    let serve = Serve::start(&default_group("http://127.0.0.1:9"));
    let cwd = tempfile::tempdir().unwrap();
    let create = |name: &str, extra: &[&str]| {
        let mut command = depproxy(cwd.path());
        command.args(["token", "create", "--name", name, "--group", "default"]).args(extra);
        succeeded(command.arg("--config").arg(&serve.config))
    };

    let plain = create("ci", &["--expires", "30d"]);
    let secret = stdout(&plain);
    assert!(secret.starts_with("dpp_") && secret.ends_with('\n'), "{secret:?}");
    assert_eq!(secret.trim_end().lines().count(), 1, "only the secret: {secret:?}");
    assert!(!secret.trim_end().contains(char::is_whitespace), "{secret:?}");
    let advice = String::from_utf8_lossy(&plain.stderr);
    assert!(advice.contains("shown only this once") && advice.contains("--password-stdin"), "{advice}");
    assert!(!advice.contains(secret.trim_end()), "the secret is not repeated on stderr");

    // What the README does: the secret in a variable, then Basic auth with it.
    let assigned = succeeded(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "TOKEN=$('{}' token create --name from-shell --group default --config '{}') && \
                 curl -s -o /dev/null -w '%{{http_code}}' -u \"ci:$TOKEN\" 'http://127.0.0.1:{}/v2/token?service=depproxy&scope=repository:x:pull'",
                Depproxy::binary(),
                serve.config.display(),
                serve.port
            ))
            .env("DEPPROXY_PACKAGED_CONFIG", cwd.path().join("none")),
    );
    assert_eq!(stdout(&assigned), "200", "the secret from $(…) logs in");

    let quiet = create("quiet", &["--quiet"]);
    assert!(stdout(&quiet).starts_with("dpp_"));
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "", "--quiet: nothing on stderr");

    let json = create("json", &["--json", "--expires", "12h"]);
    let record: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(record["name"], "json");
    assert!(record["secret"].as_str().unwrap().starts_with("dpp_"), "{record}");
    assert_eq!(record["groups"], serde_json::json!(["default"]));
    assert_eq!(record["admin"], false);
    assert!(record["expires"].as_str().unwrap().ends_with('Z'), "RFC 3339: {record}");
    let never = create("never", &["--json"]);
    let record: serde_json::Value = serde_json::from_slice(&never.stdout).unwrap();
    assert_eq!(record["expires"], serde_json::Value::Null);
    assert_eq!(
        record.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>(),
        ["admin", "expires", "groups", "name", "secret"]
    );
    assert!(serve.data_dir().join("depproxy.db").exists());
}

/// Issue 22, point 4: run from another directory without `--config`, the database commands
/// used to create `./depproxy-data/depproxy.db` and "succeed" on it; now they refuse, or use the
/// packaged configuration when there is one.
#[test]
fn database_commands_never_create_a_database_and_find_the_packaged_configuration() {
    require_tools(&["curl"]);
    let serve = Serve::start(&default_group("http://127.0.0.1:9"));
    let elsewhere = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 5] = [
        &["token", "create", "--name", "ci", "--group", "default"],
        &["token", "list"],
        &["token", "revoke", "ci"],
        &["cache", "stats"],
        &["cache", "purge", "--group", "default"],
    ];
    for args in commands {
        let error = failed(depproxy(elsewhere.path()).args(args));
        assert!(
            error.contains("no database at ./depproxy-data/depproxy.db") && error.contains("--config"),
            "{args:?}: {error}"
        );
        assert!(!elsewhere.path().join("depproxy-data").exists(), "{args:?} created a data directory");
    }
    // A data directory without a database is refused the same way.
    let empty = tempfile::tempdir().unwrap();
    let error = failed(depproxy(elsewhere.path()).args(["token", "list", "--data-dir"]).arg(empty.path()));
    assert!(
        error.contains(&format!("no database at {}", empty.path().join("depproxy.db").display())),
        "{error}"
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "nothing created");

    // The packaged configuration (/etc/depproxy/depproxy.toml, here another path) is the default.
    let packaged = |command: &mut Command| -> Output {
        succeeded(command.env("DEPPROXY_PACKAGED_CONFIG", &serve.config))
    };
    let created =
        packaged(depproxy(elsewhere.path()).args(["token", "create", "--name", "ci", "--group", "default"]));
    let secret = stdout(&created).trim().to_owned();
    let listed = stdout(&packaged(depproxy(elsewhere.path()).args(["token", "list"])));
    assert!(listed.lines().any(|line| line.starts_with("ci ")), "{listed}");
    let stats = stdout(&packaged(depproxy(elsewhere.path()).args(["cache", "stats"])));
    assert!(stats.contains("default"), "{stats}");
    assert!(!elsewhere.path().join("depproxy-data").exists());
    // The running server knows the token (it reloads tokens every 10 s by default).
    let url = format!("http://127.0.0.1:{}/v2/token?service=depproxy&scope=repository:x:pull", serve.port);
    crate::support::processes::wait_until(
        "the server does not take the token made with the packaged configuration",
        std::time::Duration::from_secs(30),
        || {
            let answer =
                output(Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).args([
                    "-u",
                    &format!("ci:{secret}"),
                    &url,
                ]));
            answer.stdout == b"200"
        },
    );
    // An explicit --data-dir wins over the packaged configuration.
    let error = failed(
        depproxy(elsewhere.path())
            .args(["token", "list", "--data-dir"])
            .arg(empty.path())
            .env("DEPPROXY_PACKAGED_CONFIG", &serve.config),
    );
    assert!(error.contains("no database at"), "{error}");
}

/// Runs `command` with a stdout whose reader is already gone, as `| head -1` leaves it.
fn with_closed_stdout(command: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command.stdout(Stdio::from(writer)).stderr(Stdio::piped()).env_remove("LD_LIBRARY_PATH");
    let child = command.spawn().unwrap();
    child.wait_with_output().unwrap()
}

/// Issue 22, point 6: `depproxy admin events | head -1` panicked with "Broken pipe" (exit 101).
#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    require_tools(&["curl"]);
    let serve = Serve::start(&default_group("http://127.0.0.1:9"));
    let cwd = tempfile::tempdir().unwrap();
    let secret = stdout(&succeeded(
        depproxy(cwd.path())
            .args(["token", "create", "--name", "ops", "--admin", "--config"])
            .arg(&serve.config),
    ))
    .lines()
    .next()
    .unwrap()
    .to_owned();
    let admin_url = format!("http://127.0.0.1:{}", serve.admin_port);
    let config = serve.config.to_str().unwrap();
    let commands: [&[&str]; 8] = [
        &["admin", "events", "--limit", "5"],
        &["admin", "status", "--json"],
        &["admin", "status"],
        &["admin", "upstreams"],
        &["token", "list", "--config", config],
        &["token", "create", "--name", "piped", "--group", "default", "--config", config],
        &["cache", "stats", "--json", "--config", config],
        &["check-config", config],
    ];
    for args in commands {
        let output = with_closed_stdout(
            depproxy(cwd.path())
                .args(args)
                .env("DEPPROXY_ADMIN_URL", &admin_url)
                .env("DEPPROXY_ADMIN_TOKEN", &secret),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() || output.status.code() == Some(141),
            "{args:?} ended {}: {stderr}",
            output.status
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
    let help = with_closed_stdout(depproxy(cwd.path()).arg("--help"));
    assert!(!String::from_utf8_lossy(&help.stderr).contains("panicked"), "{help:?}");
}

/// Issue 22, point 7: `cache warm` looked for the proxy at the default address whatever `serve`
/// was started with; it takes `--listen` / `DEPPROXY_LISTEN` like `serve`, defaults to the
/// configuration's `listen`, and says which address it tried and why.
#[tokio::test(flavor = "multi_thread")]
async fn cache_warm_finds_the_proxy_where_serve_listens() {
    require_tools(&["curl"]);
    let upstream = testkit::FakeRegistry::start().await;
    upstream.put_image("team/app", "v1", &[b"a layer"]);
    let url = upstream.url();
    tokio::task::spawn_blocking(move || {
        let cwd = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = depproxy(cwd.path());
        command
            .args(["serve", "--upstream", &url, "--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .env("DEPPROXY_LISTEN", format!("127.0.0.1:{port}"));
        let _serve = Process::spawn("depproxy serve", &mut command, &cwd.path().join("serve.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");

        // The environment `serve` was started with.
        let warmed = succeeded(
            depproxy(cwd.path())
                .args(["cache", "warm", "--group", "default", "team/app:v1"])
                .env("DEPPROXY_LISTEN", format!("127.0.0.1:{port}")),
        );
        assert!(stdout(&warmed).starts_with("warmed 1 of 1 image(s)"), "{warmed:?}");
        // The flag `serve` was started with.
        let warmed = succeeded(depproxy(cwd.path()).args([
            "cache",
            "warm",
            "--group",
            "default",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "team/app:v1",
        ]));
        assert!(stdout(&warmed).starts_with("warmed 1 of 1 image(s)"), "{warmed:?}");

        // Nothing there: the error names the address and where it came from.
        let closed = free_port();
        let error = failed(depproxy(cwd.path()).args([
            "cache",
            "warm",
            "--group",
            "default",
            "--listen",
            &format!("0.0.0.0:{closed}"),
            "team/app:v1",
        ]));
        assert!(
            error.contains(&format!("cannot reach the proxy at http://127.0.0.1:{closed} (from --listen)")),
            "{error}"
        );
        let config = cwd.path().join("other.toml");
        std::fs::write(&config, format!("listen = \"127.0.0.1:{closed}\"\n")).unwrap();
        let error = failed(
            depproxy(cwd.path())
                .args(["cache", "warm", "--group", "default", "team/app:v1", "--config"])
                .arg(&config),
        );
        assert!(
            error.contains(&format!(
                "cannot reach the proxy at http://127.0.0.1:{closed} (from listen of {})",
                config.display()
            )),
            "{error}"
        );
        // The packaged configuration's listen, when there is no flag.
        let error = failed(
            depproxy(cwd.path())
                .args(["cache", "warm", "--group", "default", "team/app:v1"])
                .env("DEPPROXY_PACKAGED_CONFIG", &config),
        );
        assert!(error.contains(&format!("http://127.0.0.1:{closed} (from listen of")), "{error}");
    })
    .await
    .unwrap();
}

/// Issue 22, point 9: `--upstream registry.example.com` failed with "relative URL without a
/// base", and the upstream it made was called `dockerhub` in `admin status`.
#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_flag_wants_a_scheme_and_names_its_upstream_after_the_host() {
    require_tools(&["curl"]);
    let upstream = testkit::FakeRegistry::start().await;
    let url = upstream.url();
    tokio::task::spawn_blocking(move || {
        let cwd = tempfile::tempdir().unwrap();
        let error = failed(depproxy(cwd.path()).args([
            "serve",
            "--upstream",
            "registry.example.com",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ]));
        assert!(
            error.contains("http:// or https://") && error.contains("https://registry.example.com"),
            "{error}"
        );
        assert!(!error.contains("relative URL"), "{error}");

        let (port, admin_port) = (free_port(), free_port());
        let mut command = depproxy(cwd.path());
        command.args([
            "serve",
            "--upstream",
            &url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ]);
        let _serve = Process::spawn("depproxy serve", &mut command, &cwd.path().join("serve.log"));
        wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
        let secret = stdout(&succeeded(depproxy(cwd.path()).args([
            "token",
            "create",
            "--name",
            "ops",
            "--admin",
            "--data-dir",
            "depproxy-data",
            "--quiet",
        ])));
        let upstreams = succeeded(depproxy(cwd.path()).args([
            "admin",
            "upstreams",
            "--json",
            "--admin-url",
            &format!("http://127.0.0.1:{admin_port}"),
            "--token",
            secret.trim(),
        ]));
        let upstreams: serde_json::Value = serde_json::from_slice(&upstreams.stdout).unwrap();
        assert_eq!(upstreams[0]["name"], "127.0.0.1", "{upstreams}");
    })
    .await
    .unwrap();
}

/// `check-config` refuses a format no format has, listing the known ones, and a group whose format
/// is not its upstream's; a group without `format` takes its upstream's (`oci` by default).
#[test]
fn check_config_refuses_an_unknown_format_and_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let file = dir.path().join("formats.toml");
        std::fs::write(&file, text).unwrap();
        let mut command = depproxy(dir.path());
        command.arg("check-config").arg(&file);
        command
    };
    let unknown = failed(&mut check(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\n\n\
         [[group]]\npath = \"js\"\nupstream = \"lab\"\nformat = \"npmx\"\n",
    ));
    assert!(unknown.contains("group \"js\""), "{unknown}");
    assert!(unknown.contains("unknown format \"npmx\" (known formats: oci"), "{unknown}");
    let on_upstream = failed(&mut check(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\nformat = \"Oci\"\n",
    ));
    assert!(on_upstream.contains("upstream \"lab\""), "{on_upstream}");
    assert!(on_upstream.contains("known formats: oci"), "{on_upstream}");
    succeeded(&mut check(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\nformat = \"oci\"\n\n\
         [[group]]\npath = \"acme\"\nupstream = \"lab\"\n",
    ));
}

/// Issue 25: `check-config` explains a bad pattern or duration of a group's pull policy (and
/// fails), and warns about rules another makes useless (and passes).
#[test]
fn check_config_explains_pull_policy_mistakes_and_shadowed_rules() {
    let dir = tempfile::tempdir().unwrap();
    let check = |keys: &str| {
        let file = dir.path().join("policy.toml");
        std::fs::write(
            &file,
            format!(
                "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\n\n\
                 [[group]]\npath = \"acme\"\nupstream = \"lab\"\n{keys}\n"
            ),
        )
        .unwrap();
        let mut command = depproxy(dir.path());
        command.arg("check-config").arg(&file);
        command
    };
    let glob = failed(&mut check("deny = [\"library/[abc\"]"));
    assert!(glob.contains("group \"acme\"") && glob.contains("deny pattern \"library/[abc\""), "{glob}");
    let negative = failed(&mut check("negative_ttl = \"-1m\""));
    assert!(negative.contains("negative_ttl \"-1m\" is negative"), "{negative}");
    let two_tags = failed(&mut check("allow = [\"a:b:c\"]"));
    assert!(two_tags.contains("more than one ':'"), "{two_tags}");
    let shadowed = succeeded(&mut check(
        "allow = [\"bitnami/redis\"]\ndeny = [\"bitnami/*\"]\nimmutable_tags = [\"v*.*.*\"]\nstale_on_404 = true",
    ));
    let warnings = String::from_utf8_lossy(&shadowed.stderr);
    assert!(
        warnings.contains(
            "warning: group \"acme\": allow pattern \"bitnami/redis\" allows nothing: deny pattern \"bitnami/*\""
        ),
        "{warnings}"
    );
    assert!(stdout(&shadowed).contains(": ok (1 upstream(s), 1 group(s)"), "{}", stdout(&shadowed));
}

/// Issue 25: `check-config` explains a bad `warm` entry (and fails): a pattern over names, a
/// missing or too short `every`, `keep = 0`, the other format's list; and warns about an entry the
/// group's own rules refuse (and passes).
#[test]
fn check_config_explains_warm_schedule_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let check = |keys: &str| {
        let file = dir.path().join("warm.toml");
        std::fs::write(
            &file,
            format!(
                "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\n\n\
                 [[group]]\npath = \"acme\"\nupstream = \"lab\"\n{keys}\n"
            ),
        )
        .unwrap();
        let mut command = depproxy(dir.path());
        command.arg("check-config").arg(&file);
        command
    };
    for (keys, says) in [
        (r#"warm = [{ images = ["library/*:3"], every = "6h" }]"#, "only the tag may be a pattern"),
        (r#"warm = [{ images = ["library/alpine:3.*"] }]"#, "needs every = \"6h\""),
        (r#"warm = [{ images = ["library/alpine:3.*"], every = "30s" }]"#, "shorter than 1m"),
        (
            r#"warm = [{ images = ["library/alpine:3.*"], every = "soon" }]"#,
            "every \"soon\" is not a duration",
        ),
        (r#"warm = [{ images = ["library/alpine:3.*"], every = "6h", keep = 0 }]"#, "keep = 0"),
        (
            r#"warm = [{ packages = ["lodash@4.*"], every = "6h" }]"#,
            "packages = [...] is for package formats",
        ),
        (
            r#"warm = [{ images = ["library/alpine:[3"], every = "6h" }]"#,
            "warm pattern \"library/alpine:[3\"",
        ),
    ] {
        let shown = failed(&mut check(keys));
        assert!(shown.contains("group \"acme\": warm entry 1") && shown.contains(says), "{keys}: {shown}");
    }
    let refused = succeeded(&mut check(
        "deny = [\"library/alpine:edge\"]\nwarm = [{ images = [\"library/alpine:edge\", \"library/alpine:3.*\"], every = \"6h\", keep = 2 }]",
    ));
    let warnings = String::from_utf8_lossy(&refused.stderr);
    assert!(
        warnings.contains("warm pattern \"library/alpine:edge\" is refused by the group's allow/deny rules"),
        "{warnings}"
    );
}
