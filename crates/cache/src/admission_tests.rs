//! A group's admission hook, against a real SQLite database, a fake upstream registry and a hook
//! answering as each test says: held fills, remembered verdicts (refused before any fetch, tags
//! too), hits judged when no verdict exists, the hook's silence, and one call per digest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci::{Digest, GroupPath, ImageAddress, ObjectKind, Reference, RepositoryName};
use testkit::FakeRegistry;
use tokio::sync::watch;

use crate::testing::{NEGATIVE_TTL, TestCache, test_cache};
use crate::{
    AdmissionHook, AdmissionPolicy, AdmissionQuestion, AdmittedBy, CacheError, Decision, HookVerdict,
    OnTimeout, PullPolicy, Resolved, StoredObject,
};

/// A hook that answers what it is set to (`None`: never), once its gate is open, counting calls.
struct FakeHook {
    answer: Mutex<Option<HookVerdict>>,
    calls: AtomicUsize,
    asked: watch::Sender<usize>,
    open: watch::Receiver<bool>,
    questions: Mutex<Vec<AdmissionQuestion>>,
}

impl AdmissionHook for FakeHook {
    fn ask<'a>(
        &'a self,
        url: &'a str,
        question: &'a AdmissionQuestion,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<HookVerdict, String>> + Send + 'a>> {
        Box::pin(async move {
            assert_eq!(url, HOOK_URL);
            self.questions.lock().unwrap().push(question.clone());
            let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.asked.send_replace(calls);
            let mut open = self.open.clone();
            let _ = open.wait_for(|open| *open).await;
            let answer = self.answer.lock().unwrap().clone();
            match answer {
                Some(verdict) => Ok(verdict),
                None => std::future::pending().await,
            }
        })
    }
}

const HOOK_URL: &str = "http://scanner.example.com/verdict";

struct Setup {
    test: TestCache,
    upstream: FakeRegistry,
    resolved: Resolved,
    hook: Arc<FakeHook>,
    gate: watch::Sender<bool>,
}

impl Setup {
    async fn new(timeout: Duration, on_timeout: OnTimeout) -> Setup {
        let upstream = FakeRegistry::start().await;
        let test = test_cache(&upstream.url(), false, None).await;
        let mut policy = PullPolicy::open(NEGATIVE_TTL);
        policy.admission = Some(Arc::new(AdmissionPolicy { hook: HOOK_URL.into(), timeout, on_timeout }));
        assert!(test.cache.groups().replace_policy("default", policy));
        let (gate, open) = watch::channel(true);
        let hook = Arc::new(FakeHook {
            answer: Mutex::new(Some(HookVerdict { allow: true, reason: String::new() })),
            calls: AtomicUsize::new(0),
            asked: watch::channel(0).0,
            open,
            questions: Mutex::new(Vec::new()),
        });
        test.cache.use_admission_hook(hook.clone());
        let address = ImageAddress::Root { image: RepositoryName::parse("lab/app").unwrap() };
        let resolved = test.cache.resolve(&address, None).unwrap();
        Setup { test, upstream, resolved, hook, gate }
    }

    fn answer(&self, allow: bool, reason: &str) {
        *self.hook.answer.lock().unwrap() = Some(HookVerdict { allow, reason: reason.into() });
    }

    fn calls(&self) -> usize {
        self.hook.calls.load(Ordering::SeqCst)
    }

    async fn manifest(&self, reference: &Reference) -> Result<Decision, CacheError> {
        self.test.cache.manifest(&self.resolved, reference, false).await
    }

    async fn admit(&self, reference: &Reference, object: &StoredObject) -> crate::Admission {
        self.test.cache.admit_fill(&self.resolved, ObjectKind::Manifest, reference, object).await.unwrap()
    }
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn manifest_object(digest: &Digest) -> StoredObject {
    StoredObject {
        digest: digest.clone(),
        size: 321,
        media_type: oci::media::OCI_MANIFEST.into(),
        upstream: "lab".into(),
    }
}

fn group() -> GroupPath {
    GroupPath::parse("default").unwrap()
}

#[tokio::test]
async fn a_refused_manifest_is_refused_from_then_on_without_fetching_or_asking_again() {
    let setup = Setup::new(Duration::from_secs(5), OnTimeout::Deny).await;
    let (manifest, layers) = setup.upstream.put_image("lab/app", "v1", &[b"a layer"]);
    // A tag's digest is known only from its bytes: fetched held, for as long as the hook may take.
    match setup.manifest(&reference("v1")).await.unwrap() {
        Decision::Fetch(fetch) => assert_eq!(fetch.hold, Some(Duration::from_secs(5))),
        other => panic!("{other:?}"),
    }
    // A blob is never held: the hook judges images.
    match setup.test.cache.blob(&setup.resolved, &layers[0], false).await.unwrap() {
        Decision::Fetch(fetch) => assert_eq!(fetch.hold, None),
        other => panic!("{other:?}"),
    }

    setup.answer(false, "CVE-2024-0001 (critical)");
    let admission = setup.admit(&reference("v1"), &manifest_object(&manifest)).await;
    assert_eq!(
        (admission.allow, admission.reason.as_str(), admission.by),
        (false, "CVE-2024-0001 (critical)", AdmittedBy::Hook)
    );
    let question = setup.hook.questions.lock().unwrap()[0].clone();
    let described = serde_json::to_value(&question).unwrap();
    assert_eq!(
        described,
        serde_json::json!({
            "group": "default", "format": "oci", "kind": "manifest", "name": "lab/app", "tag": "v1",
            "digest": manifest.to_string(), "size": 321, "media_type": oci::media::OCI_MANIFEST,
            "upstream": "lab", "upstream_url": setup.upstream.url(),
        })
    );
    let stored = setup.test.metadata.find_verdict(&group(), &manifest).await.unwrap().unwrap();
    assert!(!stored.allowed && stored.reason == "CVE-2024-0001 (critical)", "{stored:?}");

    // The tag now points at the refused digest: refused before any fetch, by tag and by digest.
    let gets = setup.upstream.count("GET", "/manifests/");
    for asked in [reference("v1"), Reference::Digest(manifest.clone())] {
        match setup.manifest(&asked).await {
            Err(CacheError::AdmissionRefused { digest, reason, by: AdmittedBy::Remembered }) => {
                assert_eq!((digest, reason.as_str()), (manifest.clone(), "CVE-2024-0001 (critical)"))
            }
            other => panic!("{asked}: {other:?}"),
        }
    }
    assert_eq!(setup.calls(), 1, "asked once");
    assert_eq!(setup.upstream.count("GET", "/manifests/"), gets, "nothing fetched again");
    assert_eq!(setup.test.cache.metrics.admission_decisions_count(&group(), "denied"), 1);

    // Forgotten (an operator's request, announced like a removal): fetched held, asked again.
    assert_eq!(setup.test.metadata.forget_verdicts(&manifest).await.unwrap(), 1);
    setup.test.cache.forget_removed_rows();
    match setup.manifest(&reference("v1")).await.unwrap() {
        Decision::Fetch(fetch) => {
            assert_eq!(fetch.verify.as_ref().and_then(injector::Checksum::as_digest), Some(manifest.clone()));
            assert_eq!(fetch.hold, Some(Duration::from_secs(5)), "held for a new verdict");
        }
        other => panic!("{other:?}"),
    }
    setup.answer(true, "");
    assert!(setup.admit(&reference("v1"), &manifest_object(&manifest)).await.allow);
    assert_eq!(setup.calls(), 2);
}

#[tokio::test]
async fn an_allowed_manifest_is_served_and_one_cached_before_the_hook_is_judged_on_its_hit() {
    let setup = Setup::new(Duration::from_secs(5), OnTimeout::Deny).await;
    let cache = &setup.test.cache;
    let (allowed, _) = setup.upstream.put_image("lab/app", "v1", &[b"one"]);
    assert!(setup.admit(&reference("v1"), &manifest_object(&allowed)).await.allow);
    cache
        .record_manifest(&setup.resolved, &reference("v1"), manifest_object(&allowed), &[], None)
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(setup.manifest(&reference("v1")).await.unwrap(), Decision::Serve { .. }));
    }
    assert_eq!(setup.calls(), 1, "a verdict is asked once");
    // Not cached (evicted, say) but judged: fetched unheld, the verdict stands; unjudged: held.
    let judged = Digest::of(b"judged, not cached");
    assert!(setup.admit(&Reference::Digest(judged.clone()), &manifest_object(&judged)).await.allow);
    match setup.manifest(&Reference::Digest(judged)).await.unwrap() {
        Decision::Fetch(fetch) => assert_eq!(fetch.hold, None),
        other => panic!("{other:?}"),
    }
    match setup.manifest(&Reference::Digest(Digest::of(b"unjudged"))).await.unwrap() {
        Decision::Fetch(fetch) => assert!(fetch.hold.is_some(), "an unjudged digest is held"),
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.calls(), 2);

    // Cached before the group had a hook: its first hit asks.
    let (older, _) = setup.upstream.put_image("lab/app", "v0", &[b"zero"]);
    cache
        .record_manifest(&setup.resolved, &reference("v0"), manifest_object(&older), &[], None)
        .await
        .unwrap();
    setup.answer(false, "");
    match setup.manifest(&reference("v0")).await {
        Err(CacheError::AdmissionRefused { digest, reason, by: AdmittedBy::Hook }) => {
            assert_eq!((digest, reason), (older.clone(), String::new()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.calls(), 3);
    let head = cache.manifest(&setup.resolved, &reference("v0"), true).await;
    assert!(matches!(head, Err(CacheError::AdmissionRefused { .. })), "a HEAD too: {head:?}");
    assert_eq!(setup.calls(), 3, "remembered");
}

#[tokio::test]
async fn a_hook_that_does_not_answer_is_what_admission_on_timeout_says_for_a_while() {
    for on_timeout in [OnTimeout::Deny, OnTimeout::Allow] {
        let setup = Setup::new(Duration::from_millis(200), on_timeout).await;
        *setup.hook.answer.lock().unwrap() = None;
        let digest = Digest::of(b"a manifest nobody judged");
        let admission = setup.admit(&reference("v1"), &manifest_object(&digest)).await;
        assert_eq!((admission.allow, admission.by), (on_timeout == OnTimeout::Allow, AdmittedBy::NoAnswer));
        assert!(
            admission.reason.contains("no answer within 200ms")
                && admission.reason.contains(&format!("admission_on_timeout = \"{}\"", on_timeout.as_str())),
            "{}",
            admission.reason
        );
        assert_eq!(
            setup.test.metadata.find_verdict(&group(), &digest).await.unwrap(),
            None,
            "no verdict stored"
        );
        // Remembered by this node for a while: not asked (nor waited for) again.
        let again = setup.admit(&reference("v1"), &manifest_object(&digest)).await;
        assert_eq!(again, admission);
        assert_eq!(setup.calls(), 1);
        let outcome = if on_timeout == OnTimeout::Allow { "no_answer_allowed" } else { "no_answer_denied" };
        assert_eq!(setup.test.cache.metrics.admission_decisions_count(&group(), outcome), 1);
    }
}

#[tokio::test]
async fn everyone_waiting_for_one_digest_shares_one_hook_call() {
    let setup = Arc::new(Setup::new(Duration::from_secs(10), OnTimeout::Deny).await);
    setup.gate.send_replace(false);
    let digest = Digest::of(b"a popular manifest");
    let mut asked = setup.hook.asked.subscribe();
    let waiting: Vec<_> = (0..8)
        .map(|index| {
            let setup = setup.clone();
            let digest = digest.clone();
            tokio::spawn(async move {
                // By tag (held fills) and by digest (a hit of a copy cached before the hook) alike.
                let asked = if index % 2 == 0 { reference("v1") } else { Reference::Digest(digest.clone()) };
                setup.admit(&asked, &manifest_object(&digest)).await
            })
        })
        .collect();
    asked.wait_for(|calls| *calls == 1).await.unwrap();
    setup.answer(false, "not yet scanned clean");
    setup.gate.send_replace(true);
    for waiter in waiting {
        let admission = waiter.await.unwrap();
        assert!(!admission.allow && admission.reason == "not yet scanned clean", "{admission:?}");
    }
    assert_eq!(setup.calls(), 1, "one hook call for all of them");
}

#[tokio::test]
async fn groups_without_a_hook_hold_nothing() {
    let upstream = FakeRegistry::start().await;
    let test = test_cache(&upstream.url(), false, None).await;
    let address = ImageAddress::Root { image: RepositoryName::parse("lab/app").unwrap() };
    let resolved = test.cache.resolve(&address, None).unwrap();
    upstream.put_image("lab/app", "v1", &[b"layer"]);
    match test.cache.manifest(&resolved, &reference("v1"), false).await.unwrap() {
        Decision::Fetch(fetch) => assert_eq!(fetch.hold, None),
        other => panic!("{other:?}"),
    }
    let digest = Digest::of(b"whatever");
    let admission = test
        .cache
        .admit_fill(&resolved, ObjectKind::Manifest, &reference("v1"), &manifest_object(&digest))
        .await
        .unwrap();
    assert!(admission.allow, "a hook removed by a reload holds nothing back");
}
