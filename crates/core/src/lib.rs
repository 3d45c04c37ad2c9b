//! The product's logic, laid out in the order data moves through it:
//!
//! - [`intake`]: read Asana (a task, a project's tasks) into [`intake::Assignment`]s;
//! - [`plan`]: merge assignments into one plan per person, and decide against what
//!   DocSpace already has;
//! - [`act`]: carry the decisions out against DocSpace, batched and confirmed;
//! - [`record`]: the durable state — ledger, queue, claims, webhook secrets, sync tokens.
//!
//! [`reconcile::run`] is the one entry point that runs the whole flow, for one task or for
//! whole projects; the binary and the webhook service only call that. [`report`] is what
//! it answers and the only place ledger rows are built; [`domain`] is the typed
//! vocabulary shared with the other crates.

#![deny(missing_docs)]

pub mod act;
pub mod config;
pub mod domain;
pub mod error;
pub mod intake;
pub mod outcome;
pub mod plan;
pub mod reconcile;
pub mod record;
pub mod report;

pub use error::{CoreError, Transience};
pub use outcome::Outcome;

use std::sync::Arc;

/// Everything the flow talks to. Cheap to clone: the clients share their rate limiters,
/// so every piece of work on one token draws from the same budget.
#[derive(Clone)]
pub struct Services {
    /// The Asana client.
    pub asana: asana_api::Client,
    /// The DocSpace client.
    pub docspace: docspace_api::Client,
    /// The state database.
    pub store: Arc<dyn record::Store>,
    /// Room checks that passed recently, shared by every reconcile of this process.
    pub rooms: Arc<act::rooms::RoomChecks>,
}

impl Services {
    /// The services over these clients and store.
    pub fn new(
        asana: asana_api::Client,
        docspace: docspace_api::Client,
        store: Arc<dyn record::Store>,
    ) -> Services {
        Services {
            asana,
            docspace,
            store,
            rooms: Arc::default(),
        }
    }
}
