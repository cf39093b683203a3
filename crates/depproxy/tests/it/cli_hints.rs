//! Every `depproxy …` command the program tells its user to type — on the status page's login
//! form, in `--help`, in error messages — is run here, as printed, against a real `depproxy
//! serve` and its configuration, and must do what the hint says (issue 22, point 5). A scan of
//! the sources finds every such hint, so a new one fails this test until it is run here too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::processes::{Depproxy, Process, free_port, require_tools, wait_http_ok, wait_until};
use clap::CommandFactory as _;

/// Where the sources print a `depproxy …` command, and the command as written there (up to its
/// first `{`, for commands built with `format!`). Each must be seen in the program's output below.
const PRINTED_HINTS: &[(&str, &str)] = &[
    ("crates/admin/src/page/render.rs", "depproxy token create --name ops --admin"),
    ("crates/depproxy/src/cli/args.rs", "depproxy token create --name ops --admin"),
    ("crates/depproxy/src/cli/args.rs", "depproxy gen-secret FILE"),
    ("crates/depproxy/src/app/run.rs", "depproxy gen-secret FILE"),
    ("crates/depproxy/src/app/listeners.rs", "depproxy token create --name ops --admin"),
    ("crates/depproxy/src/cli/warm/client.rs", "depproxy token create --name "),
];

/// Mentions of `depproxy <subcommand>` in the sources that are not commands to type.
const NOT_HINTS: &[(&str, &str)] = &[
    // The role in "depproxy serve listening" log lines.
    ("crates/depproxy/src/app/run.rs", "\"depproxy serve\""),
    ("crates/depproxy/src/app/run.rs", "\"depproxy control\""),
    ("crates/depproxy/src/app/run.rs", "\"depproxy gateway\""),
    // The OpenAPI document's title.
    ("crates/admin/src/routes.rs", "\"depproxy admin API\""),
];

/// The binary in `cwd` with none of the operator's environment; the packaged configuration is
/// `packaged` (a hint printed without `--config` runs where the server's configuration is the
/// packaged one, /etc/depproxy/depproxy.toml).
fn depproxy(cwd: &Path, packaged: &Path) -> Command {
    let mut command = Command::new(Depproxy::binary());
    command.current_dir(cwd);
    clear_environment(&mut command);
    command.env("DEPPROXY_PACKAGED_CONFIG", packaged);
    command
}

fn clear_environment(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DEPPROXY_") {
            command.env_remove(&name);
        }
    }
    command.env_remove("LD_LIBRARY_PATH").env_remove("RUST_BACKTRACE");
}

/// A hint as printed, through `sh -c`, with the binary under test as `depproxy`; `FILE` (a
/// placeholder) becomes `file`.
fn run_hint(hint: &str, cwd: &Path, packaged: &Path, file: &Path) -> Output {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(Depproxy::binary(), bin.path().join("depproxy")).unwrap();
    let command_line = hint.replace("FILE", &file.display().to_string());
    let mut command = Command::new("sh");
    command.arg("-c").arg(&command_line).current_dir(cwd);
    clear_environment(&mut command);
    command
        .env("DEPPROXY_PACKAGED_CONFIG", packaged)
        .env("PATH", format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default()));
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "the hint `{hint}` failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every `` `depproxy …` `` and `<code>depproxy …</code>` in `text`.
fn hints_in(text: &str) -> Vec<String> {
    let mut hints = Vec::new();
    for (open, close) in [("`depproxy ", "`"), ("<code>depproxy ", "</code>")] {
        let mut rest = text;
        while let Some(at) = rest.find(open) {
            let start = at + open.len() - "depproxy ".len();
            let Some(length) = rest[start..].find(close) else { break };
            hints.push(rest[start..start + length].to_owned());
            rest = &rest[start + length..];
        }
    }
    hints
}

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl").env_remove("LD_LIBRARY_PATH").arg("-s").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the hint made: the secret of a token.
fn secret_of(output: &Output) -> String {
    let secret = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(secret.starts_with("dpp_"), "not a secret: {secret:?}");
    secret
}

/// Every subcommand path (`["token", "create"]`, …), the top level first.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        out.push(path.to_vec());
        for sub in command.get_subcommands() {
            let mut next = path.to_vec();
            next.push(sub.get_name().to_owned());
            walk(sub, &next, out);
        }
    }
    let mut out = Vec::new();
    walk(&depproxy::cli::Cli::command(), &[], &mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_printed_depproxy_command_runs_as_printed() {
    require_tools(&["curl"]);
    let upstream = testkit::FakeRegistry::start().await;
    upstream.put_image("team/app", "v1", &[b"a layer"]);
    let upstream_url = upstream.url();
    tokio::task::spawn_blocking(move || check_every_hint(&upstream_url)).await.unwrap();
}

fn check_every_hint(upstream_url: &str) {
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let config = work.path().join("depproxy.toml");
    let groups = format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"{upstream_url}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n\
         [[group]]\npath = \"acme\"\nupstream = \"lab\"\naccess = \"token\"\n[auth]\ntoken_check_interval = \"1s\"\n"
    );
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\ndata_dir = \"{}\"\n{groups}",
            work.path().join("data").display()
        ),
    )
    .unwrap();
    let mut serve = depproxy(&cwd, &config);
    serve.args(["serve", "--config"]).arg(&config);
    let _serve = Process::spawn("depproxy serve", &mut serve, &work.path().join("serve.log"));
    wait_http_ok(&format!("http://127.0.0.1:{port}/healthz"), "depproxy serve");
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_http_ok(&format!("{admin}/api/v1/openapi.json"), "the admin API");
    let unused_file = work.path().join("unused");
    let mut printed: Vec<String> = Vec::new();

    // The status page's login form.
    let page = curl(&[&format!("{admin}/")]);
    let mut page_hints = hints_in(&page);
    assert!(!page_hints.is_empty(), "the login page names no command:\n{page}");
    // The start-up line naming the admin API and how to get a token for it (the log is written
    // by a thread of its own: it may come a moment after the listener answers).
    let log = work.path().join("serve.log");
    let log_hints = || hints_in(&std::fs::read_to_string(&log).unwrap_or_default());
    wait_until("the admin API's start-up line", Duration::from_secs(10), || !log_hints().is_empty());
    let log_hints = log_hints();
    assert_eq!(log_hints.len(), 1, "serve's start-up log names one command: {log_hints:?}");
    page_hints.extend(log_hints);
    // `--help` of every command.
    let mut help_hints = Vec::new();
    for path in command_paths() {
        let help = depproxy(&cwd, &config).args(&path).arg("--help").output().unwrap();
        assert!(help.status.success(), "{path:?} --help: {help:?}");
        help_hints.extend(hints_in(&String::from_utf8_lossy(&help.stdout)));
    }
    assert!(!help_hints.is_empty());
    for (number, hint) in page_hints.iter().chain(&help_hints).enumerate() {
        if hint.starts_with("depproxy gen-secret ") {
            // A 32-byte secret, as `--secret-file` wants it (it is used for `control` below).
            let file = work.path().join(format!("secret-{number}"));
            run_hint(hint, &cwd, &config, &file);
            assert!(std::fs::read_to_string(&file).unwrap().trim().len() >= 43, "{hint}");
        } else {
            assert!(hint.starts_with("depproxy token create "), "a hint this test does not know: {hint}");
            // An admin token: it opens the admin API.
            let secret = secret_of(&run_hint(hint, &cwd, &config, &unused_file));
            let bearer = format!("Authorization: Bearer {secret}");
            let groups = curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &bearer,
                &format!("{admin}/api/v1/groups"),
            ]);
            assert_eq!(groups, "200", "the token of `{hint}` does not open the admin API");
            // So that the same hint (a fixed name) can run again.
            run_hint("depproxy token revoke ops", &cwd, &config, &unused_file);
        }
        printed.push(hint.clone());
    }

    // `cache warm` on a token group without a token.
    let mut warm = depproxy(&cwd, &config);
    warm.args(["cache", "warm", "--group", "acme", "team/app:v1", "--config"]).arg(&config);
    let refused = warm.output().unwrap();
    let error = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success() && error.contains("needs an access token"), "{error}");
    assert!(!error.contains("GroupPath"), "{error}");
    let warm_hints = hints_in(&error);
    assert_eq!(warm_hints.len(), 1, "{error}");
    let secret = secret_of(&run_hint(&warm_hints[0], &cwd, &config, &unused_file));
    // The token it made warms the group.
    let warmed = warm.arg("--token").arg(&secret).output().unwrap();
    assert!(warmed.status.success(), "{warmed:?}");
    printed.extend(warm_hints);

    // `control` with a token group and no shared signing key.
    let secret_file = work.path().join("secret");
    run_hint("depproxy gen-secret FILE", &cwd, &config, &secret_file);
    let control_port = free_port();
    // Made here: a control plane does not create its data directory (another change's concern).
    std::fs::create_dir_all(work.path().join("control")).unwrap();
    let control_config = work.path().join("control.toml");
    std::fs::write(
        &control_config,
        format!(
            "listen = \"127.0.0.1:{control_port}\"\ndata_dir = \"{}\"\n{groups}",
            work.path().join("control").display()
        ),
    )
    .unwrap();
    let mut control = depproxy(&cwd, &config);
    control
        .args(["control", "--admin-listen", &format!("127.0.0.1:{}", free_port()), "--config"])
        .arg(&control_config);
    control.arg("--secret-file").arg(&secret_file);
    let refused = control.output().unwrap();
    let error = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{error}");
    let control_hints = hints_in(&error);
    assert_eq!(control_hints, ["depproxy gen-secret FILE"], "{error}");
    let key = work.path().join("token-signing.key");
    run_hint(&control_hints[0], &cwd, &config, &key);
    let mut text = std::fs::read_to_string(&control_config).unwrap();
    text = text.replace("[auth]\n", &format!("[auth]\nsigning_key_file = \"{}\"\n", key.display()));
    std::fs::write(&control_config, text).unwrap();
    let _control = Process::spawn("depproxy control", &mut control, &work.path().join("control.log"));
    wait_until("depproxy control did not start with the key the hint wrote", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", control_port)).is_ok()
    });
    printed.extend(control_hints);

    // Every hint in the sources was printed (and so run) above.
    for (file, hint) in PRINTED_HINTS {
        assert!(
            printed.iter().any(|seen| seen.starts_with(hint)),
            "{file}: `{hint}` was not printed by the program here; printed: {printed:?}"
        );
    }
    for (file, line) in source_mentions() {
        let known = PRINTED_HINTS.iter().chain(NOT_HINTS).any(|(known_file, text)| {
            file.ends_with(known_file) && line.contains(text.trim_end_matches(' ').trim_end_matches('{'))
        });
        assert!(
            known,
            "{}: {line}\nprints a `depproxy` command this test does not run: run it here (PRINTED_HINTS), \
             or list it in NOT_HINTS if it is not a command to type",
            file.display()
        );
    }
}

/// Lines of the sources (tests and `//` comments left out; `///` only in cli/args.rs, where it is
/// `--help` text) that name `depproxy <subcommand>`.
fn source_mentions() -> Vec<(PathBuf, String)> {
    let root = crate::support::processes::repo_root();
    let subcommands: Vec<String> = depproxy::cli::Cli::command()
        .get_subcommands()
        .map(|command| command.get_name().to_owned())
        .collect();
    let mut files = Vec::new();
    let mut pending = vec![root.join("crates")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !matches!(name.as_str(), "tests" | "benches" | "target") {
                pending.push(path);
            } else if name.ends_with(".rs") && path.components().any(|part| part.as_os_str() == "src") {
                files.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        let help_text = file.ends_with("crates/depproxy/src/cli/args.rs");
        for line in code.lines() {
            let trimmed = line.trim_start();
            let comment = trimmed.starts_with("//") && !(help_text && trimmed.starts_with("/// "));
            if comment {
                continue;
            }
            let names_a_command = line.match_indices("depproxy ").any(|(at, _)| {
                let rest = &line[at + "depproxy ".len()..];
                subcommands.iter().any(|name| {
                    rest.starts_with(name.as_str())
                        && !rest[name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
                })
            });
            if names_a_command {
                found.push((file.strip_prefix(&root).unwrap().to_owned(), trimmed.to_owned()));
            }
        }
    }
    assert!(!found.is_empty(), "the scan found nothing: is it looking in the right place?");
    found
}
