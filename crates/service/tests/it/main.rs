//! Integration tests of the webhook service: the real axum service on port 0 against the
//! in-process simulators, one state database per test, all in parallel.
//! (The SIGKILL test runs the real binary: `crates/cli/tests/it/serve_sigkill.rs`.)

mod admin;
mod browser;
mod dedupe;
mod faults;
mod faulty_store;
mod handshake;
mod health_metrics;
mod overlap;
mod queue;
mod reassign;
mod revoke;
mod signature;
mod support;
mod watch;
