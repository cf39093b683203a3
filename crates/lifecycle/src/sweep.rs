//! One sweep: TTL and quotas per group, the store-wide quota, then the deletions due, garbage
//! (objects no row knows, stale spools, abandoned multipart uploads) and old bookkeeping. One
//! node sweeps at a time (a lease in the database, renewed as it goes); a node killed mid-sweep
//! leaves rows and queue consistent, and the next sweep carries on.

use std::collections::HashSet;
use std::time::Instant;

use futures_util::StreamExt as _;
use metadata::{Cursor, ObjectRow};

use crate::core::Lifecycle;
use crate::error::LifecycleError;
use crate::pins::pinned;
use crate::settings::{GroupPolicy, millis, watermark};

/// Rows fetched per step; the sweep lease is renewed between steps.
const BATCH: usize = 500;
/// Objects deleted at once (database claims and storage deletes in flight).
const PARALLEL_DELETES: usize = 16;
/// Traffic and finished jobs are kept this long.
const HISTORY_MS: i64 = 8 * 24 * 3_600_000;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Another node held the sweep lease: nothing done.
    pub skipped: bool,
    pub ttl_objects: u64,
    pub ttl_bytes: u64,
    pub ttl_tags: u64,
    pub quota_objects: u64,
    pub quota_bytes: u64,
    /// Objects deleted from storage (their last row gone).
    pub deleted_objects: u64,
    pub deleted_bytes: u64,
    /// Objects in storage no row knew of, deleted.
    pub garbage_objects: u64,
    pub garbage_bytes: u64,
    pub stale_spools: u64,
    pub stale_uploads: u64,
    pub errors: u64,
}

impl SweepReport {
    fn removed_anything(&self) -> bool {
        self.ttl_objects + self.ttl_tags + self.quota_objects + self.deleted_objects + self.garbage_objects
            > 0
    }

    /// Whether there is anything to tell: something removed, cleaned up, or gone wrong.
    pub fn did_something(&self) -> bool {
        self.removed_anything() || self.stale_spools + self.stale_uploads + self.errors > 0
    }

    /// Logs what the sweep did, as fields (those that are not zero), when it did something: a
    /// sweep that found nothing to do is a debug line, not one every `sweep_interval`.
    pub fn log(&self) {
        if !self.did_something() {
            tracing::debug!("sweep done: nothing to remove");
            return;
        }
        let nonzero = |count: u64| (count > 0).then_some(count);
        macro_rules! sweep_line {
            ($level:ident, $message:literal) => {
                tracing::$level!(
                    ttl_objects = nonzero(self.ttl_objects),
                    ttl_bytes = nonzero(self.ttl_bytes),
                    ttl_tags = nonzero(self.ttl_tags),
                    quota_objects = nonzero(self.quota_objects),
                    quota_bytes = nonzero(self.quota_bytes),
                    deleted_objects = nonzero(self.deleted_objects),
                    deleted_bytes = nonzero(self.deleted_bytes),
                    garbage_objects = nonzero(self.garbage_objects),
                    garbage_bytes = nonzero(self.garbage_bytes),
                    stale_spools = nonzero(self.stale_spools),
                    stale_uploads = nonzero(self.stale_uploads),
                    errors = nonzero(self.errors),
                    $message
                )
            };
        }
        if self.errors > 0 {
            sweep_line!(warn, "sweep done, with errors (logged above); the next one retries");
        } else {
            sweep_line!(info, "sweep done");
        }
    }
}

impl Lifecycle {
    /// Runs one sweep unless another node is sweeping.
    pub async fn sweep(&self) -> Result<SweepReport, LifecycleError> {
        let holder = self.holder();
        if !self.renew_sweep_lease(&holder).await? {
            // The usage gauges still follow what the sweeping node removes.
            self.publish_usage().await?;
            return Ok(SweepReport { skipped: true, ..SweepReport::default() });
        }
        let started = Instant::now();
        self.schedule.start_pacing();
        let mut report = SweepReport::default();
        let outcome = self.sweep_holding(&holder, &mut report).await;
        if let Err(error) = self.metadata.release_maintenance_lease("sweep", &holder).await {
            tracing::warn!(%error, "cannot release the sweep lease (it expires by itself)");
        }
        self.metrics.swept(started.elapsed().as_secs_f64());
        if outcome.is_err() || report.errors > 0 {
            self.metrics.failed();
        }
        outcome.map(|()| report)
    }

    async fn renew_sweep_lease(&self, holder: &str) -> Result<bool, LifecycleError> {
        let now = self.clock.now_ms();
        Ok(self.metadata.try_maintenance_lease("sweep", holder, now, millis(self.settings.lease_ttl)).await?)
    }

    async fn sweep_holding(&self, holder: &str, report: &mut SweepReport) -> Result<(), LifecycleError> {
        let mut all_pinned = HashSet::new();
        for group in &self.groups {
            let pins = pinned(&self.metadata, group).await?;
            if let Some(ttl) = group.policy.ttl {
                self.expire(group, ttl, &pins, holder, report).await?;
            }
            if let Some(max_size) = group.policy.max_size {
                self.enforce_group_quota(group, max_size, &pins.digests, holder, report).await?;
            }
            all_pinned.extend(pins.digests);
        }
        if let Some(max_size) = self.settings.max_size {
            self.enforce_store_quota(max_size, &all_pinned, holder, report).await?;
        }
        // What this sweep removed is deleted once every node had time to forget it.
        self.await_removal_notice().await;
        let (objects, bytes) = self.delete_due(holder, report).await?;
        report.deleted_objects += objects;
        report.deleted_bytes += bytes;
        self.collect_garbage(holder, report).await?;
        self.prune().await?;
        self.publish_usage().await?;
        Ok(())
    }

    /// Removes a group's objects, tags and referrers lists not read within its TTL (pinned ones
    /// stay).
    async fn expire(
        &self,
        group: &GroupPolicy,
        ttl: std::time::Duration,
        pins: &crate::pins::Pinned,
        holder: &str,
        report: &mut SweepReport,
    ) -> Result<(), LifecycleError> {
        let cutoff = self.clock.now_ms().saturating_sub(millis(ttl));
        let mut cursor: Cursor = None;
        loop {
            let rows = self.metadata.objects_by_read(&group.path, Some(cutoff), &cursor, BATCH).await?;
            let Some(last) = rows.last() else { break };
            cursor = Some((last.read_at, last.digest.to_string()));
            let victims: Vec<ObjectRow> =
                rows.into_iter().filter(|row| !pins.digests.contains(&row.digest.to_string())).collect();
            let removed = self.remove(&victims).await?;
            self.metrics.evicted("ttl", removed.objects, removed.bytes);
            report.ttl_objects += removed.objects;
            report.ttl_bytes += removed.bytes;
            report.ttl_tags += removed.tags;
            self.keep_lease(holder).await?;
        }
        let tags = self.metadata.remove_tags_read_before(&group.path, cutoff, &pins.tags).await?;
        if tags > 0 {
            self.removed(&[]).await;
        }
        report.ttl_tags += tags;
        // Referrers lists are documents kept in the database (nothing in storage, nothing any node
        // remembers): they go when unread as long as a tag would, and a pinned image's stay.
        let lists =
            self.metadata.remove_referrer_lists(&group.path, None, Some(cutoff), &pins.digests).await?;
        if lists > 0 {
            tracing::debug!(group = %group.path, lists, "referrers lists expired");
        }
        Ok(())
    }

    /// Past the high watermark of its quota, a group loses its least recently read objects down to
    /// the low watermark.
    async fn enforce_group_quota(
        &self,
        group: &GroupPolicy,
        max_size: u64,
        pinned: &HashSet<String>,
        holder: &str,
        report: &mut SweepReport,
    ) -> Result<(), LifecycleError> {
        let usage = self.metadata.group_usage().await?;
        let mut used =
            usage.iter().find(|entry| entry.group == group.path.as_str()).map_or(0, |entry| entry.bytes);
        if used <= self.watermark(max_size, self.settings.high_watermark) {
            return Ok(());
        }
        let target = self.watermark(max_size, self.settings.low_watermark);
        let recent = self.recently_recorded();
        let mut cursor: Cursor = None;
        while used > target {
            let rows = self.metadata.objects_by_read(&group.path, None, &cursor, BATCH).await?;
            let Some(last) = rows.last() else { break };
            cursor = Some((last.read_at, last.digest.to_string()));
            let mut victims = Vec::new();
            for row in rows {
                if used <= target {
                    break;
                }
                if pinned.contains(&row.digest.to_string()) || row.recorded_at >= recent {
                    continue;
                }
                used = used.saturating_sub(row.size);
                victims.push(row);
            }
            let removed = self.remove(&victims).await?;
            self.metrics.evicted("quota", removed.objects, removed.bytes);
            report.quota_objects += removed.objects;
            report.quota_bytes += removed.bytes;
            self.keep_lease(holder).await?;
        }
        Ok(())
    }

    /// Past the high watermark of the store-wide quota, the least recently read objects (by any
    /// group) leave every group, down to the low watermark; then they are deleted.
    async fn enforce_store_quota(
        &self,
        max_size: u64,
        pinned: &HashSet<String>,
        holder: &str,
        report: &mut SweepReport,
    ) -> Result<(), LifecycleError> {
        let mut used = self.metadata.referenced_bytes().await? + self.metadata.pending_bytes().await?;
        if used <= self.watermark(max_size, self.settings.high_watermark) {
            return Ok(());
        }
        let target = self.watermark(max_size, self.settings.low_watermark);
        // Deletions already due count first.
        let (objects, bytes) = self.delete_due(holder, report).await?;
        report.deleted_objects += objects;
        report.deleted_bytes += bytes;
        used = used.saturating_sub(bytes);
        let recent = self.recently_recorded();
        let mut cursor: Cursor = None;
        while used > target {
            let digests = self.metadata.digests_by_read(&cursor, BATCH).await?;
            let Some(last) = digests.last() else { break };
            cursor = Some((last.read_at, last.digest.to_string()));
            for stored in digests {
                if used <= target {
                    break;
                }
                if pinned.contains(&stored.digest.to_string()) || stored.recorded_at >= recent {
                    continue;
                }
                let rows = self.metadata.rows_of_digest(&stored.digest).await?;
                let removed = self.remove(&rows).await?;
                self.metrics.evicted("quota", removed.objects, removed.bytes);
                report.quota_objects += removed.objects;
                report.quota_bytes += removed.bytes;
                used = used.saturating_sub(stored.size);
            }
            self.keep_lease(holder).await?;
        }
        Ok(())
    }

    /// Deletes the objects whose deletion is due and that nothing references or fills; returns how
    /// many and their bytes. A failed delete stays queued for the next sweep.
    pub(crate) async fn delete_due(
        &self,
        holder: &str,
        report: &mut SweepReport,
    ) -> Result<(u64, u64), LifecycleError> {
        let (mut objects, mut bytes) = (0, 0);
        let mut seen = HashSet::new();
        loop {
            let notice = millis(self.settings.removal_notice);
            let due = self.metadata.pending_deletes(self.clock.now_ms(), notice, BATCH).await?;
            let fresh: Vec<_> = due.into_iter().filter(|(digest, _)| seen.insert(digest.clone())).collect();
            if fresh.is_empty() {
                break;
            }
            let (deleted, deleted_bytes) = self.delete_batch(&fresh, holder, report).await?;
            objects += deleted;
            bytes += deleted_bytes;
            self.keep_lease(holder).await?;
        }
        Ok((objects, bytes))
    }

    /// Deletes a batch of queued objects: claims them in the database together (one lease id),
    /// deletes the claimed ones from storage several at a time, then drops their queue entries
    /// and leases together. (One object at a time, 100 000 objects took minutes on PostgreSQL.)
    async fn delete_batch(
        &self,
        due: &[(oci::Digest, u64)],
        holder: &str,
        report: &mut SweepReport,
    ) -> Result<(u64, u64), LifecycleError> {
        let lease_id = uuid::Uuid::new_v4().to_string();
        let digests: Vec<oci::Digest> = due.iter().map(|(digest, _)| digest.clone()).collect();
        let now = self.clock.now_ms();
        let ttl = millis(self.settings.lease_ttl);
        let claimed: HashSet<oci::Digest> = self
            .metadata
            .claim_for_delete_many(&digests, holder, &lease_id, now, ttl)
            .await?
            .into_iter()
            .collect();
        let claimed_due: Vec<(oci::Digest, u64)> =
            due.iter().filter(|(digest, _)| claimed.contains(digest)).cloned().collect();
        let store = self.store.clone();
        let mut deletions = futures_util::stream::iter(claimed_due)
            .map(move |(digest, size)| {
                let store = store.clone();
                async move {
                    let outcome = store.delete(&injector::storage_key(&digest)).await;
                    (digest, size, outcome)
                }
            })
            .buffer_unordered(PARALLEL_DELETES);
        let (mut gone, mut failed) = (Vec::new(), Vec::new());
        let (mut objects, mut bytes) = (0, 0);
        while let Some((digest, size, outcome)) = deletions.next().await {
            match outcome {
                Ok(()) => {
                    objects += 1;
                    bytes += size;
                    gone.push(digest);
                }
                Err(error) => {
                    report.errors += 1;
                    tracing::warn!(%digest, %error, "cannot delete an object; trying again at the next sweep");
                    failed.push(digest);
                }
            }
        }
        self.metadata.finish_delete_many(&gone, &lease_id).await?;
        self.metadata.abandon_delete_many(&failed, &lease_id).await?;
        Ok((objects, bytes))
    }

    /// Objects in storage that no row, queued deletion or lease knows of, older than the grace
    /// (a crash between a commit and its record, a refused commit); then spools and multipart
    /// uploads abandoned by dead processes.
    async fn collect_garbage(&self, holder: &str, report: &mut SweepReport) -> Result<(), LifecycleError> {
        let grace = self.settings.orphan_grace;
        let mut listing = self.store.list_objects();
        let mut batch = Vec::new();
        loop {
            let next = listing.next().await;
            let done = next.is_none();
            if let Some(listed) = next {
                let listed = listed?;
                let old = listed.modified.elapsed().is_ok_and(|age| age >= grace);
                if old && let Ok(digest) = injector::digest_of_key(&listed.key) {
                    batch.push((digest, listed.size));
                }
            }
            if batch.len() >= BATCH || (done && !batch.is_empty()) {
                let names: Vec<String> = batch.iter().map(|(digest, _)| digest.to_string()).collect();
                let known = self.metadata.known_digests(&names).await?;
                let garbage: Vec<_> =
                    batch.drain(..).filter(|(digest, _)| !known.contains(&digest.to_string())).collect();
                if !garbage.is_empty() {
                    let (objects, bytes) = self.delete_batch(&garbage, holder, report).await?;
                    self.metrics.evicted("gc", objects, bytes);
                    report.garbage_objects += objects;
                    report.garbage_bytes += bytes;
                }
                self.keep_lease(holder).await?;
            }
            if done {
                break;
            }
        }
        report.stale_spools += self.store.remove_stale_temp(self.settings.upload_grace).await? as u64;
        match self.store.abort_stale_uploads(self.settings.upload_grace).await {
            Ok(aborted) => report.stale_uploads += aborted as u64,
            Err(error) => {
                report.errors += 1;
                tracing::warn!(%error, "cannot list or abort stale multipart uploads");
            }
        }
        Ok(())
    }

    async fn prune(&self) -> Result<(), LifecycleError> {
        let now = self.clock.now_ms();
        self.metadata.prune_traffic(now - HISTORY_MS).await?;
        self.metadata.prune_jobs(now - HISTORY_MS).await?;
        // A fill lease expired this long ago belongs to a process that is gone.
        self.metadata.prune_leases(now - 2 * millis(self.settings.lease_ttl).max(60_000)).await?;
        Ok(())
    }

    /// Sets the size and count gauges and the sweeper's estimates from the database (at start-up,
    /// after each sweep and purge; commits keep the sizes current in between, not the counts).
    pub async fn publish_usage(&self) -> Result<(), LifecycleError> {
        let usage = self.metadata.group_usage().await?;
        for group in &self.groups {
            let used =
                usage.iter().find(|entry| entry.group == group.path.as_str()).cloned().unwrap_or_default();
            let path = group.path.as_str();
            self.metrics.group_bytes(path, used.bytes);
            let (artifacts, documents) = self.counts(group, &used).await?;
            self.metrics.group_measured(path, group.format.as_str(), artifacts, documents);
        }
        let store = self.metadata.referenced_bytes().await? + self.metadata.pending_bytes().await?;
        self.metrics.store_bytes(store);
        self.schedule.measured(store, usage.into_iter().map(|entry| (entry.group, entry.bytes)).collect());
        Ok(())
    }

    /// Between batches: pauses (the duty cycle), then renews the sweep lease.
    async fn keep_lease(&self, holder: &str) -> Result<(), LifecycleError> {
        self.schedule.pause_between_batches().await;
        if self.renew_sweep_lease(holder).await? {
            Ok(())
        } else {
            // Another node took over (this one was too slow to renew): stop, it carries on.
            Err(LifecycleError::LeaseLost)
        }
    }

    fn due_at(&self) -> i64 {
        self.clock.now_ms().saturating_add(millis(self.settings.delete_delay))
    }

    /// Removes object rows (queueing their objects for deletion) and tells this process at once.
    pub(crate) async fn remove(&self, rows: &[ObjectRow]) -> Result<metadata::Removed, LifecycleError> {
        let removed = self.metadata.remove_objects(rows, self.due_at()).await?;
        if removed.objects > 0 {
            let digests: Vec<oci::Digest> = rows.iter().map(|row| row.digest.clone()).collect();
            self.removed(&digests).await;
        }
        Ok(removed)
    }

    /// Objects recorded at or after this (unix ms) are not evicted to make room.
    fn recently_recorded(&self) -> i64 {
        self.clock.now_ms().saturating_sub(millis(self.settings.keep_recent))
    }

    pub(crate) fn watermark(&self, max_size: u64, percent: u8) -> u64 {
        watermark(max_size, percent)
    }
}
