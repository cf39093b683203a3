//! Wiring: the control plane and the gateway built from a resolved configuration.

mod nodes;

pub use nodes::{
    ControlNode, ForgetRemoved, Runtime, admin_router, build_groups, control_channel, control_node,
    control_router, create_private_dir, gateway, lifecycle, lifecycle_groups, metrics_router, open_store,
    serve, serve_node, upstream_http, write_new_secret,
};
