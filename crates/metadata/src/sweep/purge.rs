//! Purges: what a group or an image holds (tags, manifests and what they reference) and removing
//! its tag rows.

use std::collections::HashSet;

use oci::{GroupPath, RepositoryName};

use super::{CHUNK, CandidateRow, ObjectRow, TagRow, digest};
use crate::error::Result;
use crate::pool::{Metadata, Pool};

impl Metadata {
    /// A group's tag rows.
    pub async fn tags_of_group(&self, group: &GroupPath) -> Result<Vec<TagRow>> {
        const SQL: &str =
            "SELECT image, reference, digest FROM manifests WHERE group_path = $1 AND reference <> digest";
        let rows: Vec<(String, String, String)> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(group.as_str()).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|(image, tag, digest)| TagRow { image, tag, digest }).collect())
    }

    /// What the given manifests of `group` reference (one level).
    pub async fn manifest_children(&self, group: &GroupPath, manifests: &[String]) -> Result<Vec<String>> {
        let mut children = Vec::new();
        for chunk in manifests.chunks(CHUNK) {
            let found: Vec<(String,)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT DISTINCT child_digest FROM manifest_refs WHERE group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(" AND manifest_digest IN (");
                let mut list = query.separated(", ");
                for digest_text in chunk {
                    list.push_bind(digest_text.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            children.extend(found.into_iter().map(|(text,)| text));
        }
        Ok(children)
    }

    /// Of `children`, those some manifest of `group` other than `excluding` references.
    pub async fn referenced_elsewhere(
        &self,
        group: &GroupPath,
        children: &[String],
        excluding: &HashSet<String>,
    ) -> Result<HashSet<String>> {
        let mut referenced = HashSet::new();
        for chunk in children.chunks(CHUNK) {
            let found: Vec<(String, String)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT child_digest, manifest_digest FROM manifest_refs WHERE group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(" AND child_digest IN (");
                let mut list = query.separated(", ");
                for digest_text in chunk {
                    list.push_bind(digest_text.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            referenced.extend(
                found.into_iter().filter(|(_, parent)| !excluding.contains(parent)).map(|(child, _)| child),
            );
        }
        Ok(referenced)
    }

    /// The manifest digest rows of one image of `group`.
    pub async fn manifests_of_image(
        &self,
        group: &GroupPath,
        image_name: &RepositoryName,
    ) -> Result<Vec<ObjectRow>> {
        const SQL: &str = "SELECT image, digest, size, read_at, created_at FROM manifests \
             WHERE group_path = $1 AND image = $2 AND reference = digest";
        let rows: Vec<CandidateRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(group.as_str())
            .bind(image_name.as_str())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(|row| row.into_object_row(group)).collect()
    }

    /// Blob rows of `group` among `digests`.
    pub async fn blobs_among(&self, group: &GroupPath, digests: &[String]) -> Result<Vec<ObjectRow>> {
        let mut rows = Vec::new();
        for chunk in digests.chunks(CHUNK) {
            let found: Vec<(String, i64, i64, i64)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT digest, size, read_at, created_at FROM blobs WHERE group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(" AND digest IN (");
                let mut list = query.separated(", ");
                for digest_text in chunk {
                    list.push_bind(digest_text.as_str());
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await?
            });
            for (text, size, read_at, recorded_at) in found {
                rows.push(ObjectRow {
                    group: group.clone(),
                    image: None,
                    digest: digest(text)?,
                    size: size.max(0) as u64,
                    read_at,
                    recorded_at,
                });
            }
        }
        Ok(rows)
    }

    /// Bytes of the objects of `group` among `digests` (blob rows and manifest digest rows).
    pub async fn bytes_among(&self, group: &GroupPath, digests: &[String]) -> Result<u64> {
        let mut bytes = 0u64;
        for chunk in digests.chunks(CHUNK) {
            let found: Vec<(i64,)> = on_pool!(self, |pool| {
                let mut query = sqlx::QueryBuilder::new("WITH c(d) AS (");
                query.push_values(chunk, |mut row, digest_text| {
                    row.push_bind(digest_text.as_str());
                });
                query.push(") SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM (SELECT digest, size FROM blobs WHERE group_path = ");
                query.push_bind(group.as_str());
                query.push(
                    " UNION SELECT digest, size FROM manifests WHERE reference = digest AND group_path = ",
                );
                query.push_bind(group.as_str());
                query.push(") o WHERE o.digest IN (SELECT d FROM c)");
                query.build_query_as().fetch_all(pool).await?
            });
            bytes += found.into_iter().map(|(sum,)| sum.max(0) as u64).sum::<u64>();
        }
        Ok(bytes)
    }

    /// Removes every tag row of one image of `group`.
    pub async fn remove_tags_of_image(&self, group: &GroupPath, image_name: &RepositoryName) -> Result<u64> {
        const SQL: &str =
            "DELETE FROM manifests WHERE group_path = $1 AND image = $2 AND reference <> digest";
        Ok(on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let gone = sqlx::query(SQL)
                .bind(group.as_str())
                .bind(image_name.as_str())
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if gone > 0 {
                announce_removal!(self, transaction);
            }
            transaction.commit().await?;
            gone
        }))
    }

    /// Removes every tag row of `group` read before `before` (all of them without).
    pub async fn remove_tags_of_group(&self, group: &GroupPath, before: Option<i64>) -> Result<u64> {
        const SQL: &str =
            "DELETE FROM manifests WHERE group_path = $1 AND reference <> digest AND read_at < $2";
        Ok(on_pool!(self, |pool| {
            let mut transaction = pool.begin().await?;
            let gone = sqlx::query(SQL)
                .bind(group.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if gone > 0 {
                announce_removal!(self, transaction);
            }
            transaction.commit().await?;
            gone
        }))
    }
}
