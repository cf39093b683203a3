//! The `depproxy` binary: parses its arguments (the flags are in `cli/args.rs`), sets up logging
//! and the runtime, and runs the command (`cli/commands.rs`): `serve` (both roles, zero config),
//! `control` and `gateway` (split mode), `check-config`, `gen-secret`, `token`, `cache`, `admin`.

use anyhow::Context as _;
use clap::Parser as _;
use depproxy::cli::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Held to the end of `main`: dropping it writes out what the log thread still holds.
    let _log_writer = depproxy::cli::logging::init(cli.log_format);
    // One crypto provider for rustls (upstream TLS, PostgreSQL TLS) and jsonwebtoken (registry tokens).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(depproxy::defaults::BLOCKING_THREADS)
        .build()
        .context("tokio runtime")?;
    runtime.block_on(depproxy::cli::commands::run(cli.command))
}
