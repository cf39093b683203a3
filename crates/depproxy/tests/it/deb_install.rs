//! The Debian package, end to end: runs `scripts/test-deb.sh`, which builds the `.deb` with
//! `cargo deb`, installs it on this machine with `dpkg -i` (root needed), runs the systemd unit's
//! `ExecStart=` line as the `depproxy` user without systemd, pulls an image through it from a
//! local `distribution` registry, and purges the package again.
//!
//! Skipped (with a message, and passing) unless `DEPPROXY_TEST_DEB=1` is set: the release build it
//! needs takes ~11 minutes from scratch on a 2-core machine, and it installs a system package and
//! user. Run it with
//!
//! ```sh
//! DEPPROXY_TEST_DEB=1 cargo test -p depproxy --test it deb_install -- --nocapture
//! ```
//!
//! or run `scripts/test-deb.sh` directly. See "Installing the .deb" in docs/operations.md.

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_installs_and_its_unit_command_pulls_through() {
    if std::env::var("DEPPROXY_TEST_DEB").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED deb_install: set DEPPROXY_TEST_DEB=1 to build the .deb (a release build, ~11 min \
             from scratch), install it on this machine and pull through it (scripts/test-deb.sh)"
        );
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let mut command = Command::new("bash");
    command.arg(repo.join("scripts/test-deb.sh")).current_dir(&repo);
    // The nested cargo build must see the environment of a shell, not the one cargo gives a test
    // (per-crate CARGO_* variables, build-script library paths).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let from_test_runner = name == "LD_LIBRARY_PATH"
            || name == "OUT_DIR"
            || name == "CARGO"
            || [
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_MANIFEST_",
                "CARGO_PRIMARY_",
                "CARGO_TARGET_TMPDIR",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if from_test_runner {
            command.env_remove(&*name);
        }
    }
    let status = command.status().expect("bash scripts/test-deb.sh");
    assert!(status.success(), "scripts/test-deb.sh failed ({status}); its output is above");
}
