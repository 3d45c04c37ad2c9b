//! Intake: how Asana's news reaches the queue.
//!
//! - [`webhook`]: deliveries to `/webhooks/asana/{id}` — signature verification over the
//!   raw bytes, event → job conversion and the dedupe key;
//! - [`events`]: the Events API poller behind `watch`, for deployments without a public URL.
//!
//! Both produce the same jobs (`task` per relevant event, `project` for a full resync)
//! and hand them to the group-commit writer ([`crate::writer`]).

pub mod events;
pub mod webhook;
