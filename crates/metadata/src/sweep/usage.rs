//! Usage: each group's share of the store, and the bytes rows reference.

use super::{GroupUsage, UpstreamUsage};
use crate::error::Result;
use crate::pool::{Metadata, Pool};

impl Metadata {
    /// Each group's usage (groups with no rows are absent).
    pub async fn group_usage(&self) -> Result<Vec<GroupUsage>> {
        const OBJECTS: &str = "SELECT group_path, CAST(SUM(size) AS BIGINT), \
             CAST(SUM(CASE WHEN k = 'b' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN k = 'm' THEN 1 ELSE 0 END) AS BIGINT), MIN(read_at) FROM ( \
               SELECT group_path, 'b' AS k, size, read_at FROM blobs \
               UNION ALL SELECT group_path, 'm' AS k, size, read_at FROM manifests WHERE reference = digest \
             ) o GROUP BY group_path ORDER BY group_path";
        const TAGS: &str = "SELECT group_path, CAST(COUNT(*) AS BIGINT) FROM manifests \
             WHERE reference <> digest GROUP BY group_path";
        let objects: Vec<(String, i64, i64, i64, Option<i64>)> =
            on_pool!(self, |pool| sqlx::query_as(OBJECTS).fetch_all(pool).await?);
        let tags: Vec<(String, i64)> = on_pool!(self, |pool| sqlx::query_as(TAGS).fetch_all(pool).await?);
        let mut usage: Vec<GroupUsage> = objects
            .into_iter()
            .map(|(group, bytes, blobs, manifests, oldest_read)| GroupUsage {
                group,
                bytes: bytes.max(0) as u64,
                blobs: blobs.max(0) as u64,
                manifests: manifests.max(0) as u64,
                tags: 0,
                oldest_read,
            })
            .collect();
        for (group, count) in tags {
            match usage.iter_mut().find(|entry| entry.group == group) {
                Some(entry) => entry.tags = count.max(0) as u64,
                None => usage.push(GroupUsage { group, tags: count.max(0) as u64, ..GroupUsage::default() }),
            }
        }
        Ok(usage)
    }

    /// Each group's objects and bytes by the upstream that served them.
    pub async fn upstream_usage(&self) -> Result<Vec<UpstreamUsage>> {
        const SQL: &str = "SELECT group_path, upstream, CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ( \
               SELECT group_path, upstream, size FROM blobs \
               UNION ALL SELECT group_path, upstream, size FROM manifests WHERE reference = digest \
             ) o GROUP BY group_path, upstream ORDER BY group_path, upstream";
        let rows: Vec<(String, String, i64, i64)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(group, upstream, objects, bytes)| UpstreamUsage {
                group,
                upstream,
                objects: objects.max(0) as u64,
                bytes: bytes.max(0) as u64,
            })
            .collect())
    }

    /// Bytes of distinct objects the rows reference (what the store holds, queued deletions aside).
    pub async fn referenced_bytes(&self) -> Result<u64> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ( \
               SELECT digest, MAX(size) AS size FROM ( \
                 SELECT digest, size FROM blobs \
                 UNION ALL SELECT digest, size FROM manifests WHERE reference = digest \
               ) r GROUP BY digest \
             ) o";
        let (bytes,): (i64,) = on_pool!(self, |pool| sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(bytes.max(0) as u64)
    }
}
