//! Shutdown drains background work through the supervisor: a fill that finishes inside the grace
//! period is stored and recorded; one still running at its end is cancelled, leaving no temp data,
//! no object and no record, and its client sees a cut body, never a complete-looking one.

use std::time::Duration;

use crate::support::{Options, TestProxy, body_digest, client, pattern};
use http::StatusCode;
use testkit::{FakeRegistry, Gate};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_fill_that_finishes_inside_the_grace_is_stored_and_recorded() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let size = 4 * MIB;
    let digest = upstream.put_blob(pattern(size, 7));
    let gate = Gate::new(MIB);
    upstream.set_gate(Some(gate.clone()));
    let url = format!("{}/v2/lab/drain/blobs/{digest}", proxy.url);
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let reader = tokio::spawn(body_digest(response));
    let fills: Vec<_> = proxy.supervisor.running().into_iter().filter(|task| task.kind == "fill").collect();
    assert_eq!(fills.len(), 1, "{fills:?}");

    let shutdown = tokio::spawn({
        let supervisor = proxy.supervisor.clone();
        async move { supervisor.shutdown(Duration::from_secs(60)).await }
    });
    gate.open();
    let report = shutdown.await.unwrap();
    assert!(report.drained(), "{report:?}");
    assert_eq!(reader.await.unwrap().unwrap(), (digest.clone(), size as u64));
    assert!(proxy.has_object(&digest));
    assert_eq!(proxy.temp_entries(), 0);
    let before = upstream.count("GET", "/blobs/");
    let again = client().get(&url).send().await.unwrap();
    assert_eq!(body_digest(again).await.unwrap(), (digest, size as u64));
    assert_eq!(upstream.count("GET", "/blobs/"), before, "recorded: the next GET is a hit");
}

#[tokio::test]
async fn a_fill_still_running_at_the_grace_end_is_cancelled_and_leaves_nothing() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let size = 4 * MIB;
    let digest = upstream.put_blob(pattern(size, 8));
    let gate = Gate::new(MIB);
    upstream.set_gate(Some(gate.clone()));
    let url = format!("{}/v2/lab/drain/blobs/{digest}", proxy.url);
    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The fill is streaming: the client has bytes, the spool exists.
    assert!(!response.chunk().await.unwrap().unwrap().is_empty());
    assert_eq!(proxy.temp_entries(), 1);

    let report = proxy.supervisor.shutdown(Duration::from_millis(100)).await;
    let fills: Vec<_> = report.cancelled.iter().filter(|task| task.kind == "fill").collect();
    assert_eq!(fills.len(), 1, "{report:?}");
    assert!(
        report.cancelled.iter().all(|task| task.kind == "fill" || task.kind == "lease-renewal"),
        "only the fill (and its lease renewal) was still running: {report:?}"
    );
    assert!(report.aborted.is_empty(), "the fill stops by itself when cancelled");
    assert!(crate::support::body_is_cut(response).await, "a cancelled fill must not look like a whole body");
    assert_eq!(proxy.temp_entries(), 0, "no temp data left");
    assert!(!proxy.has_object(&digest), "nothing stored");

    // Nothing recorded either: after a restart on the same data, the object is a miss and is
    // fetched whole.
    gate.open();
    upstream.set_gate(None);
    let before = upstream.count("GET", "/blobs/");
    let restarted =
        TestProxy::start(Options::upstream(&upstream.url()).data_dir(proxy.into_data_dir())).await;
    let response =
        client().get(format!("{}/v2/lab/drain/blobs/{digest}", restarted.url)).send().await.unwrap();
    assert_eq!(body_digest(response).await.unwrap(), (digest.clone(), size as u64));
    assert_eq!(upstream.count("GET", "/blobs/"), before + 1);
    restarted.fills_settled().await;
    assert!(restarted.has_object(&digest));
}

/// A process's listeners drain together: on shutdown the admin API and the metrics listener stop
/// with the registry API (they are not left serving), and the serving ends once all have.
#[tokio::test]
async fn shutdown_stops_the_admin_and_metrics_listeners_with_the_registry_api() {
    use depproxy::app::{ListenOptions, Runtime};
    use depproxy::config::{AdminListen, Config, FileConfig, Overrides};
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let file = FileConfig { admin_listen: Some(AdminListen::At(any_port)), ..FileConfig::default() };
    let overrides = Overrides {
        listen: Some(any_port),
        data_dir: Some(data_dir.path().to_owned()),
        upstream: Some(upstream.url()),
    };
    let config = Config::resolve(file, &overrides).unwrap();
    let options = ListenOptions { metrics_listen: Some(any_port), ..ListenOptions::default() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let running = depproxy::app::run_serve(&config, options, Runtime::default(), shutdown).await.unwrap();
    let registry = format!("http://{}/v2/", running.address);
    let admin = format!("http://{}/api/v1/groups", running.admin_address.unwrap());
    let metrics = format!("http://{}/metrics", running.metrics_address.unwrap());
    assert_eq!(client().get(&registry).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(client().get(&admin).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let scraped = client().get(&metrics).send().await.unwrap().text().await.unwrap();
    assert!(scraped.contains("depproxy_"), "{scraped}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running.finished()).await.unwrap().unwrap();
    for url in [registry, admin, metrics] {
        let refused = client().get(&url).send().await;
        assert!(refused.is_err_and(|error| error.is_connect()), "{url} still answers after the shutdown");
    }
}
