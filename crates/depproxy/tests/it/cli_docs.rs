//! The flag tables of README.md and docs/*.md are rendered from the clap definitions
//! (`depproxy::cli::Cli`), so the docs and `--help` cannot disagree (issue 22, point 10). A doc
//! carries a command's table between `<!-- flags:COMMAND -->` and `<!-- /flags -->`; this test
//! fails when one differs from the rendering, and rewrites them with `DEPPROXY_UPDATE_DOCS=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

const DOCS: [&str; 3] = ["README.md", "docs/configuration.md", "docs/operations.md"];
const REGENERATE: &str = "DEPPROXY_UPDATE_DOCS=1 cargo nextest run -p depproxy --test it cli_docs";
const CLOSE: &str = "<!-- /flags -->";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every table there is: `global` (the flags of every command), then each command with flags of
/// its own, by its path (`serve`, `token create`, `admin` for the flags of every `admin …`). The
/// command is not built, so a global flag is only in the table of the command that defines it.
fn tables() -> BTreeMap<String, String> {
    fn walk(command: &clap::Command, path: &str, out: &mut BTreeMap<String, String>) {
        let own: Vec<&clap::Arg> = command
            .get_arguments()
            .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
            .collect();
        let key = if path.is_empty() { "global".to_owned() } else { path.to_owned() };
        if !own.is_empty() {
            out.insert(key, render(&own));
        }
        for sub in command.get_subcommands() {
            let next = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            walk(sub, &next, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&depproxy::cli::Cli::command(), "", &mut out);
    out
}

/// `--flag VALUE` (or the positional `VALUE`).
fn flag(arg: &clap::Arg) -> String {
    let values = || -> String {
        let possible = arg.get_possible_values();
        if !possible.is_empty() {
            return possible.iter().map(|value| value.get_name().to_owned()).collect::<Vec<_>>().join("|");
        }
        match arg.get_value_names() {
            Some(names) => names.iter().map(|name| name.as_str().to_owned()).collect::<Vec<_>>().join(" "),
            None => arg.get_id().as_str().to_ascii_uppercase(),
        }
    };
    let takes_value = arg.get_action().takes_values();
    // A `|` would end the table's cell, even in backticks.
    let written = match (arg.get_long(), arg.get_short()) {
        (None, None) => {
            let many =
                if arg.get_num_args().is_some_and(|range| range.max_values() > 1) { "…" } else { "" };
            format!("`{}`{many}", values())
        }
        (long, short) => {
            let mut names = Vec::new();
            if let Some(short) = short {
                names.push(format!("-{short}"));
            }
            if let Some(long) = long {
                names.push(format!("--{long}"));
            }
            let names = names.join(", ");
            if takes_value { format!("`{names} {}`", values()) } else { format!("`{names}`") }
        }
    };
    written.replace('|', "\\|")
}

fn render(args: &[&clap::Arg]) -> String {
    let mut out = String::from("| flag | env | default | meaning |\n| --- | --- | --- | --- |\n");
    for arg in args {
        let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string).unwrap_or_default();
        assert!(!help.trim().is_empty(), "{} has no help text: say what it is for", flag(arg));
        let (meaning, written_default) = match help.find(" [default: ") {
            Some(at) => {
                let end = help[at..].find(']').map_or(help.len(), |end| at + end);
                let default = help[at + " [default: ".len()..end].to_owned();
                (format!("{}{}", &help[..at], &help[(end + 1).min(help.len())..]), Some(default))
            }
            None => (help.clone(), None),
        };
        let defaults: Vec<String> =
            arg.get_default_values().iter().map(|value| value.to_string_lossy().into_owned()).collect();
        let default = if !defaults.is_empty() {
            format!("`{}`", defaults.join(" "))
        } else if let Some(default) = written_default {
            // Values in backticks as they are; prose as it is.
            default
        } else if arg.is_required_set() {
            "required".to_owned()
        } else if !arg.get_action().takes_values() {
            "off".to_owned()
        } else {
            "none".to_owned()
        };
        let env = arg.get_env().map_or("".to_owned(), |env| format!("`{}`", env.to_string_lossy()));
        let meaning = meaning.trim().trim_end_matches('.').replace('|', "\\|");
        out.push_str(&format!("| {} | {env} | {default} | {meaning} |\n", flag(arg)));
    }
    out
}

/// The docs with every table between markers replaced by its rendering; the markers' commands.
fn rendered(text: &str, tables: &BTreeMap<String, String>, file: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut named = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<!-- flags:") {
        let open_end =
            at + rest[at..].find("-->").unwrap_or_else(|| panic!("{file}: an unclosed marker")) + 3;
        let command = rest[at + "<!-- flags:".len()..open_end - 3].trim().to_owned();
        let table = tables
            .get(&command)
            .unwrap_or_else(|| panic!("{file}: <!-- flags:{command} --> names no command with flags"));
        let close = open_end
            + rest[open_end..]
                .find(CLOSE)
                .unwrap_or_else(|| panic!("{file}: flags:{command} without {CLOSE}"));
        out.push_str(&rest[..open_end]);
        out.push('\n');
        out.push_str(table);
        out.push_str(CLOSE);
        rest = &rest[close + CLOSE.len()..];
        named.push(command);
    }
    out.push_str(rest);
    (out, named)
}

#[test]
fn the_docs_flag_tables_are_the_clap_definitions() {
    let root = repo_root();
    let tables = tables();
    let update = std::env::var_os("DEPPROXY_UPDATE_DOCS").is_some_and(|value| value == "1");
    let mut documented = Vec::new();
    let mut stale = Vec::new();
    for file in DOCS {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let (new, named) = rendered(&text, &tables, file);
        documented.extend(named);
        if new != text {
            if update {
                std::fs::write(&path, &new).unwrap();
            } else {
                let line =
                    text.lines().zip(new.lines()).position(|(old, new)| old != new).map_or(0, |at| at + 1);
                stale.push(format!("{file} (from line {line})"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "flag tables differ from the clap definitions in {}; regenerate them with `{REGENERATE}`",
        stale.join(", ")
    );
    let missing: Vec<&String> = tables.keys().filter(|command| !documented.contains(command)).collect();
    assert!(
        missing.is_empty(),
        "no doc has the flag table of {missing:?}: add `<!-- flags:COMMAND -->{CLOSE}` where it belongs, then `{REGENERATE}`"
    );
}

/// Each role has the flags it uses, and says what they do for it.
#[test]
fn each_role_has_only_its_own_flags() {
    let cli = depproxy::cli::Cli::command();
    let longs = |name: &str| -> Vec<String> {
        let command = cli.find_subcommand(name).unwrap();
        command.get_arguments().filter_map(|arg| arg.get_long().map(str::to_owned)).collect()
    };
    let help = |name: &str, long: &str| -> String {
        let command = cli.find_subcommand(name).unwrap();
        let arg = command.get_arguments().find(|arg| arg.get_long() == Some(long)).unwrap();
        arg.get_help().unwrap().to_string()
    };
    assert!(!longs("gateway").contains(&"admin-listen".to_owned()), "a gateway serves no admin API");
    for role in ["serve", "control"] {
        assert!(longs(role).contains(&"admin-listen".to_owned()), "{role}");
    }
    assert!(!help("gateway", "data-dir").contains("SQLite"), "a gateway has no database");
    assert!(help("serve", "data-dir").contains("SQLite"));
    assert!(help("control", "data-dir").contains("SQLite"));
    assert!(help("gateway", "upstream").contains("control plane"), "why a gateway takes --upstream");
    let token_revoke = cli.find_subcommand("token").unwrap().find_subcommand("revoke").unwrap();
    assert!(token_revoke.get_arguments().all(|arg| arg.get_help().is_some()));
}
