//! Scheduled warming's timing and its one-node-at-a-time rule, with a puller that records what it
//! is asked to pull: when an entry comes due and how long the loop waits (a manual clock: due
//! times are the database's), and that of two nodes sharing a database only one runs it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache::{Format, WarmSchedule};
use oci::GroupPath;
use supervisor::Supervisor;
use testkit::FakeRegistry;

use crate::*;

const EVERY: Duration = Duration::from_secs(600);

/// Records each pull's targets.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Vec<String>>>,
}

impl Recorder {
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

impl WarmPuller for Recorder {
    fn pull<'a>(
        &'a self,
        _group: &'a GroupPath,
        targets: &'a [WarmTarget],
        _bytes: Arc<AtomicU64>,
    ) -> PullFuture<'a> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(targets.iter().map(WarmTarget::written).collect());
            Ok(PullOutcome { manifests: targets.len(), ..PullOutcome::default() })
        })
    }
}

fn groups(pattern: &str) -> Vec<WarmGroup> {
    let schedule = WarmSchedule::new(&[pattern.to_owned()], EVERY, 1, Format::Oci).unwrap();
    vec![WarmGroup { path: GroupPath::parse("default").unwrap(), schedules: vec![schedule] }]
}

fn node(
    cache: &Arc<cache::Cache>,
    clock: &cache::Clock,
    name: &str,
    pattern: &str,
) -> (Arc<Warming>, Arc<Recorder>) {
    let warming = Arc::new(Warming::new(
        cache.clone(),
        groups(pattern),
        name.to_owned(),
        Duration::from_secs(30),
        clock.clone(),
        Supervisor::new(),
    ));
    let recorder = Arc::new(Recorder::default());
    warming.attach_puller(recorder.clone());
    (warming, recorder)
}

#[tokio::test]
async fn an_entry_runs_once_per_period_on_one_of_the_nodes() {
    let upstream = FakeRegistry::start().await;
    for tag in ["1.0", "1.1", "2.0"] {
        upstream.put_image("lab/app", tag, &[tag.as_bytes()]);
    }
    let test = cache::testing::test_cache(&upstream.url(), false, None).await;
    let cache = Arc::new(test.cache);
    let (a, pulled_by_a) = node(&cache, &test.clock, "a", "lab/app:1.*");
    let (b, pulled_by_b) = node(&cache, &test.clock, "b", "lab/app:1.*");
    let signal = Supervisor::new().stop_signal();

    // Never run: due at once, and the node that claims it first runs it.
    assert_eq!(a.run_due(&signal).await, Duration::from_secs(60), "looks again within a minute");
    assert_eq!(b.run_due(&signal).await, Duration::from_secs(60));
    assert_eq!(pulled_by_a.calls(), [["lab/app:1.1"]], "keep 1: the newest of 1.*");
    assert!(pulled_by_b.calls().is_empty(), "one node per period");

    test.clock.advance(EVERY - Duration::from_secs(30));
    assert_eq!(b.run_due(&signal).await, Duration::from_secs(30), "due in 30 s");
    assert!(pulled_by_b.calls().is_empty());
    test.clock.advance(Duration::from_secs(30));
    b.run_due(&signal).await;
    a.run_due(&signal).await;
    assert_eq!(pulled_by_b.calls().len(), 1, "due again: b claimed it");
    assert_eq!(pulled_by_a.calls().len(), 1);

    let jobs = a.recent_jobs("default", 10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|job| job.state == "done" && job.kind == WARM_JOB_KIND), "{jobs:?}");
    let report: WarmReport = serde_json::from_str(jobs[0].result.as_deref().unwrap()).unwrap();
    assert_eq!((report.node.as_str(), report.trigger.as_str(), report.fetched), ("b", "schedule", 1));
    assert_eq!(report.entries[0].patterns[0].listed, Some(3));
    assert_eq!((jobs[0].done, jobs[0].total), (1, 1));
}

/// The loop itself, in real time: the database's pool keeps tokio timers of its own, which paused
/// time would fire early, so when entries come due is tested above with the manual clock.
#[tokio::test]
async fn the_loop_runs_what_is_due_at_start_and_stops_with_the_drain() {
    // An upstream that refuses connections: the run fails at once, and still counts as a run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let test = cache::testing::test_cache(&format!("http://{closed}"), false, None).await;
    let cache = Arc::new(test.cache);
    let (warming, pulled) = node(&cache, &test.clock, "a", "lab/app:stable");
    let supervisor = Supervisor::new();
    let running = warming.clone();
    supervisor.spawn("warming", "test", move |signal| running.run(signal));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        let jobs = warming.recent_jobs("default", 10).await.unwrap();
        if let Some(job) = jobs.first().filter(|job| job.state != "running") {
            break job.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "the first run did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(first.state, "failed", "the upstream is down: {first:?}");
    assert!(first.error.as_deref().is_some_and(|error| error.contains("1 failed")), "{first:?}");
    let report: WarmReport = serde_json::from_str(first.result.as_deref().unwrap()).unwrap();
    let tag = &report.entries[0].patterns[0].tags[0];
    assert_eq!((tag.tag.as_str(), tag.outcome), ("stable", WarmOutcome::Failed));
    assert!(tag.message.as_deref().is_some_and(|message| !message.is_empty()), "{tag:?}");
    assert!(pulled.calls().is_empty(), "nothing to pull when the tag cannot be checked");
    // Waiting for the next due time, the loop ends with the drain.
    let report = supervisor.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained(), "{report:?}");
    assert_eq!(warming.recent_jobs("default", 10).await.unwrap().len(), 1);
}
