//! A throwaway database on a test PostgreSQL server, for the Postgres half of the store
//! conformance suite and the multi-replica tests.
//!
//! The server comes from [`SERVER_ENV`] (`ASANA_DOCSPACE_TEST_POSTGRES`, a URL of a
//! database on it that the user may connect to and create databases from; the repo's
//! `.cargo/config.toml` points it at the local server, `postgres://postgres@127.0.0.1:5432/postgres`).
//! Each [`TestDatabase`] is a fresh database with a random name, dropped (connections and
//! all) when the value is dropped, so tests run in parallel without sharing rows.
//!
//! No server is a failure, never a skip: [`TestDatabase::create`] panics with what to set.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

/// The environment variable naming the test server.
pub const SERVER_ENV: &str = "ASANA_DOCSPACE_TEST_POSTGRES";

/// A fresh database on the test server, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

fn how_to() -> String {
    format!(
        "the Postgres tests need a PostgreSQL server: set {SERVER_ENV} to a URL of a database \
         on it whose user may CREATE DATABASE (e.g. postgres://postgres@127.0.0.1:5432/postgres; \
         .cargo/config.toml sets this default), or start the local server \
         (`pg_ctlcluster --skip-systemctl-redirect <version> main start`; .ci/run does it)"
    )
}

impl TestDatabase {
    /// Creates a database named `asana_docspace_test_<random>` on the server of
    /// [`SERVER_ENV`]. Panics, saying how to point the tests at a server, when the variable
    /// is unset or the server cannot be reached.
    pub async fn create() -> TestDatabase {
        let admin = std::env::var(SERVER_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| panic!("{SERVER_ENV} is not set: {}", how_to()));
        let name = format!("asana_docspace_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(&admin).await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CREATE DATABASE on the test server failed: {e}; {}",
                    how_to()
                )
            });
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin)
            .unwrap_or_else(|e| panic!("{SERVER_ENV} is not a URL ({e}): {}", how_to()));
        url.set_path(&format!("/{name}"));
        TestDatabase {
            admin,
            name,
            url: url.to_string(),
        }
    }

    /// The database's URL, for `record::open` or `ASANA_DOCSPACE_STATE`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

async fn connect(admin: &str) -> PgConnection {
    let opts = PgConnectOptions::from_str(admin)
        .unwrap_or_else(|e| panic!("{SERVER_ENV} is not a postgres URL ({e}): {}", how_to()));
    opts.connect().await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the PostgreSQL server named by {SERVER_ENV} ({}): {e}; {}",
            server_of(admin),
            how_to()
        )
    })
}

/// Where the server is, without the user or password the URL may carry.
fn server_of(u: &str) -> String {
    url::Url::parse(u)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port().unwrap_or(5432))))
        .unwrap_or_else(|| "(not a URL)".into())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime that must not block: drop the database from a
        // thread of its own, with its own small runtime, and wait for it.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut conn = PgConnectOptions::from_str(&admin)
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                let res = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                res.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop the test database {}", self.name);
        }
    }
}
