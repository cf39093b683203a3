//! The control plane's side of a group's admission hook: the HTTP client that asks the hook (a
//! POST of the object's description, answered `{"allow": true|false, "reason": "…"}`), and how a
//! refusal is worded for the client and audited — a request refused by a remembered verdict as an
//! audit denial with its client, a held fill refused by the hook's answer as one for the object.

use std::time::Duration;

use cache::{AdmissionQuestion, AdmittedBy, CacheError, HookVerdict, Resolved};
use oci::{Digest, Reference};

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;

/// Largest answer read from a hook.
const MAX_HOOK_ANSWER: usize = 64 * 1024;
/// Longest wait for a connection to a hook (the whole call is bounded by `admission_timeout`).
const HOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks hooks over HTTP(S).
pub(crate) struct HttpHook {
    client: reqwest::Client,
}

impl HttpHook {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        // Straight to the hook, never through an `HTTP_PROXY` from the environment: it is a
        // service of the operator's, and what it is told names what the proxy's clients pull.
        let client = reqwest::Client::builder()
            .connect_timeout(HOOK_CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(HttpHook { client })
    }
}

impl cache::AdmissionHook for HttpHook {
    fn ask<'a>(
        &'a self,
        url: &'a str,
        question: &'a AdmissionQuestion,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<HookVerdict, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut response = self
                .client
                .post(url)
                .json(question)
                .send()
                .await
                .map_err(|error| format!("cannot reach it: {}", telemetry::error_chain(&error)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("it answered {status}"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|error| format!("its answer broke off: {}", telemetry::error_chain(&error)))?
            {
                if body.len() + chunk.len() > MAX_HOOK_ANSWER {
                    return Err(format!("its answer is over {MAX_HOOK_ANSWER} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice::<HookVerdict>(&body).map_err(|error| {
                format!("its answer is not {{\"allow\": true|false, \"reason\": \"…\"}}: {error}")
            })
        })
    }
}

/// What was refused, as the client named it: `library/alpine:3.20`, `library/alpine@sha256:…`.
fn what(resolved: &Resolved, reference: &Reference) -> String {
    let group = &resolved.group;
    let name = group.upstreams.repository(&resolved.image);
    match reference {
        Reference::Tag(tag) => format!("{name}{}{tag}", group.format.version_separator()),
        Reference::Digest(digest) => format!("{name}@{digest}"),
    }
}

/// The client's message for a refusal: what, by whom, and the hook's reason.
pub(crate) fn refusal_message(
    resolved: &Resolved,
    reference: &Reference,
    digest: &Digest,
    reason: &str,
    by: AdmittedBy,
) -> String {
    let what = what(resolved, reference);
    let group = &resolved.group.path;
    let named = match reference {
        Reference::Tag(_) => format!("{what} ({digest})"),
        Reference::Digest(_) => what,
    };
    match (by, reason.is_empty()) {
        (AdmittedBy::NoAnswer, _) => format!("{named} is held by group {group}'s admission hook: {reason}"),
        (AdmittedBy::Hook | AdmittedBy::Remembered, true) => {
            format!("{named} is refused by group {group}'s admission hook")
        }
        (AdmittedBy::Hook | AdmittedBy::Remembered, false) => {
            format!("{named} is refused by group {group}'s admission hook: {reason}")
        }
    }
}

/// A request's decision failed: an admission refusal becomes the client's 403 naming the hook,
/// and an audit denial; any other error passes.
pub(crate) fn refused_request(
    control: &ControlPlane,
    caller: &Caller,
    resolved: &Resolved,
    reference: &Reference,
    error: CacheError,
) -> ControlError {
    let CacheError::AdmissionRefused { digest, reason, by } = &error else { return error.into() };
    let message = refusal_message(resolved, reference, digest, reason, *by);
    let group = &resolved.group.path;
    let image = what(resolved, reference);
    let client = caller.address;
    match control.access.log_denial(client) {
        Some(held_back) => tracing::warn!(target: "depproxy::audit", event = "denied", group = %group,
            image = %image, client = %client, rule = "admission_hook", digest = %digest, reason = %reason,
            held_back, "pull refused by the admission hook"),
        None => tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET, event = "denied",
            group = %group, image = %image, client = %client, rule = "admission_hook", digest = %digest,
            reason = %reason, "pull refused by the admission hook"),
    }
    ControlError::PolicyRefused { message, rule: ADMISSION_RULE.to_owned() }
}

/// A held fill's bytes refused by the hook: audited once for the object (its clients wait on the
/// fill, not on a request of their own).
pub(crate) fn refused_fill(resolved: &Resolved, reference: &Reference, digest: &Digest, reason: &str) {
    tracing::warn!(target: "depproxy::audit", event = "denied", group = %resolved.group.path,
        image = %what(resolved, reference), rule = "admission_hook", digest = %digest, reason = %reason,
        "first pull refused by the admission hook");
}

/// What a refusal's `detail.rule` says.
pub(crate) const ADMISSION_RULE: &str = "admission_hook";
