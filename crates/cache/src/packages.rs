//! The package formats' decisions (npm, PyPI), shared by both: their formats say what a path
//! names and how a document lists files; this says when to serve, fetch or refuse.
//!
//! - a **document** (packument, project page) is served while fresh (`document_recheck`); once
//!   stale the upstream is asked with a HEAD: there → fetched again through the gateway; down →
//!   the cached copy, marked stale; 404 → remembered for `negative_ttl` (or served stale with
//!   `stale_on_404`). Not cached → fetched, without a checksum (none is published for it).
//! - a **file** is served when stored; else fetched and verified against the checksum its
//!   document listed. A file no document listed yet has its document read first (by the control
//!   plane, once however many ask), so a file asked for before its document is verified too.
//!
//! The bytes of both are blob rows of the group: eviction, TTL, quotas and the sweeper treat
//! them as any object; the names pointing at them are `metadata::packages`.

use std::sync::Arc;

use metadata::{BlobKey, DocumentKey, DocumentRecord, FileListing, FileRecord, ServedFile, StoredFile};
use oci::{GroupPath, ObjectKind};
use upstream::{PackageDocument, UpstreamClient, UpstreamError};

use crate::decision::{Decision, Fetch, FetchSource, Stale, StoredObject};
use crate::error::CacheError;
use crate::format::Format;
use crate::freshness::is_fresh;
use crate::groups::{GroupSettings, ResolveError};
use crate::name_rules::Refusal;
use crate::not_found::PackageMissing;
use crate::state::Cache;
use crate::upstreams::moved_past;

/// A package document a request names.
#[derive(Debug, Clone)]
pub struct DocumentRequest {
    /// The package as its format names it canonically (npm `@scope/name`, PyPI's normalized
    /// name).
    pub package: String,
    /// Which form of it (`full`, `abbreviated`, `html`, `json`; Maven's file name): each is its
    /// own document.
    pub variant: String,
    /// Its path on the upstream, relative to the upstream's URL (`@scope%2fname`,
    /// `simple/name/`).
    pub upstream_path: String,
    /// The `Accept` the upstream is asked with.
    pub accept: Option<&'static str>,
}

impl DocumentRequest {
    fn key(&self, group: &GroupPath) -> DocumentKey {
        DocumentKey { group: group.clone(), package: self.package.clone(), variant: self.variant.clone() }
    }

    fn missing(&self, group: &GroupPath) -> PackageMissing {
        PackageMissing { group: group.clone(), what: format!("document {} {}", self.package, self.variant) }
    }
}

/// How a format reads the files a document lists, as paths under the group.
pub type ListFiles<'a> = &'a (dyn Fn(&UpstreamClient, &PackageDocument) -> Vec<FileListing> + Send + Sync);

impl Cache {
    /// The package group `path` of `format`.
    pub fn package_group(&self, format: Format, path: &str) -> Result<Arc<GroupSettings>, ResolveError> {
        self.groups.package_group(format, path)
    }

    /// Whether `name` (at `version`, when the request names one) may be pulled through `group`.
    /// A refusal is counted.
    pub fn check_package(
        &self,
        group: &GroupSettings,
        name: &str,
        version: Option<&str>,
    ) -> Result<(), Refusal> {
        let checked = group
            .policy
            .with(|policy| if policy.names.is_empty() { Ok(()) } else { policy.names.check(name, version) });
        if checked.is_err() {
            self.metrics.policy_refused(&group.path);
        }
        checked
    }

    /// A request for a package document, and when the stored copy served (if one is) last
    /// changed: its `Last-Modified` (unix ms).
    pub async fn package_document(
        &self,
        group: &GroupSettings,
        request: &DocumentRequest,
        head: bool,
    ) -> Result<(Decision, Option<i64>), CacheError> {
        let key = request.key(&group.path);
        let cached = self.degraded(self.catalog.metadata().find_package_document(&key).await);
        let now = self.clock.now_ms();
        if let Some(record) = cached.as_ref().filter(|record| record.stored) {
            let decision = if is_fresh(record.checked_at, now, group.manifest_recheck) {
                self.serve_document(group, record, None, head)
            } else {
                Box::pin(self.revalidate_document(group, request, &key, record, head)).await?
            };
            let modified = matches!(decision, Decision::Serve { .. }).then_some(record.modified_at);
            return Ok((decision, modified));
        }
        Ok((Box::pin(self.document_miss(group, request, head)).await?, None))
    }

    async fn document_miss(
        &self,
        group: &GroupSettings,
        request: &DocumentRequest,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let now = self.clock.now_ms();
        self.answer_remembered_package_404(group, &request.missing(&group.path))?;
        if head {
            // A HEAD never starts a fill: the upstream is asked whether it has the document.
            let upstream = group.upstreams.first();
            let url = upstream.package_url(&request.upstream_path);
            let answer = upstream.probe_document(&url, upstream.package_headers(request.accept)).await;
            if let Err(UpstreamError::NotFound(_)) = &answer {
                let window = group.policy.with(|policy| policy.negative_ttl);
                self.package_not_found.remember(request.missing(&group.path), now, window);
            }
            answer?;
            let head = upstream::ObjectHead { digest: None, media_type: None, size: None };
            return Ok(Decision::UpstreamHead { head, requested: None });
        }
        Ok(self.fetch_document(group, request, None))
    }

    async fn revalidate_document(
        &self,
        group: &GroupSettings,
        request: &DocumentRequest,
        key: &DocumentKey,
        record: &DocumentRecord,
        head: bool,
    ) -> Result<Decision, CacheError> {
        let upstream = group.upstreams.get(&record.upstream).unwrap_or_else(|| group.upstreams.first());
        let url = upstream.package_url(&request.upstream_path);
        let probe = upstream.probe_document(&url, upstream.package_headers(request.accept));
        let answer = tokio::time::timeout(self.settings.recheck_timeout, probe)
            .await
            .unwrap_or_else(|_| Err(UpstreamError::Timeout(format!("HEAD {url} took too long"))));
        match answer {
            // The upstream has it: fetched again (it may have changed; a document has no digest
            // to compare). Clients of a fill stream it live, as on a miss.
            Ok(()) if head => {
                let _ = self.catalog.metadata().mark_package_document_checked(key, self.clock.now_ms()).await;
                Ok(self.serve_document(group, record, None, head))
            }
            Ok(()) => Ok(self.fetch_document(group, request, Some(upstream.name()))),
            Err(UpstreamError::NotFound(_)) => {
                if group.policy.with(|policy| policy.stale_on_404) {
                    return Ok(self.serve_document(group, record, Some(Stale::GoneUpstream), head));
                }
                let window = group.policy.with(|policy| policy.negative_ttl);
                self.package_not_found.remember(request.missing(&group.path), self.clock.now_ms(), window);
                Err(UpstreamError::NotFound(ObjectKind::Manifest).into())
            }
            Err(error) if error.is_outage() => {
                moved_past(upstream, &error);
                tracing::warn!(group = %group.path, package = %request.package, %error,
                    "upstream unreachable: serving the cached document");
                Ok(self.serve_document(group, record, Some(Stale::UpstreamUnreachable), head))
            }
            Err(error) => Err(error.into()),
        }
    }

    fn serve_document(
        &self,
        group: &GroupSettings,
        record: &DocumentRecord,
        stale: Option<Stale>,
        head: bool,
    ) -> Decision {
        let key = BlobKey { group: group.path.clone(), digest: record.digest.clone() };
        self.reads.blob_read(&key, self.clock.now_ms(), if head { 0 } else { record.size });
        let object = StoredObject {
            digest: record.digest.clone(),
            size: record.size,
            media_type: record.media_type.clone(),
            upstream: record.upstream.clone(),
        };
        Decision::Serve { object, stale }
    }

    fn fetch_document(
        &self,
        group: &GroupSettings,
        request: &DocumentRequest,
        preferred: Option<&str>,
    ) -> Decision {
        self.reads.missed(&group.path);
        self.documents_filling.started(&group.path, &request.package);
        let sources = group
            .upstreams
            .in_order(preferred)
            .into_iter()
            .map(|upstream| FetchSource {
                upstream: upstream.name().to_owned(),
                url: upstream.package_url(&request.upstream_path),
                headers: upstream.package_headers(request.accept),
            })
            .collect();
        Decision::Fetch(Fetch {
            kind: ObjectKind::Manifest,
            sources,
            verify: None,
            max_size: self.settings.limits.max_blob_size,
            fill_key: format!("{}|document|{}|{}", group.path, request.package, request.variant),
            hold: None,
        })
    }

    /// The file at `path` of `group`, as a document listed it; `None` when no document did.
    pub async fn package_file(&self, group: &GroupSettings, path: &str) -> Option<FileRecord> {
        self.degraded(self.catalog.metadata().find_package_file(&group.path, path).await)
    }

    /// A request for a listed file: served when stored, else fetched and verified against the
    /// checksum its document published.
    pub fn file_decision(
        &self,
        group: &GroupSettings,
        file: &FileRecord,
        head: bool,
    ) -> Result<Decision, CacheError> {
        if let Some(stored) = &file.stored {
            let key = BlobKey { group: group.path.clone(), digest: stored.digest.clone() };
            self.reads.blob_read(&key, self.clock.now_ms(), if head { 0 } else { stored.size });
            let object = StoredObject {
                digest: stored.digest.clone(),
                size: stored.size,
                media_type: stored.media_type.clone(),
                upstream: file.upstream.clone(),
            };
            return Ok(Decision::Serve { object, stale: None });
        }
        let missing =
            PackageMissing { group: group.path.clone(), what: format!("file {}", file.listing.path) };
        self.answer_remembered_package_404(group, &missing)?;
        if head {
            // A HEAD never starts a fill: the file is listed, its size not known here.
            let head = upstream::ObjectHead { digest: None, media_type: None, size: None };
            return Ok(Decision::UpstreamHead { head, requested: None });
        }
        self.reads.missed(&group.path);
        let verify = injector::ChecksumAlgorithm::from_name(&file.listing.algorithm)
            .and_then(|algorithm| injector::Checksum::from_hex(algorithm, &file.listing.checksum).ok());
        let checksum_key = verify.as_ref().map_or_else(|| file.listing.path.clone(), ToString::to_string);
        let sources = match group.upstreams.get(&file.upstream) {
            Some(upstream) => vec![FetchSource {
                upstream: upstream.name().to_owned(),
                url: file.listing.url.clone(),
                headers: upstream.package_headers(None),
            }],
            // Not known which has it (a file no document lists, no checksum found): the first
            // upstream that has it serves it, at the same path on each.
            None => group
                .upstreams
                .in_order(None)
                .into_iter()
                .map(|upstream| FetchSource {
                    upstream: upstream.name().to_owned(),
                    url: upstream.package_url(&file.listing.path),
                    headers: upstream.package_headers(None),
                })
                .collect(),
        };
        Ok(Decision::Fetch(Fetch {
            kind: ObjectKind::Blob,
            sources,
            verify,
            max_size: self.settings.limits.max_blob_size,
            fill_key: format!("{}|file|{checksum_key}", group.path),
            hold: None,
        }))
    }

    /// Reads a package's document from the group's upstreams (in order; the first that has it)
    /// for the files it lists, and records them — once however many requests ask at a time.
    /// For a file asked for before its document: the document itself is not stored here (the
    /// gateway stores what clients fetch).
    pub async fn read_listing(
        &self,
        group: &GroupSettings,
        request: &DocumentRequest,
        list_files: ListFiles<'_>,
    ) -> Result<(), CacheError> {
        let key = request.key(&group.path);
        let read = self.document_reads.run(key, || async {
            let mut last = UpstreamError::NotFound(ObjectKind::Manifest);
            for upstream in group.upstreams.in_order(None) {
                let url = upstream.package_url(&request.upstream_path);
                let headers = upstream.package_headers(request.accept);
                let max = usize::try_from(self.settings.limits.max_blob_size).unwrap_or(usize::MAX);
                match upstream.get_document(&url, headers, max.min(MAX_LISTING_READ)).await {
                    Ok(document) => {
                        let files = list_files(upstream, &document);
                        let now = self.clock.now_ms();
                        return self
                            .catalog
                            .metadata()
                            .list_package_files(&group.path, &request.package, upstream.name(), &files, now)
                            .await
                            .map_err(|error| {
                                UpstreamError::Protocol(format!("recording the files failed: {error}"))
                            });
                    }
                    Err(error) => {
                        moved_past(upstream, &error);
                        last = error;
                    }
                }
            }
            Err(last)
        });
        read.await.map_err(CacheError::from)
    }

    /// A fill stored a package document: recorded with the files it lists. `sent_as_modified`:
    /// the `Last-Modified` its fill's clients were told (unix ms), kept when its content is new,
    /// so their `If-Modified-Since` matches what is stored; none: now.
    pub async fn record_package_document(
        &self,
        group: &GroupSettings,
        request: &DocumentRequest,
        (object, sent_as_modified): (StoredObject, Option<i64>),
        lease: Option<&str>,
        files: &[FileListing],
    ) -> Result<(), CacheError> {
        let upstream = object.upstream.clone();
        let record = DocumentRecord {
            digest: object.digest.clone(),
            size: object.size,
            media_type: object.media_type.clone(),
            upstream: upstream.clone(),
            checked_at: self.clock.now_ms(),
            modified_at: sent_as_modified.unwrap_or_else(|| self.clock.now_ms()),
            stored: true,
        };
        if !self.commit_group_blob(&group.path, object, lease).await? {
            return Ok(());
        }
        let metadata = self.catalog.metadata();
        let now = self.clock.now_ms();
        metadata.list_package_files(&group.path, &request.package, &upstream, files, now).await?;
        metadata.record_package_document(&request.key(&group.path), &record, now).await?;
        self.documents_filling.ended(&group.path, &request.package);
        self.package_not_found.forget(&request.missing(&group.path));
        Ok(())
    }

    /// A fill stored a file of `package` at `version` (empty: not known) at `path`: listed
    /// already, or — a file nothing verifies — listed now.
    pub async fn record_package_file(
        &self,
        group: &GroupSettings,
        path: &str,
        (package, version): (&str, &str),
        object: StoredObject,
        lease: Option<&str>,
    ) -> Result<(), CacheError> {
        let stored = StoredFile {
            digest: object.digest.clone(),
            size: object.size,
            media_type: object.media_type.clone(),
        };
        let upstream = object.upstream.clone();
        let url = group.upstreams.get(&upstream).map(|at| at.package_url(path)).unwrap_or_default();
        let served = ServedFile { package, version, upstream: &upstream, url: &url, at: self.clock.now_ms() };
        if self.commit_group_blob(&group.path, object, lease).await? {
            let stored_as =
                self.catalog.metadata().record_package_file(&group.path, path, &stored, &served).await?;
            if stored_as == metadata::StoredAs::Unverified {
                self.metrics.unverified_file_stored(&group.path);
            }
            self.package_not_found
                .forget(&PackageMissing { group: group.path.clone(), what: format!("file {path}") });
        }
        Ok(())
    }

    /// A gateway's fill of a package document or file got 404 from every upstream.
    pub fn package_fill_not_found(&self, group: &GroupSettings, what: PackageNotFound<'_>) {
        let window = group.policy.with(|policy| policy.negative_ttl);
        if let PackageNotFound::Document(request) = what {
            self.documents_filling.ended(&group.path, &request.package);
        }
        let missing = match what {
            PackageNotFound::Document(request) => request.missing(&group.path),
            PackageNotFound::File(path) => {
                PackageMissing { group: group.path.clone(), what: format!("file {path}") }
            }
        };
        self.package_not_found.remember(missing, self.clock.now_ms(), window);
    }

    /// Answers 404 from memory for what the upstream answered 404 within `negative_ttl`.
    pub fn answer_remembered_package_404_for(
        &self,
        group: &GroupSettings,
        what: PackageNotFound<'_>,
    ) -> Result<(), CacheError> {
        let missing = match what {
            PackageNotFound::Document(request) => request.missing(&group.path),
            PackageNotFound::File(path) => {
                PackageMissing { group: group.path.clone(), what: format!("file {path}") }
            }
        };
        self.answer_remembered_package_404(group, &missing)
    }

    pub(crate) fn answer_remembered_package_404(
        &self,
        group: &GroupSettings,
        missing: &PackageMissing,
    ) -> Result<(), CacheError> {
        let window = group.policy.with(|policy| policy.negative_ttl);
        if self.package_not_found.is_remembered(missing, self.clock.now_ms(), window) {
            self.metrics.not_found_remembered(&group.path);
            return Err(CacheError::NotFoundRemembered { kind: ObjectKind::Manifest, window });
        }
        Ok(())
    }
}

impl Cache {
    /// Waits (at most `within`) for the record of a document of `package` whose fill was decided
    /// here and is finishing, so its files are listed; returns at once when none is.
    pub async fn listing_settled(&self, group: &GroupSettings, package: &str, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.documents_filling.filling(&group.path, package) {
            let recorded = self.documents_filling.recorded.notified();
            if !self.documents_filling.filling(&group.path, package)
                || tokio::time::timeout_at(deadline, recorded).await.is_err()
            {
                return;
            }
        }
    }
}

/// What a package request got 404 for.
#[derive(Debug, Clone, Copy)]
pub enum PackageNotFound<'a> {
    Document(&'a DocumentRequest),
    /// A file's path under the group.
    File(&'a str),
}

/// A document read by the control plane for its file list is read whole: at most this much.
const MAX_LISTING_READ: usize = 256 << 20;
