//! The referrers API's lists, kept whole per group, image and subject (small documents the control
//! plane answers itself): what upstream answered, when it last confirmed it, when a client last
//! read it. Removed with the group's tags: by TTL (`read_at`; a pinned subject's list stays) and by
//! purges.

use std::collections::HashSet;

use oci::{Digest, GroupPath, RepositoryName};

use crate::error::Result;
use crate::pool::{Metadata, Pool};

/// Names a referrers list: a group's image (as upstream names it) and the subject's digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferrersKey {
    pub group: GroupPath,
    pub image: RepositoryName,
    pub subject: Digest,
}

/// What upstream answered for a subject's referrers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferrersAnswer {
    /// The list: an OCI image index as upstream sent it, and its pagination `Link`, if any.
    List { body: Vec<u8>, link: Option<String> },
    /// 404: upstream serves no referrers API for it (clients then read the tag schema).
    NotServed,
}

/// A cached referrers answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrersRecord {
    pub answer: ReferrersAnswer,
    /// The upstream that answered (empty: none did — every upstream answered 404).
    pub upstream: String,
    /// When upstream last gave this answer (unix ms).
    pub checked_at: i64,
    /// When a client last read it (unix ms); ignored by [`Metadata::record_referrers`].
    pub read_at: i64,
}

#[derive(sqlx::FromRow)]
struct ReferrersRow {
    found: i64,
    body: Vec<u8>,
    link: Option<String>,
    upstream: String,
    checked_at: i64,
    read_at: i64,
}

impl Metadata {
    pub async fn find_referrers(&self, key: &ReferrersKey) -> Result<Option<ReferrersRecord>> {
        const SQL: &str = "SELECT found, body, link, upstream, checked_at, read_at FROM referrer_lists \
             WHERE group_path = $1 AND image = $2 AND subject = $3";
        let row: Option<ReferrersRow> = on_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.subject.to_string())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|row| ReferrersRecord {
            answer: if row.found != 0 {
                ReferrersAnswer::List { body: row.body, link: row.link }
            } else {
                ReferrersAnswer::NotServed
            },
            upstream: row.upstream,
            checked_at: row.checked_at,
            read_at: row.read_at,
        }))
    }

    /// Records upstream's answer, confirmed at `record.checked_at` and read at `now`.
    pub async fn record_referrers(
        &self,
        key: &ReferrersKey,
        record: &ReferrersRecord,
        now: i64,
    ) -> Result<()> {
        const SQL: &str = "INSERT INTO referrer_lists \
             (group_path, image, subject, found, body, link, upstream, created_at, checked_at, read_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8) \
             ON CONFLICT (group_path, image, subject) DO UPDATE SET found = excluded.found, \
             body = excluded.body, link = excluded.link, upstream = excluded.upstream, \
             checked_at = excluded.checked_at, read_at = excluded.read_at";
        let (found, body, link): (i64, &[u8], Option<&str>) = match &record.answer {
            ReferrersAnswer::List { body, link } => (1, body, link.as_deref()),
            ReferrersAnswer::NotServed => (0, &[], None),
        };
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.subject.to_string())
            .bind(found)
            .bind(body)
            .bind(link)
            .bind(&record.upstream)
            .bind(now)
            .bind(record.checked_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// A client read the list at `now` (never moves `read_at` back).
    pub async fn note_referrers_read(&self, key: &ReferrersKey, now: i64) -> Result<()> {
        const SQL: &str = "UPDATE referrer_lists SET read_at = $4 \
             WHERE group_path = $1 AND image = $2 AND subject = $3 AND read_at < $4";
        on_pool!(self, |pool| sqlx::query(SQL)
            .bind(key.group.as_str())
            .bind(key.image.as_str())
            .bind(key.subject.to_string())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Removes `group`'s referrers lists — of one image, or all — read before `read_before`
    /// (whenever read, without), except those of the subjects in `keep` (pinned digests). How
    /// many went.
    pub async fn remove_referrer_lists(
        &self,
        group: &GroupPath,
        image: Option<&RepositoryName>,
        read_before: Option<i64>,
        keep: &HashSet<String>,
    ) -> Result<u64> {
        const LIST: &str = "SELECT image, subject FROM referrer_lists WHERE group_path = $1 \
             AND ($2 IS NULL OR image = $2) AND read_at < $3";
        const DELETE: &str =
            "DELETE FROM referrer_lists WHERE group_path = $1 AND image = $2 AND subject = $3";
        let rows: Vec<(String, String)> = on_pool!(self, |pool| sqlx::query_as(LIST)
            .bind(group.as_str())
            .bind(image.map(RepositoryName::as_str))
            .bind(read_before.unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?);
        let doomed: Vec<(String, String)> =
            rows.into_iter().filter(|(_, subject)| !keep.contains(subject)).collect();
        let mut removed = 0;
        for chunk in doomed.chunks(CHUNK) {
            removed += on_pool!(self, |pool| {
                let mut transaction = pool.begin().await?;
                let mut gone = 0;
                for (image_name, subject) in chunk {
                    gone += sqlx::query(DELETE)
                        .bind(group.as_str())
                        .bind(image_name)
                        .bind(subject)
                        .execute(&mut *transaction)
                        .await?
                        .rows_affected();
                }
                transaction.commit().await?;
                gone
            });
        }
        Ok(removed)
    }
}

/// Lists removed in one transaction.
const CHUNK: usize = 500;
