//! Wiring: the control plane and the gateway built from a resolved configuration (`nodes`),
//! their listeners (`listeners`), the one way each role starts and drains (`run`), for the
//! binary and the tests alike, the groups' policies reloaded on SIGHUP (`reload`), and what
//! scheduled warming pulls through (`warming`).

mod listeners;
mod nodes;
mod reload;
mod run;
mod warming;

pub use listeners::{StartedWith, load_certificate, shutdown_signal};
pub use nodes::{
    ControlNode, ForgetRemoved, Runtime, admin_router, build_groups, control_channel, control_node,
    create_private_dir, gateway, lifecycle, lifecycle_groups, metrics_router, open_store, serve_node,
    start_warming, upstream_http, write_new_secret,
};
pub use reload::{ConfigSource, Reloaded, apply_policies};
pub use run::{ControlAddress, ListenOptions, Running, ServeNode, run_control, run_gateway, run_serve};
pub use warming::ProxyPuller;
