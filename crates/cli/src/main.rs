//! `asana-docspace`: the thin binary. Parses flags, resolves settings (flags over
//! environment over the config file), calls `bridge-core`, prints, and maps every
//! failure to the documented exit code.

mod args;
mod commands;
mod config;
mod output;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, LogFormat};

/// The brief's exit codes, in one place.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOTHING_TO_DO: u8 = 3;
    /// A run held back by `[deprovision] max_revocations`: nothing was removed, the rest
    /// was done (`bridge_core::report::EXIT_REVOCATIONS_HELD`).
    pub const REVOCATIONS_HELD: u8 = 4;
}

/// An error that already knows its exit code. Everything else that reaches `main` is a
/// remote failure (exit 1).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Exit {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: exit::USAGE,
        message: message.into(),
    }
    .into()
}

/// Map a core error onto the contract's exit codes, keeping its message.
pub fn from_core(e: bridge_core::CoreError) -> anyhow::Error {
    Exit {
        code: e.exit_code() as u8,
        message: e.to_string(),
    }
    .into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Exit>().map_or(exit::FAILURE, |x| x.code);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Invite(a) => commands::invite::run(g, a).await,
        Command::AddToWorkspace(a) => commands::add_to_workspace::run(g, a).await,
        Command::Sync(a) => commands::sync::run(g, a).await,
        Command::History(a) => commands::history::run(g, a).await,
        Command::Doctor => commands::doctor::run(g).await,
        Command::Sim(a) => commands::sim::run(a).await,
        Command::Demo => commands::demo::run(g).await,
        Command::Serve(a) => commands::serve::run(g, a).await,
        Command::Webhooks(a) => commands::webhooks::run(g, a).await,
        Command::Watch(a) => commands::watch::run(g, a).await,
        Command::Replay(a) => commands::replay::run(g, a).await,
        Command::Config(a) => commands::config::run(g, a).await,
        Command::State(a) => commands::state::run(g, a).await,
        Command::Completions { shell } => commands::docs::completions(shell),
        Command::Man => commands::docs::man(),
    }
}

/// Logs go to stderr so stdout stays clean for `--json`. Quiet by default: the tool's
/// own output is the interface; `-v` shows retries and rate-limit waits. With
/// `--log-format json`, one JSON object per line (for journald forwarders, Loki, Vector).
fn init_tracing(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info,asana_api=info,docspace_api=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASANA_DOCSPACE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
