//! Integration tests of the `asana-docspace` binary: one test binary, one module per
//! concern, all through the one harness in `harness` (simulators on port 0, the real
//! binary, and one rule for its environment).

mod add_to_workspace;
mod config;
mod contract;
mod harness;
mod invite;
mod operators;
mod overlap;
#[cfg(unix)]
mod replicas;
mod retries;
mod revoke;
mod secrets;
#[cfg(unix)]
mod serve_faults;
#[cfg(unix)]
mod serve_sigkill;
mod state_migrate;
mod sync;
mod sync_flow;
mod sync_reliability;
