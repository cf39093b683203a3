//! Purges: an operator removes a group's cache (or one image of it, or what was not read for a
//! while), pinned or not. Rows go first, then the objects no group references any more. The next
//! pull fetches what was purged again.

use std::collections::HashSet;
use std::time::Duration;

use cache::Format;
use metadata::{Cursor, ObjectRow};
use oci::{GroupPath, RepositoryName};

use crate::core::Lifecycle;
use crate::error::LifecycleError;
use crate::settings::millis;
use crate::sweep::SweepReport;

const BATCH: usize = 500;
/// Index → manifest → config/layers.
const DEPTH: usize = 3;

/// What to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    pub group: GroupPath,
    /// One image (as the upstream names it, e.g. `library/alpine`); all of the group's otherwise.
    pub image: Option<RepositoryName>,
    /// Only what was not read for this long.
    pub older_than: Option<Duration>,
}

impl PurgeRequest {
    pub fn describe(&self) -> String {
        let mut text = format!("purge group {}", self.group);
        if let Some(image) = &self.image {
            text.push_str(&format!(" image {image}"));
        }
        if let Some(age) = self.older_than {
            text.push_str(&format!(" not read for {}", telemetry::HumanDuration(age)));
        }
        text
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// The group's format.
    pub format: Format,
    /// Artifacts and documents.
    pub objects: u64,
    pub bytes: u64,
    pub tags: u64,
    /// Objects deleted from storage (no other group held them).
    pub deleted_objects: u64,
}

impl Lifecycle {
    /// Starts recording a purge as a job; returns its id (for [`Lifecycle::run_purge`]).
    pub async fn create_purge_job(&self, request: &PurgeRequest) -> Result<String, LifecycleError> {
        if self.group(request.group.as_str()).is_none() {
            return Err(LifecycleError::UnknownGroup(request.group.as_str().to_owned()));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.metadata.create_job(&id, "purge", &request.describe(), self.clock.now_ms()).await?;
        Ok(id)
    }

    /// Runs a purge, recording its progress (and its end) in job `job`. `progress` hears each
    /// step (objects done so far, bytes).
    pub async fn run_purge(
        &self,
        request: &PurgeRequest,
        job: &str,
        progress: impl Fn(u64, u64),
    ) -> Result<PurgeReport, LifecycleError> {
        let outcome = self.purge(request, job, &progress).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        if let Err(finish_error) = self.metadata.finish_job(job, error.as_deref(), self.clock.now_ms()).await
        {
            tracing::warn!(%finish_error, job, "cannot record the end of a purge job");
        }
        outcome
    }

    async fn purge(
        &self,
        request: &PurgeRequest,
        job: &str,
        progress: &impl Fn(u64, u64),
    ) -> Result<PurgeReport, LifecycleError> {
        let now = self.clock.now_ms();
        let cutoff = request.older_than.map(|age| now.saturating_sub(millis(age)));
        let format = self.group(request.group.as_str()).map(|group| group.format).unwrap_or_default();
        let mut report = PurgeReport { format, ..PurgeReport::default() };
        let victims = match &request.image {
            Some(image) => self.image_objects(&request.group, image, cutoff).await?,
            None => self.group_objects(&request.group, cutoff).await?,
        };
        let total = victims.len() as u64;
        for chunk in victims.chunks(BATCH) {
            let removed = self.remove(chunk).await?;
            report.objects += removed.objects;
            report.bytes += removed.bytes;
            report.tags += removed.tags;
            self.metrics.evicted("purge", removed.objects, removed.bytes);
            self.metadata.update_job_progress(job, report.objects, total, report.bytes).await?;
            progress(report.objects, report.bytes);
        }
        let tags = match &request.image {
            Some(image) if cutoff.is_none() => {
                self.metadata.remove_tags_of_image(&request.group, image).await?
            }
            Some(_) => 0,
            None => self.metadata.remove_tags_of_group(&request.group, cutoff).await?,
        };
        if tags > 0 {
            self.removed(&[]).await;
        }
        report.tags += tags;
        self.metadata
            .remove_referrer_lists(&request.group, request.image.as_ref(), cutoff, &HashSet::new())
            .await?;
        // The objects go once every node had time to forget their rows.
        self.await_removal_notice().await;
        let mut sweep = SweepReport::default();
        let (deleted, _) = self.delete_due(&self.holder(), &mut sweep).await?;
        report.deleted_objects = deleted;
        self.publish_usage().await?;
        Ok(report)
    }

    async fn group_objects(
        &self,
        group: &GroupPath,
        cutoff: Option<i64>,
    ) -> Result<Vec<ObjectRow>, LifecycleError> {
        let mut all = Vec::new();
        let mut cursor: Cursor = None;
        loop {
            let rows = self.metadata.objects_by_read(group, cutoff, &cursor, BATCH).await?;
            let Some(last) = rows.last() else { break };
            cursor = Some((last.read_at, last.digest.to_string()));
            all.extend(rows);
        }
        Ok(all)
    }

    /// An image's manifests, and the blobs they reference that no other manifest of the group
    /// references.
    async fn image_objects(
        &self,
        group: &GroupPath,
        image: &RepositoryName,
        cutoff: Option<i64>,
    ) -> Result<Vec<ObjectRow>, LifecycleError> {
        let read_before = |row: &ObjectRow| cutoff.is_none_or(|cutoff| row.read_at < cutoff);
        let manifests: Vec<ObjectRow> =
            self.metadata.manifests_of_image(group, image).await?.into_iter().filter(read_before).collect();
        let purged: HashSet<String> = manifests.iter().map(|row| row.digest.to_string()).collect();
        let mut children = HashSet::new();
        let mut frontier: Vec<String> = purged.iter().cloned().collect();
        for _ in 0..DEPTH {
            if frontier.is_empty() {
                break;
            }
            let found = self.metadata.manifest_children(group, &frontier).await?;
            frontier = found.into_iter().filter(|child| children.insert(child.clone())).collect();
        }
        let children: Vec<String> = children.into_iter().filter(|child| !purged.contains(child)).collect();
        let elsewhere = self.metadata.referenced_elsewhere(group, &children, &purged).await?;
        let only_here: Vec<String> =
            children.into_iter().filter(|child| !elsewhere.contains(child)).collect();
        let blobs = self.metadata.blobs_among(group, &only_here).await?;
        Ok(manifests.into_iter().chain(blobs.into_iter().filter(read_before)).collect())
    }

    /// A job's record, for progress.
    pub async fn job(&self, id: &str) -> Result<Option<metadata::JobRecord>, LifecycleError> {
        Ok(self.metadata.find_job(id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_reads_in_the_units_people_use() {
        let request = PurgeRequest {
            group: GroupPath::parse("default").unwrap(),
            image: Some(RepositoryName::parse("library/alpine").unwrap()),
            older_than: Some(Duration::from_secs(30 * 86_400)),
        };
        assert_eq!(request.describe(), "purge group default image library/alpine not read for 30d");
    }
}
