//! The OCI format: the distribution API's pull endpoints. The path is parsed by
//! [`oci::parse_v2_path`], the image address resolved to a group, the caller authorized, the
//! group's `allow`/`deny` rules applied to what it names, the manifest or blob decided by the
//! cache's domain (a manifest held back by the group's admission hook until it allows it) and
//! rendered as [`SERVING`] says; referrers lists are cached documents the control plane answers
//! itself (`referrers`); tag lists pass through; `/v2/token` is the docker token flow's endpoint. What the gateway
//! must know of OCI is declared here, in the injector or in the path rules it is given.

use axum::extract::Request;
use axum::response::Response;
use cache::{Fetch, StoredObject};
use http::Method;
use injector::{Accept, Delivery, References, VerifiedRequest};
use oci::{Endpoint, ErrorCode, ObjectKind, OciError, Reference};

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::render::{FillRules, HitRules, Serving};
use crate::{admission, authorize, passthrough, referrers, render, token_endpoint};

/// Where clients POST the token form (the gateway forwards its body).
pub(crate) const TOKEN_PATH: &str = "/v2/token";

/// How OCI objects are served.
const SERVING: Serving = Serving { hit, fill };

/// Every answer carries the API version; the digest goes in `Docker-Content-Digest`. Object
/// storage may serve a blob itself, never a manifest: that comes with our headers.
fn hit(object: &StoredObject) -> HitRules {
    HitRules {
        headers: api_version(),
        digest_header: Some(oci::CONTENT_DIGEST_HEADER),
        may_redirect: !oci::media::is_manifest_type(&object.media_type),
    }
}

/// A blob streams as it arrives; a manifest is answered once verified, with the digest of
/// exactly those bytes (a tag's is only known at the end), and its references are reported for
/// pins and purges. A manifest by tag has no digest to check: only a manifest type is taken.
fn fill(fetch: &Fetch) -> FillRules {
    let manifest = fetch.kind == ObjectKind::Manifest;
    FillRules {
        headers: api_version(),
        digest_header: Some(oci::CONTENT_DIGEST_HEADER),
        delivery: if manifest { Delivery::Verified } else { Delivery::Streamed },
        accept: (manifest && fetch.verify.is_none()).then(|| Accept {
            types: oci::media::MANIFEST_TYPES.iter().map(|media_type| (*media_type).to_owned()).collect(),
            what: "a manifest".to_owned(),
        }),
        // A blob is opaque bytes; a manifest's type cannot be guessed (and finalize refuses a
        // type that is not a manifest's).
        default_media_type: if manifest { "" } else { oci::media::OCTET_STREAM },
        references: manifest.then_some(References::OciManifest),
        object: fill_object(fetch.first_url()),
    }
}

fn api_version() -> injector::HeaderList {
    vec![(oci::API_VERSION_HEADER.to_owned(), oci::API_VERSION.to_owned())]
}

/// The repository and reference an object URL `<base>/v2/<repository>/(manifests|blobs)/<reference>`
/// names as upstream names them — `library/alpine:3.20`, `library/alpine@sha256:…` — never with
/// its query (presigned parts).
fn fill_object(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    path.split_once("/v2/")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.rsplit_once("/manifests/").or_else(|| rest.rsplit_once("/blobs/")))
        .map(|(repository, reference)| {
            let separator = if reference.contains(':') { '@' } else { ':' };
            format!("{repository}{separator}{reference}")
        })
        .unwrap_or_default()
}

/// The image and reference (or digest) a `/v2/` path names, for the gateway's access log. Cut by
/// the path's shape, not parsed: the control plane validates the names of what it answers, and
/// anything else is client text.
pub(crate) fn describe_path(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix("/v2/")?;
    if let Some(image) = rest.strip_suffix("/tags/list") {
        return Some((image, "tags/list".to_owned()));
    }
    let (before, last) = rest.rsplit_once('/')?;
    [("/manifests", ""), ("/blobs", ""), ("/referrers", "referrers/")].into_iter().find_map(
        |(endpoint, prefix)| {
            let image = before.strip_suffix(endpoint).filter(|image| !image.is_empty())?;
            (!last.is_empty()).then(|| (image, format!("{prefix}{last}")))
        },
    )
}

/// A request under `/v2/`.
pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
) -> Result<Response, ControlError> {
    let endpoint = oci::parse_v2_path(request.uri().path())?;
    let caller = Caller::from_headers(request.headers(), &control.trusted_proxies);
    let method = request.method().clone();
    let head = method == Method::HEAD;
    let uri = request.uri();
    let query = uri.query();
    match endpoint {
        Endpoint::Token => {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, token_endpoint::MAX_FORM).await.map_err(|_| {
                OciError::new(ErrorCode::Unsupported, "the token request is too large")
                    .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
            })?;
            // The form carries credentials: it must be the one the gateway signed.
            verified.check_body(&body).map_err(ControlError::Unauthenticated)?;
            Box::pin(token_endpoint::handle(control, &parts.method, &parts.uri, &body, caller)).await
        }
        _ if method != Method::GET && !head => Err(OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported here: depproxy is a pull-through cache"),
        )
        .into()),
        Endpoint::Base => {
            authorize::base(control, &caller).await?;
            Ok(render::base())
        }
        Endpoint::Manifest { image, reference } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            let tag = match &reference {
                Reference::Tag(tag) => Some(tag.as_str()),
                Reference::Digest(_) => None,
            };
            authorize::rules(control, &caller, &resolved, tag)?;
            let decision = match &caller.refetch {
                // The gateway could not read what the first answer served.
                Some(unreadable) => {
                    Box::pin(control.cache.refetch_manifest(&resolved, &reference, unreadable)).await
                }
                None => control.cache.manifest(&resolved, &reference, head).await,
            };
            let decision = decision.map_err(|error| {
                admission::refused_request(control, &caller, &resolved, &reference, error)
            })?;
            Ok(render::decision(decision, &SERVING, uri, resolved.group.path.as_str(), caller.address))
        }
        Endpoint::Blob { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            authorize::rules(control, &caller, &resolved, None)?;
            let decision = match &caller.refetch {
                Some(unreadable) => {
                    Box::pin(control.cache.refetch_blob(&resolved, &digest, unreadable)).await?
                }
                None => control.cache.blob(&resolved, &digest, head).await?,
            };
            Ok(render::decision(decision, &SERVING, uri, resolved.group.path.as_str(), caller.address))
        }
        Endpoint::TagsList { image } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            authorize::rules(control, &caller, &resolved, None)?;
            Box::pin(passthrough::tags_list(&resolved, uri)).await
        }
        Endpoint::Referrers { image, digest } => {
            let resolved = control.cache.resolve(&image, query)?;
            authorize::pull(control, &caller, &resolved.group, &image, query).await?;
            authorize::rules(control, &caller, &resolved, None)?;
            Box::pin(referrers::referrers(control, &resolved, &digest, uri)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_describe_their_object_without_query() {
        assert_eq!(
            fill_object(
                "https://registry-1.docker.io/v2/library/alpine/blobs/sha256:ab?X-Amz-Signature=s3cret"
            ),
            "library/alpine@sha256:ab"
        );
        assert_eq!(fill_object("http://lab:5000/v2/a/b/manifests/v1"), "a/b:v1");
    }

    #[test]
    fn paths_are_described_by_image_and_reference() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let described =
            |path: &str| describe_path(path).map(|(image, reference)| (image.to_owned(), reference));
        assert_eq!(
            described("/v2/library/alpine/manifests/3.20"),
            Some(("library/alpine".to_owned(), "3.20".to_owned()))
        );
        assert_eq!(
            described(&format!("/v2/acme/dependency_proxy/containers/app/blobs/{digest}")),
            Some(("acme/dependency_proxy/containers/app".to_owned(), digest.clone()))
        );
        assert_eq!(
            described(&format!("/v2/a/manifests/x/referrers/{digest}")),
            Some(("a/manifests/x".to_owned(), format!("referrers/{digest}")))
        );
        assert_eq!(described("/v2/a/b/tags/list"), Some(("a/b".to_owned(), "tags/list".to_owned())));
        assert_eq!(described("/v2/"), None);
        assert_eq!(described("/v2/manifests/x"), None);
        assert_eq!(described(&format!("/{}", "x".repeat(500))), None);
    }

    fn fetch(kind: ObjectKind, verify: Option<injector::Checksum>) -> Fetch {
        Fetch {
            kind,
            sources: vec![cache::FetchSource {
                upstream: "lab".into(),
                url: "https://up.example/v2/a/manifests/v1".into(),
                headers: http::HeaderMap::new(),
            }],
            verify,
            max_size: 10,
            fill_key: "k".into(),
            hold: None,
        }
    }

    #[test]
    fn the_gateway_is_told_how_oci_objects_are_served() {
        let by_tag = fill(&fetch(ObjectKind::Manifest, None));
        assert_eq!(by_tag.delivery, Delivery::Verified, "a manifest is answered once verified");
        let accept = by_tag.accept.unwrap();
        assert!(
            accept.accepts(oci::media::OCI_INDEX) && accept.accepts(oci::media::DOCKER_MANIFEST_V1_SIGNED)
        );
        assert!(!accept.accepts("application/json"));
        assert_eq!((by_tag.default_media_type, by_tag.references), ("", Some(References::OciManifest)));
        assert_eq!(by_tag.object, "a:v1");
        let digest = injector::Checksum::from(&oci::Digest::of(b"m"));
        assert!(
            fill(&fetch(ObjectKind::Manifest, Some(digest.clone()))).accept.is_none(),
            "a digest checks it"
        );
        let blob = fill(&fetch(ObjectKind::Blob, Some(digest)));
        assert_eq!((blob.delivery, blob.default_media_type), (Delivery::Streamed, oci::media::OCTET_STREAM));
        assert_eq!((blob.accept, blob.references), (None, None));
        for headers in [&blob.headers, &by_tag.headers] {
            assert_eq!(headers, &vec![(oci::API_VERSION_HEADER.to_owned(), oci::API_VERSION.to_owned())]);
        }
        let object = |media_type: &str| StoredObject {
            digest: oci::Digest::of(b"x"),
            size: 1,
            media_type: media_type.to_owned(),
            upstream: String::new(),
        };
        assert!(!hit(&object(oci::media::OCI_MANIFEST)).may_redirect, "a manifest comes with our headers");
        assert!(hit(&object(oci::media::OCTET_STREAM)).may_redirect);
        assert_eq!(hit(&object(oci::media::OCTET_STREAM)).digest_header, Some(oci::CONTENT_DIGEST_HEADER));
    }
}
