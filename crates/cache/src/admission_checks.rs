//! A group's admission hook applied: decisions on objects the format holds back (a stored one
//! served only once allowed, a fetch held or refused), the verdict on a held fill's bytes, and
//! the one hook call per group and digest that everyone waiting shares (see `admission`).

use std::sync::Arc;

use metadata::VerdictRecord;
use oci::{Digest, GroupPath, ObjectKind, Reference};

use crate::admission::{Admission, AdmissionHook, AdmissionPolicy, AdmissionQuestion, AdmittedBy, OnTimeout};
use crate::decision::{Decision, StoredObject};
use crate::error::CacheError;
use crate::groups::{GroupSettings, Resolved};
use crate::state::Cache;

/// The refusal as the cache's error (for the request's answer and its audit line).
fn refused(admission: Admission, digest: &Digest) -> CacheError {
    CacheError::AdmissionRefused { digest: digest.clone(), reason: admission.reason, by: admission.by }
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
                    return Err(refused(admission, &object.digest));
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
                        return Err(refused(admission, &digest));
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
    async fn admit(
        &self,
        group: &GroupSettings,
        policy: &AdmissionPolicy,
        question: AdmissionQuestion,
    ) -> Admission {
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
            Some(hook) => {
                match tokio::time::timeout(policy.timeout, hook.ask(&policy.hook, question)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(format!("no answer within {}", telemetry::HumanDuration(policy.timeout))),
                }
            }
            None => Err("this control plane has no client for admission hooks".to_owned()),
        };
        let key = (group.path.clone(), question.digest.clone());
        match asked {
            Ok(verdict) => {
                let admission =
                    Admission { allow: verdict.allow, reason: verdict.reason, by: AdmittedBy::Hook };
                self.metrics
                    .admission_decided(&group.path, if admission.allow { "allowed" } else { "denied" });
                tracing::info!(group = %group.path, image = %question.name, digest = %question.digest,
                    allow = admission.allow, reason = %admission.reason, "admission hook answered");
                let record = VerdictRecord {
                    allowed: admission.allow,
                    reason: admission.reason.clone(),
                    decided_at: self.clock.now_ms(),
                };
                if let Err(error) = self.catalog.record_verdict(&group.path, &question.digest, &record).await
                {
                    // Not stored: this node keeps it a while, then asks again.
                    tracing::warn!(group = %group.path, digest = %question.digest, %error,
                        "cannot store the admission verdict");
                    self.admissions.no_answer.insert(key, admission.clone());
                }
                admission
            }
            Err(why) => {
                let allow = policy.on_timeout == OnTimeout::Allow;
                self.metrics.admission_decided(
                    &group.path,
                    if allow { "no_answer_allowed" } else { "no_answer_denied" },
                );
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
fn question(
    resolved: &Resolved,
    kind: ObjectKind,
    reference: &Reference,
    object: &StoredObject,
) -> AdmissionQuestion {
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

/// A package file the group holds back until its hook allows it: the name and version its
/// request names.
pub struct PackageSubject<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
}

impl Cache {
    /// [`Cache::screen`] for a package group's file: a stored one served only on "allow", a
    /// fetch held (or refused on a remembered "deny"). Documents are not held: they are indexes,
    /// what scanners judge is the files they list.
    pub async fn screen_package_file(
        &self,
        group: &GroupSettings,
        subject: PackageSubject<'_>,
        decision: Decision,
    ) -> Result<Decision, CacheError> {
        let Some(policy) = group.policy.with(|policy| policy.admission.clone()) else {
            return Ok(decision);
        };
        match decision {
            Decision::Serve { object, stale } => {
                let admission = self.admit(group, &policy, package_question(group, &subject, &object)).await;
                if !admission.allow {
                    self.metrics.admission_refused(&group.path);
                    return Err(refused(admission, &object.digest));
                }
                Ok(Decision::Serve { object, stale })
            }
            // A file's checksum is not its sha256 (npm's sha512): its verdict is asked once the
            // bytes are in.
            Decision::Fetch(mut fetch) => {
                fetch.hold = Some(policy.timeout);
                Ok(Decision::Fetch(fetch))
            }
            head @ Decision::UpstreamHead { .. } => Ok(head),
        }
    }

    /// The verdict on a held package file's verified bytes.
    pub async fn admit_package_fill(
        &self,
        group: &GroupSettings,
        subject: PackageSubject<'_>,
        object: &StoredObject,
    ) -> Result<Admission, CacheError> {
        let Some(policy) = group.policy.with(|policy| policy.admission.clone()) else {
            return Ok(Admission { allow: true, reason: String::new(), by: AdmittedBy::Remembered });
        };
        let admission = self.admit(group, &policy, package_question(group, &subject, object)).await;
        if !admission.allow {
            self.metrics.admission_refused(&group.path);
        }
        Ok(admission)
    }
}

fn package_question(
    group: &GroupSettings,
    subject: &PackageSubject<'_>,
    object: &StoredObject,
) -> AdmissionQuestion {
    let upstream = group.upstreams.get(&object.upstream).unwrap_or_else(|| group.upstreams.first());
    AdmissionQuestion {
        group: group.path.as_str().to_owned(),
        format: group.format,
        kind: ObjectKind::Blob,
        name: subject.name.to_owned(),
        tag: subject.version.map(str::to_owned),
        digest: object.digest.clone(),
        size: object.size,
        media_type: object.media_type.clone(),
        upstream: upstream.name().to_owned(),
        upstream_url: upstream.url().as_str().trim_end_matches('/').to_owned(),
    }
}
