//! SQLite backend of [`Store`].
//!
//! Two pools on one file in WAL mode:
//! - a **write pool with a single connection**: every write of this process is serialised
//!   here, so our own connections never fight for SQLite's one write lock (no `SQLITE_BUSY`),
//!   and hot statements stay prepared on that connection;
//! - a **read pool** of a few `query_only` connections: WAL readers never block the writer.
//!
//! Other processes on the same file (a CLI run while `serve` is up) are covered by the 5 s
//! busy timeout; multi-statement write transactions start with `BEGIN IMMEDIATE` so they take
//! the write lock up front instead of failing on a lock upgrade. Single write statements
//! (`claim` is one `UPDATE … RETURNING`) are atomic by themselves.
//!
//! A write connection whose transaction state is unknown is never reused: SQLite rolls a
//! transaction back by itself after `SQLITE_FULL` or an I/O error, the `ROLLBACK` sqlx then
//! sends fails ("no transaction is active"), and sqlx would go on counting the transaction
//! as open and refuse every later `BEGIN` on that connection ("attempted to call begin_with
//! at non-zero transaction depth") until a restart. `discard_unsettled` closes such a
//! connection when it goes back to the pool, and the pool opens a fresh one.

use std::{
    collections::HashMap,
    path::Path,
    str::FromStr,
    sync::OnceLock,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    migrate::{MigrateError, Migrator},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
    Connection, Row,
};

use std::sync::Arc;

use tokio::sync::Notify;

use super::{
    ClaimEpoch, Fence, Granted, HistoryFilter, Holder, Job, JobLease, JobState, LeaseToken,
    LedgerEntry, NewJob, NewLedgerEntry, PendingRemoval, QueueDepth, Replica, ReplicaId, Result,
    RoomGrant, Store, StoreError, SyncMark, WebhookReg,
};
use crate::domain::{JobPayload, RoomId, Source, UnknownWord};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READ_CONNECTIONS: u32 = 4;
const OPEN_RETRY: Duration = Duration::from_millis(50);

/// The SQLite implementation of [`Store`]. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// Fired after this store made jobs claimable (SQLite has no cross-process signal:
    /// other processes on the file are seen by the workers' poll).
    wake: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating folders and file if needed) the database at `path` and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        prepare_file(path)?;

        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);

        let write_opts = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .optimize_on_close(true, None);
        // Switching a fresh file to WAL needs an exclusive lock and SQLite may answer BUSY
        // without waiting; two processes opening a fresh file at once also race on the first
        // migration (the loser sees "table already exists", and applied on a second look).
        // Both are retried for about as long as the busy timeout.
        let open_err = |source: sqlx::Error| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let write = loop {
            let res = discard_unsettled(SqlitePoolOptions::new())
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(write_opts.clone())
                .await;
            match res {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(OPEN_RETRY).await;
                }
                Err(e) => return Err(open_err(e)),
            }
        };
        loop {
            match MIGRATOR.run(&write).await {
                Ok(()) => break,
                Err(e @ (MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)))
                    if Instant::now() < deadline =>
                {
                    tracing::debug!(error = %e, "state migration failed, retrying");
                    tokio::time::sleep(OPEN_RETRY).await;
                }
                Err(e) => return Err(StoreError::Migration(e)),
            }
        }

        // The journal mode is persistent in the file; readers only must not write.
        let read_opts = base.pragma("query_only", "ON");
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .min_connections(0)
            .connect_with(read_opts)
            .await
            .map_err(open_err)?;

        Ok(SqliteStore {
            write,
            read,
            wake: Arc::new(Notify::new()),
        })
    }

    /// A private in-memory database (one connection, kept open while the store lives).
    pub async fn open_in_memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // Not `discard_unsettled`: closing the one connection would drop the database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migration)?;
        Ok(SqliteStore {
            write: pool.clone(),
            read: pool,
            wake: Arc::new(Notify::new()),
        })
    }
}

impl SqliteStore {
    /// The read pool, for `state migrate`.
    pub(super) fn reader(&self) -> &SqlitePool {
        &self.read
    }
}

/// Pool options that close a connection coming back still inside a transaction, instead
/// of handing it to the next caller (see the module docs: after `SQLITE_FULL` or an I/O
/// error its `ROLLBACK` may have failed, and every later `BEGIN` on it would too). The
/// ping first lets any rollback a dropped transaction queued run: the connection's
/// commands are worked in order.
fn discard_unsettled(opts: SqlitePoolOptions) -> SqlitePoolOptions {
    opts.after_release(|conn, _| {
        Box::pin(async move {
            conn.ping().await?;
            if conn.is_in_transaction() {
                tracing::warn!("a state database connection is still inside a transaction after an error; closing it");
                return Ok(false);
            }
            Ok(true)
        })
    })
}

/// Creates the parent folders and the file (owner-only on Unix: it holds webhook secrets).
fn prepare_file(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Io {
                what: "create folder",
                path: parent.display().to_string(),
                source: e,
            })?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| StoreError::Io {
        what: "open",
        path: path.display().to_string(),
        source: e,
    })?;
    Ok(())
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`, with any extended code.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn dt(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

const LEDGER_COLS: &str =
    "id, at, run_id, source, task_gid, assignee_gid, email, target, action, outcome, error, detail";

/// One multi-row `INSERT` of `es` into the ledger, all at `at` (at most
/// [`ROWS_PER_INSERT`] rows: 11 bound parameters each).
fn insert_ledger<'q>(at: i64, es: &'q [NewLedgerEntry]) -> sqlx::QueryBuilder<'q, sqlx::Sqlite> {
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO ledger (at, run_id, source, task_gid, assignee_gid, email, target, \
         action, outcome, error, detail) ",
    );
    q.push_values(es, |mut b, e| {
        b.push_bind(at)
            .push_bind(&e.run_id)
            .push_bind(e.source.as_str())
            .push_bind(&e.task_gid)
            .push_bind(&e.assignee_gid)
            .push_bind(&e.email)
            .push_bind(e.target.to_string())
            .push_bind(e.action.as_str())
            .push_bind(e.outcome.as_str())
            .push_bind(&e.error)
            .push_bind(&e.detail);
    });
    q
}

fn ledger_from_row(r: &SqliteRow) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: r.try_get("id")?,
        at: dt(r.try_get("at")?),
        run_id: r.try_get("run_id")?,
        source: r.try_get::<&str, _>("source")?.parse()?,
        task_gid: r.try_get("task_gid")?,
        assignee_gid: r.try_get("assignee_gid")?,
        email: r.try_get("email")?,
        target: r.try_get::<&str, _>("target")?.parse()?,
        action: r.try_get::<&str, _>("action")?.parse()?,
        outcome: r.try_get::<&str, _>("outcome")?.parse()?,
        error: r.try_get("error")?,
        detail: r.try_get("detail")?,
    })
}

const JOB_COLS: &str = "id, kind, resource_gid, project_gid, dedupe_key, payload, attempts, \
     state, last_error, created_at, next_attempt_at, lease_until, lease_token";

fn job_from_row(r: &SqliteRow) -> Result<Job> {
    let attempts: i64 = r.try_get("attempts")?;
    let state: String = r.try_get("state")?;
    Ok(Job {
        id: r.try_get("id")?,
        kind: r.try_get::<&str, _>("kind")?.parse()?,
        resource_gid: r.try_get("resource_gid")?,
        project_gid: r.try_get("project_gid")?,
        dedupe_key: r.try_get("dedupe_key")?,
        payload: read_payload(r.try_get("payload")?)?,
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        state: JobState::from_str(&state)?,
        last_error: r.try_get("last_error")?,
        created_at: dt(r.try_get("created_at")?),
        next_attempt_at: dt(r.try_get("next_attempt_at")?),
        lease_until: r.try_get::<Option<i64>, _>("lease_until")?.map(dt),
        token: LeaseToken(r.try_get("lease_token")?),
    })
}

/// A job's payload column: JSON of [`JobPayload`]; rows from before typed payloads that
/// lack one read as a webhook job.
fn read_payload(text: Option<String>) -> Result<JobPayload> {
    match text {
        None => Ok(JobPayload::from_source(Source::Webhook)),
        Some(t) => serde_json::from_str(&t).map_err(StoreError::Payload),
    }
}

fn write_payload(p: &JobPayload) -> String {
    // A struct of strings and enums always serialises.
    serde_json::to_string(p).unwrap_or_else(|_| String::from("{\"source\":\"webhook\"}"))
}

const WEBHOOK_COLS: &str = "id, project_gid, target, asana_gid, secret, state, created_at";

fn webhook_from_row(r: &SqliteRow) -> Result<WebhookReg> {
    Ok(WebhookReg {
        id: r.try_get("id")?,
        project_gid: r.try_get("project_gid")?,
        target: r.try_get("target")?,
        asana_gid: r.try_get("asana_gid")?,
        secret: r.try_get("secret")?,
        state: r.try_get("state")?,
        created_at: dt(r.try_get("created_at")?),
    })
}

/// Jobs per multi-row INSERT in [`Store::enqueue`] (5 parameters each, well under SQLite's
/// limit); the rest of a batch goes through [`ENQUEUE_ONE`]. Both statements stay prepared.
const ENQUEUE_CHUNK: usize = 32;

const ENQUEUE_ONE: &str = "INSERT INTO jobs (kind, resource_gid, project_gid, dedupe_key, \
     payload, state, attempts, created_at, updated_at, next_attempt_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?6, ?6) \
     ON CONFLICT (dedupe_key) DO NOTHING";

fn enqueue_chunk_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let now = ENQUEUE_CHUNK * 5 + 1;
        let rows: Vec<String> = (0..ENQUEUE_CHUNK)
            .map(|r| {
                let b = r * 5;
                format!(
                    "(?{}, ?{}, ?{}, ?{}, ?{}, 'queued', 0, ?{now}, ?{now}, ?{now})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        format!(
            "INSERT INTO jobs (kind, resource_gid, project_gid, dedupe_key, payload, state, \
             attempts, created_at, updated_at, next_attempt_at) VALUES {} \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
            rows.join(", ")
        )
    })
}

/// How long a dead replica's registry row is kept (for operators) before it is forgotten.
pub(super) const REPLICA_FORGET: Duration = Duration::from_secs(3600);

/// Rows per multi-row `INSERT` (at most 11 bound parameters each: well under SQLite's
/// 32,766).
const ROWS_PER_INSERT: usize = 500;

/// Keys per `release_claims` statement (one bound parameter each, well under SQLite's limit).
const RELEASE_CHUNK: usize = 500;

fn job_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("job {id}"))
}

/// The fence every fenced job update appends: the row is still running under the token.
/// The query binds `?1` = the id and `?2` = the token.
const FENCE: &str = "WHERE id = ?1 AND state = 'running' AND lease_token = ?2";

impl SqliteStore {
    /// Runs a fenced one-row job update (see [`FENCE`]): Held if it changed the row, Lost
    /// if the row is not running under the token, NotFound if no row has the id.
    async fn fenced<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
        id: i64,
    ) -> Result<Fence> {
        let done = query.execute(&self.write).await?;
        if done.rows_affected() == 1 {
            return Ok(Fence::Held);
        }
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        match exists {
            Some(_) => Ok(Fence::Lost),
            None => Err(job_not_found(id)),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn record(&self, e: &NewLedgerEntry) -> Result<i64> {
        let done = insert_ledger(now_ms(), std::slice::from_ref(e))
            .build()
            .execute(&self.write)
            .await?;
        Ok(done.last_insert_rowid())
    }

    async fn record_many(&self, es: &[NewLedgerEntry]) -> Result<()> {
        if es.is_empty() {
            return Ok(());
        }
        let at = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        // Multi-row statements: a sync writes a row per person and room, and one statement
        // per row cost ≈ 15 ms per 1,000 rows on the path to the run's exit.
        for chunk in es.chunks(ROWS_PER_INSERT) {
            insert_ledger(at, chunk).build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn history(&self, f: &HistoryFilter) -> Result<Vec<LedgerEntry>> {
        let mut sql = format!("SELECT {LEDGER_COLS} FROM ledger WHERE 1 = 1");
        if f.email.is_some() {
            sql.push_str(" AND email = ? COLLATE NOCASE");
        }
        if f.task_gid.is_some() {
            sql.push_str(" AND task_gid = ?");
        }
        if f.run_id.is_some() {
            sql.push_str(" AND run_id = ?");
        }
        sql = format!("SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id ASC");
        let mut q = sqlx::query(&sql);
        for v in [&f.email, &f.task_gid, &f.run_id].into_iter().flatten() {
            q = q.bind(v);
        }
        q = q.bind(f.limit.map_or(-1, i64::from));
        let rows = q.fetch_all(&self.read).await?;
        rows.iter().map(ledger_from_row).collect()
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<bool>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut created = Vec::with_capacity(jobs.len());
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let mut chunks = jobs.chunks_exact(ENQUEUE_CHUNK);
        for chunk in &mut chunks {
            // One prepared multi-row statement per full chunk; RETURNING names the rows that
            // were new. A key repeated inside the chunk is inserted by its first occurrence.
            let mut q = sqlx::query_scalar::<_, String>(enqueue_chunk_sql());
            for j in chunk {
                q = q
                    .bind(j.kind.as_str())
                    .bind(&j.resource_gid)
                    .bind(&j.project_gid)
                    .bind(&j.dedupe_key)
                    .bind(write_payload(&j.payload));
            }
            let mut inserted = q.bind(now).fetch_all(&mut *tx).await?;
            for j in chunk {
                match inserted.iter().position(|k| *k == j.dedupe_key) {
                    Some(i) => {
                        inserted.swap_remove(i);
                        created.push(true);
                    }
                    None => created.push(false),
                }
            }
        }
        for j in chunks.remainder() {
            let done = sqlx::query(ENQUEUE_ONE)
                .bind(j.kind.as_str())
                .bind(&j.resource_gid)
                .bind(&j.project_gid)
                .bind(&j.dedupe_key)
                .bind(write_payload(&j.payload))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            created.push(done.rows_affected() == 1);
        }
        tx.commit().await?;
        // Every idle worker, not one per new job as on Postgres (where two replicas' 32
        // workers stormed each job): tried here too, it made delivery-to-invite p99 at
        // 20/20 ms latency 86–95 ms against 71 ms (webhooks bench, `--backends sqlite`).
        if created.iter().any(|c| *c) {
            self.wake.notify_waiters();
        }
        Ok(created)
    }

    async fn claim(&self, max: usize, lease: Duration, holder: &ReplicaId) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let lease_until = now.saturating_add(dur_ms(lease));
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // Due queued jobs, expired leases, and the jobs of replicas that stopped beating
        // (their process died), each found through its own index in due order; one
        // statement, so the selection and the update are atomic. A dead replica's job keeps
        // its place in the queue (its own `next_attempt_at`), not its lease, which still
        // lies ahead: otherwise every job queued since would go first, and the recovery of
        // what was in flight would wait for the whole backlog.
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?2, \
                 updated_at = ?1, lease_token = lease_token + 1, holder = ?4 \
             WHERE id IN ( \
                 SELECT id FROM ( \
                     SELECT id, due FROM ( \
                         SELECT id, next_attempt_at AS due FROM jobs \
                         WHERE state = 'queued' AND next_attempt_at <= ?1 \
                         ORDER BY next_attempt_at LIMIT ?3) \
                     UNION ALL \
                     SELECT id, due FROM ( \
                         SELECT id, lease_until AS due FROM jobs \
                         WHERE state = 'running' AND lease_until <= ?1 \
                         ORDER BY lease_until LIMIT ?3) \
                     UNION ALL \
                     SELECT id, due FROM ( \
                         SELECT jobs.id AS id, jobs.next_attempt_at AS due FROM jobs \
                         JOIN replicas ON replicas.id = jobs.holder \
                         WHERE jobs.state = 'running' AND jobs.lease_until > ?1 \
                           AND replicas.expires_at <= ?1 \
                         LIMIT ?3) \
                 ) ORDER BY due, id LIMIT ?3) \
             RETURNING {JOB_COLS}"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(max)
            .bind(&holder.0)
            .fetch_all(&self.write)
            .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.next_attempt_at, j.id));
        Ok(jobs)
    }

    async fn extend_lease(&self, lease: JobLease, duration: Duration) -> Result<Fence> {
        let now = now_ms();
        let sql = format!("UPDATE jobs SET lease_until = ?3, updated_at = ?4 {FENCE}");
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(now.saturating_add(dur_ms(duration)))
            .bind(now);
        self.fenced(q, lease.id).await
    }

    async fn complete(&self, lease: JobLease) -> Result<Fence> {
        let sql =
            format!("UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = ?3 {FENCE}");
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(now_ms());
        self.fenced(q, lease.id).await
    }

    async fn retry_later(&self, lease: JobLease, error: &str, at: DateTime<Utc>) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, last_error = ?3, \
             next_attempt_at = ?4, updated_at = ?5 {FENCE}"
        );
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(error)
            .bind(ms(at))
            .bind(now_ms());
        let fence = self.fenced(q, lease.id).await?;
        if fence == Fence::Held && at <= Utc::now() {
            self.wake.notify_waiters();
        }
        Ok(fence)
    }

    async fn bury(&self, lease: JobLease, error: &str) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?3, \
             updated_at = ?4 {FENCE}"
        );
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(error)
            .bind(now_ms());
        self.fenced(q, lease.id).await
    }

    async fn release(&self, lease: JobLease) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, \
             attempts = MAX(attempts - 1, 0), next_attempt_at = ?3, updated_at = ?3 {FENCE}"
        );
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(now_ms());
        let fence = self.fenced(q, lease.id).await?;
        if fence == Fence::Held {
            self.wake.notify_waiters();
        }
        Ok(fence)
    }

    async fn replay_dead(&self) -> Result<u64> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, lease_until = NULL, \
             next_attempt_at = ?1, updated_at = ?1 WHERE state = 'dead'",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    async fn replay_job(&self, id: i64) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, lease_until = NULL, \
             next_attempt_at = ?1, updated_at = ?1 WHERE id = ?2 AND state = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn oldest_queued_at(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM jobs WHERE state = 'queued'")
                .fetch_one(&self.read)
                .await?;
        Ok(at.map(dt))
    }

    async fn dead_jobs(&self, limit: u32) -> Result<Vec<Job>> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE state = 'dead' ORDER BY id LIMIT ?");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM jobs WHERE state = 'queued') AS queued, \
               (SELECT COUNT(*) FROM jobs WHERE state = 'running') AS running, \
               (SELECT COUNT(*) FROM jobs WHERE state = 'dead') AS dead",
        )
        .fetch_one(&self.read)
        .await?;
        let count = |name: &str| -> Result<u64> {
            let n: i64 = row.try_get(name)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(QueueDepth {
            queued: count("queued")?,
            running: count("running")?,
            dead: count("dead")?,
        })
    }

    async fn prune_done(&self, older_than: Duration) -> Result<u64> {
        let cutoff = now_ms().saturating_sub(dur_ms(older_than));
        let done = sqlx::query("DELETE FROM jobs WHERE state = 'done' AND updated_at < ?")
            .bind(cutoff)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn register_replica(&self, id: &ReplicaId, info: &str, ttl: Duration) -> Result<()> {
        let now = now_ms();
        let forget = now.saturating_sub(dur_ms(REPLICA_FORGET));
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM replicas WHERE expires_at < ?")
            .bind(forget)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO replicas (id, info, started_at, last_seen, expires_at) \
             VALUES (?1, ?2, ?3, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET last_seen = ?3, expires_at = ?4",
        )
        .bind(&id.0)
        .bind(info)
        .bind(now)
        .bind(now.saturating_add(dur_ms(ttl)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn beat_replica(&self, id: &ReplicaId, ttl: Duration) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query("UPDATE replicas SET last_seen = ?1, expires_at = ?2 WHERE id = ?3")
            .bind(now)
            .bind(now.saturating_add(dur_ms(ttl)))
            .bind(&id.0)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retire_replica(&self, id: &ReplicaId) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = ?")
            .bind(&id.0)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn replicas(&self) -> Result<Vec<Replica>> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, info, started_at, last_seen, expires_at FROM replicas \
             ORDER BY started_at, id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, info, started, seen, expires)| Replica {
                id,
                info,
                started_at: dt(started),
                last_seen: dt(seen),
                expires_at: dt(expires),
            })
            .collect())
    }

    async fn claim_epoch(&self) -> Result<ClaimEpoch> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(released_seq), 0) FROM claims")
            .fetch_one(&self.read)
            .await?;
        Ok(ClaimEpoch(n))
    }

    async fn claim_keys(
        &self,
        keys: &[String],
        holder: &Holder,
        since: ClaimEpoch,
        lease: Duration,
    ) -> Result<Vec<Granted>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let until = now.saturating_add(dur_ms(lease));
        let stale = |seq: i64, took_over: i64| took_over != 0 || seq > since.0;
        let mut granted = Vec::with_capacity(keys.len());
        // One multi-row upsert per chunk: each row takes its key only if it is free, ours,
        // its lease ran out or its holder's replica died, and RETURNING names the keys taken
        // (with the old `released_seq`; the SET reads the old holder). A row per statement
        // cost ≈ 10 ms for 500 people on the path between the last Asana page and the
        // first invitation.
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in keys.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO claims (key, holder, replica, lease_until, took_over) ",
            );
            q.push_values(chunk, |mut b, key| {
                b.push_bind(key)
                    .push_bind(holder.id())
                    .push_bind(holder.replica().map(|r| r.0.as_str()))
                    .push_bind(until)
                    .push_bind(0_i64);
            });
            q.push(
                " ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, \
                   replica = excluded.replica, lease_until = excluded.lease_until, \
                   took_over = (claims.holder IS NOT NULL AND claims.holder <> excluded.holder) \
                 WHERE claims.holder IS NULL OR claims.holder = excluded.holder \
                   OR claims.lease_until <= ",
            );
            q.push_bind(now);
            q.push(
                " OR EXISTS (SELECT 1 FROM replicas r \
                             WHERE r.id = claims.replica AND r.expires_at <= ",
            );
            q.push_bind(now);
            q.push(") RETURNING key, released_seq, took_over");
            let rows: Vec<(String, i64, i64)> = q.build_query_as().fetch_all(&mut *tx).await?;
            granted.extend(rows.into_iter().map(|(key, seq, took_over)| Granted {
                key,
                stale: stale(seq, took_over),
            }));
        }
        tx.commit().await?;
        // In the order asked (RETURNING's order is SQLite's to choose).
        let order: HashMap<&str, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        granted.sort_by_key(|g| order.get(g.key.as_str()).copied());
        Ok(granted)
    }

    async fn extend_claims(&self, holder: &Holder, lease: Duration) -> Result<u64> {
        let until = now_ms().saturating_add(dur_ms(lease));
        let done = sqlx::query("UPDATE claims SET lease_until = ? WHERE holder = ?")
            .bind(until)
            .bind(holder.id())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    async fn release_claims(&self, keys: &[String], holder: &Holder) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // One statement per chunk, atomic by itself; every key released together gets the
        // same next sequence number.
        for chunk in keys.chunks(RELEASE_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "UPDATE claims SET holder = NULL, replica = NULL, lease_until = NULL, \
                 took_over = 0, \
                 released_seq = (SELECT COALESCE(MAX(released_seq), 0) + 1 FROM claims) \
                 WHERE holder = ? AND key IN ({marks})"
            );
            let mut q = sqlx::query(&sql).bind(holder.id());
            for k in chunk {
                q = q.bind(k);
            }
            q.execute(&self.write).await?;
        }
        Ok(())
    }

    async fn expect_webhook(&self, id: &str, project_gid: &str, target: &str) -> Result<()> {
        let res = sqlx::query(
            "INSERT INTO webhooks (id, project_gid, target, state, created_at) \
             VALUES (?, ?, ?, 'expecting', ?)",
        )
        .bind(id)
        .bind(project_gid)
        .bind(target)
        .bind(now_ms())
        .execute(&self.write)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict(_) => Err(StoreError::Conflict(format!(
                    "webhook id {id} is already registered"
                ))),
                other => Err(other),
            },
        }
    }

    async fn store_webhook_secret(&self, id: &str, secret: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET secret = ? \
             WHERE id = ? AND state = 'expecting' AND secret IS NULL",
        )
        .bind(secret)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn activate_webhook(&self, id: &str, asana_gid: &str) -> Result<()> {
        let res = sqlx::query("UPDATE webhooks SET asana_gid = ?, state = 'active' WHERE id = ?")
            .bind(asana_gid)
            .bind(id)
            .execute(&self.write)
            .await;
        match res {
            Ok(done) if done.rows_affected() == 0 => {
                Err(StoreError::NotFound(format!("webhook {id}")))
            }
            Ok(_) => Ok(()),
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict(_) => Err(StoreError::Conflict(format!(
                    "asana webhook {asana_gid} is already registered under another id"
                ))),
                other => Err(other),
            },
        }
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookReg>> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhooks(&self) -> Result<Vec<WebhookReg>> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.read).await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_webhook_by_asana_gid(&self, asana_gid: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE asana_gid = ?")
            .bind(asana_gid)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sync_token(&self, resource_gid: &str) -> Result<Option<String>> {
        let token = sqlx::query_scalar("SELECT token FROM sync_tokens WHERE resource_gid = ?")
            .bind(resource_gid)
            .fetch_optional(&self.read)
            .await?;
        Ok(token)
    }

    async fn set_sync_token(&self, resource_gid: &str, token: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_tokens (resource_gid, token, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (resource_gid) DO UPDATE \
             SET token = excluded.token, updated_at = excluded.updated_at",
        )
        .bind(resource_gid)
        .bind(token)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn sync_mark(&self, rule_key: &str) -> Result<Option<SyncMark>> {
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT project_gid, fingerprint, full_started_at, since FROM sync_marks \
             WHERE rule_key = ?",
        )
        .bind(rule_key)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(project_gid, fingerprint, full, since)| SyncMark {
            project_gid,
            fingerprint,
            full_started_at: dt(full),
            since: dt(since),
        }))
    }

    async fn record_full_sync(
        &self,
        rule_key: &str,
        project_gid: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        // A full sync that started before the one already recorded (two overlapping runs)
        // moves nothing back; one under another fingerprint replaces the mark.
        sqlx::query(
            "INSERT INTO sync_marks \
               (rule_key, project_gid, fingerprint, full_started_at, since, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (rule_key) DO UPDATE SET \
               project_gid = excluded.project_gid, \
               full_started_at = CASE WHEN fingerprint = excluded.fingerprint \
                 THEN max(full_started_at, excluded.full_started_at) \
                 ELSE excluded.full_started_at END, \
               since = CASE WHEN fingerprint = excluded.fingerprint \
                 THEN max(since, excluded.since) ELSE excluded.since END, \
               fingerprint = excluded.fingerprint, \
               updated_at = excluded.updated_at",
        )
        .bind(rule_key)
        .bind(project_gid)
        .bind(fingerprint)
        .bind(ms(started_at))
        .bind(ms(started_at))
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn record_incremental_sync(
        &self,
        rule_key: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sync_marks SET since = max(since, ?), updated_at = ? \
             WHERE rule_key = ? AND fingerprint = ?",
        )
        .bind(ms(started_at))
        .bind(now_ms())
        .bind(rule_key)
        .bind(fingerprint)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_grants(&self, grants: &[RoomGrant]) -> Result<()> {
        if grants.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        // Multi-row, like `record_many`. SQLite applies the rows in order, so a (room,
        // email) given twice ends as its last grant, as one statement per row did.
        for chunk in grants.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO room_grants (room, email, person_id, assignee_gid, access, \
                   prior_access, task_gid, project_gid, granted_at, run_id) ",
            );
            q.push_values(chunk, |mut b, g| {
                b.push_bind(g.room.as_str())
                    .push_bind(&g.email)
                    .push_bind(&g.person_id)
                    .push_bind(&g.assignee_gid)
                    .push_bind(g.access.as_i32())
                    .push_bind(g.prior_access)
                    .push_bind(&g.task_gid)
                    .push_bind(&g.project_gid)
                    .push_bind(ms(g.granted_at))
                    .push_bind(&g.run_id);
            });
            q.push(
                " ON CONFLICT (room, email) DO UPDATE SET \
                   person_id = excluded.person_id, assignee_gid = excluded.assignee_gid, \
                   access = excluded.access, task_gid = excluded.task_gid, \
                   project_gid = excluded.project_gid, granted_at = excluded.granted_at, \
                   run_id = excluded.run_id",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn room_grants(&self, room: &RoomId) -> Result<Vec<RoomGrant>> {
        let rows = sqlx::query(
            "SELECT email, person_id, assignee_gid, access, prior_access, task_gid, \
               project_gid, granted_at, run_id FROM room_grants WHERE room = ? ORDER BY email",
        )
        .bind(room.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let access: i32 = r.try_get("access")?;
                Ok(RoomGrant {
                    room: room.clone(),
                    email: r.try_get("email")?,
                    person_id: r.try_get("person_id")?,
                    assignee_gid: r.try_get("assignee_gid")?,
                    access: docspace_api::Access::try_from(access).map_err(|_| UnknownWord {
                        what: "room grant access",
                        value: access.to_string(),
                    })?,
                    prior_access: r.try_get("prior_access")?,
                    task_gid: r.try_get("task_gid")?,
                    project_gid: r.try_get("project_gid")?,
                    granted_at: dt(r.try_get("granted_at")?),
                    run_id: r.try_get("run_id")?,
                })
            })
            .collect()
    }

    async fn pending_removals(&self, room: &RoomId) -> Result<Vec<PendingRemoval>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT email, since, why FROM pending_removals WHERE room = ? ORDER BY email",
        )
        .bind(room.as_str())
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(email, since, why)| PendingRemoval {
                room: room.clone(),
                email,
                since: dt(since),
                why,
            })
            .collect())
    }

    async fn note_removal(&self, p: &PendingRemoval) -> Result<PendingRemoval> {
        let (since, why): (i64, String) = sqlx::query_as(
            "INSERT INTO pending_removals (room, email, since, why, created_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (room, email) DO UPDATE SET since = since \
             RETURNING since, why",
        )
        .bind(p.room.as_str())
        .bind(&p.email)
        .bind(ms(p.since))
        .bind(&p.why)
        .bind(now_ms())
        .fetch_one(&self.write)
        .await?;
        Ok(PendingRemoval {
            room: p.room.clone(),
            email: p.email.clone(),
            since: dt(since),
            why,
        })
    }

    async fn cancel_removals(&self, keys: &[(RoomId, String)]) -> Result<Vec<PendingRemoval>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        for (room, email) in keys {
            let row: Option<(i64, String)> = sqlx::query_as(
                "DELETE FROM pending_removals WHERE room = ? AND email = ? RETURNING since, why",
            )
            .bind(room.as_str())
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((since, why)) = row {
                out.push(PendingRemoval {
                    room: room.clone(),
                    email: email.clone(),
                    since: dt(since),
                    why,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn finish_removal(&self, room: &RoomId, email: &str) -> Result<()> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        for table in ["room_grants", "pending_removals"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE room = ? AND email = ?"))
                .bind(room.as_str())
                .bind(email)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn schedule_job(&self, job: &NewJob, due: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO jobs (kind, resource_gid, project_gid, dedupe_key, payload, state, \
               attempts, created_at, updated_at, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(job.kind.as_str())
        .bind(&job.resource_gid)
        .bind(&job.project_gid)
        .bind(&job.dedupe_key)
        .bind(write_payload(&job.payload))
        // Created when due: a check scheduled a day ahead is not backlog before then
        // (`oldest_queued_at`, the status page's "oldest queued").
        .bind(ms(due).max(now_ms()))
        .bind(now_ms())
        .bind(ms(due))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.read).await?;
        Ok(())
    }

    async fn probe_write(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO write_probe (id, at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobKind;

    fn job(key: &str) -> NewJob {
        NewJob {
            kind: JobKind::Task,
            resource_gid: "1201".into(),
            project_gid: Some("99".into()),
            dedupe_key: key.into(),
            payload: JobPayload::from_source(Source::Webhook),
        }
    }

    /// The state a full disk leaves: SQLite ended the transaction on its own, so the
    /// `ROLLBACK` of the dropped sqlx transaction fails and sqlx still counts it as open.
    /// Here SQLite is made to end it with a `ROLLBACK` of its own, which is the same state
    /// without needing a disk that fills up (the fault suite does that too).
    #[tokio::test]
    async fn a_write_connection_left_inside_a_transaction_does_not_refuse_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("state.db"))
            .await
            .unwrap();
        {
            let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
            assert!(tx.is_in_transaction(), "sqlx does not know");
        }
        for key in ["a", "b"] {
            assert_eq!(store.enqueue(&[job(key)]).await.unwrap(), vec![true]);
        }
        assert_eq!(store.queue_depth().await.unwrap().queued, 2);
        store.probe_write().await.unwrap();
    }
}
