//! The operator's JSON answers (`/api/v1/groups`, `/groups/{path}/stale`, `/upstreams`, `/fills`,
//! `/events`, `/tokens`, `/jobs`, purges and revocations, errors) and the OpenAPI document
//! generated from them and from the routes' annotations. Its readers — the status page and
//! `depproxy admin` — read the JSON back into these same types, so a renamed field breaks their
//! build, not their screens.

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

/// The objects of a group one upstream served.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct UpstreamShareView {
    /// Its name; empty for objects recorded before upstreams were.
    pub upstream: String,
    pub objects: u64,
    pub bytes: u64,
}

/// One hour of a group's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HourView {
    /// Unix ms of the hour's start.
    pub hour: i64,
    pub hits: u64,
    pub misses: u64,
    /// Bytes answered from the cache: what it saved upstream that hour.
    pub bytes_served: u64,
    pub bytes_fetched: u64,
}

impl From<lifecycle::HourTraffic> for HourView {
    fn from(hour: lifecycle::HourTraffic) -> Self {
        HourView {
            hour: hour.hour,
            hits: hour.traffic.hits,
            misses: hour.traffic.misses,
            bytes_served: hour.traffic.bytes_served,
            bytes_fetched: hour.traffic.bytes_fetched,
        }
    }
}

/// One group: its format, policy and what it holds. Every format is counted in the same words:
/// *artifacts* are immutable files named by their checksum (OCI: blobs), *documents* the files
/// that name them (OCI: manifests and indexes), *tags* mutable names for documents.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    pub group: String,
    /// The protocol it proxies: `oci`, … (`#[serde(default)]` here and on the other fields new
    /// with formats: `depproxy admin` still reads a server from before them.)
    #[serde(default)]
    pub format: String,
    /// Its upstream; for a group with several, their names in the order they are asked, joined
    /// by `, `.
    pub upstream: String,
    /// Its upstreams, in the order they are asked.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// `token` or `anonymous`.
    pub access: String,
    pub ttl_seconds: Option<u64>,
    /// Quota in bytes.
    pub max_size: Option<u64>,
    pub pins: Vec<String>,
    /// Logical bytes held (an object shared with another group counts in both).
    pub bytes: u64,
    pub pinned_bytes: u64,
    /// Immutable files it holds (OCI: blobs).
    #[serde(default)]
    pub artifacts: u64,
    /// Documents it holds, each version once (OCI: manifests and indexes).
    #[serde(default)]
    pub documents: u64,
    /// Of `artifacts`, those stored unverified: their upstream published no checksum for them.
    #[serde(default)]
    pub unverified_artifacts: u64,
    /// Deprecated: `artifacts` under the name it had before formats.
    #[schema(deprecated)]
    pub blobs: u64,
    /// Deprecated: `documents` under the name it had before formats.
    #[schema(deprecated)]
    pub manifests: u64,
    pub tags: u64,
    /// Unix ms of the least recent read of its objects.
    pub oldest_read: Option<i64>,
    /// Since the start of the current hour (traffic is counted in hourly buckets).
    pub last_1h: TrafficView,
    /// The current hour and the 23 before it.
    pub last_24h: TrafficView,
    /// The same 24 hours one by one, oldest first, the current hour last (24 entries; an hour
    /// without traffic is zeros).
    #[serde(default)]
    pub hourly: Vec<HourView>,
    /// The objects it holds by the upstream that served them.
    #[serde(default)]
    pub by_upstream: Vec<UpstreamShareView>,
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
    /// Times a group with several upstreams moved past this one because it failed (5xx, 429,
    /// timeout, no connection), as this process counted them.
    #[serde(default)]
    pub failovers: u64,
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

/// The answer to `DELETE /api/v1/tokens/{name}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RevokedView {
    /// The token's name.
    pub revoked: String,
}

/// The answer to `DELETE /api/v1/verdicts/{digest}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ForgottenVerdictsView {
    /// The object's digest.
    pub digest: String,
    /// How many groups' verdicts on it were forgotten.
    pub forgotten: u64,
}

/// A purge or a warm run started: its job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobStarted {
    pub job: String,
    /// Where its progress is: `/api/v1/jobs/<id>`.
    pub status: String,
}

/// A background job (a purge, a warm run) and its progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// `purge` or `warm`.
    pub kind: String,
    /// What it does, e.g. `purge group default image library/alpine`.
    pub description: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Objects (a warm run: tags) done so far…
    pub done: u64,
    /// …of this many.
    pub total: u64,
    /// Bytes of the objects done (a warm run: read through the proxy).
    pub bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// A warm run's report, tag by tag (updated as it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<Box<lifecycle::WarmReport>>,
}

/// One `warm` entry of a group, and when it runs next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WarmScheduleView {
    /// E.g. `library/alpine:3.* every 6h, keep 3`.
    pub schedule: String,
    pub patterns: Vec<String>,
    pub every_seconds: u64,
    pub keep: usize,
    /// When it is due next (unix ms); none before its first run.
    pub due_at: Option<i64>,
    /// The job of its last run.
    pub last_job: Option<String>,
}

/// A group's warming: its entries, and its latest runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WarmView {
    pub group: String,
    pub schedules: Vec<WarmScheduleView>,
    pub recent: Vec<JobView>,
}

impl JobView {
    /// `running (1 of 2)`: the state and the objects done of all.
    pub fn progress(&self) -> String {
        format!("{} ({} of {})", self.state, self.done, self.total)
    }
}

impl From<metadata::JobRecord> for JobView {
    fn from(job: metadata::JobRecord) -> Self {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        // A report this version cannot read is left out rather than failing the whole answer.
        let warm = job
            .result
            .as_deref()
            .filter(|_| job.kind == lifecycle::WARM_JOB_KIND)
            .and_then(|result| serde_json::from_str(result).ok())
            .map(Box::new);
        JobView {
            id: job.id,
            kind: job.kind,
            description: job.description,
            state: job.state,
            done: count(job.done),
            total: count(job.total),
            bytes: count(job.bytes),
            error: job.error,
            created_at: job.created_at,
            finished_at: job.finished_at,
            warm,
        }
    }
}

/// One error of an [`ErrorEnvelope`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// An OCI error code: `UNAUTHORIZED`, `DENIED`, `NAME_UNKNOWN`, …
    pub code: String,
    pub message: String,
    /// Free-form, as the OCI error envelope defines it (this API sends none today): a `Value`
    /// because no schema is promised for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// The OCI error envelope every failure answers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub errors: Vec<ErrorView>,
}

impl ErrorEnvelope {
    /// The first error's message, if any.
    pub fn message(&self) -> Option<&str> {
        self.errors.first().map(|error| error.message.as_str())
    }
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
