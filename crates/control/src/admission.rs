//! How a refusal by a group's admission hook is worded for the client and audited: a request
//! refused (by a remembered verdict, or by the hook asked for it) as an audit denial with its
//! client, a held fill refused by the hook's answer as one for the object.

use cache::{AdmittedBy, CacheError, Resolved};
use oci::{Digest, Reference};

use crate::caller::Caller;
use crate::error::{ADMISSION_RULE, ControlError};
use crate::plane::ControlPlane;

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
