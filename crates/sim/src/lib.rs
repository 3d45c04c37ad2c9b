//! Loopback simulators of the Asana and ONLYOFFICE DocSpace APIs.
//!
//! Both are real axum servers on `127.0.0.1` (port 0 by default) that answer in the
//! vendors' shapes (see `shared/notes/` and the OpenAPI specs), keep a log of every request
//! for assertions and the contract check, and inject faults (error statuses, dropped
//! connections, delays) deterministically from a seed. Integration tests run the real CLI
//! binary against them; `asana-docspace sim` and `demo` serve them to people.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bridge_sim::{seed, AsanaSim, AsanaSimOptions, DocSpaceSim, DocSpaceSimOptions};
//! let (asana_world, docspace_world, ids) = seed::demo();
//! let asana = AsanaSim::start(asana_world, AsanaSimOptions::default()).await?;
//! let docspace = DocSpaceSim::start(docspace_world, DocSpaceSimOptions::default()).await?;
//! println!("ASANA_BASE_URL={} DOCSPACE_URL={}", asana.base_url(), docspace.base_url());
//! # let _ = ids; Ok(()) }
//! ```

// Every public item says what it is for: the sim is the API the tests and `demo` are
// written against.
#![deny(missing_docs)]
// Handlers return `Result<_, Response>` so an early error is already the vendor's answer;
// boxing every `Response` would only add noise to code that is not performance-critical.
#![allow(clippy::result_large_err)]

pub mod asana;
pub mod docspace;
pub mod faults;
pub mod log;
pub mod postgres;
pub mod seed;
mod server;

pub use asana::{AsanaSim, AsanaSimOptions, AsanaWorld, DeliveryAttempt};
pub use docspace::{DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld, PersonState, SimUserType};
pub use faults::{Fault, FaultKind};
pub use log::LoggedRequest;

/// Signs a webhook body the way the Asana sim does (lowercase hex HMAC-SHA256), so tests
/// and receivers can check signatures without re-implementing it.
pub fn sign_webhook_body(secret: &str, body: &[u8]) -> String {
    asana::sign(secret, body)
}
