//! A hold for new artifacts: a group with an `admission_hook` serves an object to nobody until the
//! hook (a scanner, an approval service) said yes to its digest.
//!
//! - A hit (or a HEAD of a cached object) is served when the group's verdict on its digest is
//!   "allow", refused when it is "deny"; with no verdict yet (cached before the hook was set, or
//!   the verdict was forgotten) the hook is asked now.
//! - A miss by digest with a verdict is fetched unheld, or refused before any upstream request;
//!   without one — and every miss by tag, whose digest is known only from the bytes — it is
//!   fetched *held* (`Fetch::hold`): the gateway fetches and verifies the bytes while the hook
//!   decides (`Cache::admit_fill`), and its clients get them only on "allow".
//! - One hook call per group and digest at a time (single-flight): every request and every fill
//!   waiting for the same object shares it. A verdict is stored ([`metadata::VerdictRecord`]) and
//!   kept until an operator forgets it; a hook that does not answer within `admission_timeout`
//!   (or answers with an error) gives no verdict: `admission_on_timeout` decides the request, and
//!   that outcome is remembered by this node for [`NO_ANSWER_MEMORY`] only, then the hook is asked
//!   again.
//!
//! The format decides which objects are held (OCI: manifests, the images scanners judge); the
//! hook itself is called over HTTP by the control plane ([`AdmissionHook`]). This module holds the
//! policy and the vocabulary; `admission_checks` applies them to decisions and fills.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use metadata::VerdictRecord;
use oci::{Digest, GroupPath, ObjectKind};

use crate::format::Format;
use crate::single_flight::SingleFlight;

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
    pub(crate) fn from_record(record: VerdictRecord) -> Self {
        Admission { allow: record.allowed, reason: record.reason, by: AdmittedBy::Remembered }
    }
}

/// The verdicts being asked, and the hooks' recent silences.
pub(crate) struct Admissions {
    pub(crate) flights: SingleFlight<(GroupPath, Digest), Admission>,
    pub(crate) no_answer: moka::sync::Cache<(GroupPath, Digest), Admission>,
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
