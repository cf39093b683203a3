//! The `h1:` hashes against what the real go tool recorded in go.sum for a module it fetched
//! (tests/fixtures, made by tests/fixtures/make-fixtures.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The go.sum line for `module version`, or for its go.mod with `/go.mod` appended to the version.
fn go_sum_hash(version_field: &str) -> String {
    let go_sum = std::fs::read_to_string(fixture("go.sum")).unwrap();
    let line = go_sum
        .lines()
        .find(|line| line.starts_with(&format!("example.com/dp/Hello {version_field} ")))
        .unwrap_or_else(|| panic!("no go.sum line for {version_field}"));
    line.rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn zip_hash_is_what_go_records() {
    let expected = go_sum_hash("v1.0.0");
    assert!(expected.starts_with("h1:"));
    let zip = File::open(fixture("Hello-v1.0.0.zip")).unwrap();
    assert_eq!(gomod::h1_of_zip(zip).unwrap(), expected);
}

#[test]
fn go_mod_hash_is_what_go_records() {
    let expected = go_sum_hash("v1.0.0/go.mod");
    let go_mod = std::fs::read(fixture("Hello-v1.0.0.mod")).unwrap();
    assert_eq!(gomod::h1_of_mod_sha256(&hex::encode(Sha256::digest(&go_mod))), expected);
}

#[test]
fn lookup_record_of_the_fixture() {
    // A lookup answer carries the go.sum lines after a record id.
    let go_sum = std::fs::read_to_string(fixture("go.sum")).unwrap();
    let body = format!("42\n{go_sum}\ngo.sum database tree\n43\nAAAA\n");
    assert_eq!(
        gomod::lookup_hashes(&body, "example.com/dp/Hello", "v1.0.0"),
        Some((go_sum_hash("v1.0.0"), go_sum_hash("v1.0.0/go.mod")))
    );
}
