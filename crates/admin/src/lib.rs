//! The admin API, on its own listener: JSON under `/api/v1/`, every call authenticated with an
//! admin access token (`Authorization: Bearer dpp_…`). This holds the lifecycle's operations —
//! statistics per group, purges as background jobs (`202 Accepted` and a job to poll).

mod auth;
mod error;
mod routes;

pub use error::AdminError;
pub use routes::{AdminState, router};
