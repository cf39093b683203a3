//! Warming on a schedule: each group's `warm` entries are run when due — their tag patterns
//! resolved against the upstream's tag list (newest `keep` per glob), each tag asked about with
//! one HEAD, and what moved or is new pulled through the proxy's own decision path, so
//! single-flight, verification and recording are the ordinary ones. Nothing is pinned: warmed
//! objects age out like any other.
//!
//! One node at a time: when an entry is due (`warm_schedules.due_at`, shared by every node), the
//! node whose claim moves its due time runs it, under the entry's maintenance lease (which a run
//! on request takes too). Each run is a job (`kind = warm`) with its progress and, as it goes, its
//! report: the admin API answers both at `/api/v1/jobs/{id}`.
//!
//! Pulling is someone else's: a [`WarmPuller`] (the binary's: through the gateway of the same
//! process in `serve`, through a gateway at `public_url` in split mode).
//!
//! A package group's entries (`packages = ["lodash@4.*"]`) are resolved against the package's
//! document, read through the proxy (so it is warmed as well): npm's `versions`, PyPI's file
//! names; every file of a picked version is pulled (PyPI: each wheel, the sdist and the PEP 658
//! metadata files).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cache::{Cache, Clock, GroupSettings, Refusal, WarmSchedule};
use metadata::{Metadata, MetadataError};
use oci::{GroupPath, RepositoryName, Tag};
use supervisor::{StopSignal, Supervisor};
use telemetry::error_chain;

use crate::settings::millis;
use crate::warm_report::{WarmEntryReport, WarmOutcome, WarmPatternReport, WarmReport, WarmTagReport};

/// The jobs' `kind`.
pub const WARM_JOB_KIND: &str = "warm";
/// The longest wait between two looks at the due times: another node, or a run on request, moves
/// them.
const CHECK_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// How often a running job's progress (bytes so far) is written.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A tag to pull through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmTarget {
    /// As the group's clients name it.
    pub image: RepositoryName,
    pub tag: Tag,
}

impl WarmTarget {
    /// `library/alpine:3.20`: how a pull names it in its failures.
    pub fn written(&self) -> String {
        format!("{}:{}", self.image, self.tag)
    }
}

/// What pulling read through the proxy, and what failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOutcome {
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
    pub failures: Vec<PullFailure>,
}

/// One object of a target that could not be pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    /// The target, as [`WarmTarget::written`] names it.
    pub target: String,
    /// What failed and why, e.g. `blob sha256:…: 502 UNAVAILABLE: …`.
    pub message: String,
}

/// A pull in progress.
pub type PullFuture<'a> = Pin<Box<dyn Future<Output = Result<PullOutcome, String>> + Send + 'a>>;

/// What a package's document lists, read through the proxy (which so holds the document).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageVersions {
    /// Every version with a file, in the document's order.
    pub versions: Vec<String>,
    /// npm's `latest` dist-tag.
    pub latest: Option<String>,
    /// Each listed file: its version and its path on the proxy.
    pub files: Vec<(String, String)>,
    /// Bytes of the document.
    pub bytes: u64,
}

impl PackageVersions {
    /// The version a pattern without one means: npm's `latest` dist-tag, else the newest final
    /// release listed (PEP 440: no letters but `post` after the numbers), else the newest.
    pub fn latest(&self) -> Option<String> {
        let final_release = |version: &&String| {
            let rest = version.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == 'v');
            !rest.to_ascii_lowercase().replace("post", "").chars().any(|c| c.is_ascii_alphabetic())
        };
        let newest =
            |versions: Vec<&String>| versions.into_iter().min_by(|a, b| cache::newest_first(a, b)).cloned();
        self.latest
            .clone()
            .or_else(|| newest(self.versions.iter().filter(final_release).collect()))
            .or_else(|| newest(self.versions.iter().collect()))
    }
}

/// A package's document read in progress.
pub type VersionsFuture<'a> = Pin<Box<dyn Future<Output = Result<PackageVersions, String>> + Send + 'a>>;

/// A package version's files to pull through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageTarget {
    pub package: String,
    pub version: String,
    /// Paths on the proxy.
    pub files: Vec<String>,
}

impl PackageTarget {
    /// `lodash@4.17.21`: how a pull names it in its failures.
    pub fn written(&self) -> String {
        format!("{}@{}", self.package, self.version)
    }
}

/// Pulls tags through the proxy, as a client would: every manifest of an index and every blob;
/// for a package group, a package's document and a version's files.
pub trait WarmPuller: Send + Sync {
    /// Pulls every target from `group`, counting the bytes received into `bytes` as they come.
    /// `Err`: nothing could be pulled (no proxy to pull through, credentials refused).
    fn pull<'a>(
        &'a self,
        group: &'a GroupPath,
        targets: &'a [WarmTarget],
        bytes: Arc<AtomicU64>,
    ) -> PullFuture<'a>;

    /// Reads `package`'s document of package group `group` (of `format`) through the proxy.
    fn package_versions<'a>(
        &'a self,
        group: &'a GroupPath,
        format: cache::Format,
        package: &'a str,
    ) -> VersionsFuture<'a> {
        let _ = (group, format, package);
        Box::pin(async { Err("this puller does not read package documents".to_owned()) })
    }

    /// Pulls every file of `targets` from package group `group`, counting bytes into `bytes`
    /// (their files count as `blobs`).
    fn pull_packages<'a>(
        &'a self,
        group: &'a GroupPath,
        targets: &'a [PackageTarget],
        bytes: Arc<AtomicU64>,
    ) -> PullFuture<'a> {
        let _ = (group, targets, bytes);
        Box::pin(async { Err("this puller does not pull package files".to_owned()) })
    }
}

/// A group's `warm` entries.
#[derive(Debug, Clone)]
pub struct WarmGroup {
    pub path: GroupPath,
    pub schedules: Vec<WarmSchedule>,
}

/// Why a warm run could not start.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("no group {0:?}")]
    UnknownGroup(String),
    #[error(
        "group {0} has no warm schedule: give it warm = [{{ images = [\"NAME:TAG\"], every = \"6h\" }}] (a package group: packages = [\"NAME@VERSION\"])"
    )]
    NoSchedule(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmTrigger {
    /// The entry came due.
    Schedule,
    /// An operator asked (`depproxy cache warm --now`, `POST /api/v1/groups/{path}/warm`).
    Now,
}

impl WarmTrigger {
    fn as_str(self) -> &'static str {
        match self {
            WarmTrigger::Schedule => "schedule",
            WarmTrigger::Now => "now",
        }
    }
}

/// The scheduled warming of one control plane.
pub struct Warming {
    cache: Arc<Cache>,
    groups: Vec<WarmGroup>,
    node: String,
    lease_ttl: Duration,
    clock: Clock,
    supervisor: Supervisor,
    puller: OnceLock<Arc<dyn WarmPuller>>,
}

/// Schedules' due times and leases are named by group and entry: `acme/platform#0`.
fn schedule_name(group: &GroupPath, index: usize) -> String {
    format!("{group}#{index}")
}

impl Warming {
    /// `node` names this node in leases and reports; `lease_ttl` is how long an entry's lease
    /// lasts unrenewed (a node that dies mid-run lets another run it after that).
    pub fn new(
        cache: Arc<Cache>,
        groups: Vec<WarmGroup>,
        node: String,
        lease_ttl: Duration,
        clock: Clock,
        supervisor: Supervisor,
    ) -> Self {
        let groups = groups.into_iter().filter(|group| !group.schedules.is_empty()).collect();
        Warming { cache, groups, node, lease_ttl, clock, supervisor, puller: OnceLock::new() }
    }

    /// Installs what pulls (once).
    pub fn attach_puller(&self, puller: Arc<dyn WarmPuller>) {
        let _ = self.puller.set(puller);
    }

    /// Whether any group has a `warm` entry.
    pub fn has_schedules(&self) -> bool {
        !self.groups.is_empty()
    }

    /// `group`'s `warm` entries (none when it has none).
    pub fn schedules(&self, group: &str) -> &[WarmSchedule] {
        self.groups
            .iter()
            .find(|candidate| candidate.path.as_str() == group)
            .map_or(&[], |group| &group.schedules)
    }

    /// When `group`'s entry `index` is due next, and the job of its last run; none before its
    /// first run.
    pub async fn due(&self, group: &str, index: usize) -> Result<Option<(i64, Option<String>)>, WarmError> {
        let Some(group) = self.groups.iter().find(|candidate| candidate.path.as_str() == group) else {
            return Ok(None);
        };
        Ok(self.metadata().schedule(&schedule_name(&group.path, index)).await?)
    }

    fn metadata(&self) -> &Metadata {
        self.cache.metadata()
    }

    /// The jobs of `group`'s runs, newest first.
    pub async fn recent_jobs(&self, group: &str, limit: u32) -> Result<Vec<metadata::JobRecord>, WarmError> {
        Ok(self.metadata().recent_jobs(WARM_JOB_KIND, &description_prefix(group), limit).await?)
    }

    /// Runs each entry when it is due, until the process drains.
    pub async fn run(self: Arc<Self>, signal: StopSignal) {
        if !self.has_schedules() {
            return;
        }
        loop {
            let wait = self.run_due(&signal).await;
            tokio::select! {
                biased;
                () = signal.draining() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Claims and runs every entry due now, one after the other; returns how long until the
    /// next is due (at most [`CHECK_AT_MOST_EVERY`], at least a second).
    pub async fn run_due(&self, signal: &StopSignal) -> Duration {
        let mut wait = CHECK_AT_MOST_EVERY;
        for (group_index, group) in self.groups.iter().enumerate() {
            for (index, schedule) in group.schedules.iter().enumerate() {
                let name = schedule_name(&group.path, index);
                let now = self.clock.now_ms();
                match self.metadata().claim_due_schedule(&name, now, now + millis(schedule.every)).await {
                    Ok(true) => {
                        wait = wait.min(schedule.every);
                        match self.create_job(group, &[index], WarmTrigger::Schedule).await {
                            Ok(job) => {
                                self.run_until_stopped(
                                    group_index,
                                    &[index],
                                    WarmTrigger::Schedule,
                                    &job,
                                    signal,
                                )
                                .await
                            }
                            Err(error) => {
                                tracing::warn!(%error, schedule = %name, "cannot record a warm job")
                            }
                        }
                    }
                    Ok(false) => {
                        if let Ok(Some((due_at, _))) = self.metadata().schedule(&name).await {
                            let until =
                                u64::try_from(due_at.saturating_sub(self.clock.now_ms())).unwrap_or(0);
                            wait = wait.min(Duration::from_millis(until));
                        }
                    }
                    Err(error) => tracing::warn!(%error, schedule = %name, "cannot read when warming is due"),
                }
            }
        }
        wait.max(Duration::from_secs(1))
    }

    /// Starts a run of every entry of `group` now, in the background; returns its job's id.
    pub async fn start_now(self: &Arc<Self>, group: &str) -> Result<String, WarmError> {
        let Some(group_index) = self.groups.iter().position(|candidate| candidate.path.as_str() == group)
        else {
            return Err(match self.cache.groups().get(group) {
                Some(_) => WarmError::NoSchedule(group.to_owned()),
                None => WarmError::UnknownGroup(group.to_owned()),
            });
        };
        let indices: Vec<usize> = (0..self.groups[group_index].schedules.len()).collect();
        let job = self.create_job(&self.groups[group_index], &indices, WarmTrigger::Now).await?;
        let warming = self.clone();
        let id = job.clone();
        self.supervisor.spawn("warm", job.clone(), move |signal| async move {
            warming.run_until_stopped(group_index, &indices, WarmTrigger::Now, &id, &signal).await;
        });
        Ok(job)
    }

    async fn create_job(
        &self,
        group: &WarmGroup,
        indices: &[usize],
        trigger: WarmTrigger,
    ) -> Result<String, MetadataError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schedules: Vec<String> = indices
            .iter()
            .filter_map(|index| group.schedules.get(*index))
            .map(WarmSchedule::describe)
            .collect();
        let description = format!(
            "{}{} ({})",
            description_prefix(group.path.as_str()),
            schedules.join("; "),
            trigger.as_str()
        );
        self.metadata().create_job(&id, WARM_JOB_KIND, &description, self.clock.now_ms()).await?;
        Ok(id)
    }

    /// Runs the job; a shutdown past its grace ends it as failed.
    async fn run_until_stopped(
        &self,
        group_index: usize,
        indices: &[usize],
        trigger: WarmTrigger,
        job: &str,
        signal: &StopSignal,
    ) {
        tokio::select! {
            () = self.run_job(group_index, indices, trigger, job) => {}
            () = signal.cancelled() => {
                let now = self.clock.now_ms();
                if let Err(error) = self.metadata().finish_job(job, Some("cancelled: the node shut down"), now).await {
                    tracing::warn!(%error, job, "cannot record the end of a warm job");
                }
            }
        }
    }

    async fn run_job(&self, group_index: usize, indices: &[usize], trigger: WarmTrigger, job: &str) {
        let group = &self.groups[group_index];
        let mut report = WarmReport {
            group: group.path.to_string(),
            trigger: trigger.as_str().to_owned(),
            node: self.node.clone(),
            ..WarmReport::default()
        };
        let mut progress = JobProgress::default();
        let outcome = match self.cache.groups().get(group.path.as_str()).cloned() {
            Some(settings) => {
                for &index in indices {
                    let Some(schedule) = group.schedules.get(index) else { continue };
                    self.run_entry(&settings, index, schedule, trigger, job, &mut report, &mut progress)
                        .await;
                    self.save_report(job, &mut report).await;
                }
                report.tally();
                if report.is_success() { None } else { Some(report.summary()) }
            }
            None => Some(format!("group {} is not configured any more", group.path)),
        };
        self.save_report(job, &mut report).await;
        match &outcome {
            None => tracing::info!(job, "warmed {}", report.summary()),
            Some(error) => tracing::warn!(job, "warm run failed: {error}"),
        }
        if let Err(error) = self.metadata().finish_job(job, outcome.as_deref(), self.clock.now_ms()).await {
            tracing::warn!(%error, job, "cannot record the end of a warm job");
        }
    }

    async fn save_report(&self, job: &str, report: &mut WarmReport) {
        report.tally();
        let saved = match serde_json::to_string(report) {
            Ok(json) => self.metadata().set_job_result(job, &json).await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = saved {
            tracing::warn!(%error, job, "cannot record a warm job's report");
        }
    }

    /// One entry under its lease: resolve the patterns, check each tag, pull what changed.
    #[allow(clippy::too_many_arguments)]
    async fn run_entry(
        &self,
        settings: &GroupSettings,
        index: usize,
        schedule: &WarmSchedule,
        trigger: WarmTrigger,
        job: &str,
        report: &mut WarmReport,
        progress: &mut JobProgress,
    ) {
        let name = schedule_name(&settings.path, index);
        let lease = format!("warm:{name}");
        let holder = format!("warm:{}", self.node);
        let ttl = millis(self.lease_ttl);
        let mut entry =
            WarmEntryReport { schedule: schedule.describe(), skipped: None, patterns: Vec::new() };
        match self.metadata().try_maintenance_lease(&lease, &holder, self.clock.now_ms(), ttl).await {
            Ok(true) => {}
            Ok(false) => {
                entry.skipped = Some("another node is running it".into());
                report.entries.push(entry);
                return;
            }
            Err(error) => {
                entry.skipped = Some(format!("its lease could not be taken: {error}"));
                report.entries.push(entry);
                return;
            }
        }
        let work = self.resolve_and_pull(settings, schedule, job, &mut entry, report, progress);
        self.renewing(work, &lease, &holder).await;
        if let Err(error) = self.metadata().release_maintenance_lease(&lease, &holder).await {
            tracing::debug!(%error, lease, "cannot release a warm lease; it expires");
        }
        let due = (trigger == WarmTrigger::Now).then(|| self.clock.now_ms() + millis(schedule.every));
        if let Err(error) = self.metadata().set_schedule(&name, due, Some(job)).await {
            tracing::warn!(%error, schedule = %name, "cannot record a warm run with its schedule");
        }
        report.entries.push(entry);
    }

    /// Runs `work` while renewing the lease every third of its lifetime.
    async fn renewing(&self, work: impl Future<Output = ()>, lease: &str, holder: &str) {
        let mut renewals = tokio::time::interval((self.lease_ttl / 3).max(Duration::from_millis(100)));
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renewals.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                () = &mut work => return,
                _ = renewals.tick() => {
                    let now = self.clock.now_ms();
                    match self.metadata().try_maintenance_lease(lease, holder, now, millis(self.lease_ttl)).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(lease, "another node took a warm lease over"),
                        Err(error) => tracing::warn!(%error, lease, "cannot renew a warm lease"),
                    }
                }
            }
        }
    }

    async fn resolve_and_pull(
        &self,
        settings: &GroupSettings,
        schedule: &WarmSchedule,
        job: &str,
        entry: &mut WarmEntryReport,
        report: &mut WarmReport,
        progress: &mut JobProgress,
    ) {
        if settings.format.is_package() {
            return self.resolve_and_pull_packages(settings, schedule, job, entry, report, progress).await;
        }
        let mut targets: Vec<WarmTarget> = Vec::new();
        // Where each target's outcome goes: (pattern, tag) of `entry`.
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for pattern in &schedule.patterns {
            let mut resolved = WarmPatternReport {
                pattern: pattern.as_str().to_owned(),
                listed: None,
                upstream: None,
                truncated: false,
                error: None,
                tags: Vec::new(),
            };
            let image = match RepositoryName::parse(pattern.name()) {
                Ok(image) => image,
                Err(error) => {
                    resolved.error = Some(error.message);
                    entry.patterns.push(resolved);
                    continue;
                }
            };
            let tags = match pattern.exact_tag() {
                Some(tag) => vec![tag.to_owned()],
                None => match self.cache.upstream_tags(settings, &image).await {
                    Ok(listed) => {
                        resolved.listed = Some(listed.tags.len());
                        resolved.upstream = Some(listed.upstream);
                        resolved.truncated = listed.truncated;
                        pattern.select(&listed.tags, schedule.keep)
                    }
                    Err(error) => {
                        resolved.error = Some(format!("cannot list its tags: {}", error_chain(&error)));
                        entry.patterns.push(resolved);
                        continue;
                    }
                },
            };
            progress.total += tags.len() as u64;
            for tag in tags {
                let checked = self.check(settings, &image, &tag).await;
                if checked.outcome == WarmOutcome::Fetched
                    && let Ok(tag) = Tag::parse(&tag)
                {
                    slots.push((entry.patterns.len(), resolved.tags.len()));
                    targets.push(WarmTarget { image: image.clone(), tag });
                } else {
                    progress.done += 1;
                }
                resolved.tags.push(checked);
            }
            entry.patterns.push(resolved);
        }
        self.note_progress(job, progress).await;
        if targets.is_empty() {
            return;
        }
        let bytes = Arc::new(AtomicU64::new(0));
        let pulled = match self.puller.get() {
            Some(puller) => {
                let pull = puller.pull(&settings.path, &targets, bytes.clone());
                self.following(pull, job, progress, &bytes).await
            }
            None => {
                Err("this control plane has no gateway to pull through (in split mode, public_url names the \
                 gateways' address)"
                    .to_owned())
            }
        };
        progress.done += targets.len() as u64;
        progress.bytes += bytes.load(Ordering::Relaxed);
        self.note_progress(job, progress).await;
        let failures = match pulled {
            Ok(outcome) => {
                report.manifests += outcome.manifests;
                report.blobs += outcome.blobs;
                report.bytes += outcome.bytes;
                outcome.failures
            }
            Err(message) => targets
                .iter()
                .map(|target| PullFailure { target: target.written(), message: message.clone() })
                .collect(),
        };
        for (target, (pattern, tag)) in targets.iter().zip(slots) {
            let written = target.written();
            let messages: Vec<&str> = failures
                .iter()
                .filter(|failure| failure.target == written)
                .map(|failure| failure.message.as_str())
                .collect();
            if messages.is_empty() {
                continue;
            }
            if let Some(report) =
                entry.patterns.get_mut(pattern).and_then(|pattern| pattern.tags.get_mut(tag))
            {
                report.outcome = WarmOutcome::Failed;
                report.message = Some(messages.join("; "));
            }
        }
    }

    /// A package group's entry: each pattern's document read through the proxy (so it is
    /// warmed too), its versions picked (an exact one; `latest`: npm's dist-tag, PyPI's newest
    /// final release; a glob: the newest `keep` it matches), each checked against the group's
    /// rules, then every file of the picked versions pulled.
    async fn resolve_and_pull_packages(
        &self,
        settings: &GroupSettings,
        schedule: &WarmSchedule,
        job: &str,
        entry: &mut WarmEntryReport,
        report: &mut WarmReport,
        progress: &mut JobProgress,
    ) {
        let Some(puller) = self.puller.get() else {
            for pattern in &schedule.patterns {
                entry.patterns.push(WarmPatternReport {
                    pattern: pattern.as_str().to_owned(),
                    listed: None,
                    upstream: None,
                    truncated: false,
                    error: Some("this control plane has no gateway to pull through".to_owned()),
                    tags: Vec::new(),
                });
            }
            return;
        };
        let mut targets: Vec<PackageTarget> = Vec::new();
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for pattern in &schedule.patterns {
            let mut resolved = WarmPatternReport {
                pattern: pattern.as_str().to_owned(),
                listed: None,
                upstream: None,
                truncated: false,
                error: None,
                tags: Vec::new(),
            };
            let package = match settings.format.package_name(pattern.name()) {
                Ok(package) => package,
                Err(error) => {
                    resolved.error = Some(error.to_string());
                    entry.patterns.push(resolved);
                    continue;
                }
            };
            let listing = match puller.package_versions(&settings.path, settings.format, &package).await {
                Ok(listing) => listing,
                Err(error) => {
                    resolved.error = Some(format!("cannot read its document: {error}"));
                    entry.patterns.push(resolved);
                    continue;
                }
            };
            report.manifests += 1;
            report.bytes += listing.bytes;
            resolved.listed = Some(listing.versions.len());
            let versions = match pattern.exact_tag() {
                Some("latest") => listing.latest().into_iter().collect(),
                Some(version) => vec![version.to_owned()],
                None => pattern.select(&listing.versions, schedule.keep),
            };
            progress.total += versions.len() as u64;
            for version in versions {
                let mut checked = WarmTagReport {
                    tag: version.clone(),
                    outcome: WarmOutcome::Fetched,
                    digest: None,
                    previous: None,
                    message: None,
                };
                let files: Vec<String> = listing
                    .files
                    .iter()
                    .filter(|(listed, _)| *listed == version)
                    .map(|(_, path)| path.clone())
                    .collect();
                let refusal = settings.policy.with(|policy| policy.names.check(&package, Some(&version)));
                if let Err(refusal) = refusal {
                    checked.outcome = WarmOutcome::Denied;
                    checked.message = Some(match refusal {
                        Refusal::Denied { pattern } => format!("deny pattern {pattern:?} refuses it"),
                        Refusal::NotAllowed => "no allow pattern of the group matches it".to_owned(),
                    });
                    progress.done += 1;
                } else if files.is_empty() {
                    checked.outcome = WarmOutcome::Failed;
                    checked.message = Some(format!("the document lists no file of version {version}"));
                    progress.done += 1;
                } else {
                    slots.push((entry.patterns.len(), resolved.tags.len()));
                    targets.push(PackageTarget { package: package.clone(), version, files });
                }
                resolved.tags.push(checked);
            }
            entry.patterns.push(resolved);
        }
        self.note_progress(job, progress).await;
        if targets.is_empty() {
            return;
        }
        let bytes = Arc::new(AtomicU64::new(0));
        let pull = puller.pull_packages(&settings.path, &targets, bytes.clone());
        let pulled = self.following(pull, job, progress, &bytes).await;
        progress.done += targets.len() as u64;
        progress.bytes += bytes.load(Ordering::Relaxed);
        self.note_progress(job, progress).await;
        let failures = match pulled {
            Ok(outcome) => {
                report.manifests += outcome.manifests;
                report.blobs += outcome.blobs;
                report.bytes += outcome.bytes;
                outcome.failures
            }
            Err(message) => targets
                .iter()
                .map(|target| PullFailure { target: target.written(), message: message.clone() })
                .collect(),
        };
        for (target, (pattern, tag)) in targets.iter().zip(slots) {
            let written = target.written();
            let messages: Vec<&str> = failures
                .iter()
                .filter(|failure| failure.target == written)
                .map(|failure| failure.message.as_str())
                .collect();
            if let Some(report) =
                entry.patterns.get_mut(pattern).and_then(|pattern| pattern.tags.get_mut(tag))
                && !messages.is_empty()
            {
                report.outcome = WarmOutcome::Failed;
                report.message = Some(messages.join("; "));
            }
        }
    }

    /// Waits for `pull`, writing its bytes to the job every [`PROGRESS_EVERY`].
    async fn following(
        &self,
        pull: PullFuture<'_>,
        job: &str,
        progress: &JobProgress,
        bytes: &AtomicU64,
    ) -> Result<PullOutcome, String> {
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        tokio::pin!(pull);
        loop {
            tokio::select! {
                outcome = &mut pull => return outcome,
                _ = ticks.tick() => {
                    let now = JobProgress { bytes: progress.bytes + bytes.load(Ordering::Relaxed), ..*progress };
                    self.note_progress(job, &now).await;
                }
            }
        }
    }

    async fn note_progress(&self, job: &str, progress: &JobProgress) {
        if let Err(error) =
            self.metadata().update_job_progress(job, progress.done, progress.total, progress.bytes).await
        {
            tracing::debug!(%error, job, "cannot record a warm job's progress");
        }
    }

    /// Whether `tag` must be pulled: refused by the group's rules, unchanged upstream, or fetched.
    async fn check(&self, settings: &GroupSettings, image: &RepositoryName, tag: &str) -> WarmTagReport {
        let mut report = WarmTagReport {
            tag: tag.to_owned(),
            outcome: WarmOutcome::Failed,
            digest: None,
            previous: None,
            message: None,
        };
        let parsed = match Tag::parse(tag) {
            Ok(parsed) => parsed,
            Err(error) => {
                report.message = Some(error.message);
                return report;
            }
        };
        let name = settings.upstreams.repository(image);
        let refusal = settings.policy.with(|policy| policy.names.check(name.as_str(), Some(tag)));
        if let Err(refusal) = refusal {
            report.outcome = WarmOutcome::Denied;
            report.message = Some(match refusal {
                Refusal::Denied { pattern } => format!("deny pattern {pattern:?} refuses it"),
                Refusal::NotAllowed => "no allow pattern of the group matches it".to_owned(),
            });
            return report;
        }
        match self.cache.check_tag_for_warming(settings, image, &parsed).await {
            Ok(check) => {
                report.outcome = if check.changed { WarmOutcome::Fetched } else { WarmOutcome::Unchanged };
                report.digest = check.digest.map(|digest| digest.to_string());
                report.previous = check
                    .previous
                    .filter(|previous| Some(previous.to_string()) != report.digest)
                    .map(|previous| previous.to_string());
            }
            Err(error) => report.message = Some(error_chain(&error)),
        }
        report
    }
}

/// Tags done of all, and bytes: what a job's row shows while it runs.
#[derive(Debug, Clone, Copy, Default)]
struct JobProgress {
    done: u64,
    total: u64,
    bytes: u64,
}

/// How a group's warm jobs' descriptions start.
fn description_prefix(group: &str) -> String {
    format!("warm group {group}: ")
}
