//! The lifecycle CLI against a running `depproxy serve` (a real process, a real `distribution`
//! upstream, skopeo pulling), on SQLite and on PostgreSQL: `cache stats` reads what the server
//! records, `cache purge` removes an image while the server runs, and the next pull is served —
//! fetched again from upstream — with the same bytes.
//!
//! Needs docker-registry, skopeo, python3, curl and PostgreSQL (`scripts/install-test-deps.sh`).

use std::process::Command;
use std::time::Duration;

use crate::support::backends::postgres_url;
use crate::support::processes::{
    Depproxy, Registry, dir_contents, push_test_images, require_tools, run, skopeo_pull, wait_until,
};

fn cli(proxy: &Depproxy, args: &[&str]) -> String {
    run(Command::new(Depproxy::binary())
        .args(args)
        .arg("--config")
        .arg(proxy.data_dir.path().join("depproxy.toml"))
        .arg("--data-dir")
        .arg(proxy.data_dir.path()))
}

fn group_stats(proxy: &Depproxy) -> serde_json::Value {
    let stats: serde_json::Value = serde_json::from_str(&cli(proxy, &["cache", "stats", "--json"])).unwrap();
    stats["groups"].as_array().unwrap().iter().find(|group| group["group"] == "default").unwrap().clone()
}

fn purge_while_serving(database: Option<String>) {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let database = database.map(|url| format!("database_url = \"{url}\"\n")).unwrap_or_default();
    let config = format!(
        "{database}[[upstream]]\nname = \"lab\"\nurl = \"http://{}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n\
         [cache]\naccess_flush_interval = \"200ms\"\n",
        registry.address()
    );
    let proxy = Depproxy::serve_with_config(&config);
    let work = tempfile::tempdir().unwrap();
    let direct = work.path().join("direct");
    skopeo_pull(&format!("{}/lab/layers:v1", registry.address()), &direct, false);
    skopeo_pull(&format!("{}/lab/tiny:v1", proxy.address()), &work.path().join("tiny"), false);
    skopeo_pull(&format!("{}/lab/layers:v1", proxy.address()), &work.path().join("first"), false);

    // The server's records, read by the CLI: the pulls' misses, then hits once flushed.
    skopeo_pull(&format!("{}/lab/layers:v1", proxy.address()), &work.path().join("hit"), false);
    wait_until("the server to flush its reads", Duration::from_secs(10), || {
        group_stats(&proxy)["last_24h"]["hits"].as_u64().unwrap() > 0
    });
    let before = group_stats(&proxy);
    assert!(before["bytes"].as_u64().unwrap() > 0 && before["tags"].as_u64().unwrap() == 2, "{before}");
    let table = cli(&proxy, &["cache", "stats"]);
    assert!(table.contains("default") && table.contains("store:"), "{table}");
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("FORMAT") && header.contains("ARTIFACTS") && header.contains("DOCUMENTS"),
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().starts_with("default  oci "), "{table}");
    assert_eq!(before["format"], "oci", "{before}");
    assert_eq!(
        (&before["artifacts"], &before["documents"]),
        (&before["blobs"], &before["manifests"]),
        "{before}"
    );
    assert_eq!(before["documents"], 2, "a manifest per image: {before}");
    assert_eq!(before["hourly"].as_array().unwrap().len(), 24, "{before}");

    // Purge one image while the server runs.
    let output = cli(&proxy, &["cache", "purge", "--group", "default", "--image", "lab/layers"]);
    assert!(output.contains("removed") && output.contains("deleted from storage"), "{output}");
    assert!(output.contains(" and 1 tag;"), "one tag, and its noun agrees: {output}");
    let after = group_stats(&proxy);
    assert!(after["bytes"].as_u64().unwrap() < before["bytes"].as_u64().unwrap(), "{before} → {after}");
    assert_eq!(after["tags"], 1, "lab/tiny's tag stays: {after}");

    // The next pulls are served, from upstream, with the same bytes: the server forgot the purged
    // rows before the purge deleted their objects, so it never hits one that is gone.
    let blobs_before = registry.count("GET", "/blobs/");
    let again = work.path().join("again");
    skopeo_pull(&format!("{}/lab/layers:v1", proxy.address()), &again, false);
    assert_eq!(dir_contents(&again), dir_contents(&direct));
    assert!(registry.count("GET", "/blobs/") > blobs_before, "the purged layers were fetched again");
    skopeo_pull(&format!("{}/lab/layers:v1", proxy.address()), &again, false);
    assert_eq!(dir_contents(&again), dir_contents(&direct));
    wait_until("the purged tag to be recorded again", Duration::from_secs(10), || {
        group_stats(&proxy)["tags"] == 2
    });
    let (data_dir, _) = proxy.terminate(Duration::from_secs(30));
    let log = std::fs::read_to_string(data_dir.path().join("serve.log")).unwrap();
    let unreadable: Vec<&str> = log.lines().filter(|line| line.contains("unreadable")).collect();
    assert!(unreadable.is_empty(), "{unreadable:#?}");
}

#[test]
fn purge_while_serving_on_sqlite() {
    purge_while_serving(None);
}

#[test]
fn purge_while_serving_on_postgres() {
    require_tools(&["psql"]);
    purge_while_serving(Some(postgres_url()));
}
