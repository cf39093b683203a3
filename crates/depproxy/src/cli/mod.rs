//! The command line: its flags (`args`), what each command does (`commands`), the process's logs,
//! and the clients of the commands that work on a proxy's database (`token`, `cache`) or talk to a
//! running proxy (`admin`, `warm`).

pub mod admin;
pub mod args;
pub mod cache;
pub mod commands;
pub mod logging;
pub mod output;
pub mod token;
pub mod warm;

pub use args::{
    AdminCommand, AdminTarget, AdminTls, CacheCommand, CacheStoreArgs, Cli, Command, ControlArgs,
    GatewayArgs, ListenerTls, LogFormat, PACKAGED_CONFIG, ServeArgs, TokenCommand, TokenStoreArgs,
    packaged_config, warm_listen,
};
