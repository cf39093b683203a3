//! A hold for new artifacts: a group with an `admission_hook` serves an object to nobody until the
//! hook (a scanner, an approval service) said yes to its digest.
//!
//! - A hit (or a HEAD of a cached object) is served when the group's verdict on its digest is
//!   "allow", refused when it is "deny"; with no verdict yet (cached before the hook was set, or
//!   the verdict was forgotten) the hook is asked now.
//! - A miss by digest with a verdict is fetched unheld, or refused before any upstream request;
//!   without one — and every miss by tag, whose digest is known only from the bytes — it is
//!   fetched *held* ([`Fetch::hold`]): the gateway fetches and verifies the bytes while the hook
//!   decides ([`Cache::admit_fill`]), and its clients get them only on "allow".
//! - One hook call per group and digest at a time (single-flight): every request and every fill
//!   waiting for the same object shares it. A verdict is stored ([`metadata::VerdictRecord`]) and
//!   kept until an operator forgets it; a hook that does not answer within `admission_timeout`
//!   (or answers with an error) gives no verdict: `admission_on_timeout` decides the request, and
//!   that outcome is remembered by this node for [`NO_ANSWER_MEMORY`] only, then the hook is asked
//!   again.
//!
//! The format decides which objects are held (OCI: manifests, the images scanners judge); the
//! hook itself is called over HTTP by the control plane ([`AdmissionHook`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use metadata::VerdictRecord;
use oci::{Digest, GroupPath, ObjectKind, Reference};

use crate::decision::{Decision, StoredObject};
use crate::error::CacheError;
use crate::format::Format;
use crate::groups::{GroupSettings, Resolved};
use crate::single_flight::SingleFlight;
use crate::state::Cache;

/// How long this node answers from a hook's silence (`admission_on_timeout`) before asking again.
pub const NO_ANSWER_MEMORY: Duration = Duration::from_secs(60);

/// Entries of that memory, at most (all groups together).
const NO_ANSWER_ENTRIES: u64 = 10_000;

/// A group's admission hook: where it is asked, how long it may take, and what silence means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// The hook's URL (`http://` or `https://`), POSTed an [`AdmissionQuestion`] as JSON.
    pub hook: String,
    /// The longest the hook may take to answer.
    pub timeout: Duration,
    /// What a request gets when the hook does not answer in time (or answers with an error).
    pub on_timeout: OnTimeout,
}

/// `admission_on_timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnTimeout {
    /// Refuse (the default): nothing unjudged is served.
    #[default]
    Deny,
    /// Serve: availability over the hold.
    Allow,
}

impl OnTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Deny => "deny",
            OnTimeout::Allow => "allow",
        }
    }
}

/// What a group's hook is told about an object: the JSON body of its POST.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdmissionQuestion {
    pub group: String,
    pub format: Format,
    /// `manifest` (an image or an index) or `blob`.
    pub kind: ObjectKind,
    /// The artifact's name as its upstream names it (`library/alpine`).
    pub name: String,
    /// The tag (or version) the client asked for; none when it asked by digest.
    pub tag: Option<String>,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The configured upstream the bytes come from, and its base URL: the scanner can fetch
    /// `<upstream_url host>/<name>@<digest>` there (never through this held group).
    pub upstream: String,
    pub upstream_url: String,
}

/// A hook's answer: `{"allow": true|false, "reason": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct HookVerdict {
    pub allow: bool,
    #[serde(default)]
    pub reason: String,
}

/// Asks a hook (over HTTP, in the control plane): its verdict, or why there is none (unreachable,
/// an error status, an answer that is not a verdict). The cache bounds the wait.
pub trait AdmissionHook: Send + Sync {
    fn ask<'a>(
        &'a self,
        url: &'a str,
        question: &'a AdmissionQuestion,
    ) -> Pin<Box<dyn Future<Output = Result<HookVerdict, String>> + Send + 'a>>;
}

/// Where an admission came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmittedBy {
    /// The hook, asked for this request (or for one it waited with).
    Hook,
    /// A verdict the hook gave earlier.
    Remembered,
    /// The hook did not answer: `admission_on_timeout` decided.
    NoAnswer,
}

/// Whether a group's clients may have an object, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub allow: bool,
    /// The hook's reason (or why there was no verdict); may be empty.
    pub reason: String,
    pub by: AdmittedBy,
}

impl Admission {
    fn from_record(record: VerdictRecord) -> Self {
        Admission { allow: record.allowed, reason: record.reason, by: AdmittedBy::Remembered }
    }

    /// The refusal as the cache's error (for the request's answer and its audit line).
    fn refused(self, digest: &Digest) -> CacheError {
        CacheError::AdmissionRefused { digest: digest.clone(), reason: self.reason, by: self.by }
    }
}

/// The verdicts being asked, and the hooks' recent silences.
pub(crate) struct Admissions {
    flights: SingleFlight<(GroupPath, Digest), Admission>,
    no_answer: moka::sync::Cache<(GroupPath, Digest), Admission>,
}

impl Admissions {
    pub(crate) fn new() -> Self {
        Admissions {
            flights: SingleFlight::default(),
            no_answer: moka::sync::Cache::builder()
                .max_capacity(NO_ANSWER_ENTRIES)
                .time_to_live(NO_ANSWER_MEMORY)
                .build(),
        }
    }

    /// Forgets the hooks' silences (with the verdicts: an operator asked for a fresh answer).
    pub(crate) fn forget(&self) {
        self.no_answer.invalidate_all();
    }
}

impl Cache {
    /// Installs what asks the hooks (once): the control plane's HTTP client.
    pub fn use_admission_hook(&self, hook: Arc<dyn AdmissionHook>) {
        let _ = self.hook.set(hook);
    }

    /// A decision on an object the group holds back until its hook allows it: a stored one is
    /// served only on "allow" (asking the hook now when it has not judged it); a fetch is refused
    /// on a remembered "deny", unheld on "allow", held otherwise. Groups without a hook: the
    /// decision as it is (a read lock, no lookup).
    pub(crate) async fn screen(
        &self,
        resolved: &Resolved,
        kind: ObjectKind,
        reference: &Reference,
        decision: Decision,
    ) -> Result<Decision, CacheError> {
        let group = &resolved.group;
        let Some(policy) = group.policy.with(|policy| policy.admission.clone()) else {
            return Ok(decision);
        };
        match decision {
            Decision::Serve { object, stale } => {
                let question = question(resolved, kind, reference, &object);
                let admission = self.admit(group, &policy, question).await;
                if !admission.allow {
                    self.metrics.admission_refused(&group.path);
                    return Err(admission.refused(&object.digest));
                }
                Ok(Decision::Serve { object, stale })
            }
            Decision::Fetch(mut fetch) => {
                let digest = fetch.verify.as_ref().and_then(injector::Checksum::as_digest);
                let known = match &digest {
                    Some(digest) => self.known_admission(&group.path, digest).await,
                    None => None,
                };
                match (known, digest) {
                    (Some(admission), _) if admission.allow => {}
                    (Some(admission), Some(digest)) => {
                        self.metrics.admission_refused(&group.path);
                        return Err(admission.refused(&digest));
                    }
                    _ => fetch.hold = Some(policy.timeout),
                }
                Ok(Decision::Fetch(fetch))
            }
            head @ Decision::UpstreamHead { .. } => Ok(head),
        }
    }

    /// The verdict on a held fill's verified bytes (`object`, as the gateway describes them),
    /// asked for a request of `reference`: remembered, or the hook's. A refused tag is recorded as
    /// pointing at the refused digest (not stored), so the next request for it is refused without
    /// fetching it again.
    pub async fn admit_fill(
        &self,
        resolved: &Resolved,
        kind: ObjectKind,
        reference: &Reference,
        object: &StoredObject,
    ) -> Result<Admission, CacheError> {
        let group = &resolved.group;
        let Some(policy) = group.policy.with(|policy| policy.admission.clone()) else {
            // The hook was removed by a reload since the fill started: nothing holds it back.
            return Ok(Admission { allow: true, reason: String::new(), by: AdmittedBy::Remembered });
        };
        let admission = self.admit(group, &policy, question(resolved, kind, reference, object)).await;
        if !admission.allow {
            self.metrics.admission_refused(&group.path);
            if let (Reference::Tag(_), ObjectKind::Manifest) = (reference, kind) {
                self.remember_refused_tag(resolved, reference, object).await;
            }
        }
        Ok(admission)
    }

    /// The verdict on `question`'s object: remembered, or asked of the hook once for everyone
    /// waiting for it.
    async fn admit(&self, group: &GroupSettings, policy: &AdmissionPolicy, question: AdmissionQuestion) -> Admission {
        let digest = question.digest.clone();
        if let Some(known) = self.known_admission(&group.path, &digest).await {
            return known;
        }
        let key = (group.path.clone(), digest.clone());
        self.admissions
            .flights
            .run(key, || async {
                // Another flight may have just decided (and stored) it.
                if let Some(known) = self.known_admission(&group.path, &digest).await {
                    return known;
                }
                self.ask_hook(group, policy, &question).await
            })
            .await
    }

    /// A verdict this group's hook gave on `digest`, or its recent silence; none: ask.
    async fn known_admission(&self, group: &GroupPath, digest: &Digest) -> Option<Admission> {
        if let Some(record) = self.degraded(self.catalog.find_verdict(group, digest).await) {
            return Some(Admission::from_record(record));
        }
        self.admissions.no_answer.get(&(group.clone(), digest.clone()))
    }

    async fn ask_hook(
        &self,
        group: &GroupSettings,
        policy: &AdmissionPolicy,
        question: &AdmissionQuestion,
    ) -> Admission {
        let asked = match self.hook.get() {
            Some(hook) => match tokio::time::timeout(policy.timeout, hook.ask(&policy.hook, question)).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {}", telemetry::HumanDuration(policy.timeout))),
            },
            None => Err("this control plane has no client for admission hooks".to_owned()),
        };
        let key = (group.path.clone(), question.digest.clone());
        match asked {
            Ok(verdict) => {
                let admission = Admission { allow: verdict.allow, reason: verdict.reason, by: AdmittedBy::Hook };
                self.metrics.admission_decided(&group.path, if admission.allow { "allowed" } else { "denied" });
                tracing::info!(group = %group.path, image = %question.name, digest = %question.digest,
                    allow = admission.allow, reason = %admission.reason, "admission hook answered");
                let record = VerdictRecord {
                    allowed: admission.allow,
                    reason: admission.reason.clone(),
                    decided_at: self.clock.now_ms(),
                };
                if let Err(error) = self.catalog.record_verdict(&group.path, &question.digest, &record).await {
                    // Not stored: this node keeps it a while, then asks again.
                    tracing::warn!(group = %group.path, digest = %question.digest, %error,
                        "cannot store the admission verdict");
                    self.admissions.no_answer.insert(key, admission.clone());
                }
                admission
            }
            Err(why) => {
                let allow = policy.on_timeout == OnTimeout::Allow;
                self.metrics
                    .admission_decided(&group.path, if allow { "no_answer_allowed" } else { "no_answer_denied" });
                tracing::warn!(group = %group.path, image = %question.name, digest = %question.digest,
                    hook = %policy.hook, problem = %why, on_timeout = policy.on_timeout.as_str(),
                    "the admission hook gave no verdict");
                let admission = Admission {
                    allow,
                    reason: format!(
                        "the admission hook gave no verdict ({why}); admission_on_timeout = \"{}\"",
                        policy.on_timeout.as_str()
                    ),
                    by: AdmittedBy::NoAnswer,
                };
                self.admissions.no_answer.insert(key, admission.clone());
                admission
            }
        }
    }

    /// Records that `reference` (a tag) now points at a refused digest, not stored: the next
    /// request for the tag finds the refusal without fetching the manifest again.
    async fn remember_refused_tag(&self, resolved: &Resolved, reference: &Reference, object: &StoredObject) {
        let group = &resolved.group;
        let key = metadata::ManifestKey {
            group: group.path.clone(),
            image: group.upstreams.repository(&resolved.image),
            reference: reference.clone(),
        };
        let now = self.clock.now_ms();
        let record = metadata::ManifestRecord {
            digest: object.digest.clone(),
            media_type: object.media_type.clone(),
            size: object.size,
            checked_at: now,
            stored: false,
            upstream: object.upstream.clone(),
        };
        let remembered = self.catalog.upsert_manifest(&key, &record, now).await;
        self.degraded(remembered.map(Some));
    }
}

/// What the hook is told about `object`, requested as `reference` through `resolved`'s group.
fn question(resolved: &Resolved, kind: ObjectKind, reference: &Reference, object: &StoredObject) -> AdmissionQuestion {
    let group = &resolved.group;
    // Rows from before upstreams were recorded name none: the group's first upstream then.
    let upstream = group.upstreams.get(&object.upstream).unwrap_or_else(|| group.upstreams.first());
    AdmissionQuestion {
        group: group.path.as_str().to_owned(),
        format: group.format,
        kind,
        name: group.upstreams.repository(&resolved.image).to_string(),
        tag: match reference {
            Reference::Tag(tag) => Some(tag.as_str().to_owned()),
            Reference::Digest(_) => None,
        },
        digest: object.digest.clone(),
        size: object.size,
        media_type: object.media_type.clone(),
        upstream: upstream.name().to_owned(),
        upstream_url: upstream.url().as_str().trim_end_matches('/').to_owned(),
    }
}
