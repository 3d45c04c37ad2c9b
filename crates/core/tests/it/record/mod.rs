//! The durable state (`bridge_core::record`): opening, the ledger, the work queue,
//! webhook registrations, and the indexes behind the queue's hot queries.

mod claims;
mod indexes;
mod ledger;
mod open;
mod queue;
mod revocations;
mod sync_marks;
mod webhooks;
