//! Access tokens: stored by hash only; listed, looked up by hash or id, revoked by name, and their
//! last use recorded in batches.

use oci::GroupPath;

use crate::error::{MetadataError, Result};
use crate::pool::{Metadata, Pool};

/// An access token as stored. `secret_hash` is the hex SHA-256 of the secret; the secret itself is
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    /// Groups it may pull from.
    pub groups: Vec<GroupPath>,
    /// May use the admin API.
    pub admin: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl AccessTokenRecord {
    /// Whether the token may be used at `now` (unix ms): not revoked, not expired.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    secret_hash: String,
    groups: String,
    admin: i64,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for AccessTokenRecord {
    type Error = MetadataError;

    fn try_from(row: TokenRow) -> Result<Self> {
        let groups = row
            .groups
            .lines()
            .filter(|line| !line.is_empty())
            .map(|path| GroupPath::parse(path).map_err(|_| MetadataError::CorruptGroup(path.to_owned())))
            .collect::<Result<Vec<_>>>()?;
        Ok(AccessTokenRecord {
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            groups,
            admin: row.admin != 0,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        })
    }
}

/// The columns of a token row, as a literal sqlx accepts.
macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, secret_hash, groups, admin, created_at, expires_at, revoked_at, last_used_at \
             FROM access_tokens ",
            $rest
        )
    };
}

impl Metadata {
    /// Stores a new token. Fails with [`MetadataError::NameTaken`] when an active token has the name.
    pub async fn insert_access_token(&self, record: &AccessTokenRecord) -> Result<()> {
        const SQL: &str = "INSERT INTO access_tokens \
             (id, name, secret_hash, groups, admin, created_at, expires_at, revoked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let groups: Vec<&str> = record.groups.iter().map(GroupPath::as_str).collect();
        let result = on_pool!(self, |pool| sqlx::query(SQL)
            .bind(&record.id)
            .bind(&record.name)
            .bind(&record.secret_hash)
            .bind(groups.join("\n"))
            .bind(i64::from(record.admin))
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(record.revoked_at)
            .bind(record.last_used_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()));
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(MetadataError::NameTaken(record.name.clone()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Every token, revoked ones too, oldest first.
    pub async fn list_access_tokens(&self) -> Result<Vec<AccessTokenRecord>> {
        const SQL: &str = select_tokens!("ORDER BY created_at, name");
        let rows: Vec<TokenRow> = on_pool!(self, |pool| sqlx::query_as(SQL).fetch_all(pool).await?);
        rows.into_iter().map(AccessTokenRecord::try_from).collect()
    }

    pub async fn find_access_token_by_hash(&self, secret_hash: &str) -> Result<Option<AccessTokenRecord>> {
        const SQL: &str = select_tokens!("WHERE secret_hash = $1");
        let row: Option<TokenRow> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(secret_hash).fetch_optional(pool).await?);
        row.map(AccessTokenRecord::try_from).transpose()
    }

    pub async fn find_access_token(&self, id: &str) -> Result<Option<AccessTokenRecord>> {
        const SQL: &str = select_tokens!("WHERE id = $1");
        let row: Option<TokenRow> =
            on_pool!(self, |pool| sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?);
        row.map(AccessTokenRecord::try_from).transpose()
    }

    /// Revokes the active token named `name`; returns whether there was one.
    pub async fn revoke_access_token(&self, name: &str, now: i64) -> Result<bool> {
        const SQL: &str = "UPDATE access_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL";
        let revoked =
            on_pool!(self, |pool| sqlx::query(SQL).bind(name).bind(now).execute(pool).await?.rows_affected());
        Ok(revoked > 0)
    }

    /// Records when tokens were last used, in one transaction.
    pub async fn touch_access_tokens(&self, uses: &[(String, i64)]) -> Result<()> {
        const SQL: &str = "UPDATE access_tokens SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
        if uses.is_empty() {
            return Ok(());
        }
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut transaction = pool.begin().await?;
                for (id, at) in uses {
                    sqlx::query(SQL).bind(id).bind(at).execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
            }
            Pool::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                for (id, at) in uses {
                    sqlx::query(SQL).bind(id).bind(at).execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
            }
        }
        Ok(())
    }
}
