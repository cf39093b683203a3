//! Hit or miss: the decision for manifest and blob requests.
//!
//! - cached (and, for a tag, fresh or confirmed by a HEAD) → `send-blob`;
//! - not cached, GET → `send-dependency` with the upstream URL and credentials;
//! - not cached, HEAD → one upstream HEAD answered directly (a HEAD never starts a fill);
//! - a stale tag whose upstream is down → the cached copy with a `Warning` header.

use axum::body::Body;
use axum::response::Response;
use http::Uri;
use injector::{CONTRACT_VERSION, Injector, SendBlob, SendDependency, UploadRoutes};
use metadata::ManifestRecord;
use oci::{Digest, ObjectKind, Reference, RepositoryName};
use upstream::{ObjectHead, UpstreamError};

use crate::ControlPlane;
use crate::error::ControlError;
use crate::groups::{GroupSettings, Resolved};

/// The `Warning` a client gets with a tag served stale because upstream is unreachable.
const STALE_WARNING: &str = "110 depproxy \"Response is Stale: upstream unreachable\"";

pub(crate) async fn blob(
    control: &ControlPlane,
    resolved: &Resolved,
    digest: &Digest,
    head: bool,
    uri: &Uri,
) -> Result<Response, ControlError> {
    let group = &resolved.group;
    if let Some(record) = control.catalog.find_blob(group.path.as_str(), digest).await? {
        return send_blob_response(&record.digest, record.size, &record.media_type, Vec::new());
    }
    let repository = group.upstream.upstream_repository(&resolved.image);
    if head {
        let answer = group.upstream.head(&repository, ObjectKind::Blob, &digest.to_string()).await?;
        return Ok(head_response(&answer, Some(digest)));
    }
    send_dependency_response(
        control,
        group,
        ObjectKind::Blob,
        &repository,
        &digest.to_string(),
        Some(digest),
        uri,
    )
    .await
}

pub(crate) async fn manifest(
    control: &ControlPlane,
    resolved: &Resolved,
    reference: &Reference,
    head: bool,
    uri: &Uri,
) -> Result<Response, ControlError> {
    let group = &resolved.group;
    let repository = group.upstream.upstream_repository(&resolved.image);
    let group_path = group.path.as_str();
    let reference_text = reference.to_string();
    let cached = control.catalog.find_manifest(group_path, repository.as_str(), &reference_text).await?;
    match (reference, cached) {
        // Digest references are immutable: a cached one never needs upstream.
        (Reference::Digest(_), Some(record)) => serve_manifest(&record, Vec::new()),
        (Reference::Tag(_), Some(record)) => {
            let age_ms = control.clock.now_ms().saturating_sub(record.checked_at);
            if age_ms < group.manifest_recheck.as_millis() as i64 {
                return serve_tag(control, group, &repository, &record, Vec::new(), head, uri).await;
            }
            revalidate_tag(control, group, &repository, &reference_text, record, head, uri).await
        }
        (_, None) if head => {
            let answer = group.upstream.head(&repository, ObjectKind::Manifest, &reference_text).await?;
            // containerd resolves a tag with HEAD, then GETs the digest. Remember where the tag
            // points, so the next resolve costs no upstream request and works while upstream is down.
            if let (Reference::Tag(tag), Some(digest), Some(media_type), Some(size)) =
                (reference, &answer.digest, &answer.media_type, answer.size)
                && oci::media::is_manifest_type(media_type)
            {
                let now = control.clock.now_ms();
                let record = ManifestRecord {
                    digest: digest.clone(),
                    media_type: media_type.clone(),
                    size,
                    checked_at: now,
                    stored: false,
                };
                control
                    .catalog
                    .upsert_manifest(group_path, repository.as_str(), tag.as_str(), &record, now)
                    .await?;
            }
            Ok(head_response(&answer, reference.as_digest()))
        }
        (_, None) => {
            send_dependency_response(
                control,
                group,
                ObjectKind::Manifest,
                &repository,
                &reference_text,
                reference.as_digest(),
                uri,
            )
            .await
        }
    }
}

/// A cached tag is older than the recheck interval: one HEAD decides whether it moved.
async fn revalidate_tag(
    control: &ControlPlane,
    group: &GroupSettings,
    repository: &RepositoryName,
    tag: &str,
    cached: ManifestRecord,
    head: bool,
    uri: &Uri,
) -> Result<Response, ControlError> {
    let group_path = group.path.as_str();
    let now = control.clock.now_ms();
    let key = (group_path.to_owned(), repository.to_string(), tag.to_owned());
    let timeout = control.settings.recheck_timeout;
    let recheck = group.manifest_recheck.as_millis() as i64;
    let answer = control
        .rechecks
        .run(key, || async {
            // A request that read the stale row just before another recheck finished must not
            // send a second HEAD: look again first.
            if let Ok(Some(current)) =
                control.catalog.metadata().find_manifest(group_path, repository.as_str(), tag).await
                && control.clock.now_ms().saturating_sub(current.checked_at) < recheck
            {
                return Ok(ObjectHead {
                    digest: Some(current.digest),
                    media_type: Some(current.media_type),
                    size: Some(current.size),
                });
            }
            match tokio::time::timeout(timeout, group.upstream.head(repository, ObjectKind::Manifest, tag))
                .await
            {
                Ok(answer) => answer,
                Err(_) => Err(UpstreamError::Timeout(format!("tag recheck took over {timeout:?}"))),
            }
        })
        .await;
    match answer {
        Ok(ObjectHead { digest: Some(digest), .. }) if digest == cached.digest => {
            control.catalog.mark_manifest_checked(group_path, repository.as_str(), tag, now).await?;
            serve_tag(control, group, repository, &cached, Vec::new(), head, uri).await
        }
        Ok(answer) => {
            // The tag moved (or upstream did not say where): use the new digest if we hold it.
            if let Some(digest) = &answer.digest
                && let Some(known) = control
                    .catalog
                    .find_manifest(group_path, repository.as_str(), &digest.to_string())
                    .await?
            {
                let record = ManifestRecord { checked_at: now, ..known };
                control.catalog.upsert_manifest(group_path, repository.as_str(), tag, &record, now).await?;
                return serve_manifest(&record, Vec::new());
            }
            if head {
                return Ok(head_response(&answer, None));
            }
            send_dependency_response(control, group, ObjectKind::Manifest, repository, tag, None, uri).await
        }
        Err(error) if error.is_outage() => {
            tracing::warn!(group = group_path, repository = %repository, tag, %error,
                "upstream unavailable; serving cached tag stale");
            let warning = vec![("Warning".to_owned(), STALE_WARNING.to_owned())];
            serve_tag(control, group, repository, &cached, warning, head, uri).await
        }
        Err(error) => Err(error.into()),
    }
}

/// Serves a tag's record. A HEAD needs the record only; a GET needs the manifest itself, which a
/// tag learned from a HEAD may not have cached yet: then it is fetched by digest.
async fn serve_tag(
    control: &ControlPlane,
    group: &GroupSettings,
    repository: &RepositoryName,
    record: &ManifestRecord,
    headers: Vec<(String, String)>,
    head: bool,
    uri: &Uri,
) -> Result<Response, ControlError> {
    if head || record.stored {
        return serve_manifest(record, headers);
    }
    let digest = record.digest.to_string();
    send_dependency_response(
        control,
        group,
        ObjectKind::Manifest,
        repository,
        &digest,
        Some(&record.digest),
        uri,
    )
    .await
}

fn serve_manifest(record: &ManifestRecord, headers: Vec<(String, String)>) -> Result<Response, ControlError> {
    send_blob_response(&record.digest, record.size, &record.media_type, headers)
}

fn send_blob_response(
    digest: &Digest,
    size: u64,
    media_type: &str,
    headers: Vec<(String, String)>,
) -> Result<Response, ControlError> {
    let injector = Injector::SendBlob(SendBlob {
        v: CONTRACT_VERSION,
        key: storage_key(digest),
        digest: digest.clone(),
        size,
        media_type: media_type.to_owned(),
        headers,
    });
    injector_response(&injector)
}

/// The content-addressed key the gateway stores objects under (`storage::key_for`; the control
/// plane only names keys, it never touches storage).
pub(crate) fn storage_key(digest: &Digest) -> String {
    format!("blobs/sha256/{}/{}", &digest.hex()[..2], digest.hex())
}

async fn send_dependency_response(
    control: &ControlPlane,
    group: &GroupSettings,
    kind: ObjectKind,
    repository: &RepositoryName,
    reference: &str,
    expected_digest: Option<&Digest>,
    uri: &Uri,
) -> Result<Response, ControlError> {
    let upstream = &group.upstream;
    let headers = upstream
        .request_headers(repository, kind)
        .await?
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|value| (name.to_string(), value.to_owned())))
        .collect();
    let max_size = match kind {
        ObjectKind::Blob => control.settings.max_blob_size,
        ObjectKind::Manifest => control.settings.max_manifest_size,
    };
    let query = uri.query().map(|query| format!("?{query}")).unwrap_or_default();
    let path = uri.path();
    let fill_key = match expected_digest {
        Some(digest) => format!("{}|{}", group.path, digest),
        None => format!("{}|{}|{}:{}", group.path, kind.as_str(), repository, reference),
    };
    let injector = Injector::SendDependency(SendDependency {
        v: CONTRACT_VERSION,
        kind,
        fill_key,
        url: upstream.object_url(repository, kind, reference),
        headers,
        expected_digest: expected_digest.cloned(),
        max_size,
        upload: UploadRoutes {
            authorize: format!("{path}/upload/authorize{query}"),
            finalize: format!("{path}/upload{query}"),
        },
        response_headers: Vec::new(),
    });
    injector_response(&injector)
}

fn injector_response(injector: &Injector) -> Result<Response, ControlError> {
    let value = injector.encode()?;
    let mut response = Response::new(Body::empty());
    let header = http::HeaderValue::try_from(value)
        .map_err(|_| ControlError::BadUploadCall("injector header is not a valid header value".into()))?;
    response.headers_mut().insert(injector::SEND_DATA_HEADER, header);
    Ok(response)
}

/// The answer to a HEAD of an uncached object, from upstream's HEAD.
fn head_response(answer: &ObjectHead, requested: Option<&Digest>) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    if let Some(digest) = answer.digest.as_ref().or(requested)
        && let Ok(value) = http::HeaderValue::try_from(digest.to_string())
    {
        headers.insert(oci::CONTENT_DIGEST_HEADER, value.clone());
        if let Ok(etag) = http::HeaderValue::try_from(format!("\"{digest}\"")) {
            headers.insert(http::header::ETAG, etag);
        }
    }
    let media_type = answer.media_type.as_deref().unwrap_or(oci::media::OCTET_STREAM);
    if let Ok(value) = http::HeaderValue::try_from(media_type) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    if let Some(size) = answer.size {
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(size));
    }
    headers.insert(oci::API_VERSION_HEADER, http::HeaderValue::from_static(oci::API_VERSION));
    response
}
