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
    Probe, StoredObject, UnlistedFile,
};
use http::{HeaderValue, Method, StatusCode, Uri};
use injector::{
    Accept, Authorization, AuthorizeRequest, CONTRACT_VERSION, Delivery, ErrorShape, FinalizeRequest,
    ListedFile, NotFoundReport, References, Replace, UploadDecision, UploadStage, Verdict, VerdictRequest,
    VerifiedRequest,
};
use metadata::{FileListing, FileRecord};
use oci::ObjectKind;
use upstream::{PackageDocument, UpstreamClient, UpstreamError};

use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;
use crate::render::{self, FillRules, HitRules, Serving};
use crate::{authorize, passthrough};

/// What a request path under a package group names, as its format reads it.
pub(crate) enum Target {
    /// A document listing a package's files (or its versions); `name` is what the group's rules
    /// judge (none: they judge the files it leads to, not it).
    Document { document: DocumentRequest, name: Option<String> },
    /// A file: `path` under the group, found as `listing` says, of package `name` at `version`;
    /// `judged`: the group's rules and admission hook apply (not to a checksum database's tiles).
    File { path: String, listing: Listing, name: String, version: Option<String>, judged: bool },
    /// A request passed through to the upstream uncached (npm's ping, audit, dist-tags).
    PassThrough { upstream_path: String, max_body: usize },
    /// Answered here: `npm whoami` (the token's name), PyPI's root listing (404).
    Local(Response),
    /// A checksum sidecar of the file at `file` (Maven's `.sha1`, …), in `algorithm`: answered
    /// from what is known of the file — the checksum it was verified against, or its sha256 once
    /// stored — else as `otherwise` says (fetched and kept as a file of its own).
    Checksum { file: String, algorithm: &'static str, otherwise: Box<Target> },
}

/// Where a file's listing — its upstream URL and the checksum it is verified against — comes from.
pub(crate) enum Listing {
    /// This document lists it (npm, PyPI, Cargo).
    Document(DocumentRequest),
    /// No document does: the upstreams are asked (Maven's sidecars), or nothing is published.
    Probe(Probe),
    /// The group's checksum database gives its `h1:` hash (a Go group with `verify_sumdb`).
    SumDb(crate::sumdb::SumDbLookup),
}

/// Where a file a document lists is: its path under the group and its URL upstream.
pub(crate) struct FileLocation {
    pub path: String,
    pub url: String,
}

/// What a format reads a path under a group as: `rest` (the path after the group, without its
/// `/`), the query, the request's headers, the caller's token name (for `whoami`), the group, and
/// where the client reaches the group (`http://proxy:5000/cargo/rust`, for Cargo's `config.json`;
/// empty for an upload call).
pub(crate) type TargetOf = fn(
    rest: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    who: Option<&str>,
    group: &GroupSettings,
    client: &str,
) -> Result<Target, ControlError>;

/// One package format's knowledge, as the shared flow needs it.
pub(crate) struct PackageFormat {
    pub format: Format,
    /// What `rest` (the path after the group, without its `/`) names, for a request with these
    /// headers by this caller (its token's name, for `whoami`). A bad path is a
    /// [`ControlError::BadPackageRequest`].
    pub target: TargetOf,
    /// Where a file a document lists is, as `upstream` published it in the document at
    /// `document_url`; `None` for a file outside the upstream's URLs (not proxied).
    pub locate: Locate,
    /// How its documents' files are read at finalize; none: its documents list no files.
    pub references: Option<References>,
    /// How its clients read an error the gateway answers itself.
    pub errors: ErrorShape,
    /// The content types a document may have.
    pub document_types: &'static [&'static str],
    /// The media type of a document whose upstream declares none.
    pub document_default_type: &'static str,
    /// What must be known before its documents' files can be located (Cargo: the upstream's
    /// `dl`, read from its `config.json`); most formats need nothing.
    pub prepare: Prepare,
    /// Replacements a group's documents need besides each upstream's URL → the group's address
    /// (`client`, e.g. `http://proxy:5000/pypi/python`): PyPI's `files_url`, and links relative
    /// to the upstream's root.
    pub extra_replacements: fn(upstream: &UpstreamClient, client: &str) -> Vec<Replace>,
}

/// See [`PackageFormat::prepare`].
pub(crate) type Prepare = for<'a> fn(
    &'a ControlPlane,
    &'a GroupSettings,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), ControlError>> + Send + 'a>,
>;

/// A format whose files are located from its documents alone.
pub(crate) fn nothing_to_prepare<'a>(
    _: &'a ControlPlane,
    _: &'a GroupSettings,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ControlError>> + Send + 'a>> {
    Box::pin(std::future::ready(Ok(())))
}

/// Where a listed file is (see [`PackageFormat::locate`]).
pub(crate) type Locate =
    fn(upstream: &UpstreamClient, document_url: &str, file: &ListedFile) -> Option<FileLocation>;

/// The usual [`Locate`]: the file's URL resolved against its document's, and `path_of` it.
pub(crate) fn locate_by_url(
    upstream: &UpstreamClient,
    document_url: &str,
    file: &ListedFile,
    path_of: fn(&UpstreamClient, &str, &str) -> Option<String>,
) -> Option<FileLocation> {
    let path = path_of(upstream, document_url, &file.url)?;
    let url = url::Url::parse(document_url).ok()?.join(&file.url).ok()?.to_string();
    Some(FileLocation { path, url })
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
    let client = client_base(control, &caller, format.format, &group);
    let target =
        (format.target)(rest, request.uri().query(), request.headers(), who.as_deref(), &group, &client)?;
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
    let target = match target {
        Target::Checksum { file, algorithm, otherwise } => {
            let known = known_checksum(control, &group, &file, algorithm).await;
            if !matches!(known, Sidecar::Unknown)
                && let Target::File { name, version, judged: true, .. } = otherwise.as_ref()
            {
                authorize::package_rules(control, &caller, &group, name, version.as_deref())?;
            }
            match known {
                Sidecar::Known(hex) => Target::Local(checksum_answer(hex, head)),
                Sidecar::NotPublished => {
                    return Err(ControlError::PackageNotFound { what: rest.to_owned(), remembered: None });
                }
                Sidecar::Unknown => *otherwise,
            }
        }
        other => other,
    };
    match target {
        Target::Local(response) => Ok(response),
        // Answered above, as what is known of its file or as `otherwise`.
        Target::Checksum { file, .. } => Err(not_listed(&file)),
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
            if let Some(name) = &name {
                authorize::package_rules(control, &caller, &group, name, None)?;
            }
            let (decision, modified) = control.cache.package_document(&group, &document, head).await?;
            let asked_at = control.cache.clock().now_ms();
            let mut response =
                serve(format, decision, &path, Some((&document, asked_at)), &group, &caller, &client);
            match (modified, response.extensions_mut().get_mut::<injector::Injector>()) {
                (Some(modified), Some(injector::Injector::SendBlob(send))) => {
                    send.headers.push(("Last-Modified".to_owned(), http_date(modified)));
                }
                // Streamed from the upstream: its ETag is not known before the last byte, but a
                // client that gets no validator at all (cargo) asks for the whole document again
                // at its next resolution. New content is recorded with this date (the upload
                // calls carry it: `asked_at`), unchanged content keeps its older one, so the next
                // `If-Modified-Since` with this date is answered 304 from the cache.
                (None, Some(injector::Injector::SendDependency(send))) => {
                    send.response_headers.push(("Last-Modified".to_owned(), http_date(asked_at)));
                }
                _ => {}
            }
            Ok(response)
        }
        Target::File { path: file_path, listing, name, version, judged } => {
            read_only()?;
            if judged {
                authorize::package_rules(control, &caller, &group, &name, version.as_deref())?;
            }
            let record = match listing {
                Listing::Document(document) => {
                    Box::pin(listed_file(control, format, &group, &document, &file_path)).await?
                }
                Listing::Probe(probe) => {
                    let version = version.as_deref().unwrap_or_default();
                    let file = UnlistedFile { path: &file_path, package: &name, version };
                    Box::pin(control.cache.probed_file(&group, file, &probe)).await?
                }
                Listing::SumDb(lookup) => {
                    let version = version.as_deref().unwrap_or_default();
                    let file = UnlistedFile { path: &file_path, package: &name, version };
                    Box::pin(crate::sumdb::probed_by_sumdb(control, &group, file, &lookup)).await?
                }
            };
            let check = crate::sumdb::archive_check(&record.listing);
            let decision = control.cache.file_decision(&group, &record, head)?;
            let decision = if judged {
                let subject = PackageSubject { name: &name, version: version.as_deref() };
                control.cache.screen_package_file(&group, subject, decision).await?
            } else {
                decision
            };
            let mut response = serve(format, decision, &path, None, &group, &caller, &client);
            if let Some(injector::Injector::SendDependency(send)) =
                response.extensions_mut().get_mut::<injector::Injector>()
            {
                send.archive_check = check;
            }
            Ok(response)
        }
    }
}

/// What is known of a checksum sidecar from its file's record.
enum Sidecar {
    /// Its value: what the file was verified against, or its sha256 once stored.
    Known(String),
    /// The upstream that has the file was asked for this sidecar when the file was probed, and
    /// has none: answered 404 without asking again.
    NotPublished,
    /// Not known here: asked of the upstreams.
    Unknown,
}

/// What is known of the `algorithm` checksum of the file at `file`.
async fn known_checksum(
    control: &ControlPlane,
    group: &GroupSettings,
    file: &str,
    algorithm: &str,
) -> Sidecar {
    let Some(record) = control.cache.package_file(group, file).await else { return Sidecar::Unknown };
    if record.listing.algorithm == algorithm && !record.listing.checksum.is_empty() {
        return Sidecar::Known(record.listing.checksum);
    }
    if let Some(stored) = &record.stored
        && algorithm == "sha256"
    {
        return Sidecar::Known(stored.digest.hex().to_owned());
    }
    // Probed unverified at a known upstream: every sidecar it could verify against was asked
    // and none is there (one that publishes only `.md5` is not seen in practice).
    if record.listing.algorithm.is_empty() && !record.upstream.is_empty() {
        return Sidecar::NotPublished;
    }
    Sidecar::Unknown
}

/// A checksum sidecar's answer: the hex value, as upstreams publish it.
fn checksum_answer(hex: String, head: bool) -> Response {
    let length = hex.len();
    let mut response = Response::new(if head { Body::empty() } else { Body::from(hex) });
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// A unix-ms time as an HTTP date (`Last-Modified`).
fn http_date(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

/// The record of a file `document` lists: read from the catalog; else once the document's fill
/// that is finishing records it; else by reading the document from the upstream.
async fn listed_file(
    control: &ControlPlane,
    format: &PackageFormat,
    group: &GroupSettings,
    document: &DocumentRequest,
    file_path: &str,
) -> Result<FileRecord, ControlError> {
    if let Some(record) = control.cache.package_file(group, file_path).await {
        return Ok(record);
    }
    // Its document may be finishing its fill: its record lists the file.
    control.cache.listing_settled(group, &document.package, LISTING_WAIT).await;
    if let Some(record) = control.cache.package_file(group, file_path).await {
        return Ok(record);
    }
    Box::pin(read_listing(control, format, group, document)).await?;
    control.cache.package_file(group, file_path).await.ok_or_else(|| not_listed(file_path))
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
    (format.prepare)(control, group).await?;
    let locate = format.locate;
    let list = move |upstream: &UpstreamClient, read: &PackageDocument| -> Vec<FileListing> {
        let files = format.references.map(|rule| listed_in(rule, read)).unwrap_or_default();
        listings(upstream, &read.url, &files, locate)
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
    locate: Locate,
) -> Vec<FileListing> {
    files
        .iter()
        .filter_map(|file| {
            let FileLocation { path, url } = locate(upstream, document_url, file)?;
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

/// Renders a decision on a document (`document`) or a file (none).
fn serve(
    format: &PackageFormat,
    decision: Decision,
    path: &str,
    document: Option<(&DocumentRequest, i64)>,
    group: &GroupSettings,
    caller: &Caller,
    client: &str,
) -> Response {
    // A document's upload calls name its variant (the path alone does not say which was asked)
    // and when it was asked (its clients' `Last-Modified`).
    let uri: Uri = match document {
        Some((document, asked_at)) => {
            let variant: String = url::form_urlencoded::byte_serialize(document.variant.as_bytes()).collect();
            format!("{path}?variant={variant}&asked_at={asked_at}").parse().unwrap_or_default()
        }
        None => path.parse().unwrap_or_default(),
    };
    let document = document.map(|(document, _)| document);
    let transform = if document.is_some() { transform(format, group, client) } else { Vec::new() };
    let mut response =
        render::rewritten(decision, &SERVING, &uri, group.path.as_str(), caller.address, transform);
    if let Some(injector::Injector::SendDependency(send)) =
        response.extensions_mut().get_mut::<injector::Injector>()
    {
        send.errors = format.errors;
    }
    let Some(document) = document else {
        return response;
    };
    // A document's answer depends on `Accept` (full or abbreviated, HTML or JSON).
    let vary = ("Vary".to_owned(), "Accept".to_owned());
    match response.extensions_mut().get_mut::<injector::Injector>() {
        Some(injector::Injector::SendDependency(send)) => {
            // A format whose documents' types upstreams do not agree on checks none.
            send.accept = (!format.document_types.is_empty()).then(|| Accept {
                types: format.document_types.iter().map(|media_type| (*media_type).to_owned()).collect(),
                what: format!("a {} document", format.format),
            });
            send.default_media_type = format.document_default_type.to_owned();
            send.references = format.references;
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
    let target = (format.target)(rest, None, &http::HeaderMap::new(), None, &group, "")?;
    let parameter = |name: &str| {
        query.and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        })
    };
    let variant = parameter("variant");
    let asked_at = parameter("asked_at").and_then(|text| text.parse::<i64>().ok());
    let mut subject: Option<(String, Option<String>)> = None;
    let (kind, stored) = match target {
        Target::Document { mut document, .. } => {
            // The document asked for in the variant the request named.
            if let Some(variant) = variant {
                if variant.is_empty() || variant.len() > 512 || variant.chars().any(char::is_control) {
                    return Err(ControlError::BadUploadCall(format!("unknown document variant {variant:?}")));
                }
                document.variant = variant;
            }
            (ObjectKind::Manifest, Stored::Document(document))
        }
        Target::File { path, name, version, .. } => {
            subject = Some((name, version));
            (ObjectKind::Blob, Stored::File(path))
        }
        Target::Checksum { otherwise, .. } => match *otherwise {
            Target::File { path, name, version, .. } => {
                subject = Some((name, version));
                (ObjectKind::Blob, Stored::File(path))
            }
            _ => return Err(ControlError::BadUploadCall(format!("{object_path} is not a package object"))),
        },
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
            match &stored {
                Stored::File(path) => {
                    let (name, version) = subject.as_ref().map_or(("", ""), |(name, version)| {
                        (name.as_str(), version.as_deref().unwrap_or_default())
                    });
                    control
                        .cache
                        .record_package_file(&group, path, (name, version), object, lease.as_deref())
                        .await?
                }
                Stored::Document(document) => {
                    (format.prepare)(control, &group).await?;
                    let document_url = upstream.package_url(&document.upstream_path);
                    let files = listings(&upstream, &document_url, &call.files, format.locate);
                    control
                        .cache
                        .record_package_document(
                            &group,
                            document,
                            (object, asked_at),
                            lease.as_deref(),
                            &files,
                        )
                        .await?
                }
            }
            Ok(render::no_content())
        }
        UploadStage::NotFound => {
            let call: NotFoundReport = parse(bytes)?;
            check_call(call.v, call.kind, kind)?;
            let what = match &stored {
                Stored::File(path) => PackageNotFound::File(path),
                Stored::Document(document) => PackageNotFound::Document(document),
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

/// What an upload call's object path names.
enum Stored {
    Document(DocumentRequest),
    /// A file's path under the group.
    File(String),
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

/// A package group of `format` with `policy`, for tests of the formats' path mapping.
#[cfg(test)]
pub(crate) fn test_group(format: Format, policy: cache::PullPolicy) -> GroupSettings {
    GroupSettings {
        path: oci::GroupPath::parse("g").unwrap(),
        format,
        upstreams: cache::Upstreams::single(test_upstream("http://up.example.com", None)),
        manifest_recheck: std::time::Duration::from_secs(300),
        access: cache::AccessPolicy::anonymous(),
        lifecycle: cache::LifecyclePolicy::default(),
        policy: cache::PolicyCell::new(policy),
    }
}
