//! May this caller pull from this group? The group's policy decides whether credentials are
//! needed; if so, they must name an access token granted the group. Credentials are neither
//! checked nor counted when the group lets the caller pull anonymously (docker's registry-mirrors
//! may send a user's Docker Hub credentials to a mirror: they are not ours, and not a failed
//! login). Every denial is logged for audit, never with a secret.

use access::{AuthError, Identity};
use cache::GroupSettings;
use oci::ImageAddress;

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;

/// The `WWW-Authenticate` challenge for a request that needs credentials.
pub(crate) fn challenge(
    control: &ControlPlane,
    caller: &Caller,
    scope: Option<&str>,
    expired: bool,
) -> String {
    let forwarded = caller.base_url();
    let base = control.public_url.as_deref().or(forwarded.as_deref()).unwrap_or("");
    let mut challenge = format!("Bearer realm=\"{base}/v2/token\",service=\"{}\"", access::SERVICE);
    if let Some(name) = scope {
        challenge.push_str(&format!(",scope=\"repository:{name}:pull\""));
    }
    if expired {
        challenge.push_str(",error=\"invalid_token\"");
    }
    challenge
}

/// Checks a pull of `image` (named as the client wrote it) from `group`.
pub(crate) async fn pull(
    control: &ControlPlane,
    caller: &Caller,
    group: &GroupSettings,
    image: &ImageAddress,
) -> Result<(), ControlError> {
    if group.access.allows_anonymous(caller.address) {
        return Ok(());
    }
    // The name as written is built only for an answer other than "yes": not on the hit path.
    let unauthorized = |expired| ControlError::Unauthorized {
        challenge: challenge(control, caller, Some(&image.as_written()), expired),
    };
    let Some(credentials) = &caller.credentials else { return Err(unauthorized(false)) };
    let outcome = control.access.authenticate(credentials, caller.address).await;
    if let Ok(Identity::Token(token)) = &outcome
        && token.may_pull(&group.path)
    {
        return Ok(());
    }
    let name = image.as_written();
    let name = name.as_str();
    match outcome {
        Ok(Identity::Token(token)) => {
            tracing::warn!(target: "depproxy::audit", event = "denied", token = %token.name, group = %group.path,
                image = name, client = %caller.address, reason = "token not granted this group", "pull refused");
            Err(ControlError::Denied(format!("this token may not pull from group {}", group.path)))
        }
        Ok(Identity::Anonymous) => Err(unauthorized(false)),
        Err(AuthError::Expired) => Err(unauthorized(true)),
        Err(error) => {
            tracing::warn!(target: "depproxy::audit", event = "denied", group = %group.path, image = name,
                client = %caller.address, reason = %error, "pull refused");
            Err(auth_failure(error, unauthorized(false)))
        }
    }
}

/// Checks `GET /v2/`: it needs credentials unless every group lets the caller pull anonymously.
pub(crate) async fn base(control: &ControlPlane, caller: &Caller) -> Result<(), ControlError> {
    if control.cache.groups().all_anonymous_for(caller.address) {
        return Ok(());
    }
    let unauthorized =
        |expired| ControlError::Unauthorized { challenge: challenge(control, caller, None, expired) };
    let Some(credentials) = &caller.credentials else { return Err(unauthorized(false)) };
    match control.access.authenticate(credentials, caller.address).await {
        Ok(Identity::Token(_)) => Ok(()),
        Ok(Identity::Anonymous) => Err(unauthorized(false)),
        Err(AuthError::Expired) => Err(unauthorized(true)),
        Err(error) => {
            tracing::warn!(target: "depproxy::audit", event = "denied", client = %caller.address, reason = %error,
                "login refused at /v2/");
            Err(auth_failure(error, unauthorized(false)))
        }
    }
}

/// The answer to credentials that were not accepted.
pub(crate) fn auth_failure(error: AuthError, rejected: ControlError) -> ControlError {
    match error {
        AuthError::Rejected | AuthError::Expired => rejected,
        AuthError::RateLimited(wait) => ControlError::TooManyFailures(wait),
        AuthError::Metadata(error) => ControlError::AccessStore(error),
    }
}
