//! The gateway's upload calls: `…/upload/authorize` (may this object be stored?), `…/upload`
//! (it is stored and verified: record it), `…/upload/not-found` (the upstream answered 404:
//! remember that for the group's `negative_ttl`) and `…/upload/verdict` (may a held fill's
//! clients have these bytes? the group's admission hook decides). Each is checked against the object path it is made for,
//! so a gateway bug cannot file an object under the wrong name; the cache's domain then decides and
//! records.

use axum::extract::Request;
use axum::response::Response;
use cache::{FillPermit, Resolved, StoredObject};
use injector::{
    Authorization, AuthorizeRequest, CONTRACT_VERSION, FinalizeRequest, NotFoundReport, UploadDecision,
    UploadStage, Verdict, VerdictRequest, VerifiedRequest,
};
use oci::{Endpoint, ErrorCode, ObjectKind, OciError, Reference};

use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::{admission, formats, packages, render};

/// Upload call bodies are small JSON documents.
const MAX_CALL_BODY: usize = 64 * 1024;
/// But a package document's finalize lists every file it names (thousands of versions).
const MAX_PACKAGE_CALL_BODY: usize = 32 << 20;

/// What an upload call is about: the object path it names, resolved.
struct Target {
    resolved: Resolved,
    kind: ObjectKind,
    reference: Reference,
    stage: UploadStage,
}

pub(crate) async fn handle(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    let uri = request.uri().clone();
    let (object_path, stage) =
        injector::split_upload_path(uri.path()).ok_or_else(|| not_an_upload_call(&uri))?;
    let package = formats::package_format(object_path);
    // A package document's finalize lists its files: a packument's may be large.
    let limit = if package.is_some() { MAX_PACKAGE_CALL_BODY } else { MAX_CALL_BODY };
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| ControlError::BadUploadCall(format!("unreadable body: {error}")))?;
    // The token binds the body's SHA-256: a call is recorded only as the gateway signed it.
    verified.check_body(&bytes).map_err(ControlError::Unauthenticated)?;
    if let Some(format) = package {
        return Box::pin(packages::upload(control, format, object_path, uri.query(), stage, &bytes)).await;
    }
    let target = target(control, &uri)?;
    match target.stage {
        UploadStage::Authorize => authorize(control, &target, &bytes).await,
        UploadStage::Finalize => finalize(control, &target, &bytes).await,
        UploadStage::NotFound => not_found(control, &target, &bytes),
        // Boxed: it may wait for a hook, and only held fills make it.
        UploadStage::Verdict => Box::pin(verdict(control, &target, &bytes)).await,
    }
}

fn not_an_upload_call(uri: &http::Uri) -> OciError {
    OciError::new(ErrorCode::Unsupported, format!("no such upload route: {}", uri.path()))
        .with_status(http::StatusCode::NOT_FOUND)
}

fn target(control: &ControlPlane, uri: &http::Uri) -> Result<Target, ControlError> {
    let not_an_upload_call = || not_an_upload_call(uri);
    let (object_path, stage) = injector::split_upload_path(uri.path()).ok_or_else(not_an_upload_call)?;
    let (image, kind, reference) = match oci::parse_v2_path(object_path)? {
        Endpoint::Manifest { image, reference } => (image, ObjectKind::Manifest, reference),
        Endpoint::Blob { image, digest } => (image, ObjectKind::Blob, Reference::Digest(digest)),
        Endpoint::Base | Endpoint::Token | Endpoint::TagsList { .. } | Endpoint::Referrers { .. } => {
            return Err(not_an_upload_call().into());
        }
    };
    let resolved = control.cache.resolve(&image, uri.query())?;
    Ok(Target { resolved, kind, reference, stage })
}

async fn authorize(control: &ControlPlane, target: &Target, bytes: &[u8]) -> Result<Response, ControlError> {
    let call: AuthorizeRequest = parse(bytes)?;
    check_version_and_kind(call.v, call.kind, target.kind)?;
    if let (Some(digest), Reference::Digest(expected)) = (&call.digest, &target.reference)
        && digest != expected
    {
        return Err(ControlError::BadUploadCall(format!("authorize for {digest} on the path of {expected}")));
    }
    let permit =
        control.cache.authorize_fill(call.digest.as_ref(), &call.node, call.renew.as_deref()).await?;
    let (decision, lease) = match permit {
        FillPermit::Store { lease } => (UploadDecision::Store, lease),
        FillPermit::Passthrough { reason } => (UploadDecision::Passthrough { reason }, None),
    };
    render::contract_message(&Authorization {
        v: CONTRACT_VERSION,
        decision,
        max_size: control.cache.limits().max_size(target.kind),
        lease_seconds: lease.as_ref().map(|lease| lease.ttl.as_secs().max(1)),
        lease_id: lease.map(|lease| lease.id),
    })
}

async fn finalize(control: &ControlPlane, target: &Target, bytes: &[u8]) -> Result<Response, ControlError> {
    let call: FinalizeRequest = parse(bytes)?;
    check_version_and_kind(call.v, call.kind, target.kind)?;
    if let Reference::Digest(expected) = &target.reference
        && &call.digest != expected
    {
        return Err(ControlError::BadUploadCall(format!(
            "finalize of {} on the path of {expected}",
            call.digest
        )));
    }
    if call.key != injector::storage_key(&call.digest) {
        return Err(ControlError::BadUploadCall(format!(
            "key {:?} is not the key of {}",
            call.key, call.digest
        )));
    }
    let max_size = control.cache.limits().max_size(target.kind);
    if call.size > max_size {
        return Err(ControlError::BadUploadCall(format!(
            "{} bytes exceed the limit of {max_size}",
            call.size
        )));
    }
    if target.kind == ObjectKind::Manifest && !oci::media::is_manifest_type(&call.media_type) {
        return Err(ControlError::BadUploadCall(format!(
            "upstream sent {:?}, which is not a manifest media type",
            call.media_type
        )));
    }
    // The source that served is recorded with the object, and asked first for the tag later: it
    // must be one of the group's upstreams.
    check_upstream(target, &call.upstream)?;
    let object = StoredObject {
        digest: call.digest,
        size: call.size,
        media_type: call.media_type,
        upstream: call.upstream,
    };
    let lease = call.lease_id.as_deref();
    match target.kind {
        ObjectKind::Blob => control.cache.record_blob(&target.resolved, object, lease).await?,
        ObjectKind::Manifest => {
            let references = &call.references;
            control
                .cache
                .record_manifest(&target.resolved, &target.reference, object, references, lease)
                .await?
        }
    }
    Ok(render::no_content())
}

/// The fill of the object got 404 from upstream: the requests for it within the group's
/// `negative_ttl` are answered 404 without asking upstream again.
fn not_found(control: &ControlPlane, target: &Target, bytes: &[u8]) -> Result<Response, ControlError> {
    let call: NotFoundReport = parse(bytes)?;
    check_version_and_kind(call.v, call.kind, target.kind)?;
    control.cache.fill_not_found(&target.resolved, target.kind, &target.reference);
    Ok(render::no_content())
}

/// A held fill's bytes are verified (or arriving, their digest known): may its clients have them?
/// The group's admission hook decides (or a verdict it gave before); a refusal says why.
async fn verdict(control: &ControlPlane, target: &Target, bytes: &[u8]) -> Result<Response, ControlError> {
    let call: VerdictRequest = parse(bytes)?;
    check_version_and_kind(call.v, call.kind, target.kind)?;
    if let Reference::Digest(expected) = &target.reference
        && &call.digest != expected
    {
        return Err(ControlError::BadUploadCall(format!(
            "verdict on {} asked on the path of {expected}",
            call.digest
        )));
    }
    // The hook is told where the bytes come from: one of the group's upstreams.
    check_upstream(target, &call.upstream)?;
    let object = StoredObject {
        digest: call.digest,
        size: call.size,
        media_type: call.media_type,
        upstream: call.upstream,
    };
    let admission =
        control.cache.admit_fill(&target.resolved, target.kind, &target.reference, &object).await?;
    let reason = if admission.allow {
        String::new()
    } else {
        admission::refused_fill(&target.resolved, &target.reference, &object.digest, &admission.reason);
        admission::refusal_message(
            &target.resolved,
            &target.reference,
            &object.digest,
            &admission.reason,
            admission.by,
        )
    };
    render::contract_message(&Verdict { v: CONTRACT_VERSION, allow: admission.allow, reason })
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ControlError::BadUploadCall(format!("invalid body: {error}")))
}

fn check_version_and_kind(version: u32, called: ObjectKind, path: ObjectKind) -> Result<(), ControlError> {
    if version != CONTRACT_VERSION {
        return Err(ControlError::BadUploadCall(format!("contract version {version} is not supported")));
    }
    if called != path {
        return Err(ControlError::BadUploadCall(format!(
            "a {} call on a {} path",
            called.as_str(),
            path.as_str()
        )));
    }
    Ok(())
}

/// An upload call names the upstream that served: it must be one of the group's.
fn check_upstream(target: &Target, upstream: &str) -> Result<(), ControlError> {
    if target.resolved.group.upstreams.get(upstream).is_none() {
        return Err(ControlError::BadUploadCall(format!(
            "upstream {upstream:?} is not one of group {}'s upstreams",
            target.resolved.group.path
        )));
    }
    Ok(())
}
