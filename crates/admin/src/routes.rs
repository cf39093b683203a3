//! The routes: `GET /api/v1/groups` (policy, statistics, traffic), `GET /api/v1/upstreams`
//! (health, rate-limit budget), `GET /api/v1/fills` (live fills of every node), `GET
//! /api/v1/events` (recent errors and denials), tokens (`GET|POST /api/v1/tokens`, `DELETE
//! /api/v1/tokens/{name}`), `DELETE /api/v1/groups/{path}/cache` (a purge, answered `202` with its
//! job), `GET /api/v1/groups/{path}/stale` (tags served although gone upstream), `GET|POST
//! /api/v1/groups/{path}/warm` (its warm schedules and latest runs; a run now, answered `202` with
//! its job), `GET /api/v1/jobs/{id}` (a job's progress and, for a warm run, its report), `GET|POST
//! /api/v1/sweep` (the sweeper), `DELETE /api/v1/verdicts/{digest}` (forget the admission hooks'
//! verdicts on an object, so they are asked again), and `GET /api/v1/openapi.json`, generated from
//! these handlers.

use std::sync::Arc;

use access::Access;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use injector::FillReport;
use lifecycle::{Lifecycle, PurgeRequest, Warming};
use oci::{GroupPath, RepositoryName};
use supervisor::Supervisor;

use utoipa::OpenApi as _;

use crate::api::{
    AdminTokenScheme, CreatedTokenView, ErrorEnvelope, ErrorView, EventView, ForgottenVerdictsView,
    GroupView, HourView, JobStarted, JobView, LastErrorView, NewToken, RateLimitView, RevokedView, StaleView,
    StoreView, TokenView, TrafficView, UpstreamShareView, UpstreamView, WarmScheduleView, WarmView,
};
use crate::auth::admin;
use crate::error::AdminError;
use crate::operator::OperatorView;

/// What the admin API works with.
#[derive(Clone)]
pub struct AdminState {
    pub access: Arc<Access>,
    pub lifecycle: Arc<Lifecycle>,
    /// Runs purges in the background (a shutdown waits for them, then cancels).
    pub supervisor: Supervisor,
    pub view: Arc<OperatorView>,
    /// Scheduled warming: each group's entries, and a run on request.
    pub warming: Arc<Warming>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "depproxy admin API", description = "Every call needs an admin access token as Bearer."),
    paths(groups, stale, warm_schedules, warm_now, upstreams, fills, events, tokens, create_token, revoke_token,
        purge, job, sweeper, sweep_now, forget_verdicts),
    components(schemas(
        StoreView, GroupView, UpstreamShareView, StaleView, TrafficView, HourView, UpstreamView, LastErrorView,
        RateLimitView, FillReport, EventView, TokenView, NewToken, CreatedTokenView, RevokedView, JobStarted,
        JobView, WarmView, WarmScheduleView, lifecycle::WarmReport, lifecycle::WarmEntryReport,
        lifecycle::WarmPatternReport, lifecycle::WarmTagReport, lifecycle::WarmOutcome, ForgottenVerdictsView,
        ErrorEnvelope, ErrorView
    )),
    modifiers(&AdminTokenScheme),
    security(("admin_token" = []))
)]
struct AdminApi;

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    AdminApi::openapi()
}

pub fn router(state: AdminState) -> Router {
    let access = state.access.clone();
    let api = Router::new()
        .route("/api/v1/openapi.json", axum::routing::get(|| async { axum::Json(openapi()) }))
        .route("/api/v1/groups", axum::routing::get(groups))
        .route("/api/v1/groups/{*path}", axum::routing::get(group_get).delete(purge).post(warm_now))
        .route("/api/v1/upstreams", axum::routing::get(upstreams))
        .route("/api/v1/fills", axum::routing::get(fills))
        .route("/api/v1/events", axum::routing::get(events))
        .route("/api/v1/tokens", axum::routing::get(tokens).post(create_token))
        .route("/api/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/api/v1/jobs/{id}", axum::routing::get(job))
        .route("/api/v1/sweep", axum::routing::get(sweeper).post(sweep_now))
        .route("/api/v1/verdicts/{digest}", axum::routing::delete(forget_verdicts))
        .fallback(|| async { AdminError::NotFound("no such admin API route".into()) })
        .with_state(state);
    crate::page::with_page(api, access)
}

/// The store and every group: format, policy, upstream, size vs quota, objects, traffic.
pub(crate) async fn store_view(state: &AdminState) -> Result<StoreView, AdminError> {
    let stats = state.lifecycle.stats(None).await?;
    let groups = stats
        .groups
        .into_iter()
        .map(|group| {
            let info = state.view.groups.iter().find(|info| info.path == group.group);
            let upstreams = info.map(|info| info.upstreams.clone()).unwrap_or_default();
            GroupView {
                upstream: upstreams.join(", "),
                upstreams,
                access: info.map(|info| info.access.clone()).unwrap_or_default(),
                group: group.group,
                format: group.format.as_str().to_owned(),
                ttl_seconds: group.ttl_seconds,
                max_size: group.max_size,
                pins: group.pins,
                bytes: group.bytes,
                pinned_bytes: group.pinned_bytes,
                artifacts: group.artifacts,
                documents: group.documents,
                unverified_artifacts: group.unverified_artifacts,
                blobs: group.blobs,
                manifests: group.manifests,
                tags: group.tags,
                oldest_read: group.oldest_read,
                last_1h: group.last_1h.into(),
                last_24h: group.last_24h.into(),
                hourly: group.hourly.into_iter().map(HourView::from).collect(),
                by_upstream: group
                    .by_upstream
                    .into_iter()
                    .map(|share| UpstreamShareView {
                        upstream: share.upstream,
                        objects: share.objects,
                        bytes: share.bytes,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(StoreView {
        physical_bytes: stats.physical_bytes,
        pending_delete_bytes: stats.pending_delete_bytes,
        max_size: stats.max_size,
        groups,
    })
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "groups",
    responses((status = 200, body = StoreView), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
async fn groups(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    Ok(axum::Json(store_view(&state).await?).into_response())
}

/// `GET /api/v1/groups/{path}/stale` and `…/warm`: a group path may have any number of
/// components, so the last one says which.
async fn group_get(
    state: State<AdminState>,
    Path(path): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    match path.rsplit_once('/') {
        Some((group, "stale")) => stale(state, group, request).await,
        Some((group, "warm")) => warm_schedules(state, group, request).await,
        _ => Err(AdminError::NotFound(
            "GET /api/v1/groups/{path}/stale lists a group's stale tags, …/warm its warm schedules".into(),
        )),
    }
}

/// The group's cached tags that upstream now answers 404 for and that are served anyway
/// (`stale_on_404`), most recently served first — as this node served them since it started.
#[utoipa::path(get, path = "/api/v1/groups/{path}/stale", tag = "groups",
    params(("path" = String, Path, description = "The group, e.g. `default`")),
    responses((status = 200, body = [StaleView]), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
async fn stale(
    State(state): State<AdminState>,
    group: &str,
    request: Request,
) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    match (state.view.stale)(group) {
        Some(entries) => Ok(axum::Json(entries).into_response()),
        None => Err(AdminError::NotFound(format!("no group {group:?} is configured"))),
    }
}

/// The group's `warm` entries (when each is due next, the job of its last run) and its latest
/// warm runs, newest first.
#[utoipa::path(get, path = "/api/v1/groups/{path}/warm", tag = "groups",
    params(("path" = String, Path, description = "The group, e.g. `default`")),
    responses((status = 200, body = WarmView), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
async fn warm_schedules(
    State(state): State<AdminState>,
    group: &str,
    request: Request,
) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    if !state.view.groups.iter().any(|info| info.path == group) {
        return Err(AdminError::NotFound(format!("no group {group:?} is configured")));
    }
    let mut schedules = Vec::new();
    for (index, schedule) in state.warming.schedules(group).iter().enumerate() {
        let (due_at, last_job) = state.warming.due(group, index).await?.unzip();
        schedules.push(WarmScheduleView {
            schedule: schedule.describe(),
            patterns: schedule.patterns.iter().map(|pattern| pattern.as_str().to_owned()).collect(),
            every_seconds: schedule.every.as_secs(),
            keep: schedule.keep,
            due_at,
            last_job: last_job.flatten(),
        });
    }
    let recent = state.warming.recent_jobs(group, 10).await?.into_iter().map(JobView::from).collect();
    Ok(axum::Json(WarmView { group: group.to_owned(), schedules, recent }).into_response())
}

/// Runs every `warm` entry of the group now, on this node (an entry another node is running is
/// skipped), and starts its period anew.
#[utoipa::path(post, path = "/api/v1/groups/{path}/warm", tag = "groups",
    params(("path" = String, Path, description = "The group, e.g. `default`")),
    responses((status = 202, description = "The run goes on as a job", body = JobStarted),
        (status = 404, body = ErrorEnvelope), (status = 409, description = "The group has no warm schedule",
        body = ErrorEnvelope)))]
async fn warm_now(
    State(state): State<AdminState>,
    Path(path): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    let caller = admin(&state.access, &request.into_parts().0).await?;
    let group = path.strip_suffix("/warm").ok_or_else(|| {
        AdminError::NotFound("POST /api/v1/groups/{path}/warm runs a group's warming".into())
    })?;
    let job = state.warming.start_now(group).await?;
    tracing::info!(target: "depproxy::audit", admin = %caller.name, job = %job, group, "warm run started");
    Ok(job_started(job))
}

/// `202 Accepted` with the job and where its progress is.
fn job_started(job: String) -> Response {
    let location = format!("/api/v1/jobs/{job}");
    let mut response =
        (StatusCode::ACCEPTED, axum::Json(JobStarted { job, status: location.clone() })).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

#[utoipa::path(get, path = "/api/v1/upstreams", tag = "upstreams",
    responses((status = 200, body = [UpstreamView]), (status = 401, body = ErrorEnvelope)))]
async fn upstreams(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    Ok(axum::Json(state.view.upstreams()).into_response())
}

#[utoipa::path(get, path = "/api/v1/fills", tag = "fills",
    responses((status = 200, description = "Live fills of every node, oldest first", body = [FillReport]),
        (status = 401, body = ErrorEnvelope)))]
async fn fills(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    Ok(axum::Json(state.view.fills.all()).into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct EventsQuery {
    /// How many rows, newest first (default 100, at most 1000).
    limit: Option<usize>,
    /// Only these kinds, comma-separated: `error,warning` for what went wrong, `denied` for
    /// refusals (default: all). Errors and denials are kept apart (500 rows each), so denials
    /// never push errors out.
    kind: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, description = "Recent errors and denials, newest first", body = [EventView]),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn events(
    State(state): State<AdminState>,
    Query(query): Query<EventsQuery>,
    request: Request,
) -> Result<Response, AdminError> {
    use telemetry::events::EventClass;
    admin(&state.access, &request.into_parts().0).await?;
    let kinds: Vec<&str> = match &query.kind {
        Some(kinds) => kinds.split(',').map(str::trim).filter(|kind| !kind.is_empty()).collect(),
        None => vec!["error", "warning", "denied"],
    };
    let mut classes = Vec::new();
    for kind in &kinds {
        let class = EventClass::of_kind(kind)
            .ok_or_else(|| AdminError::BadRequest(format!("kind {kind:?}: one of error, warning, denied")))?;
        classes.push(class);
    }
    let limit = query.limit.unwrap_or(100).min(2 * telemetry::events::CAPACITY);
    // A ring holds both errors and warnings: ask it for more, then keep the kinds asked for.
    let events: Vec<EventView> = telemetry::events::recent_events()
        .latest(2 * telemetry::events::CAPACITY, &classes)
        .into_iter()
        .filter(|event| kinds.contains(&event.kind.as_str()))
        .take(limit)
        .map(EventView::from)
        .collect();
    Ok(axum::Json(events).into_response())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, description = "Every token, revoked and expired ones too; never a secret",
        body = [TokenView]), (status = 401, body = ErrorEnvelope)))]
async fn tokens(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    let records =
        state.access.tokens().list().await.map_err(|error| AdminError::Internal(error.to_string()))?;
    let now = now_ms();
    let views: Vec<TokenView> = records.iter().map(|record| TokenView::of(record, now)).collect();
    Ok(axum::Json(views).into_response())
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, description = "The secret, shown this once", body = CreatedTokenView),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn create_token(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    let (parts, body) = request.into_parts();
    let caller = admin(&state.access, &parts).await?;
    let body = axum::body::to_bytes(body, 64 << 10)
        .await
        .map_err(|_| AdminError::BadRequest("the request body is too large".into()))?;
    let new: NewToken = serde_json::from_slice(&body).map_err(|error| {
        AdminError::BadRequest(format!("a token is {{name, groups, admin, expires_in}}: {error}"))
    })?;
    if !access::valid_token_name(&new.name) {
        return Err(AdminError::BadRequest(format!(
            "token name {:?}: up to 64 letters, digits, '-', '_', '.', '@'",
            new.name
        )));
    }
    let mut groups = Vec::new();
    for group in &new.groups {
        if !state.view.groups.iter().any(|info| &info.path == group) {
            return Err(AdminError::BadRequest(format!("group {group:?} is not configured")));
        }
        groups.push(GroupPath::parse(group).map_err(|error| AdminError::BadRequest(error.message))?);
    }
    if groups.is_empty() && !new.admin {
        return Err(AdminError::BadRequest("a token needs at least one group (or admin)".into()));
    }
    let expires_at = new
        .expires_in
        .as_deref()
        .map(|text| {
            humantime::parse_duration(text)
                .map(|lifetime| {
                    now_ms().saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX))
                })
                .map_err(|error| AdminError::BadRequest(format!("expires_in {text:?}: {error}")))
        })
        .transpose()?;
    let created = state
        .access
        .tokens()
        .create(&new.name, groups, new.admin, expires_at)
        .await
        .map_err(|error| AdminError::Internal(error.to_string()))?;
    tracing::info!(target: "depproxy::audit", admin = %caller.name, token = %created.record.name, "token created");
    let view = CreatedTokenView { secret: created.secret, token: TokenView::of(&created.record, now_ms()) };
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, description = "Revoked: every node refuses it within token_check_interval",
        body = RevokedView),
        (status = 404, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn revoke_token(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    let caller = admin(&state.access, &request.into_parts().0).await?;
    let revoked =
        state.access.tokens().revoke(&name).await.map_err(|error| AdminError::Internal(error.to_string()))?;
    if !revoked {
        return Err(AdminError::NotFound(format!("no active token named {name:?}")));
    }
    tracing::info!(target: "depproxy::audit", admin = %caller.name, token = %name, "token revoked");
    Ok(axum::Json(RevokedView { revoked: name }).into_response())
}

#[derive(serde::Deserialize)]
struct PurgeQuery {
    image: Option<String>,
    /// A package of a package group (`lodash`, `@types/node`, `requests`).
    package: Option<String>,
    /// e.g. `30d`.
    older_than: Option<String>,
}

#[utoipa::path(delete, path = "/api/v1/groups/{path}/cache", tag = "groups",
    params(("path" = String, Path, description = "The group, e.g. `default`"),
        ("image" = Option<String>, Query, description = "Only this image (as upstream names it; image groups)"),
        ("package" = Option<String>, Query, description = "Only this package, e.g. `lodash` (npm and PyPI groups)"),
        ("older_than" = Option<String>, Query, description = "Only what was not read for this long, e.g. `30d`")),
    responses((status = 202, description = "The purge runs as a job", body = JobStarted),
        (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn purge(
    State(state): State<AdminState>,
    Path(path): Path<String>,
    Query(query): Query<PurgeQuery>,
    request: Request,
) -> Result<Response, AdminError> {
    let caller = admin(&state.access, &request.into_parts().0).await?;
    let group = path
        .strip_suffix("/cache")
        .ok_or_else(|| AdminError::NotFound("DELETE /api/v1/groups/{path}/cache purges a group".into()))?;
    let group = GroupPath::parse(group).map_err(|error| AdminError::BadRequest(error.message))?;
    let image = query
        .image
        .as_deref()
        .map(|name| RepositoryName::parse(name).map_err(|error| AdminError::BadRequest(error.message)))
        .transpose()?;
    let older_than = query
        .older_than
        .as_deref()
        .map(|text| {
            humantime::parse_duration(text)
                .map_err(|error| AdminError::BadRequest(format!("older_than {text:?}: {error}")))
        })
        .transpose()?;
    if image.is_some() && query.package.is_some() {
        return Err(AdminError::BadRequest("give image or package, not both".into()));
    }
    let request = PurgeRequest { group, image, package: query.package, older_than };
    let job = state.lifecycle.create_purge_job(&request).await?;
    tracing::info!(target: "depproxy::audit", admin = %caller.name, job = %job, purge = %request.describe(), "purge started");
    let lifecycle = state.lifecycle.clone();
    let id = job.clone();
    state.supervisor.spawn("purge", job.clone(), move |_signal| async move {
        match lifecycle.run_purge(&request, &id, |_, _| {}).await {
            Ok(report) => tracing::info!(job = %id, format = %report.format, objects = report.objects, bytes = report.bytes,
                tags = report.tags, deleted_objects = report.deleted_objects, "purge done"),
            Err(error) => tracing::warn!(job = %id, %error, "purge failed"),
        }
    });
    Ok(job_started(job))
}

#[utoipa::path(get, path = "/api/v1/sweep", tag = "lifecycle",
    responses((status = 200, description = "Whether a sweep runs, sweeps completed")))]
async fn sweeper(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    Ok(axum::Json(state.lifecycle.sweeper_status()).into_response())
}

/// Starts a sweep now; the answer carries the count of sweeps completed so far, so a caller
/// waits for `completed` to pass it.
#[utoipa::path(post, path = "/api/v1/sweep", tag = "lifecycle",
    responses((status = 202, description = "A sweep starts soon; the answer holds the sweeps completed so far")))]
async fn sweep_now(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    let caller = admin(&state.access, &request.into_parts().0).await?;
    let status = state.lifecycle.sweeper_status();
    state.lifecycle.sweep_soon();
    tracing::info!(target: "depproxy::audit", admin = %caller.name, "sweep requested");
    Ok((StatusCode::ACCEPTED, axum::Json(status)).into_response())
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "lifecycle",
    params(("id" = String, Path, description = "The job id a purge or a warm run answered")),
    responses((status = 200, description = "The job's progress", body = JobView),
        (status = 404, body = ErrorEnvelope)))]
async fn job(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    match state.lifecycle.job(&id).await? {
        Some(job) => Ok(axum::Json(JobView::from(job)).into_response()),
        None => Err(AdminError::NotFound(format!("no job {id:?}"))),
    }
}

/// Forgets every group's admission verdict on an object, so its group's hook is asked again: a
/// refused object on its next request (fetched and held anew), an allowed one that is cached on
/// its next hit.
#[utoipa::path(delete, path = "/api/v1/verdicts/{digest}", tag = "admission",
    params(("digest" = String, Path, description = "The object's digest, `sha256:…`")),
    responses((status = 200, description = "Forgotten: every node asks the hook again within a second",
        body = ForgottenVerdictsView),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No group has a verdict on it", body = ErrorEnvelope)))]
async fn forget_verdicts(
    State(state): State<AdminState>,
    Path(digest): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    let caller = admin(&state.access, &request.into_parts().0).await?;
    let parsed: oci::Digest = digest
        .parse()
        .map_err(|error| AdminError::BadRequest(format!("{digest:?} is not a digest (sha256:…): {error}")))?;
    let forgotten = state.lifecycle.forget_verdicts(&parsed).await?;
    if forgotten == 0 {
        return Err(AdminError::NotFound(format!("no admission verdict on {parsed}")));
    }
    tracing::info!(target: "depproxy::audit", admin = %caller.name, digest = %parsed, forgotten,
        "admission verdicts forgotten");
    Ok(axum::Json(ForgottenVerdictsView { digest: parsed.to_string(), forgotten }).into_response())
}
