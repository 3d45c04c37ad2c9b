//! Moving up from one host to several: copy a SQLite state into PostgreSQL
//! (`asana-docspace state migrate --to postgres://…`).
//!
//! Copied: the ledger, the queue (every job, done ones too — their dedupe keys keep
//! recognising Asana's redeliveries), webhook registrations with their secrets, Events API
//! sync tokens and incremental sync marks. Not copied: claims (they only matter while
//! their holder runs) and the replica registry.
//!
//! **Idempotent.** Every row is inserted with `ON CONFLICT DO NOTHING` on a natural key —
//! the SQLite row id for ledger entries (kept as `imported_id`), the dedupe key for jobs,
//! our id for webhooks, the resource or rule for tokens and marks — so a rerun, or a run
//! cut short and started again, copies nothing twice and reports what it added.
//!
//! A job that was running in SQLite arrives queued and due now: stop `serve`/`watch` on
//! the SQLite state before migrating, and start them on Postgres after.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{PgStore, Result, SqliteStore};

/// Rows added to Postgres by one [`copy_sqlite_to_postgres`], per kind (rows already there
/// are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Copied {
    /// Ledger entries.
    pub ledger: u64,
    /// Jobs of any state.
    pub jobs: u64,
    /// Webhook registrations.
    pub webhooks: u64,
    /// Events API sync tokens.
    pub sync_tokens: u64,
    /// Incremental sync marks.
    pub sync_marks: u64,
}

impl Copied {
    /// All rows added.
    pub fn total(&self) -> u64 {
        self.ledger + self.jobs + self.webhooks + self.sync_tokens + self.sync_marks
    }
}

fn dt(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Rows per Postgres transaction while copying.
const CHUNK: usize = 500;

/// Copies `from`'s state into `to` (see the module docs). Safe to run again.
pub async fn copy_sqlite_to_postgres(from: &SqliteStore, to: &PgStore) -> Result<Copied> {
    let src = from.reader();
    let dst = to.pool();
    let mut copied = Copied::default();

    let rows = sqlx::query(
        "SELECT id, at, run_id, source, task_gid, assignee_gid, email, target, action, \
         outcome, error, detail FROM ledger ORDER BY id",
    )
    .fetch_all(src)
    .await?;
    for chunk in rows.chunks(CHUNK) {
        let mut tx = dst.begin().await?;
        for r in chunk {
            let done = sqlx::query(
                "INSERT INTO ledger (at, run_id, source, task_gid, assignee_gid, email, target, \
                 action, outcome, error, detail, imported_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (imported_id) DO NOTHING",
            )
            .bind(dt(r.try_get("at")?))
            .bind(r.try_get::<String, _>("run_id")?)
            .bind(r.try_get::<String, _>("source")?)
            .bind(r.try_get::<Option<String>, _>("task_gid")?)
            .bind(r.try_get::<Option<String>, _>("assignee_gid")?)
            .bind(r.try_get::<Option<String>, _>("email")?)
            .bind(r.try_get::<String, _>("target")?)
            .bind(r.try_get::<String, _>("action")?)
            .bind(r.try_get::<String, _>("outcome")?)
            .bind(r.try_get::<Option<String>, _>("error")?)
            .bind(r.try_get::<Option<String>, _>("detail")?)
            .bind(r.try_get::<i64, _>("id")?)
            .execute(&mut *tx)
            .await?;
            copied.ledger += done.rows_affected();
        }
        tx.commit().await?;
    }

    let rows = sqlx::query(
        "SELECT kind, resource_gid, project_gid, dedupe_key, payload, state, attempts, \
         last_error, created_at, updated_at, next_attempt_at FROM jobs ORDER BY id",
    )
    .fetch_all(src)
    .await?;
    for chunk in rows.chunks(CHUNK) {
        let mut tx = dst.begin().await?;
        for r in chunk {
            // A job some SQLite worker was running is queued again, due now.
            let state: String = r.try_get("state")?;
            let (state, due) = if state == "running" {
                ("queued".to_string(), Utc::now())
            } else {
                (state, dt(r.try_get("next_attempt_at")?))
            };
            let done = sqlx::query(
                "INSERT INTO jobs (kind, resource_gid, project_gid, dedupe_key, payload, state, \
                 attempts, last_error, created_at, updated_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .bind(r.try_get::<String, _>("kind")?)
            .bind(r.try_get::<String, _>("resource_gid")?)
            .bind(r.try_get::<Option<String>, _>("project_gid")?)
            .bind(r.try_get::<String, _>("dedupe_key")?)
            .bind(r.try_get::<Option<String>, _>("payload")?)
            .bind(state)
            .bind(i32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(i32::MAX))
            .bind(r.try_get::<Option<String>, _>("last_error")?)
            .bind(dt(r.try_get("created_at")?))
            .bind(dt(r.try_get("updated_at")?))
            .bind(due)
            .execute(&mut *tx)
            .await?;
            copied.jobs += done.rows_affected();
        }
        tx.commit().await?;
    }

    let rows = sqlx::query(
        "SELECT id, project_gid, target, asana_gid, secret, state, created_at FROM webhooks",
    )
    .fetch_all(src)
    .await?;
    for r in &rows {
        let done = sqlx::query(
            "INSERT INTO webhooks (id, project_gid, target, asana_gid, secret, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(r.try_get::<String, _>("id")?)
        .bind(r.try_get::<String, _>("project_gid")?)
        .bind(r.try_get::<String, _>("target")?)
        .bind(r.try_get::<Option<String>, _>("asana_gid")?)
        .bind(r.try_get::<Option<String>, _>("secret")?)
        .bind(r.try_get::<String, _>("state")?)
        .bind(dt(r.try_get("created_at")?))
        .execute(dst)
        .await?;
        copied.webhooks += done.rows_affected();
    }

    let rows = sqlx::query("SELECT resource_gid, token, updated_at FROM sync_tokens")
        .fetch_all(src)
        .await?;
    for r in &rows {
        let done = sqlx::query(
            "INSERT INTO sync_tokens (resource_gid, token, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(r.try_get::<String, _>("resource_gid")?)
        .bind(r.try_get::<String, _>("token")?)
        .bind(dt(r.try_get("updated_at")?))
        .execute(dst)
        .await?;
        copied.sync_tokens += done.rows_affected();
    }

    let rows = sqlx::query(
        "SELECT rule_key, project_gid, fingerprint, full_started_at, since, updated_at \
         FROM sync_marks",
    )
    .fetch_all(src)
    .await?;
    for r in &rows {
        let done = sqlx::query(
            "INSERT INTO sync_marks \
             (rule_key, project_gid, fingerprint, full_started_at, since, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(r.try_get::<String, _>("rule_key")?)
        .bind(r.try_get::<String, _>("project_gid")?)
        .bind(r.try_get::<String, _>("fingerprint")?)
        .bind(dt(r.try_get("full_started_at")?))
        .bind(dt(r.try_get("since")?))
        .bind(dt(r.try_get("updated_at")?))
        .execute(dst)
        .await?;
        copied.sync_marks += done.rows_affected();
    }
    Ok(copied)
}
