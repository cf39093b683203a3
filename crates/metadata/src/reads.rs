//! Access tracking: when rows were last read and how often, and each group's hourly traffic —
//! written in batches (one statement per chunk of rows), never on a hit's path.

use oci::GroupPath;

use crate::error::Result;
use crate::objects::{BlobKey, ManifestKey, to_sql_size};
use crate::pool::{Metadata, Pool};

/// Reads of one row since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reads {
    /// The latest read (unix ms).
    pub last: i64,
    pub count: u64,
}

/// A group's client traffic over some period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Traffic {
    pub hits: u64,
    pub misses: u64,
    /// Bytes answered from the cache.
    pub bytes_served: u64,
    /// Bytes fetched from upstreams and stored.
    pub bytes_fetched: u64,
}

impl Traffic {
    pub fn add(&mut self, other: &Traffic) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.bytes_served += other.bytes_served;
        self.bytes_fetched += other.bytes_fetched;
    }
}

/// A group's traffic in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyTraffic {
    pub group: String,
    /// The hour's start (unix ms).
    pub hour: i64,
    pub traffic: Traffic,
}

/// Rows per statement: well under both databases' bind-parameter limits.
const CHUNK: usize = 500;

fn count(value: u64) -> i64 {
    to_sql_size(value)
}

impl Metadata {
    /// Moves `read_at` forward (never back) and adds to the hit counts of the rows read.
    pub async fn record_reads(
        &self,
        blobs: &[(BlobKey, Reads)],
        manifests: &[(ManifestKey, Reads)],
    ) -> Result<()> {
        let greatest = match self.pool {
            Pool::Sqlite(_) => "MAX",
            Pool::Postgres(_) => "GREATEST",
        };
        for chunk in blobs.chunks(CHUNK) {
            let head = "WITH v(g, d, r, h) AS (";
            let tail = format!(
                ") UPDATE blobs SET read_at = {greatest}(blobs.read_at, v.r), hits = blobs.hits + v.h \
                 FROM v WHERE blobs.group_path = v.g AND blobs.digest = v.d"
            );
            on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(head);
                query.push_values(chunk, |mut row, (key, reads)| {
                    row.push_bind(key.group.as_str())
                        .push_bind(key.digest.to_string())
                        .push_bind(reads.last)
                        .push_bind(count(reads.count));
                });
                query.push(tail.as_str());
                query.build().execute(pool).await?;
            });
        }
        for chunk in manifests.chunks(CHUNK) {
            let head = "WITH v(g, i, f, r, h) AS (";
            let tail = format!(
                ") UPDATE manifests SET read_at = {greatest}(manifests.read_at, v.r), \
                 hits = manifests.hits + v.h FROM v \
                 WHERE manifests.group_path = v.g AND manifests.image = v.i AND manifests.reference = v.f"
            );
            on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(head);
                query.push_values(chunk, |mut row, (key, reads)| {
                    row.push_bind(key.group.as_str())
                        .push_bind(key.image.as_str())
                        .push_bind(key.reference.to_string())
                        .push_bind(reads.last)
                        .push_bind(count(reads.count));
                });
                query.push(tail.as_str());
                query.build().execute(pool).await?;
            });
        }
        Ok(())
    }

    /// Adds traffic to each group's row of the hour starting at `hour` (unix ms).
    pub async fn add_traffic(&self, hour: i64, traffic: &[(GroupPath, Traffic)]) -> Result<()> {
        for chunk in traffic.chunks(CHUNK) {
            on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "INSERT INTO group_traffic (group_path, hour, hits, misses, bytes_served, bytes_fetched) ",
                );
                query.push_values(chunk, |mut row, (group, traffic)| {
                    row.push_bind(group.as_str())
                        .push_bind(hour)
                        .push_bind(count(traffic.hits))
                        .push_bind(count(traffic.misses))
                        .push_bind(count(traffic.bytes_served))
                        .push_bind(count(traffic.bytes_fetched));
                });
                query.push(
                    " ON CONFLICT (group_path, hour) DO UPDATE SET hits = group_traffic.hits + excluded.hits, \
                     misses = group_traffic.misses + excluded.misses, \
                     bytes_served = group_traffic.bytes_served + excluded.bytes_served, \
                     bytes_fetched = group_traffic.bytes_fetched + excluded.bytes_fetched",
                );
                query.build().execute(pool).await?;
            });
        }
        Ok(())
    }

    /// Takes back hits (and their bytes served) from each group's row of the hour starting at
    /// `hour`: hits counted when decided whose object could not be read and was fetched again
    /// (counted as misses then). Never below zero; a row not written yet loses nothing.
    pub async fn take_back_hits(&self, hour: i64, hits: &[(GroupPath, Traffic)]) -> Result<()> {
        let greatest = match self.pool {
            Pool::Sqlite(_) => "MAX",
            Pool::Postgres(_) => "GREATEST",
        };
        let sql = format!(
            "UPDATE group_traffic SET hits = {greatest}(hits - $3, 0), \
             bytes_served = {greatest}(bytes_served - $4, 0) WHERE group_path = $1 AND hour = $2"
        );
        for (group, traffic) in hits {
            on_pool!(self, |pool| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(group.as_str())
                .bind(hour)
                .bind(count(traffic.hits))
                .bind(count(traffic.bytes_served))
                .execute(pool)
                .await?
                .rows_affected());
        }
        Ok(())
    }

    /// Each group's traffic since `since` (unix ms; whole hours).
    pub async fn traffic_since(&self, since: i64) -> Result<Vec<(String, Traffic)>> {
        const SQL: &str = "SELECT group_path, CAST(SUM(hits) AS BIGINT), CAST(SUM(misses) AS BIGINT), \
             CAST(SUM(bytes_served) AS BIGINT), CAST(SUM(bytes_fetched) AS BIGINT) \
             FROM group_traffic WHERE hour >= $1 GROUP BY group_path";
        let rows: Vec<(String, i64, i64, i64, i64)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(since).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(group, hits, misses, served, fetched)| {
                let traffic = Traffic {
                    hits: hits.max(0) as u64,
                    misses: misses.max(0) as u64,
                    bytes_served: served.max(0) as u64,
                    bytes_fetched: fetched.max(0) as u64,
                };
                (group, traffic)
            })
            .collect())
    }

    /// Each group's traffic hour by hour since `since` (unix ms; whole hours): one entry per
    /// group and hour that saw any, by group then hour. Hours without traffic have no row.
    pub async fn hourly_traffic_since(&self, since: i64) -> Result<Vec<HourlyTraffic>> {
        const SQL: &str = "SELECT group_path, hour, hits, misses, bytes_served, bytes_fetched \
             FROM group_traffic WHERE hour >= $1 ORDER BY group_path, hour";
        let rows: Vec<(String, i64, i64, i64, i64, i64)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(since).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(group, hour, hits, misses, served, fetched)| HourlyTraffic {
                group,
                hour,
                traffic: Traffic {
                    hits: hits.max(0) as u64,
                    misses: misses.max(0) as u64,
                    bytes_served: served.max(0) as u64,
                    bytes_fetched: fetched.max(0) as u64,
                },
            })
            .collect())
    }

    /// Forgets traffic older than `before`.
    pub async fn prune_traffic(&self, before: i64) -> Result<u64> {
        const SQL: &str = "DELETE FROM group_traffic WHERE hour < $1";
        Ok(on_pool!(self, |pool| sqlx::query(SQL).bind(before).execute(pool).await?.rows_affected()))
    }
}
