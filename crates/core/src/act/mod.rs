//! Act: the DocSpace side of a reconcile — reads that tell who is already there, and the
//! writes, batched, each followed by the evidence that it landed.
//!
//! - [`rooms`]: is a room target usable (exists, its type allows the level)? Checked before
//!   any write, and remembered for a while;
//! - [`resolve`]: who of these emails is on the portal, in the fewest calls;
//! - [`invite`]: invitations in batches, resilient to one refused address and to answers
//!   that never came;
//! - [`share`]: room shares in batches, re-reading the members before any repeat;
//! - [`revoke`]: room removals (access 0) in batches, each answer compared with the request.

pub mod invite;
pub mod resolve;
pub mod revoke;
pub mod rooms;
pub mod share;
