//! The routes: `GET /api/v1/groups` (statistics), `DELETE /api/v1/groups/{path}/cache` (a purge,
//! answered `202` with its job), `GET /api/v1/jobs/{id}` (a job's progress), `GET /api/v1/sweep`
//! (the sweeper: running, sweeps completed) and `POST /api/v1/sweep` (a sweep now, `202`).

use std::sync::Arc;

use access::Access;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use lifecycle::{Lifecycle, PurgeRequest};
use oci::{GroupPath, RepositoryName};
use supervisor::Supervisor;

use crate::auth::admin;
use crate::error::AdminError;

/// What the admin API works with.
#[derive(Clone)]
pub struct AdminState {
    pub access: Arc<Access>,
    pub lifecycle: Arc<Lifecycle>,
    /// Runs purges in the background (a shutdown waits for them, then cancels).
    pub supervisor: Supervisor,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/v1/groups", axum::routing::get(groups))
        .route("/api/v1/groups/{*path}", axum::routing::delete(purge))
        .route("/api/v1/jobs/{id}", axum::routing::get(job))
        .route("/api/v1/sweep", axum::routing::get(sweeper).post(sweep_now))
        .fallback(|| async { AdminError::NotFound("no such admin API route".into()) })
        .with_state(state)
}

async fn groups(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    Ok(axum::Json(state.lifecycle.stats(None).await?).into_response())
}

#[derive(serde::Deserialize)]
struct PurgeQuery {
    image: Option<String>,
    /// e.g. `30d`.
    older_than: Option<String>,
}

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
    let request = PurgeRequest { group, image, older_than };
    let job = state.lifecycle.create_purge_job(&request).await?;
    tracing::info!(target: "depproxy::audit", admin = %caller.name, job = %job, purge = %request.describe(), "purge started");
    let lifecycle = state.lifecycle.clone();
    let id = job.clone();
    state.supervisor.spawn("purge", job.clone(), move |_signal| async move {
        match lifecycle.run_purge(&request, &id, |_, _| {}).await {
            Ok(report) => tracing::info!(job = %id, ?report, "purge done"),
            Err(error) => tracing::warn!(job = %id, %error, "purge failed"),
        }
    });
    let location = format!("/api/v1/jobs/{job}");
    let mut response =
        (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "job": job, "status": location })))
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    Ok(response)
}

async fn sweeper(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    Ok(axum::Json(state.lifecycle.sweeper_status()).into_response())
}

/// Starts a sweep now; the answer carries the count of sweeps completed so far, so a caller
/// waits for `completed` to pass it.
async fn sweep_now(State(state): State<AdminState>, request: Request) -> Result<Response, AdminError> {
    let caller = admin(&state.access, &request.into_parts().0).await?;
    let status = state.lifecycle.sweeper_status();
    state.lifecycle.sweep_soon();
    tracing::info!(target: "depproxy::audit", admin = %caller.name, "sweep requested");
    Ok((StatusCode::ACCEPTED, axum::Json(status)).into_response())
}

async fn job(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    admin(&state.access, &request.into_parts().0).await?;
    match state.lifecycle.job(&id).await? {
        Some(job) => Ok(axum::Json(job).into_response()),
        None => Err(AdminError::NotFound(format!("no job {id:?}"))),
    }
}
