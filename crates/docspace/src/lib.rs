//! Typed client for the slice of the ONLYOFFICE DocSpace REST API (`/api/2.0`)
//! that asana-docspace needs: look people up, invite them, share rooms.
//!
//! - [`Config`] / [`Client`]: base URL, API key (`Authorization: Bearer`), timeouts,
//!   an optional client-side rate limit, read/write concurrency caps and retries
//!   (429 on any method, honouring `Retry-After`; 5xx and connection errors on GET).
//! - [`UserType`], [`Access`], [`RoomType`]: the server's enums, sent as
//!   **integers** (their names changed meaning in v3.0, and an unknown access
//!   name silently removes the member).
//! - [`Person`], [`PersonSummary`], [`Room`], [`RoomMember`], [`ShareResult`]:
//!   tolerant response models; [`Invitation`], [`RoomShare`], [`PeopleFilter`]:
//!   request parameters.
//! - [`Error`]: one typed error for every non-2xx answer, transport failure and
//!   decode mismatch. No error, log line or `Debug` output contains the key.
//!
//! ```no_run
//! # async fn run() -> Result<(), docspace_api::Error> {
//! use docspace_api::{Client, Config, Invitation, UserType};
//!
//! let cfg = Config::new("docspace.example.com", "sk-…".to_owned().into())?;
//! let client = Client::new(cfg)?;
//! if client.find_person_by_email("ada@example.com").await?.is_none() {
//!     client.invite(&[Invitation::new("ada@example.com", UserType::User)]).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! The vendor's OpenAPI documents (`shared/specs/docspace/`) describe the
//! requests; one deliberate deviation: `type` (EmployeeType) is sent as an
//! integer although the spec lists names only — the server accepts both, and
//! the names are ambiguous across versions.

#![deny(missing_docs)]

mod client;
mod config;
mod de;
mod error;
mod models;
mod types;

pub use client::Client;
pub use config::Config;
pub use error::Error;
pub use models::{
    Invitation, Metrics, PeopleFilter, Person, PersonState, PersonSummary, Room, RoomMember,
    RoomShare, ShareResult, ACTIVATION_STATUS_PENDING, EMPLOYEE_STATUS_ACTIVE,
    EMPLOYEE_STATUS_PENDING, EMPLOYEE_STATUS_TERMINATED,
};
pub use types::{Access, RoomType, UserType};
