//! The durable state (`bridge_core::record`): opening, the ledger, the work queue,
//! webhook registrations, and the indexes behind the queue's hot queries.
//!
//! **One conformance suite for every backend.** The store tests are plain `async fn`s
//! taking a [`Backend`]; [`conformance!`] turns each into two tests, `<module>::sqlite::<name>`
//! and `<module>::postgres::<name>`. A Postgres test runs in a fresh database of its own on
//! the server named by `ASANA_DOCSPACE_TEST_POSTGRES` (`.cargo/config.toml` points it at the
//! local server) and fails, saying so, when that server cannot be reached.

use std::sync::Arc;

use bridge_core::record::{self, Store};
use bridge_sim::postgres::TestDatabase;

mod claims;
mod indexes;
mod ledger;
mod open;
mod postgres;
mod queue;
mod revocations;
mod sync_marks;
mod webhooks;

/// Where one test's state lives: a SQLite file in a temporary directory, or a database of
/// its own on the test server. Dropping it deletes the file or drops the database.
pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Backend {
    pub async fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn postgres() -> Backend {
        Backend::Postgres(TestDatabase::create().await)
    }

    /// The location `record::open` takes.
    pub fn location(&self) -> String {
        match self {
            Backend::Sqlite(dir) => dir.path().join("state.db").to_string_lossy().into_owned(),
            Backend::Postgres(db) => db.url().to_string(),
        }
    }

    /// Opens (another) store on this test's state: two opens are two pools, as two
    /// processes or replicas would have.
    pub async fn open(&self) -> Arc<dyn Store> {
        record::open(&self.location()).await.unwrap()
    }
}

/// `conformance!(a, b)`: `sqlite::a`, `sqlite::b`, `postgres::a`, `postgres::b`, each
/// calling the module's `async fn a(&Backend)` on a fresh backend of its kind.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let backend = $crate::record::Backend::sqlite().await;
                    super::$test(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let backend = $crate::record::Backend::postgres().await;
                    super::$test(&backend).await;
                }
            )*
        }
    };
}
pub(crate) use conformance;
