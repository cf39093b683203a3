//! The depproxy application: configuration loading and the wiring of control plane and gateway.
//! The `depproxy` binary (`main.rs`) is a thin CLI over this; tests start the same wiring.

pub mod app;
pub mod cli;
pub mod config;
pub mod defaults;
pub mod server;
