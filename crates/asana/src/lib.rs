//! A typed client for the slice of the Asana REST API (`/api/1.0`) that asana-docspace needs:
//! tasks, users, projects, `workspaces/{gid}/addUser`, webhooks and events.
//!
//! - [`config`]: [`Config`], the base URL, token and the reliability knobs.
//! - [`client`]: [`Client`], the one transport every call goes through (rate limiter,
//!   read/write concurrency caps, retries) and its [`Metrics`].
//! - [`api`]: the endpoints, one module per Asana resource, all methods on [`Client`].
//! - [`models`]: response and request types; tolerant of fields trimmed by `opt_fields`.
//! - [`gid`]: [`Gid`], a validated Asana identifier for inputs.
//! - [`error`]: [`Error`], one typed error for every failure.
//!
//! ```no_run
//! # async fn run() -> Result<(), asana_api::Error> {
//! use asana_api::{Client, Config, Gid};
//! use futures::TryStreamExt;
//!
//! let cfg = Config::new("https://app.asana.com/api/1.0", "0/secret-token".into())?;
//! let asana = Client::new(cfg)?;
//! let task = asana.get_task(&Gid::parse("1201")?, &["name", "assignee.email"]).await?;
//! println!("{:?}", task.assignee.and_then(|a| a.email));
//!
//! let project = Gid::parse("1200")?;
//! let tasks: Vec<_> = asana.project_tasks(&project, &["assignee.email"], None).try_collect().await?;
//! # let _ = tasks;
//! # Ok(())
//! # }
//! ```
//!
//! Rate limits follow Asana's documented budgets: a token bucket of
//! [`Config::requests_per_minute`] shared by every clone of a [`Client`], at most
//! [`Config::max_concurrent_reads`] GETs and [`Config::max_concurrent_writes`] other
//! requests in flight. A 429 is retried on any method (honouring `Retry-After`); 5xx and
//! dropped connections are retried on GET only, since a write may already have happened.

#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod gid;
pub mod models;
pub mod window;

pub use api::tasks::{TaskList, TaskPage};
pub use client::{Client, Metrics};
pub use config::Config;
pub use error::Error;
pub use gid::Gid;
pub use models::{
    Change, ChangeValue, Compact, Event, EventAction, EventsPage, Lenient, MalformedEvent, Project,
    Task, TaskMembership, User, UserRef, Webhook, WebhookDelivery, WebhookFilter,
};
pub use window::RateWindow;
