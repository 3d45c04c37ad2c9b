//! The product's logic, laid out in the order data moves through it:
//!
//! - [`intake`]: read Asana (a task, a project's tasks, events) into [`intake::Assignment`]s;
//! - [`plan`]: compare assignments with what DocSpace already has and decide;
//! - [`act`]: carry the decisions out against DocSpace, batched and confirmed;
//! - [`record`]: the durable state — ledger, queue, webhook secrets, sync tokens.
//!
//! [`invite`] (one task) and [`sync`] (whole projects) are the two entry points that run
//! the whole flow; the binary and the webhook service only call those.

pub mod act;
pub mod config;
pub mod error;
pub mod intake;
pub mod invite;
pub mod outcome;
pub mod plan;
pub mod record;
pub mod sync;

pub use error::CoreError;
pub use outcome::Outcome;

use std::sync::Arc;

/// Everything the flow talks to. Cheap to clone: the clients share their rate limiters,
/// so every piece of work on one token draws from the same budget.
#[derive(Clone)]
pub struct Services {
    pub asana: asana_api::Client,
    pub docspace: docspace_api::Client,
    pub store: Arc<dyn record::Store>,
}
