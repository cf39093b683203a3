//! May this caller pull from this group? The group's policy decides whether credentials are
//! needed; if so, they must name an access token granted the group, and — for a registry token —
//! have been minted for this repository, named as the client names it (outside its scopes: 401
//! with a challenge for the right scope, as Docker Hub answers, so the client asks for it).
//! Credentials are neither checked nor counted when the group lets the caller pull anonymously
//! (docker's registry-mirrors may send a user's Docker Hub credentials to a mirror: they are not
//! ours, and not a failed login). Denials are logged for audit, never with a secret, at most one
//! line per client address and minute (with the count held back).
//!
//! Then the group's `allow`/`deny` rules: what the request names (the image as upstream names it,
//! with its tag) may be refused whoever asks — before any lookup or upstream request, so cached
//! content a rule denies is refused too. A refusal is an audit denial as well.

use std::net::IpAddr;

use access::{AuthError, Identity};
use cache::{GroupSettings, Refusal, Resolved};
use oci::ImageAddress;

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;

/// What a challenge says went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeError {
    /// No credentials, or none we accept: the plain challenge.
    Plain,
    /// A registry token of ours past its lifetime.
    InvalidToken,
    /// A registry token not minted for this repository.
    InsufficientScope,
}

/// The `WWW-Authenticate` challenge for a request that needs credentials. The realm carries the
/// request's `ns` (containerd's mirror parameter), so the token endpoint resolves the scope's
/// repository as this request did.
pub(crate) fn challenge(
    control: &ControlPlane,
    caller: &Caller,
    scope: Option<&str>,
    query: Option<&str>,
    error: ChallengeError,
) -> String {
    let forwarded = caller.base_url();
    let base = control.public_url.as_deref().or(forwarded.as_deref()).unwrap_or("");
    let namespace = oci::registry::namespace_parameter(query)
        .map(|ns| {
            format!(
                "?{}",
                url::form_urlencoded::Serializer::new(String::new()).append_pair("ns", &ns).finish()
            )
        })
        .unwrap_or_default();
    let mut challenge =
        format!("Bearer realm=\"{base}/v2/token{namespace}\",service=\"{}\"", access::SERVICE);
    if let Some(name) = scope {
        challenge.push_str(&format!(",scope=\"repository:{name}:pull\""));
    }
    match error {
        ChallengeError::Plain => {}
        ChallengeError::InvalidToken => challenge.push_str(",error=\"invalid_token\""),
        ChallengeError::InsufficientScope => challenge.push_str(",error=\"insufficient_scope\""),
    }
    challenge
}

/// Checks a pull of `image` (named as the client wrote it, with the request's `query`) from
/// `group`.
pub(crate) async fn pull(
    control: &ControlPlane,
    caller: &Caller,
    group: &GroupSettings,
    image: &ImageAddress,
    query: Option<&str>,
) -> Result<(), ControlError> {
    if group.access.allows_anonymous(caller.address) {
        return Ok(());
    }
    // The name as written is built only for an answer other than "yes": not on the hit path.
    let unauthorized = |error| ControlError::Unauthorized {
        challenge: challenge(control, caller, Some(&image.as_written()), query, error),
    };
    let Some(credentials) = &caller.credentials else { return Err(unauthorized(ChallengeError::Plain)) };
    let outcome = control.access.authenticate(credentials, caller.address).await;
    if let Ok(Identity::Token { token, reach }) = &outcome
        && token.may_pull(&group.path)
        && reach.includes(image)
    {
        return Ok(());
    }
    let name = image.as_written();
    let name = name.as_str();
    match outcome {
        Ok(Identity::Token { token, .. }) if !token.may_pull(&group.path) => {
            match control.access.log_denial(caller.address) {
                Some(held_back) => {
                    tracing::warn!(target: "depproxy::audit", event = "denied", token = %token.name,
                    group = %group.path, image = name, client = %caller.address,
                    reason = "token not granted this group", held_back, "pull refused")
                }
                None => tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET, event = "denied",
                    token = %token.name, group = %group.path, image = name, client = %caller.address,
                    reason = "token not granted this group", "pull refused"),
            }
            Err(ControlError::Denied(format!("this token may not pull from group {}", group.path)))
        }
        // Granted the group, but this registry token was minted for other repositories.
        Ok(Identity::Token { .. }) => Err(unauthorized(ChallengeError::InsufficientScope)),
        Ok(Identity::Anonymous) => Err(unauthorized(ChallengeError::Plain)),
        Err(AuthError::Expired) => Err(unauthorized(ChallengeError::InvalidToken)),
        Err(error) => {
            log_refusal(control, caller.address, &error, Some((group, name)));
            Err(auth_failure(error, unauthorized(ChallengeError::Plain)))
        }
    }
}

/// Checks the group's `allow` and `deny` rules for what the request names: `tag` is the tag asked
/// for, `None` for a request by digest or a listing of the name (judged by the name alone).
pub(crate) fn rules(
    control: &ControlPlane,
    caller: &Caller,
    resolved: &Resolved,
    tag: Option<&str>,
) -> Result<(), ControlError> {
    let Err(refusal) = control.cache.check_pull(resolved, tag) else { return Ok(()) };
    let group = &resolved.group;
    let name = group.upstreams.repository(&resolved.image);
    let what = match tag {
        Some(tag) => format!("{name}{}{tag}", group.format.version_separator()),
        None => name.to_string(),
    };
    Err(refused(control, caller, group, &what, refusal))
}

/// A refusal by the group's rules of `what` (`name`, `name:tag`, `name@version`), logged for
/// audit.
fn refused(
    control: &ControlPlane,
    caller: &Caller,
    group: &GroupSettings,
    what: &str,
    refusal: Refusal,
) -> ControlError {
    let (rule, reason, message) = match refusal {
        Refusal::Denied { pattern } => (
            format!("deny {pattern:?}"),
            "a deny rule matches",
            format!("{what} is refused by group {}'s rule deny = {pattern:?}", group.path),
        ),
        Refusal::NotAllowed => (
            "allow".to_owned(),
            "no allow rule matches",
            format!("{what} is not allowed through group {}: none of its allow patterns matches", group.path),
        ),
    };
    let client = caller.address;
    match control.access.log_denial(client) {
        Some(held_back) => tracing::warn!(target: "depproxy::audit", event = "denied", group = %group.path,
            image = %what, client = %client, rule = %rule, reason, held_back, "pull refused by policy"),
        None => tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET, event = "denied",
            group = %group.path, image = %what, client = %client, rule = %rule, reason, "pull refused by policy"),
    }
    ControlError::PolicyRefused { message, rule }
}

/// Checks `GET /v2/`: it needs credentials unless every group lets the caller pull anonymously.
pub(crate) async fn base(control: &ControlPlane, caller: &Caller) -> Result<(), ControlError> {
    if control.cache.groups().all_anonymous_for(caller.address) {
        return Ok(());
    }
    let unauthorized =
        |error| ControlError::Unauthorized { challenge: challenge(control, caller, None, None, error) };
    let Some(credentials) = &caller.credentials else { return Err(unauthorized(ChallengeError::Plain)) };
    match control.access.authenticate(credentials, caller.address).await {
        Ok(Identity::Token { .. }) => Ok(()),
        Ok(Identity::Anonymous) => Err(unauthorized(ChallengeError::Plain)),
        Err(AuthError::Expired) => Err(unauthorized(ChallengeError::InvalidToken)),
        Err(error) => {
            log_refusal(control, caller.address, &error, None);
            Err(auth_failure(error, unauthorized(ChallengeError::Plain)))
        }
    }
}

/// Logs refused credentials (throttled per address): a pull's (with its group and image) or a
/// login's at `/v2/`.
fn log_refusal(
    control: &ControlPlane,
    client: IpAddr,
    error: &AuthError,
    pull: Option<(&GroupSettings, &str)>,
) {
    // Every refusal reaches the admin API's events; the log gets one line per address and minute.
    match (control.access.log_denial(client), pull) {
        (Some(held_back), Some((group, image))) => {
            tracing::warn!(target: "depproxy::audit", event = "denied",
            group = %group.path, image, client = %client, reason = %error, held_back, "pull refused")
        }
        (None, Some((group, image))) => tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET,
            event = "denied", group = %group.path, image, client = %client, reason = %error, "pull refused"),
        (Some(held_back), None) => {
            tracing::warn!(target: "depproxy::audit", event = "denied", client = %client,
            reason = %error, held_back, "login refused at /v2/")
        }
        (None, None) => tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET, event = "denied",
            client = %client, reason = %error, "login refused at /v2/"),
    }
}

/// The answer to credentials that were not accepted.
pub(crate) fn auth_failure(error: AuthError, rejected: ControlError) -> ControlError {
    match error {
        AuthError::Rejected | AuthError::NotOurs | AuthError::Expired => rejected,
        AuthError::RateLimited(wait) => ControlError::TooManyFailures(wait),
        AuthError::Metadata(error) => ControlError::AccessStore(error),
    }
}

/// Checks a request to a package group: anonymous when the group lets the caller pull so,
/// else an access token granted the group, as Basic (pip: the token as password) or Bearer (npm's
/// `_authToken`), or a registry token reaching the whole group (scheduled warming). Refused:
/// 401 with a Basic challenge (what pip and npm answer with credentials), or 403 for a token not
/// granted the group. Answers the token's name when there is one (`npm whoami`).
pub(crate) async fn package(
    control: &ControlPlane,
    caller: &Caller,
    group: &GroupSettings,
) -> Result<Option<String>, ControlError> {
    let anonymous = group.access.allows_anonymous(caller.address);
    let unauthorized = || ControlError::Unauthorized { challenge: "Basic realm=\"depproxy\"".to_owned() };
    let Some(credentials) = &caller.credentials else {
        return if anonymous { Ok(None) } else { Err(unauthorized()) };
    };
    let outcome = control.access.authenticate(credentials, caller.address).await;
    match outcome {
        Ok(Identity::Token { token, reach }) if token.may_pull(&group.path) => {
            if matches!(reach, access::Reach::Groups) || token.is_warming() || anonymous {
                Ok(Some(token.name.to_string()))
            } else {
                Err(unauthorized())
            }
        }
        // Credentials that are not ours (a user's upstream login sent along) do not stop an
        // anonymous pull.
        _ if anonymous => Ok(None),
        Ok(Identity::Token { token, .. }) => {
            log_refusal(control, caller.address, &AuthError::Rejected, Some((group, "")));
            Err(ControlError::Denied(format!("token {} may not pull from group {}", token.name, group.path)))
        }
        Ok(Identity::Anonymous) => Err(unauthorized()),
        Err(error) => {
            log_refusal(control, caller.address, &error, Some((group, "")));
            Err(auth_failure(error, unauthorized()))
        }
    }
}

/// Checks the group's `allow`/`deny` rules for a package (and its version, when the request
/// names one), as [`rules`] does for images.
pub(crate) fn package_rules(
    control: &ControlPlane,
    caller: &Caller,
    group: &GroupSettings,
    name: &str,
    version: Option<&str>,
) -> Result<(), ControlError> {
    let Err(refusal) = control.cache.check_package(group, name, version) else { return Ok(()) };
    let what = match version {
        Some(version) => format!("{name}@{version}"),
        None => name.to_owned(),
    };
    Err(refused(control, caller, group, &what, refusal))
}
