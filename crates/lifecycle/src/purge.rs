//! Purges: an operator removes a group's cache (or one image or package of it, or what was not
//! read for a while), pinned or not. Rows go first, then the objects no group references any
//! more. The next pull fetches what was purged again.
//!
//! A package's purge forgets its names (its documents and the files they listed) and removes the
//! blob rows they pointed at that no other package of the group names, through the same removal
//! and deletion queue as every other purge: nothing leaves storage while another group still
//! holds it, and every node forgets the rows before the objects go.

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
    /// One image (as the upstream names it, e.g. `library/alpine`) of an image group.
    pub image: Option<RepositoryName>,
    /// One package (`lodash`, `@types/node`, `requests`) of a package group; neither: all of the
    /// group's.
    pub package: Option<String>,
    /// Only what was not read for this long.
    pub older_than: Option<Duration>,
}

impl PurgeRequest {
    pub fn describe(&self) -> String {
        let mut text = format!("purge group {}", self.group);
        if let Some(image) = &self.image {
            text.push_str(&format!(" image {image}"));
        }
        if let Some(package) = &self.package {
            text.push_str(&format!(" package {package}"));
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
    /// Refuses a request that does not fit its group: an image of a package group, a package of
    /// an image group, a name that is no package name of the group's format.
    pub async fn create_purge_job(&self, request: &PurgeRequest) -> Result<String, LifecycleError> {
        self.purged_package(request)?;
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

    /// The package a request purges, as the group's rows name it (`None`: not one package);
    /// refuses what does not fit the group.
    fn purged_package(&self, request: &PurgeRequest) -> Result<Option<String>, LifecycleError> {
        let Some(group) = self.group(request.group.as_str()) else {
            return Err(LifecycleError::UnknownGroup(request.group.as_str().to_owned()));
        };
        let (path, format) = (&group.path, group.format);
        if request.image.is_some() && format.is_package() {
            return Err(LifecycleError::Invalid(format!(
                "group {path} is a {format} group: it holds packages, not images; purge one by its \
                 package name (--package NAME, or ?package= in the admin API)"
            )));
        }
        let Some(package) = &request.package else { return Ok(None) };
        if !format.is_package() {
            return Err(LifecycleError::Invalid(format!(
                "group {path} is an image ({format}) group: it holds images, not packages; purge one \
                 by its image name (--image NAME, or ?image= in the admin API)"
            )));
        }
        format
            .package_name(package)
            .map(Some)
            .map_err(|error| LifecycleError::Invalid(format!("group {path}: {error}")))
    }

    async fn purge(
        &self,
        request: &PurgeRequest,
        job: &str,
        progress: &impl Fn(u64, u64),
    ) -> Result<PurgeReport, LifecycleError> {
        let package = self.purged_package(request)?;
        let now = self.clock.now_ms();
        let cutoff = request.older_than.map(|age| now.saturating_sub(millis(age)));
        let format = self.group(request.group.as_str()).map(|group| group.format).unwrap_or_default();
        let mut report = PurgeReport { format, ..PurgeReport::default() };
        let victims = match (&request.image, &package) {
            (Some(image), _) => self.image_objects(&request.group, image, cutoff).await?,
            (None, Some(package)) => self.package_objects(&request.group, package, cutoff).await?,
            (None, None) => {
                // A whole package group's names go too (with a cutoff they stay: a name whose blob
                // row is gone reads as not stored).
                if format.is_package() && cutoff.is_none() {
                    self.metadata.forget_packages_of_group(&request.group).await?;
                }
                self.group_objects(&request.group, cutoff).await?
            }
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
        if !format.is_package() {
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
        }
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

    /// A package's objects: its documents' and stored files' blob rows that no other package of
    /// the group names. Without a cutoff its names are forgotten first (a request meanwhile
    /// fetches it anew); with one, only what was not read since goes and the names stay (a name
    /// whose blob row is gone reads as not stored).
    async fn package_objects(
        &self,
        group: &GroupPath,
        package: &str,
        cutoff: Option<i64>,
    ) -> Result<Vec<ObjectRow>, LifecycleError> {
        let digests = match cutoff {
            None => self.metadata.forget_package(group, package).await?,
            Some(_) => self.metadata.package_digests(group, package).await?,
        };
        let digests: Vec<String> = digests.iter().map(ToString::to_string).collect();
        let named = self.metadata.package_digests_named(group, &digests, package).await?;
        let only_here: Vec<String> = digests.into_iter().filter(|digest| !named.contains(digest)).collect();
        let rows = self.metadata.blobs_among(group, &only_here).await?;
        Ok(rows.into_iter().filter(|row| cutoff.is_none_or(|cutoff| row.read_at < cutoff)).collect())
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
            package: None,
            older_than: Some(Duration::from_secs(30 * 86_400)),
        };
        assert_eq!(request.describe(), "purge group default image library/alpine not read for 30d");
        let request = PurgeRequest {
            group: GroupPath::parse("js").unwrap(),
            image: None,
            package: Some("@types/node".into()),
            older_than: None,
        };
        assert_eq!(request.describe(), "purge group js package @types/node");
    }
}
