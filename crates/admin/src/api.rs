//! The operator's JSON answers (`/api/v1/groups`, `/groups/{path}/stale`, `/upstreams`, `/fills`,
//! `/events`, `/tokens`)
//! and the OpenAPI document generated from them and from the routes' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Hits, misses and bytes of a period.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TrafficView {
    pub hits: u64,
    pub misses: u64,
    /// Bytes answered from the cache: what the cache saved upstream.
    pub bytes_served: u64,
    /// Bytes fetched from upstream and stored.
    pub bytes_fetched: u64,
    /// hits / (hits + misses); `null` without requests.
    pub hit_ratio: Option<f64>,
}

impl From<metadata::Traffic> for TrafficView {
    fn from(traffic: metadata::Traffic) -> Self {
        let requests = traffic.hits + traffic.misses;
        TrafficView {
            hits: traffic.hits,
            misses: traffic.misses,
            bytes_served: traffic.bytes_served,
            bytes_fetched: traffic.bytes_fetched,
            hit_ratio: (requests > 0).then(|| traffic.hits as f64 / requests as f64),
        }
    }
}

/// One group: its policy and what it holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    pub group: String,
    pub upstream: String,
    /// `token` or `anonymous`.
    pub access: String,
    pub ttl_seconds: Option<u64>,
    /// Quota in bytes.
    pub max_size: Option<u64>,
    pub pins: Vec<String>,
    /// Logical bytes held (an object shared with another group counts in both).
    pub bytes: u64,
    pub pinned_bytes: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub tags: u64,
    /// Unix ms of the least recent read of its objects.
    pub oldest_read: Option<i64>,
    /// Since the start of the current hour (traffic is counted in hourly buckets).
    pub last_1h: TrafficView,
    /// The current hour and the 23 before it.
    pub last_24h: TrafficView,
}

/// A cached tag served although its upstream answers 404 for it (`stale_on_404`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StaleView {
    /// The image as upstream names it.
    pub image: String,
    pub tag: String,
    /// The manifest the cached tag points at.
    pub digest: String,
    /// Unix ms: when upstream was first seen answering 404 for it.
    pub since: i64,
    /// Unix ms: the latest time it was served.
    pub last_served: i64,
    /// Times served since upstream lost it.
    pub served: u64,
}

/// The store and its groups.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StoreView {
    /// Bytes in storage, each object once.
    pub physical_bytes: u64,
    pub pending_delete_bytes: u64,
    pub max_size: Option<u64>,
    pub groups: Vec<GroupView>,
}

/// An upstream's last error.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LastErrorView {
    pub at: u64,
    pub message: String,
}

/// The pull budget an upstream announced (`ratelimit-limit` / `ratelimit-remaining`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RateLimitView {
    pub limit: u64,
    pub remaining: u64,
    pub window_seconds: Option<u64>,
    /// Unix ms of the answer that carried it.
    pub at: u64,
}

/// One upstream and how it has been answering.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct UpstreamView {
    pub name: String,
    pub url: String,
    pub host: String,
    /// `null` until it was asked anything.
    pub reachable: Option<bool>,
    pub last_answer_at: Option<u64>,
    pub last_error: Option<LastErrorView>,
    pub latency_ms: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub rate_limit: Option<RateLimitView>,
}

/// An error or denial; repeats of one (same kind, message, group, image, client and details —
/// a denial's reason aside — each within a minute of the last) share a row that counts them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EventView {
    /// Unix ms of the latest occurrence.
    pub at: u64,
    /// Unix ms of the first occurrence counted on this row.
    pub first_at: u64,
    /// Occurrences counted on this row (1 for a one-off).
    pub count: u64,
    /// `error`, `warning` or `denied` (an audit refusal: a failed login, a pull a token may not
    /// make, a form without its CSRF token).
    pub kind: String,
    pub group: Option<String>,
    pub image: Option<String>,
    /// The client address the event names, if any.
    pub client: Option<String>,
    /// The latest occurrence's message, with its fields as `key=value`.
    pub message: String,
    /// The row in one line: `message` for a one-off, `12 × failed login from 10.0.0.7 within
    /// 41s` for repeats.
    pub summary: String,
}

impl From<telemetry::events::RecordedEvent> for EventView {
    fn from(event: telemetry::events::RecordedEvent) -> Self {
        EventView {
            at: event.at,
            first_at: event.first_at,
            count: event.count,
            kind: event.kind,
            group: event.group,
            image: event.image,
            client: event.client,
            message: event.message,
            summary: event.summary,
        }
    }
}

/// An access token (never its secret).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub groups: Vec<String>,
    pub admin: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// `active`, `revoked` or `expired`.
    pub status: String,
}

impl TokenView {
    pub fn of(record: &metadata::AccessTokenRecord, now: i64) -> Self {
        TokenView {
            id: record.id.clone(),
            name: record.name.clone(),
            groups: record.groups.iter().map(|group| group.as_str().to_owned()).collect(),
            admin: record.admin,
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            last_used_at: record.last_used_at,
            status: access::token_status(record, now).to_owned(),
        }
    }
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Up to 64 letters, digits, `-`, `_`, `.`, `@`.
    pub name: String,
    /// Groups it may pull from.
    #[serde(default)]
    pub groups: Vec<String>,
    /// May use the admin API.
    #[serde(default)]
    pub admin: bool,
    /// Lifetime, e.g. `90d`; none: never expires.
    pub expires_in: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the secret, shown this once.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CreatedTokenView {
    pub secret: String,
    pub token: TokenView,
}

/// A purge started: its job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobStarted {
    pub job: String,
    /// Where its progress is: `/api/v1/jobs/<id>`.
    pub status: String,
}

/// The OCI error envelope every failure answers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<serde_json::Value>,
}

/// Adds the Bearer scheme (an admin access token) every route requires.
pub struct AdminTokenScheme;

impl utoipa::Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
