//! The admin API, on its own listener: JSON under `/api/v1/`, every call authenticated with an
//! admin access token (`Authorization: Bearer dpp_…`). This holds the lifecycle's operations —
//! statistics per group, purges as background jobs (`202 Accepted` and a job to poll).

mod api;
mod auth;
mod error;
mod operator;
mod page;
mod routes;

pub use api::{
    CreatedTokenView, EventView, GroupView, JobStarted, StoreView, TokenView, TrafficView, UpstreamView,
};
pub use error::AdminError;
pub use operator::{
    FillBoard, GroupInfo, MAX_FILLS_PER_NODE, MAX_REPORTING_NODES, OperatorView, REPORT_LIFETIME,
    UpstreamInfo,
};
pub use routes::{AdminState, openapi, router};
