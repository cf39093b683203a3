//! Several nodes, one cache: two gateways and two control planes (real processes) on one
//! PostgreSQL and one S3 bucket, in front of the fake upstream.
//!
//! - a herd of 16 cold pulls of one blob spread over both gateways makes one caching fetch (the
//!   lease holder's) and at most one more upstream GET (the other node streams through uncached);
//! - an object cached through one node is a hit on the other, with no upstream request;
//! - a node killed mid-fill blocks caching elsewhere only until its lease expires;
//! - the nodes start where their `data_dir` does not exist: control planes need none (and refuse
//!   to start, saying what to set, when a group needs a shared signing key), gateways make only
//!   their spool.
//!
//! Needs python3 with moto and a PostgreSQL server (`scripts/install-test-deps.sh`).

use std::time::{Duration, Instant};

use crate::support::backends::{S3Server, postgres_url};
use crate::support::client;
use crate::support::processes::{Depproxy, Node, require_tools, run, run_to_exit};
use http::StatusCode;
use testkit::{FakeRegistry, Gate};

fn layer(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

/// A fill outcome counter of a gateway (`stored`, `passthrough`, `failed`).
async fn fills(gateway: &Node, outcome: &str) -> u64 {
    let text = client().get(format!("{}/metrics", gateway.url())).send().await.unwrap().text().await.unwrap();
    let prefix = format!("depproxy_fills_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|line| line.strip_prefix(&prefix)).map_or(0, |value| value.trim().parse().unwrap())
}

/// Reads a body to the end, returning its digest and length.
async fn drain(response: reqwest::Response) -> Result<(oci::Digest, usize), reqwest::Error> {
    let (digest, length) = crate::support::body_digest(response).await?;
    Ok((digest, length as usize))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_two_control_planes_one_cache() {
    require_tools(&["python3", "curl", "psql"]);
    let upstream = FakeRegistry::start().await;
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\n[[upstream]]\nname = \"up\"\nurl = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\n{}[cluster]\nlease_ttl = \"2s\"\n",
            postgres_url(),
            upstream.url(),
            s3.storage_toml()
        ),
    )
    .unwrap();
    let secret = work.path().join("secret");
    run(std::process::Command::new(Depproxy::binary()).arg("gen-secret").arg(&secret));
    let (controls, mut gateways) = {
        let (config, secret) = (config.clone(), secret.clone());
        tokio::task::spawn_blocking(move || {
            let controls = [Node::control(&config, &secret), Node::control(&config, &secret)];
            let gateways = [
                Node::gateway(&config, &secret, &controls[0]),
                Node::gateway(&config, &secret, &controls[1]),
            ];
            (controls, gateways)
        })
        .await
        .unwrap()
    };

    // 1. A herd of 16 over both gateways, held mid-stream until every client has its headers.
    let size = 48 << 20;
    let blob = layer(size, 1);
    let digest = upstream.put_blob(blob.clone());
    let expected = oci::Digest::of(&blob);
    let gate = Gate::new(size / 2);
    upstream.set_gate(Some(gate.clone()));
    let mut pending = Vec::new();
    for i in 0..16 {
        let url = format!("{}/v2/lab/app/blobs/{digest}", gateways[i % 2].url());
        pending.push(tokio::spawn(async move { client().get(url).send().await.unwrap() }));
    }
    let mut responses = Vec::new();
    for task in pending {
        let response = task.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        responses.push(response);
    }
    gate.open();
    for response in responses {
        assert_eq!(drain(response).await.unwrap(), (expected.clone(), size), "a client got wrong bytes");
    }
    assert_eq!(upstream.count("GET", "/blobs/"), 2, "one upstream GET per node, no more");
    // Clients have every byte once the fills are verified; a fill is counted after it is made
    // durable and recorded: wait for both counts (the nodes are processes: their metrics are the
    // event to wait on).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let (stored, passthrough) = loop {
        let stored = fills(&gateways[0], "stored").await + fills(&gateways[1], "stored").await;
        let passthrough = fills(&gateways[0], "passthrough").await + fills(&gateways[1], "passthrough").await;
        if stored + passthrough >= 2 || tokio::time::Instant::now() > deadline {
            break (stored, passthrough);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((stored, passthrough), (1, 1), "one caching fetch; the other node streamed through");
    assert_eq!(s3.assert_objects_hash_to_their_names().await, 1);

    // 2. Cached through one node, a hit on the other: no upstream request from either.
    upstream.clear_log();
    for gateway in &gateways {
        let response =
            client().get(format!("{}/v2/lab/app/blobs/{digest}", gateway.url())).send().await.unwrap();
        assert_eq!(drain(response).await.unwrap(), (expected.clone(), size));
    }
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());

    // Why stream through instead of waiting for the lease holder's commit: the second node's
    // client gets its first byte at once, while waiting would cost it the whole fill.
    let other = layer(size, 3);
    let other_digest = upstream.put_blob(other.clone());
    upstream.set_gate(None);
    let started = Instant::now();
    let holder =
        client().get(format!("{}/v2/lab/app/blobs/{other_digest}", gateways[0].url())).send().await.unwrap();
    let follower =
        client().get(format!("{}/v2/lab/app/blobs/{other_digest}", gateways[1].url())).send().await.unwrap();
    let follower_first_byte = {
        let mut follower = follower;
        let first = follower.chunk().await.unwrap();
        assert!(first.is_some());
        let at = started.elapsed();
        drain(follower).await.unwrap();
        at
    };
    drain(holder).await.unwrap();
    let holder_committed = started.elapsed();
    eprintln!(
        "MEASURE multi-node: pass-through first byte on the second node after {:?}; the holder's fill \
         committed after {:?} (what waiting would have cost)",
        follower_first_byte, holder_committed
    );

    // 3. A node killed mid-fill: the other node streams through until the lease expires, then fills.
    let third = layer(size, 5);
    let third_digest = upstream.put_blob(third.clone());
    let third_expected = oci::Digest::of(&third);
    let gate = Gate::new(size / 2);
    upstream.set_gate(Some(gate.clone()));
    let doomed =
        client().get(format!("{}/v2/lab/app/blobs/{third_digest}", gateways[0].url())).send().await.unwrap();
    assert_eq!(doomed.status(), StatusCode::OK);
    gateways[0].kill();
    let killed = Instant::now();
    assert!(drain(doomed).await.is_err(), "the killed node's client must see a broken body");
    gate.open();
    let stored_before = fills(&gateways[1], "stored").await;
    let survivor_url = format!("{}/v2/lab/app/blobs/{third_digest}", gateways[1].url());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client().get(&survivor_url).send().await.unwrap();
        assert_eq!(drain(response).await.unwrap(), (third_expected.clone(), size));
        if fills(&gateways[1], "stored").await > stored_before {
            break;
        }
        assert!(Instant::now() < deadline, "the surviving node never took over the fill");
    }
    let takeover = killed.elapsed();
    upstream.clear_log();
    let hit = client().get(&survivor_url).send().await.unwrap();
    assert_eq!(drain(hit).await.unwrap(), (third_expected, size));
    assert!(upstream.log().is_empty(), "after the takeover the object is a hit");
    eprintln!(
        "MEASURE multi-node: the surviving node cached the object {takeover:?} after the kill (lease_ttl 2s)"
    );
    drop(controls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_starts_where_data_dir_does_not_exist() {
    require_tools(&["python3", "curl", "psql"]);
    let upstream = FakeRegistry::start().await;
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let cluster = |extra: &str| {
        format!(
            "database_url = \"{}\"\n[[upstream]]\nname = \"up\"\nurl = \"{}\"\n{extra}{}",
            postgres_url(),
            upstream.url(),
            s3.storage_toml()
        )
    };
    let config = work.path().join("cluster.toml");
    std::fs::write(&config, cluster("[[group]]\npath = \"default\"\nupstream = \"up\"\n")).unwrap();
    let secret = work.path().join("secret");
    run(std::process::Command::new(Depproxy::binary()).arg("gen-secret").arg(&secret));
    let absent = work.path().join("absent");
    let data_dir = |node: &str| absent.join(node);
    let (controls, gateways) = {
        let (config, secret) = (config.clone(), secret.clone());
        let (control_dirs, gateway_dirs) =
            ([data_dir("control-1"), data_dir("control-2")], [data_dir("gateway-a"), data_dir("gateway-b")]);
        tokio::task::spawn_blocking(move || {
            let controls = [
                Node::control_on(&config, &secret, &control_dirs[0]),
                Node::control_on(&config, &secret, &control_dirs[1]),
            ];
            let gateways = [
                Node::gateway_on(&config, &secret, &controls[0], &gateway_dirs[0]),
                Node::gateway_on(&config, &secret, &controls[1], &gateway_dirs[1]),
            ];
            (controls, gateways)
        })
        .await
        .unwrap()
    };

    // The cluster works: a blob pulled through one gateway is a hit on the other.
    let blob = layer(3 << 20, 7);
    let digest = upstream.put_blob(blob.clone());
    for (n, gateway) in gateways.iter().enumerate() {
        let response =
            client().get(format!("{}/v2/lab/app/blobs/{digest}", gateway.url())).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(drain(response).await.unwrap(), (oci::Digest::of(&blob), blob.len()));
        // The fill is recorded after its client has every byte: its count is the event to wait on.
        let deadline = Instant::now() + Duration::from_secs(30);
        while n == 0 && fills(gateway, "stored").await == 0 {
            assert!(Instant::now() < deadline, "the fill was not stored:\n{}", gateway.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(upstream.count("GET", "/blobs/"), 1, "the second pull was a hit");
    assert_eq!(s3.assert_objects_hash_to_their_names().await, 1);
    for control in &controls {
        assert!(
            !control.data_dir.exists(),
            "a control plane on S3 + PostgreSQL created {:?}",
            control.data_dir
        );
        assert!(!control.log().contains("token-signing.key"), "{}", control.log());
    }
    for gateway in &gateways {
        assert!(gateway.data_dir.join("spool").is_dir(), "a gateway spools fills under its data_dir");
    }

    // A group that takes access tokens needs one key on every control plane: without it, the
    // control plane refuses to start and says what to set — for a configured group, and for the
    // implicit group of an upstream with credentials.
    let password = work.path().join("password");
    std::fs::write(&password, "s3cret").unwrap();
    let refusals = [
        ("[[group]]\npath = \"acme\"\nupstream = \"up\"\naccess = \"token\"\n".to_owned(), "group acme"),
        (
            format!(
                "[[group]]\npath = \"default\"\nupstream = \"up\"\n[[upstream]]\nname = \"private\"\nurl = \"{}\"\nusername = \"ci\"\npassword_file = \"{}\"\n",
                upstream.url(),
                password.display()
            ),
            "group upstream/private",
        ),
    ];
    for (extra, group) in refusals {
        let config = work.path().join("tokens.toml");
        std::fs::write(&config, cluster(&extra)).unwrap();
        let (status, output) = run_to_exit(
            std::process::Command::new(Depproxy::binary())
                .args(["control", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--config"])
                .arg(&config)
                .arg("--secret-file")
                .arg(&secret)
                .arg("--data-dir")
                .arg(data_dir("control-3")),
            Duration::from_secs(30),
        );
        assert!(!status.success(), "{output}");
        assert!(output.contains(&format!("{group} needs access tokens")), "{output}");
        assert!(output.contains("set [auth] signing_key_file"), "{output}");
        assert!(output.contains("depproxy gen-secret FILE"), "{output}");
        assert!(!data_dir("control-3").exists());
    }
}
