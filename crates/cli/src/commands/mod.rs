//! One module per subcommand; each turns its arguments into core calls and output.

pub mod add_to_workspace;
pub mod config;
pub mod demo;
pub mod docs;
pub mod doctor;
pub mod history;
pub mod invite;
pub mod replay;
pub mod serve;
pub mod sim;
pub mod state;
pub mod sync;
pub mod watch;
pub mod webhooks;

/// A run id groups the ledger rows one command wrote.
pub fn run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    )
}
