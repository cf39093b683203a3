//! A warm run: every image's manifests resolved level by level, then every blob they name
//! fetched once, each level and the blobs with bounded concurrency.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use indicatif::HumanBytes;
use oci::{Digest, Reference, RepositoryName, Tag};

use super::bounded::bounded;
use super::client::Client;
use super::manifest::Fetched;
use super::packages::warm_packages;
use super::plan::{Plan, WarmOptions};
use super::progress::Progress;
use super::report::{ObjectError, WarmFailed, WarmFailure, WarmSummary};

/// Warms every image of `options`: its manifest, every child manifest of an index (every platform,
/// attestations included), and every config and layer blob. Everything is tried; `Ok` only when
/// everything succeeded, else [`WarmFailed`] with the summary. Problems that would fail every
/// object (a bad argument, an unreachable proxy, refused credentials) end the run early.
///
/// A package group (npm, PyPI: the proxy says which) warms packages instead: each argument
/// `NAME[@VERSION]` (PyPI also `NAME==VERSION`), its document and its version's files.
pub async fn warm(options: &WarmOptions) -> anyhow::Result<WarmSummary> {
    let group = Plan::group(options)?;
    let client = Client::new(options, group)?;
    client.check_reachable().await?;
    let format = client.group_format().await?;
    let summary = if format.is_package() {
        let packages = Plan::packages(options, format)?;
        let progress = Progress::new();
        let summary = warm_packages(&client, format, &packages, options.concurrency, &progress).await;
        progress.finish();
        if client.refused() {
            anyhow::bail!(client.refusal_message());
        }
        summary
    } else {
        let plan = Plan::parse(options)?;
        run_plan(&client, &plan, options.concurrency, &Progress::new()).await?
    };
    if summary.is_success() { Ok(summary) } else { Err(WarmFailed { summary }.into()) }
}

/// Warms `tags` of the client's group through `client` as [`warm`] does, silently, counting the
/// bytes received into `received`: scheduled warming's pull. Objects that fail are in the
/// summary; `Err` only when nothing could be pulled (credentials refused).
pub async fn warm_tags(
    client: &Client,
    tags: &[(RepositoryName, Tag)],
    concurrency: usize,
    received: Arc<AtomicU64>,
) -> anyhow::Result<WarmSummary> {
    let plan = Plan::of_tags(tags);
    run_plan(client, &plan, concurrency, &Progress::silent(received)).await
}

async fn run_plan(
    client: &Client,
    plan: &Plan,
    concurrency: usize,
    progress: &Progress,
) -> anyhow::Result<WarmSummary> {
    let mut run = Run { client, progress, plan, state: State::default() };
    run.fetch_manifests(concurrency.max(1)).await;
    if !client.refused() {
        run.fetch_blobs(concurrency.max(1)).await;
    }
    progress.finish();
    if client.refused() {
        anyhow::bail!(client.refusal_message());
    }
    Ok(run.state.into_summary(plan))
}

/// A blob to fetch, and the images that need it (a failure leaves each of them incomplete).
struct BlobJob {
    /// The first image that named it: the repository it is fetched through.
    image: usize,
    digest: Digest,
    size: u64,
    needed_by: BTreeSet<usize>,
}

struct ManifestJob {
    image: usize,
    reference: Reference,
    /// What the progress line says besides the reference, e.g. `linux/arm64`.
    label: String,
}

#[derive(Default)]
struct State {
    manifests: usize,
    blobs: usize,
    bytes: u64,
    foreign_layers: usize,
    failures: Vec<WarmFailure>,
    failed_images: BTreeSet<usize>,
    blob_jobs: Vec<BlobJob>,
}

impl State {
    fn fail(
        &mut self,
        plan: &Plan,
        images: impl IntoIterator<Item = usize>,
        object: String,
        error: ObjectError,
    ) {
        let images: Vec<usize> = images.into_iter().collect();
        let Some(&first) = images.first() else { return };
        self.failures.push(WarmFailure {
            image: plan.images[first].written.clone(),
            object,
            status: error.status,
            message: error.message,
        });
        self.failed_images.extend(images);
    }

    fn into_summary(self, plan: &Plan) -> WarmSummary {
        WarmSummary {
            kind: super::report::WarmKind::Images,
            images: plan.images.len(),
            images_failed: self.failed_images.len(),
            manifests: self.manifests,
            blobs: self.blobs,
            bytes: self.bytes,
            foreign_layers: self.foreign_layers,
            failures: self.failures,
        }
    }
}

struct Run<'a> {
    client: &'a Client,
    progress: &'a Progress,
    plan: &'a Plan,
    state: State,
}

impl Run<'_> {
    /// Resolves every image down to its blobs, level by level (index, then its children), each
    /// level fetched concurrently. Manifests are small and must be parsed, so they are read whole.
    async fn fetch_manifests(&mut self, concurrency: usize) {
        // Manifest rows are per image (blob rows per group): a digest shared by two images is
        // fetched through each of them, a blob only once.
        let mut seen_manifests: HashSet<(usize, Digest)> = HashSet::new();
        let mut blob_index: HashMap<Digest, usize> = HashMap::new();
        let mut pending: Vec<ManifestJob> = (0..self.plan.images.len())
            .map(|image| ManifestJob {
                image,
                reference: self.plan.images[image].reference.clone(),
                label: String::new(),
            })
            .collect();
        for job in &pending {
            if let Reference::Digest(digest) = &job.reference {
                seen_manifests.insert((job.image, digest.clone()));
            }
        }
        while !pending.is_empty() && !self.client.refused() {
            let (client, plan, progress) = (self.client, self.plan, self.progress);
            let mut results = Vec::new();
            let work = |job| fetch_manifest(client, plan, progress, job);
            bounded(pending, concurrency, work, |result| results.push(result)).await;
            pending = Vec::new();
            for (job, result) in results {
                let image = &self.plan.images[job.image];
                let object = format!("manifest {}", job.reference);
                let fetched = match result {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        self.progress.failure(&format!("{} {object}: {error}", image.written));
                        self.state.fail(self.plan, [job.image], object, error);
                        continue;
                    }
                };
                self.state.manifests += 1;
                self.state.bytes += fetched.bytes;
                self.progress.manifest(&format!(
                    "manifest {}{}{} ({}, {})",
                    image.name,
                    reference_separator(&job.reference),
                    job.reference,
                    job.label_or(&fetched.kind),
                    HumanBytes(fetched.bytes)
                ));
                if let Some(digest) = &fetched.digest {
                    seen_manifests.insert((job.image, digest.clone()));
                }
                for child in fetched.children {
                    if seen_manifests.insert((job.image, child.digest.clone())) {
                        pending.push(ManifestJob {
                            image: job.image,
                            reference: Reference::Digest(child.digest),
                            label: child.label,
                        });
                    }
                }
                for blob in fetched.blobs {
                    if blob.foreign {
                        self.state.foreign_layers += 1;
                        continue;
                    }
                    match blob_index.get(&blob.digest) {
                        Some(&index) => {
                            self.state.blob_jobs[index].needed_by.insert(job.image);
                        }
                        None => {
                            blob_index.insert(blob.digest.clone(), self.state.blob_jobs.len());
                            self.state.blob_jobs.push(BlobJob {
                                image: job.image,
                                digest: blob.digest,
                                size: blob.size,
                                needed_by: BTreeSet::from([job.image]),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Streams every blob through the proxy and discards it: the proxy keeps what passes through.
    async fn fetch_blobs(&mut self, concurrency: usize) {
        let jobs = std::mem::take(&mut self.state.blob_jobs);
        self.progress.start_blobs(jobs.len(), jobs.iter().map(|job| job.size).sum());
        let (client, plan, progress) = (self.client, self.plan, self.progress);
        let state = &mut self.state;
        let settle = |(job, result): (&BlobJob, Result<u64, ObjectError>)| {
            let object = format!("blob {}", job.digest);
            match result {
                Ok(bytes) => {
                    state.blobs += 1;
                    state.bytes += bytes;
                    progress.blob(&format!(
                        "blob {} ({}, {})",
                        job.digest,
                        plan.images[job.image].name,
                        HumanBytes(bytes)
                    ));
                }
                Err(error) => {
                    let image = &plan.images[job.image].written;
                    progress.failure(&format!("{image} {object}: {error}"));
                    state.fail(plan, job.needed_by.iter().copied(), object, error);
                }
            }
        };
        bounded(jobs.iter().collect(), concurrency, |job| fetch_blob(client, plan, progress, job), settle)
            .await;
    }
}

async fn fetch_manifest(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
    job: ManifestJob,
) -> (ManifestJob, Result<Fetched, ObjectError>) {
    let result = client.manifest(&plan.images[job.image].name, &job.reference, progress).await;
    (job, result)
}

async fn fetch_blob<'j>(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
    job: &'j BlobJob,
) -> (&'j BlobJob, Result<u64, ObjectError>) {
    let result = client.blob(&plan.images[job.image].name, &job.digest, job.size, progress).await;
    (job, result)
}

impl ManifestJob {
    fn label_or(&self, kind: &str) -> String {
        if self.label.is_empty() { kind.to_owned() } else { format!("{kind}, {}", self.label) }
    }
}

fn reference_separator(reference: &Reference) -> &'static str {
    match reference {
        Reference::Digest(_) => "@",
        Reference::Tag(_) => ":",
    }
}
