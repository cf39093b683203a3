//! The admin API and the status page, on their own listener: JSON under `/api/v1/`, every call
//! authenticated with an admin access token (`Authorization: Bearer dpp_…`) or the page's session.
//! It holds the operator's view and operations — groups and their statistics, upstreams and their
//! health, running fills, events, access tokens, the sweeper (status and a sweep on request),
//! purges and warm runs as background jobs (`202 Accepted` and a job to poll), and each group's
//! warm schedules.

mod api;
mod auth;
mod error;
mod operator;
mod page;
mod routes;

pub use api::{
    CreatedTokenView, ErrorEnvelope, ErrorView, EventView, GroupView, HourView, JobStarted, JobView,
    LastErrorView, RateLimitView, RevokedView, StaleView, StoreView, TokenView, TrafficView, UpstreamView,
    WarmScheduleView, WarmView,
};
pub use error::AdminError;
pub use operator::{
    FillBoard, GroupInfo, MAX_FILLS_PER_NODE, MAX_REPORTING_NODES, OperatorView, REPORT_LIFETIME,
    StaleSource, UpstreamInfo,
};
pub use routes::{AdminState, openapi, router};
