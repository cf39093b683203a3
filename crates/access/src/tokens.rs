//! The access tokens a control plane knows: a snapshot of the table, reloaded every
//! `check_interval` (so a revocation or expiry reaches every node within that interval — hits then
//! cost no database query), with lookups of tokens newer than the snapshot falling back to the
//! database. Last use is noted in memory and written in batches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use metadata::{AccessTokenRecord, Clock, Metadata, MetadataError};
use oci::GroupPath;

use crate::secret::{NewSecret, hash_secret, secret_matches_digest, stored_digest};

/// What a control plane knows of one access token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub groups: Vec<GroupPath>,
    pub admin: bool,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The stored SHA-256 of the secret, decoded once.
    secret_digest: Option<[u8; 32]>,
    /// When a use was last noted (unix ms), so a hit notes at most one use a second per token
    /// instead of taking the uses lock every time.
    noted_at: Arc<AtomicI64>,
}

impl TokenInfo {
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }

    pub fn may_pull(&self, group: &GroupPath) -> bool {
        self.groups.contains(group)
    }

    /// What a registry token of scheduled warming stands for: pulls from `group`, under no access
    /// token (nothing to revoke, no use to note, nothing to refresh).
    pub(crate) fn for_warming(group: GroupPath) -> Self {
        TokenInfo {
            id: String::new(),
            name: crate::jwt::WARMING_SUBJECT.to_owned(),
            groups: vec![group],
            admin: false,
            expires_at: None,
            revoked_at: None,
            secret_digest: None,
            noted_at: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Whether this stands for scheduled warming rather than an access token.
    pub fn is_warming(&self) -> bool {
        self.id.is_empty()
    }
}

impl From<AccessTokenRecord> for TokenInfo {
    fn from(record: AccessTokenRecord) -> Self {
        TokenInfo {
            id: record.id,
            name: record.name,
            groups: record.groups,
            admin: record.admin,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            secret_digest: stored_digest(&record.secret_hash),
            noted_at: Arc::new(AtomicI64::new(0)),
        }
    }
}

/// The snapshot of access tokens, by id.
pub struct TokenRegistry {
    metadata: Metadata,
    clock: Clock,
    by_id: RwLock<Arc<HashMap<String, Arc<TokenInfo>>>>,
    uses: Mutex<HashMap<String, i64>>,
}

/// A new token: its record and the secret, shown once.
pub struct CreatedToken {
    pub record: AccessTokenRecord,
    pub secret: String,
}

impl TokenRegistry {
    pub fn new(metadata: Metadata, clock: Clock) -> Self {
        TokenRegistry { metadata, clock, by_id: RwLock::default(), uses: Mutex::default() }
    }

    /// Reloads the snapshot from the database.
    pub async fn reload(&self) -> Result<usize, MetadataError> {
        let records = self.metadata.list_access_tokens().await?;
        let snapshot: HashMap<String, Arc<TokenInfo>> = records
            .into_iter()
            .map(|record| (record.id.clone(), Arc::new(TokenInfo::from(record))))
            .collect();
        let count = snapshot.len();
        *self.by_id.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        Ok(count)
    }

    /// The token with this id if the snapshot has it (no database query).
    pub(crate) fn in_snapshot(&self, id: &str) -> Option<Arc<TokenInfo>> {
        self.by_id.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// The token with this id: from the snapshot, or — when newer than the snapshot — from the
    /// database.
    pub async fn by_id(&self, id: &str) -> Result<Option<Arc<TokenInfo>>, MetadataError> {
        if let Some(info) = self.in_snapshot(id) {
            return Ok(Some(info));
        }
        let Some(record) = self.metadata.find_access_token(id).await? else { return Ok(None) };
        let info = Arc::new(TokenInfo::from(record));
        let mut snapshot = self.by_id.write().unwrap_or_else(PoisonError::into_inner);
        let mut updated = HashMap::clone(&snapshot);
        updated.insert(info.id.clone(), info.clone());
        *snapshot = Arc::new(updated);
        Ok(Some(info))
    }

    /// Whether `secret` is the secret of `token` and the token is active now.
    pub(crate) fn opens(&self, token: &TokenInfo, secret: &str) -> bool {
        secret_matches_digest(secret, &token.secret_digest) && token.is_active(self.clock.now_ms())
    }

    /// The token with this id if it is active now.
    pub async fn active(&self, id: &str) -> Result<Option<Arc<TokenInfo>>, MetadataError> {
        let now = self.clock.now_ms();
        Ok(self.by_id(id).await?.filter(|info| info.is_active(now)))
    }

    /// Every token, revoked and expired ones too.
    pub async fn list(&self) -> Result<Vec<AccessTokenRecord>, MetadataError> {
        self.metadata.list_access_tokens().await
    }

    /// Creates a token (see [`create_token`]); the secret is in the answer only.
    pub async fn create(
        &self,
        name: &str,
        groups: Vec<GroupPath>,
        admin: bool,
        expires_at: Option<i64>,
    ) -> Result<CreatedToken, MetadataError> {
        create_token(&self.metadata, &self.clock, name, groups, admin, expires_at).await
    }

    /// Revokes the token named `name` (false: no active token has that name), and reloads the
    /// snapshot so this node refuses it at once.
    pub async fn revoke(&self, name: &str) -> Result<bool, MetadataError> {
        let revoked = self.metadata.revoke_access_token(name, self.clock.now_ms()).await?;
        if revoked {
            self.reload().await?;
        }
        Ok(revoked)
    }

    /// Notes that `token` was used now, unless a use was noted less than a second ago (last use
    /// is kept to the second: this keeps the hit path off the uses lock).
    pub fn note_use_of(&self, token: &TokenInfo) {
        let now = self.clock.now_ms();
        if now.saturating_sub(token.noted_at.load(Ordering::Relaxed)) < 1000 {
            return;
        }
        token.noted_at.store(now, Ordering::Relaxed);
        self.note_use(&token.id);
    }

    /// Notes that a token was used now (written by [`Self::flush_uses`]).
    pub fn note_use(&self, id: &str) {
        let now = self.clock.now_ms();
        self.uses.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned(), now);
    }

    /// Writes the noted uses in one transaction.
    pub async fn flush_uses(&self) -> Result<usize, MetadataError> {
        let uses: Vec<(String, i64)> =
            std::mem::take(&mut *self.uses.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        self.metadata.touch_access_tokens(&uses).await?;
        Ok(uses.len())
    }
}

/// Whether `name` can name a token: up to 64 letters, digits, `-`, `_`, `.`, `@`.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// A token's state at `now` (unix ms): `active`, `revoked` or `expired`.
pub fn token_status(record: &AccessTokenRecord, now: i64) -> &'static str {
    match (record.revoked_at, record.expires_at) {
        (Some(_), _) => "revoked",
        (None, Some(expires)) if expires <= now => "expired",
        _ => "active",
    }
}

/// Creates a token that expires at `expires_at` (unix ms; `None`: never); the secret is in the
/// answer only.
pub async fn create_token(
    metadata: &Metadata,
    clock: &Clock,
    name: &str,
    groups: Vec<GroupPath>,
    admin: bool,
    expires_at: Option<i64>,
) -> Result<CreatedToken, MetadataError> {
    let new = NewSecret::generate();
    let now = clock.now_ms();
    let record = AccessTokenRecord {
        id: new.id,
        name: name.to_owned(),
        secret_hash: hash_secret(&new.secret),
        groups,
        admin,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    metadata.insert_access_token(&record).await?;
    Ok(CreatedToken { record, secret: new.secret })
}
