//! The gateway's upload calls: `…/upload/authorize` (may this object be stored?) and `…/upload`
//! (it is stored and verified: record it). Each checks the call against the request path it is
//! made for, so a gateway bug cannot file an object under the wrong name.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use injector::{
    Authorization, AuthorizeRequest, CONTRACT_CONTENT_TYPE, CONTRACT_VERSION, FinalizeRequest, UploadDecision,
};
use metadata::{BlobRecord, ManifestRecord};
use oci::{ObjectKind, Reference, UploadStage};

use crate::ControlPlane;
use crate::decide::storage_key;
use crate::error::ControlError;
use crate::groups::Resolved;

/// Upload call bodies are small JSON documents.
const MAX_CALL_BODY: usize = 64 * 1024;

pub(crate) async fn handle(
    control: &ControlPlane,
    resolved: &Resolved,
    kind: ObjectKind,
    reference: &Reference,
    stage: UploadStage,
    body: Body,
) -> Result<Response, ControlError> {
    let group = &resolved.group;
    let bytes = axum::body::to_bytes(body, MAX_CALL_BODY)
        .await
        .map_err(|error| ControlError::BadUploadCall(format!("unreadable body: {error}")))?;
    let max_size = match kind {
        ObjectKind::Blob => control.settings.max_blob_size,
        ObjectKind::Manifest => control.settings.max_manifest_size,
    };
    match stage {
        UploadStage::Authorize => {
            let call: AuthorizeRequest = parse(&bytes)?;
            check_version_and_kind(call.v, call.kind, kind)?;
            if let (Some(digest), Reference::Digest(expected)) = (&call.digest, reference)
                && digest != expected
            {
                return Err(ControlError::BadUploadCall(format!(
                    "authorize for {digest} on the path of {expected}"
                )));
            }
            let answer = match &call.digest {
                // Tag manifests have no digest yet: small, and nothing to coordinate on.
                None => authorization(UploadDecision::Store, max_size, None, 0),
                Some(digest) if control.settings.coordinate_fills => {
                    lease(control, digest, &call, max_size).await?
                }
                Some(_) => authorization(UploadDecision::Store, max_size, None, 0),
            };
            json_response(&answer)
        }
        UploadStage::Finalize => {
            let call: FinalizeRequest = parse(&bytes)?;
            check_version_and_kind(call.v, call.kind, kind)?;
            if let Reference::Digest(expected) = reference
                && &call.digest != expected
            {
                return Err(ControlError::BadUploadCall(format!(
                    "finalize of {} on the path of {expected}",
                    call.digest
                )));
            }
            if call.key != storage_key(&call.digest) {
                return Err(ControlError::BadUploadCall(format!(
                    "key {:?} is not the key of {}",
                    call.key, call.digest
                )));
            }
            if call.size > max_size {
                return Err(ControlError::BadUploadCall(format!(
                    "{} bytes exceed the limit of {max_size}",
                    call.size
                )));
            }
            let now = control.clock.now_ms();
            let group_path = group.path.as_str();
            if let Some(lease_id) = &call.lease_id {
                control.catalog.metadata().release_lease(&call.digest, lease_id).await?;
            }
            match kind {
                ObjectKind::Blob => {
                    let record =
                        BlobRecord { digest: call.digest, size: call.size, media_type: call.media_type };
                    control.catalog.upsert_blob(group_path, &record, now).await?;
                }
                ObjectKind::Manifest => {
                    if !oci::media::is_manifest_type(&call.media_type) {
                        return Err(ControlError::BadUploadCall(format!(
                            "upstream sent {:?}, which is not a manifest media type",
                            call.media_type
                        )));
                    }
                    let repository = group.upstream.upstream_repository(&resolved.image);
                    let record = ManifestRecord {
                        digest: call.digest.clone(),
                        media_type: call.media_type,
                        size: call.size,
                        checked_at: now,
                        stored: true,
                    };
                    let digest_reference = call.digest.to_string();
                    control
                        .catalog
                        .upsert_manifest(group_path, repository.as_str(), &digest_reference, &record, now)
                        .await?;
                    if let Reference::Tag(tag) = reference {
                        control
                            .catalog
                            .upsert_manifest(group_path, repository.as_str(), tag.as_str(), &record, now)
                            .await?;
                    }
                }
            }
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
    }
}

/// One fill per object across nodes: the first gateway to ask gets an expiring lease and stores;
/// others are told to stream through uncached until it commits or its lease expires.
async fn lease(
    control: &ControlPlane,
    digest: &oci::Digest,
    call: &AuthorizeRequest,
    max_size: u64,
) -> Result<Authorization, ControlError> {
    let ttl = control.settings.lease_ttl;
    let ttl_ms = ttl.as_millis() as i64;
    let now = control.clock.now_ms();
    let (held, lease_id) = match &call.renew {
        Some(lease_id) => {
            (control.catalog.metadata().renew_lease(digest, lease_id, now, ttl_ms).await?, lease_id.clone())
        }
        None => {
            let lease_id = uuid::Uuid::new_v4().to_string();
            (
                control.catalog.metadata().acquire_lease(digest, &call.node, &lease_id, now, ttl_ms).await?,
                lease_id,
            )
        }
    };
    if held {
        return Ok(authorization(UploadDecision::Store, max_size, Some(lease_id), ttl.as_secs().max(1)));
    }
    let reason = format!("another node is filling {digest}");
    Ok(authorization(UploadDecision::Passthrough { reason }, max_size, None, 0))
}

fn authorization(
    decision: UploadDecision,
    max_size: u64,
    lease_id: Option<String>,
    lease_seconds: u64,
) -> Authorization {
    Authorization {
        v: CONTRACT_VERSION,
        decision,
        max_size,
        lease_seconds: lease_id.as_ref().map(|_| lease_seconds),
        lease_id,
    }
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

fn json_response<T: serde::Serialize>(value: &T) -> Result<Response, ControlError> {
    let body = serde_json::to_vec(value).map_err(|error| ControlError::BadUploadCall(error.to_string()))?;
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(CONTRACT_CONTENT_TYPE));
    Ok(response)
}
