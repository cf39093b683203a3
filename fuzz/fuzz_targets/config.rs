//! The configuration file: TOML text into `FileConfig`, then `Config::resolve` with no overrides.
//! `resolve` reads the files a config names (`password_file`, `ca_file`,
//! `secret_access_key_file`); the target clears those paths before resolving, so no file named
//! by the input is read (a path such as `/dev/zero` would hang the fuzzer, not the parser).
//! `password_env` stays: reading an environment variable has no side effect. `resolve` also reads
//! `/proc/sys/kernel/hostname` for a default node id; that is a fixed file, read-only.
#![no_main]

use depproxy::config::{Config, FileConfig, Overrides};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut file) = toml::from_str::<FileConfig>(text) else { return };
    for upstream in &mut file.upstream {
        upstream.password_file = None;
        upstream.ca_file = None;
    }
    file.storage.secret_access_key_file = None;
    let groups = file.group.len();
    let upstreams = file.upstream.len();
    let Ok(config) = Config::resolve(file, &Overrides::default()) else { return };
    // Zero config adds the default upstream and group; otherwise they are the file's.
    if groups + upstreams > 0 {
        assert_eq!(config.groups.len(), groups);
        assert_eq!(config.upstreams.len(), upstreams);
    }
    for group in &config.groups {
        assert!(oci::GroupPath::parse(&group.path).is_ok());
        assert!(!group.upstreams.is_empty() && group.upstreams.len() <= 8, "at most 8 upstreams a group");
        for name in &group.upstreams {
            assert!(config.upstreams.iter().any(|upstream| &upstream.name == name));
        }
    }
    assert!(config.lifecycle.low_watermark < config.lifecycle.high_watermark);
    assert!(config.lifecycle.high_watermark <= 100);
    // Debug never shows a secret; it must not panic either.
    let _ = format!("{config:?}");
});
