//! What the package formats (npm, PyPI) share in the control plane: a request under
//! `/<format>/<group path>/` is authorized for its group, named by its format as a document or a
//! file, checked against the group's rules, decided by the cache and rendered — a document
//! through the transform that makes its URLs name the proxy, for the client that asked. The
//! gateway's upload calls for them are recorded here too. What a path names and how a document's
//! file URLs map to paths are each format's ([`PackageFormat`]).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use cache::{
    CacheError, Decision, DocumentRequest, Fetch, Format, GroupSettings, PackageNotFound, PackageSubject,
    StoredObject,
};
use http::{HeaderValue, Method, StatusCode, Uri};
use injector::{
    Accept, Authorization, AuthorizeRequest, CONTRACT_VERSION, Delivery, ErrorShape, FinalizeRequest,
    ListedFile, NotFoundReport, References, Replace, UploadDecision, UploadStage, Verdict, VerdictRequest,
    VerifiedRequest,
};
use metadata::FileListing;
use oci::ObjectKind;
use upstream::{PackageDocument, UpstreamClient, UpstreamError};

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::render::{self, FillRules, HitRules, Serving};
use crate::{authorize, passthrough};

/// What a request path under a package group names, as its format reads it.
pub(crate) enum Target {
    /// A document listing a package's files.
    Document { document: DocumentRequest, name: String },
    /// A file a document lists: `path` under the group; `document` lists it.
    File { path: String, document: DocumentRequest, name: String, version: Option<String> },
    /// A request passed through to the upstream uncached (npm's ping, audit, dist-tags).
    PassThrough { upstream_path: String, max_body: usize },
    /// Answered here: `npm whoami` (the token's name), PyPI's root listing (404).
    Local(Response),
}

/// What a format reads a path under a group as: `rest` (the path after the group, without its
/// `/`), the query, the request's headers, and the caller's token name (for `whoami`).
pub(crate) type TargetOf = fn(
    rest: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    who: Option<&str>,
) -> Result<Target, ControlError>;

/// One package format's knowledge, as the shared flow needs it.
pub(crate) struct PackageFormat {
    pub format: Format,
    /// What `rest` (the path after the group, without its `/`) names, for a request with these
    /// headers by this caller (its token's name, for `whoami`). A bad path is a
    /// [`ControlError::BadPackageRequest`].
    pub target: TargetOf,
    /// The path under the group of a file a document lists, as `upstream` published it in the
    /// document at `document_url`; `None` for a file outside the upstream's URLs (not proxied).
    pub file_path: fn(upstream: &UpstreamClient, document_url: &str, url: &str) -> Option<String>,
    /// How its documents' files are read at finalize.
    pub references: References,
    /// How its clients read an error the gateway answers itself.
    pub errors: ErrorShape,
    /// The content types a document may have.
    pub document_types: &'static [&'static str],
    /// The media type of a document whose upstream declares none.
    pub document_default_type: &'static str,
    /// Replacements a group's documents need besides each upstream's URL → the group's address
    /// (`client`, e.g. `http://proxy:5000/pypi/python`): PyPI's `files_url`, and links relative
    /// to the upstream's root.
    pub extra_replacements: fn(upstream: &UpstreamClient, client: &str) -> Vec<Replace>,
}

/// How long a file whose document is finishing its fill waits for the document's record.
const LISTING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How package objects are served: no format headers; never a redirect to storage (a document
/// comes through the transform; a file is small).
const SERVING: Serving = Serving { hit, fill };

fn hit(_: &StoredObject) -> HitRules {
    HitRules { headers: Vec::new(), digest_header: None, may_redirect: false }
}

/// A file streams as it arrives, verified against the checksum its document published; a
/// document streams too (the client's answer is its bytes, rewritten), and its files are read
/// at finalize. The document rules are filled in by [`serve`]: `Fetch` does not know the format.
fn fill(fetch: &Fetch) -> FillRules {
    FillRules {
        headers: Vec::new(),
        digest_header: None,
        delivery: Delivery::Streamed,
        accept: None,
        default_media_type: oci::media::OCTET_STREAM,
        references: None,
        object: fetch.first_url().rsplit('/').next().unwrap_or_default().to_owned(),
    }
}

/// Handles a request under `/<format>/…`, answering errors in the format's own shape.
pub(crate) async fn decide(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
    format: &PackageFormat,
) -> Result<Response, ControlError> {
    let path = request.uri().path().to_owned();
    let what = || format.format.package_path(&path).map_or_else(|| path.clone(), |(_, rest)| rest.to_owned());
    handle(control, request, verified, format).await.map_err(|error| {
        let error = match error {
            ControlError::Cache(CacheError::Upstream(UpstreamError::NotFound(_)))
            | ControlError::Upstream(UpstreamError::NotFound(_)) => {
                ControlError::PackageNotFound { what: what(), remembered: None }
            }
            ControlError::Cache(CacheError::NotFoundRemembered { window, .. }) => {
                ControlError::PackageNotFound { what: what(), remembered: Some(window) }
            }
            other => other,
        };
        ControlError::InFormat { format: format.format, error: Box::new(error) }
    })
}

async fn handle(
    control: &ControlPlane,
    request: Request,
    verified: &VerifiedRequest,
    format: &PackageFormat,
) -> Result<Response, ControlError> {
    let path = request.uri().path().to_owned();
    let (group_path, rest) = format.format.package_path(&path).ok_or_else(|| no_such_group(&path))?;
    let group = control.cache.package_group(format.format, group_path)?;
    let caller = Caller::from_headers(request.headers(), &control.trusted_proxies);
    let who = authorize::package(control, &caller, &group).await?;
    let method = request.method().clone();
    let target = (format.target)(rest, request.uri().query(), request.headers(), who.as_deref())?;
    let head = method == Method::HEAD;
    let read_only = || {
        if method == Method::GET || head {
            Ok(())
        } else {
            Err(ControlError::BadPackageRequest(format!(
                "{method} is not supported here: depproxy is a pull-through cache"
            )))
        }
    };
    let client = client_base(control, &caller, format.format, &group);
    match target {
        Target::Local(response) => Ok(response),
        Target::PassThrough { upstream_path, max_body } => {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, max_body).await.map_err(|_| {
                ControlError::BadPackageRequest(format!("the request body is over {max_body} bytes"))
            })?;
            if !body.is_empty() {
                verified.check_body(&body).map_err(ControlError::Unauthenticated)?;
            }
            Box::pin(passthrough::package(
                &group,
                &parts.method,
                &upstream_path,
                parts.uri.query(),
                &parts.headers,
                body,
            ))
            .await
        }
        Target::Document { document, name } => {
            read_only()?;
            authorize::package_rules(control, &caller, &group, &name, None)?;
            let decision = control.cache.package_document(&group, &document, head).await?;
            Ok(serve(format, decision, &path, &document, &group, &caller, &client, true))
        }
        Target::File { path: file_path, document, name, version } => {
            read_only()?;
            authorize::package_rules(control, &caller, &group, &name, version.as_deref())?;
            let record = match control.cache.package_file(&group, &file_path).await {
                Some(record) => record,
                None => {
                    // Its document may be finishing its fill: its record lists the file.
                    control.cache.listing_settled(&group, &document.package, LISTING_WAIT).await;
                    match control.cache.package_file(&group, &file_path).await {
                        Some(record) => record,
                        None => {
                            Box::pin(read_listing(control, format, &group, &document)).await?;
                            control
                                .cache
                                .package_file(&group, &file_path)
                                .await
                                .ok_or_else(|| not_listed(&file_path))?
                        }
                    }
                }
            };
            let decision = control.cache.file_decision(&group, &record, head)?;
            let subject = PackageSubject { name: &name, version: version.as_deref() };
            let decision = control.cache.screen_package_file(&group, subject, decision).await?;
            Ok(serve(format, decision, &path, &document, &group, &caller, &client, false))
        }
    }
}

fn no_such_group(path: &str) -> ControlError {
    ControlError::BadPackageRequest(format!("no package group at {path}"))
}

/// A file no document of its package lists: the upstream does not publish it.
fn not_listed(path: &str) -> ControlError {
    ControlError::NotListed(path.to_owned())
}

/// Reads a package's document from the upstream for the files it lists.
async fn read_listing(
    control: &ControlPlane,
    format: &PackageFormat,
    group: &GroupSettings,
    document: &DocumentRequest,
) -> Result<(), ControlError> {
    let file_path = format.file_path;
    let list = move |upstream: &UpstreamClient, read: &PackageDocument| -> Vec<FileListing> {
        let files = listed_in(format.references, read);
        listings(upstream, &read.url, &files, file_path)
    };
    control.cache.read_listing(group, document, &list).await?;
    Ok(())
}

/// The files a document the control plane read lists (the gateway reads those it stores by the
/// same rule).
fn listed_in(rule: References, document: &PackageDocument) -> Vec<ListedFile> {
    let media_type = document.content_type.as_deref().unwrap_or_default();
    injector::listed_files(rule, &document.body, media_type)
}

/// The listings of `files` a document at `document_url` of `upstream` lists, as paths under the
/// group.
fn listings(
    upstream: &UpstreamClient,
    document_url: &str,
    files: &[ListedFile],
    file_path: fn(&UpstreamClient, &str, &str) -> Option<String>,
) -> Vec<FileListing> {
    files
        .iter()
        .filter_map(|file| {
            let path = file_path(upstream, document_url, &file.url)?;
            let url = url::Url::parse(document_url).ok()?.join(&file.url).ok()?.to_string();
            let (algorithm, checksum) = match &file.checksum {
                Some(checksum) => (checksum.algorithm().as_str().to_owned(), checksum.hex().to_owned()),
                None => (String::new(), String::new()),
            };
            Some(FileListing { path, version: file.version.clone(), algorithm, checksum, url })
        })
        .collect()
}

/// `http://proxy:5000/npm/js`: where the client reached this group (`public_url`, or the host it
/// asked), without a trailing `/`.
fn client_base(control: &ControlPlane, caller: &Caller, format: Format, group: &GroupSettings) -> String {
    let forwarded = caller.base_url();
    let base = control.public_url.as_deref().or(forwarded.as_deref()).unwrap_or("");
    format!("{base}/{format}/{}", group.path)
}

/// The replacements that make a group's documents name the proxy: each upstream's URL → the
/// group's address for this client, and what else the format needs (PyPI's `files_url`, links
/// relative to the upstream's root).
fn transform(format: &PackageFormat, group: &GroupSettings, client: &str) -> Vec<Replace> {
    let mut replacements = Vec::new();
    for upstream in group.upstreams.iter() {
        replacements.extend((format.extra_replacements)(upstream, client));
        replacements.push(Replace {
            from: format!("{}/", upstream.url().as_str().trim_end_matches('/')),
            to: format!("{client}/"),
        });
    }
    replacements
}

#[allow(clippy::too_many_arguments)]
fn serve(
    format: &PackageFormat,
    decision: Decision,
    path: &str,
    document: &DocumentRequest,
    group: &GroupSettings,
    caller: &Caller,
    client: &str,
    is_document: bool,
) -> Response {
    // A document's upload calls name its variant: the path alone does not say which was asked.
    let uri: Uri = if is_document {
        format!("{path}?variant={}", document.variant).parse().unwrap_or_default()
    } else {
        path.parse().unwrap_or_default()
    };
    let transform = if is_document { transform(format, group, client) } else { Vec::new() };
    let mut response =
        render::rewritten(decision, &SERVING, &uri, group.path.as_str(), caller.address, transform);
    if let Some(injector::Injector::SendDependency(send)) =
        response.extensions_mut().get_mut::<injector::Injector>()
    {
        send.errors = format.errors;
    }
    if !is_document {
        return response;
    }
    // A document's answer depends on `Accept` (full or abbreviated, HTML or JSON).
    let vary = ("Vary".to_owned(), "Accept".to_owned());
    match response.extensions_mut().get_mut::<injector::Injector>() {
        Some(injector::Injector::SendDependency(send)) => {
            send.accept = Some(Accept {
                types: format.document_types.iter().map(|media_type| (*media_type).to_owned()).collect(),
                what: format!("a {} document", format.format),
            });
            send.default_media_type = format.document_default_type.to_owned();
            send.references = Some(format.references);
            send.object = document.package.clone();
            send.response_headers.push(vary);
        }
        Some(injector::Injector::SendBlob(send)) => send.headers.push(vary),
        _ => {}
    }
    response
}

/// An upload call for an object under `/<format>/…`: `object_path` is the client's request
/// path, `query` its query (a document's variant).
pub(crate) async fn upload(
    control: &ControlPlane,
    format: &PackageFormat,
    object_path: &str,
    query: Option<&str>,
    stage: UploadStage,
    bytes: &[u8],
) -> Result<Response, ControlError> {
    let (group_path, rest) =
        format.format.package_path(object_path).ok_or_else(|| no_such_group(object_path))?;
    let group = control.cache.package_group(format.format, group_path)?;
    let target = (format.target)(rest, None, &http::HeaderMap::new(), None)?;
    let variant = query.and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "variant")
            .map(|(_, value)| value.into_owned())
    });
    let mut subject: Option<(String, Option<String>)> = None;
    let (kind, document, file_path) = match target {
        Target::Document { mut document, .. } => {
            // The document asked for in the variant the request named.
            if let Some(variant) = variant {
                document.variant = match variant.as_str() {
                    "full" => "full",
                    "abbreviated" => "abbreviated",
                    "html" => "html",
                    "json" => "json",
                    other => {
                        return Err(ControlError::BadUploadCall(format!(
                            "unknown document variant {other:?}"
                        )));
                    }
                };
            }
            (ObjectKind::Manifest, document, None)
        }
        Target::File { path, document, name, version } => {
            subject = Some((name, version));
            (ObjectKind::Blob, document, Some(path))
        }
        Target::PassThrough { .. } | Target::Local(_) => {
            return Err(ControlError::BadUploadCall(format!("{object_path} is not a package object")));
        }
    };
    match stage {
        UploadStage::Authorize => {
            let call: AuthorizeRequest = parse(bytes)?;
            check_call(call.v, call.kind, kind)?;
            let permit =
                control.cache.authorize_fill(call.digest.as_ref(), &call.node, call.renew.as_deref()).await?;
            let (decision, lease) = match permit {
                cache::FillPermit::Store { lease } => (UploadDecision::Store, lease),
                cache::FillPermit::Passthrough { reason } => (UploadDecision::Passthrough { reason }, None),
            };
            render::contract_message(&Authorization {
                v: CONTRACT_VERSION,
                decision,
                max_size: control.cache.limits().max_blob_size,
                lease_seconds: lease.as_ref().map(|lease| lease.ttl.as_secs().max(1)),
                lease_id: lease.map(|lease| lease.id),
            })
        }
        UploadStage::Finalize => {
            let call: FinalizeRequest = parse(bytes)?;
            check_call(call.v, call.kind, kind)?;
            if call.key != injector::storage_key(&call.digest) {
                return Err(ControlError::BadUploadCall(format!(
                    "key {:?} is not the key of {}",
                    call.key, call.digest
                )));
            }
            let Some(upstream) = group.upstreams.get(&call.upstream).cloned() else {
                return Err(ControlError::BadUploadCall(format!(
                    "upstream {:?} is not one of group {}'s upstreams",
                    call.upstream, group.path
                )));
            };
            let lease = call.lease_id.clone();
            let object = StoredObject {
                digest: call.digest,
                size: call.size,
                media_type: call.media_type,
                upstream: call.upstream,
            };
            match file_path {
                Some(path) => {
                    control.cache.record_package_file(&group, &path, object, lease.as_deref()).await?
                }
                None => {
                    let document_url = upstream.package_url(&document.upstream_path);
                    let files = listings(&upstream, &document_url, &call.files, format.file_path);
                    control
                        .cache
                        .record_package_document(&group, &document, object, lease.as_deref(), &files)
                        .await?
                }
            }
            Ok(render::no_content())
        }
        UploadStage::NotFound => {
            let call: NotFoundReport = parse(bytes)?;
            check_call(call.v, call.kind, kind)?;
            let what = match &file_path {
                Some(path) => PackageNotFound::File(path),
                None => PackageNotFound::Document(&document),
            };
            control.cache.package_fill_not_found(&group, what);
            Ok(render::no_content())
        }
        UploadStage::Verdict => {
            let call: VerdictRequest = parse(bytes)?;
            check_call(call.v, call.kind, kind)?;
            let Some((name, version)) = &subject else {
                return Err(ControlError::BadUploadCall(
                    "a package document is never held for a verdict".to_owned(),
                ));
            };
            if group.upstreams.get(&call.upstream).is_none() {
                return Err(ControlError::BadUploadCall(format!(
                    "upstream {:?} is not one of group {}'s upstreams",
                    call.upstream, group.path
                )));
            }
            let object = StoredObject {
                digest: call.digest,
                size: call.size,
                media_type: call.media_type,
                upstream: call.upstream,
            };
            let subject = PackageSubject { name, version: version.as_deref() };
            let admission = Box::pin(control.cache.admit_package_fill(&group, subject, &object)).await?;
            let reason = if admission.allow {
                String::new()
            } else {
                let what =
                    version.as_ref().map_or_else(|| name.clone(), |version| format!("{name}@{version}"));
                tracing::warn!(target: "depproxy::audit", event = "denied", group = %group.path, package = %what,
                    digest = %object.digest, reason = %admission.reason, "fill refused by the admission hook");
                format!("{what} is refused by group {}'s admission hook: {}", group.path, admission.reason)
            };
            render::contract_message(&Verdict { v: CONTRACT_VERSION, allow: admission.allow, reason })
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ControlError::BadUploadCall(format!("invalid body: {error}")))
}

fn check_call(version: u32, called: ObjectKind, path: ObjectKind) -> Result<(), ControlError> {
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

/// A small JSON answer made here.
pub(crate) fn json(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A permanent redirect to `location` (a non-normalised name to its normalised URL).
pub(crate) fn redirect(location: &str) -> Result<Response, ControlError> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let location = HeaderValue::from_str(location)
        .map_err(|_| ControlError::BadPackageRequest("the name cannot be redirected".to_owned()))?;
    response.headers_mut().insert(http::header::LOCATION, location);
    Ok(response)
}

/// An upstream client for tests of the formats' path mapping.
#[cfg(test)]
pub(crate) fn test_upstream(url: &str, files_url: Option<&str>) -> UpstreamClient {
    UpstreamClient::new(upstream::UpstreamConfig {
        name: "origin".into(),
        url: url.parse().unwrap(),
        credentials: None,
        http: upstream::HttpOptions {
            connect_timeout: std::time::Duration::from_secs(1),
            header_timeout: std::time::Duration::from_secs(1),
            extra_ca_pem: Vec::new(),
            redirect_allow: Vec::new(),
            realm_allow: Vec::new(),
            proxy: None,
        },
        metrics: upstream::UpstreamMetrics::default(),
        files_url: files_url.map(|url| url.parse().unwrap()),
    })
    .unwrap()
}
