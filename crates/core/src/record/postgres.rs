//! PostgreSQL backend of [`Store`]: several `serve`/`watch` replicas, on one or many hosts,
//! share one database.
//!
//! How the multi-replica rules are met with Postgres's own means:
//! - **claims** of jobs are one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`:
//!   concurrent claimers on any replica skip each other's rows instead of queueing behind
//!   them, and each claim bumps the row's fencing token;
//! - **time** of leases and heartbeats is the server's `now()`, never a replica's clock;
//! - **wake-ups**: an enqueue (or release) that made jobs claimable sends
//!   `NOTIFY asana_docspace_jobs` in its transaction; every store `LISTEN`s on a dedicated
//!   connection and fires [`Store::wakeup`], so idle workers on every replica start within
//!   milliseconds instead of polling tightly;
//! - **dedupe** is the unique index on `dedupe_key` with `INSERT … ON CONFLICT DO NOTHING`,
//!   which waits for a concurrent insert of the same key to commit and then skips it;
//! - **per-person claims** (`person:`, `resync:`, `watch:` keys) are one `INSERT … ON CONFLICT
//!   DO UPDATE … WHERE` over the keys in sorted order (so two claimers lock rows in the same
//!   order and cannot deadlock), taking a key only if it is free, the caller's, expired,
//!   or held for a replica whose registry row expired (the jobs' orphan rule);
//!   releases serialise on a transaction advisory lock so that `released_seq` grows in
//!   commit order — the claim epoch a reconcile reads then never misses a release that
//!   committed after it.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{migrate::Migrator, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sqlite::REPLICA_FORGET;
use super::{
    ClaimEpoch, Fence, Granted, HistoryFilter, Holder, Job, JobLease, JobState, LeaseToken,
    LedgerEntry, NewJob, NewLedgerEntry, PendingRemoval, QueueDepth, Replica, ReplicaId, Result,
    RoomGrant, Store, StoreError, SyncMark, WebhookReg,
};
use crate::domain::{JobPayload, RoomId, Source, UnknownWord};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The `LISTEN/NOTIFY` channel of "jobs may be claimable".
const CHANNEL: &str = "asana_docspace_jobs";
/// Connections per replica: the workers (16 by default) each hold one only while a
/// statement runs, plus the writer, the listener and the status page.
const MAX_CONNECTIONS: u32 = 20;
/// The advisory lock every `release_claims` transaction takes (ASCII "asanadoc").
const RELEASE_LOCK: i64 = 0x6173_616e_6164_6f63;
/// Postgres's deadlock and serialisation failures: the transaction may simply be retried.
const RETRYABLE: [&str; 2] = ["40P01", "40001"];

/// The PostgreSQL implementation of [`Store`]. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    wake: Arc<Notify>,
    /// Stops the `LISTEN` task on [`Store::close`].
    stop: CancellationToken,
    /// This store's name in its own notifications, so its listener can tell them from
    /// other replicas' (it woke its own workers already, at its commit).
    sender: Arc<str>,
}

/// Workers one notification wakes at most: a batch of 1,000 new jobs needs no more
/// claimers than a replica has workers.
const WAKE_AT_MOST: usize = 64;

/// Wakes `n` idle workers (one per new job), or every one when `n` is not known.
fn wake_workers(wake: &Notify, n: Option<usize>) {
    match n {
        Some(n) => (0..n.min(WAKE_AT_MOST)).for_each(|_| wake.notify_one()),
        None => wake.notify_waiters(),
    }
}

/// `location` with any password replaced, for messages (a URL may carry credentials).
pub fn redact(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(an unparsable postgres URL)".into(),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:5432/db`), applies pending
    /// migrations (under sqlx's migration lock, so replicas starting together are safe) and
    /// starts listening for job wake-ups.
    pub async fn open(url: &str) -> Result<Self> {
        let open_err = |source: sqlx::Error| StoreError::Open {
            path: redact(url),
            source,
        };
        let opts = PgConnectOptions::from_str(url)
            .map_err(open_err)?
            .application_name("asana-docspace");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Some(Duration::from_secs(60)))
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migration)?;
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let sender: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        tokio::spawn(listen(
            pool.clone(),
            wake.clone(),
            stop.clone(),
            sender.clone(),
        ));
        Ok(PgStore {
            pool,
            wake,
            stop,
            sender,
        })
    }

    /// The pool, for `state migrate` and tests that look at the rows themselves.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Fires `wake` on every notification of [`CHANNEL`] that another store sent, reconnecting
/// after errors (and firing once after each reconnect: notifications sent meanwhile were
/// lost). A payload `<jobs> <sender>` wakes one worker per new job instead of all of them:
/// with two replicas of 16 workers, waking all 32 for every commit made each new job a
/// claim storm of 32 `SKIP LOCKED` queries on two cores.
async fn listen(pool: PgPool, wake: Arc<Notify>, stop: CancellationToken, sender: Arc<str>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = stop.cancelled() => return,
            l = connected => match l {
                Ok(l) => l,
                Err(e) => {
                    if matches!(e, sqlx::Error::PoolClosed) {
                        return;
                    }
                    tracing::warn!(error = %e, "listening for job notifications failed; workers poll meanwhile");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
        };
        backoff = Duration::from_millis(100);
        wake.notify_waiters();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.recv() => match n {
                    Ok(n) => {
                        let mut words = n.payload().split(' ');
                        let jobs = words.next().and_then(|w| w.parse().ok());
                        if words.next() != Some(&*sender) {
                            wake_workers(&wake, jobs);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the job notification connection failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| RETRYABLE.contains(&c.as_ref())),
        _ => false,
    }
}

/// `now() + $n milliseconds`, on the server's clock.
fn plus_ms(n: u8) -> String {
    format!("now() + (${n}::bigint * interval '1 millisecond')")
}

const LEDGER_COLS: &str =
    "id, at, run_id, source, task_gid, assignee_gid, email, target, action, outcome, error, detail";

fn ledger_from_row(r: &PgRow) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
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

fn job_from_row(r: &PgRow) -> Result<Job> {
    let attempts: i32 = r.try_get("attempts")?;
    let state: String = r.try_get("state")?;
    let payload: Option<String> = r.try_get("payload")?;
    Ok(Job {
        id: r.try_get("id")?,
        kind: r.try_get::<&str, _>("kind")?.parse()?,
        resource_gid: r.try_get("resource_gid")?,
        project_gid: r.try_get("project_gid")?,
        dedupe_key: r.try_get("dedupe_key")?,
        payload: match payload {
            None => JobPayload::from_source(Source::Webhook),
            Some(t) => serde_json::from_str(&t).map_err(StoreError::Payload)?,
        },
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        state: JobState::from_str(&state)?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        lease_until: r.try_get("lease_until")?,
        token: LeaseToken(r.try_get("lease_token")?),
    })
}

fn write_payload(p: &JobPayload) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| String::from("{\"source\":\"webhook\"}"))
}

const WEBHOOK_COLS: &str = "id, project_gid, target, asana_gid, secret, state, created_at";

fn webhook_from_row(r: &PgRow) -> Result<WebhookReg> {
    Ok(WebhookReg {
        id: r.try_get("id")?,
        project_gid: r.try_get("project_gid")?,
        target: r.try_get("target")?,
        asana_gid: r.try_get("asana_gid")?,
        secret: r.try_get("secret")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
    })
}

const INSERT_LEDGER: &str = "INSERT INTO ledger \
     (at, run_id, source, task_gid, assignee_gid, email, target, action, outcome, error, detail) \
     VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

fn insert_ledger(
    e: &NewLedgerEntry,
) -> sqlx::query::QueryScalar<'_, sqlx::Postgres, i64, sqlx::postgres::PgArguments> {
    sqlx::query_scalar(INSERT_LEDGER)
        .bind(&e.run_id)
        .bind(e.source.as_str())
        .bind(&e.task_gid)
        .bind(&e.assignee_gid)
        .bind(&e.email)
        .bind(e.target.to_string())
        .bind(e.action.as_str())
        .bind(e.outcome.as_str())
        .bind(&e.error)
        .bind(&e.detail)
}

/// The fence of every fenced job update: `$1` = id, `$2` = token.
const FENCE: &str = "WHERE id = $1 AND state = 'running' AND lease_token = $2";

fn job_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("job {id}"))
}

impl PgStore {
    /// Runs a fenced one-row job update: Held if it changed the row, Lost if the row is
    /// not running under the token, NotFound if no row has the id.
    async fn fenced<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        id: i64,
    ) -> Result<Fence> {
        let done = query.execute(&self.pool).await?;
        if done.rows_affected() == 1 {
            return Ok(Fence::Held);
        }
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match exists {
            Some(_) => Ok(Fence::Lost),
            None => Err(job_not_found(id)),
        }
    }

    /// Tells every replica (and this one at once) that jobs may be claimable.
    async fn notify(&self) -> Result<()> {
        self.wake.notify_waiters();
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn enqueue_once(&self, jobs: &[NewJob]) -> std::result::Result<Vec<bool>, sqlx::Error> {
        let mut kinds = Vec::with_capacity(jobs.len());
        let mut resources = Vec::with_capacity(jobs.len());
        let mut projects: Vec<Option<String>> = Vec::with_capacity(jobs.len());
        let mut keys = Vec::with_capacity(jobs.len());
        let mut payloads = Vec::with_capacity(jobs.len());
        for j in jobs {
            kinds.push(j.kind.as_str().to_string());
            resources.push(j.resource_gid.clone());
            projects.push(j.project_gid.clone());
            keys.push(j.dedupe_key.clone());
            payloads.push(write_payload(&j.payload));
        }
        let mut tx = self.pool.begin().await?;
        // One statement for the whole batch, rows in arrival order; RETURNING names the
        // new ones. A key repeated inside the batch is inserted by its first occurrence.
        let mut inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, resource_gid, project_gid, dedupe_key, payload, state, \
                 attempts, created_at, updated_at, next_attempt_at) \
             SELECT k, r, p, d, pl, 'queued', 0, now(), now(), now() \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 WITH ORDINALITY AS t(k, r, p, d, pl, n) \
             ORDER BY n \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
        )
        .bind(&kinds)
        .bind(&resources)
        .bind(&projects)
        .bind(&keys)
        .bind(&payloads)
        .fetch_all(&mut *tx)
        .await?;
        let any = !inserted.is_empty();
        if any {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(format!("{} {}", inserted.len(), self.sender))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let created: Vec<bool> = jobs
            .iter()
            .map(|j| match inserted.iter().position(|k| *k == j.dedupe_key) {
                Some(i) => {
                    inserted.swap_remove(i);
                    true
                }
                None => false,
            })
            .collect();
        if any {
            wake_workers(&self.wake, Some(created.iter().filter(|c| **c).count()));
        }
        Ok(created)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn record(&self, e: &NewLedgerEntry) -> Result<i64> {
        Ok(insert_ledger(e).fetch_one(&self.pool).await?)
    }

    async fn record_many(&self, es: &[NewLedgerEntry]) -> Result<()> {
        if es.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for e in es {
            insert_ledger(e).fetch_one(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn history(&self, f: &HistoryFilter) -> Result<Vec<LedgerEntry>> {
        let mut sql = format!("SELECT {LEDGER_COLS} FROM ledger WHERE TRUE");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if f.email.is_some() {
            sql.push_str(&format!(" AND lower(email) = lower(${})", next()));
        }
        if f.task_gid.is_some() {
            sql.push_str(&format!(" AND task_gid = ${}", next()));
        }
        if f.run_id.is_some() {
            sql.push_str(&format!(" AND run_id = ${}", next()));
        }
        let limit = next();
        sql = format!(
            "SELECT * FROM ({sql} ORDER BY id DESC LIMIT ${limit}) AS newest ORDER BY id ASC"
        );
        let mut q = sqlx::query(&sql);
        for v in [&f.email, &f.task_gid, &f.run_id].into_iter().flatten() {
            q = q.bind(v);
        }
        q = q.bind(f.limit.map(i64::from));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(ledger_from_row).collect()
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<bool>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        // Two replicas inserting overlapping keys in different orders can deadlock on the
        // unique index; Postgres aborts one of them, which is then simply run again.
        let mut tries = 0;
        loop {
            match self.enqueue_once(jobs).await {
                Ok(created) => return Ok(created),
                Err(e) if is_retryable(&e) && tries < 5 => {
                    tries += 1;
                    tracing::debug!(error = %e, "enqueue lost a deadlock; retrying");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn claim(&self, max: usize, lease: Duration, holder: &ReplicaId) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let until = plus_ms(2);
        // An orphan (expired lease, or a holder whose replica died) keeps its place in the
        // queue, its own `next_attempt_at`, not its lease, which for a dead replica still
        // lies ahead: otherwise every job queued since would go first, and the recovery of
        // what was in flight would wait for the whole backlog.
        let sql = format!(
            "WITH queued AS ( \
                 SELECT id, next_attempt_at AS due FROM jobs \
                 WHERE state = 'queued' AND next_attempt_at <= now() \
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE OF jobs SKIP LOCKED), \
             orphaned AS ( \
                 SELECT id, next_attempt_at AS due FROM jobs \
                 WHERE state = 'running' AND (lease_until <= now() \
                     OR holder IN (SELECT r.id FROM replicas r WHERE r.expires_at <= now())) \
                 ORDER BY 2 LIMIT $1 FOR UPDATE OF jobs SKIP LOCKED), \
             picked AS ( \
                 SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM orphaned) AS u \
                 ORDER BY due, id LIMIT $1) \
             UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = {until}, \
                 updated_at = now(), lease_token = lease_token + 1, holder = $3 \
             WHERE id IN (SELECT id FROM picked) \
             RETURNING {JOB_COLS}"
        );
        let rows = sqlx::query(&sql)
            .bind(max)
            .bind(dur_ms(lease))
            .bind(&holder.0)
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.next_attempt_at, j.id));
        Ok(jobs)
    }

    async fn extend_lease(&self, lease: JobLease, duration: Duration) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET lease_until = {}, updated_at = now() {FENCE}",
            plus_ms(3)
        );
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(dur_ms(duration));
        self.fenced(q, lease.id).await
    }

    async fn complete(&self, lease: JobLease) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = now() {FENCE}"
        );
        let q = sqlx::query(&sql).bind(lease.id).bind(lease.token.0);
        self.fenced(q, lease.id).await
    }

    async fn retry_later(&self, lease: JobLease, error: &str, at: DateTime<Utc>) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, last_error = $3, \
             next_attempt_at = $4, updated_at = now() {FENCE}"
        );
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(error)
            .bind(at);
        let fence = self.fenced(q, lease.id).await?;
        if fence == Fence::Held && at <= Utc::now() {
            self.notify().await?;
        }
        Ok(fence)
    }

    async fn bury(&self, lease: JobLease, error: &str) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = $3, \
             updated_at = now() {FENCE}"
        );
        let q = sqlx::query(&sql)
            .bind(lease.id)
            .bind(lease.token.0)
            .bind(error);
        self.fenced(q, lease.id).await
    }

    async fn release(&self, lease: JobLease) -> Result<Fence> {
        let sql = format!(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, \
             attempts = GREATEST(attempts - 1, 0), next_attempt_at = now(), \
             updated_at = now() {FENCE}"
        );
        let q = sqlx::query(&sql).bind(lease.id).bind(lease.token.0);
        let fence = self.fenced(q, lease.id).await?;
        if fence == Fence::Held {
            self.notify().await?;
        }
        Ok(fence)
    }

    async fn replay_dead(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, lease_until = NULL, \
             next_attempt_at = now(), updated_at = now() WHERE state = 'dead'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn replay_job(&self, id: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, lease_until = NULL, \
             next_attempt_at = now(), updated_at = now() WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn oldest_queued_at(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(created_at) FROM jobs WHERE state = 'queued'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn dead_jobs(&self, limit: u32) -> Result<Vec<Job>> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE state = 'dead' ORDER BY id LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        let row = sqlx::query(
            "SELECT \
               COUNT(*) FILTER (WHERE state = 'queued') AS queued, \
               COUNT(*) FILTER (WHERE state = 'running') AS running, \
               COUNT(*) FILTER (WHERE state = 'dead') AS dead \
             FROM jobs WHERE state <> 'done'",
        )
        .fetch_one(&self.pool)
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
        let done = sqlx::query(
            "DELETE FROM jobs WHERE state = 'done' \
             AND updated_at < now() - ($1::bigint * interval '1 millisecond')",
        )
        .bind(dur_ms(older_than))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn register_replica(&self, id: &ReplicaId, info: &str, ttl: Duration) -> Result<()> {
        sqlx::query(
            "DELETE FROM replicas \
             WHERE expires_at < now() - ($1::bigint * interval '1 millisecond')",
        )
        .bind(dur_ms(REPLICA_FORGET))
        .execute(&self.pool)
        .await?;
        let sql = format!(
            "INSERT INTO replicas (id, info, started_at, last_seen, expires_at) \
             VALUES ($1, $2, now(), now(), {}) \
             ON CONFLICT (id) DO UPDATE SET last_seen = now(), expires_at = EXCLUDED.expires_at",
            plus_ms(3)
        );
        sqlx::query(&sql)
            .bind(&id.0)
            .bind(info)
            .bind(dur_ms(ttl))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn beat_replica(&self, id: &ReplicaId, ttl: Duration) -> Result<bool> {
        let sql = format!(
            "UPDATE replicas SET last_seen = now(), expires_at = {} WHERE id = $1",
            plus_ms(2)
        );
        let done = sqlx::query(&sql)
            .bind(&id.0)
            .bind(dur_ms(ttl))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retire_replica(&self, id: &ReplicaId) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(&id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn replicas(&self) -> Result<Vec<Replica>> {
        type Row = (String, String, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, info, started_at, last_seen, expires_at FROM replicas \
             ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, info, started_at, last_seen, expires_at)| Replica {
                id,
                info,
                started_at,
                last_seen,
                expires_at,
            })
            .collect())
    }

    async fn claim_epoch(&self) -> Result<ClaimEpoch> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(released_seq), 0) FROM claims")
            .fetch_one(&self.pool)
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
        // Sorted and unique: one statement may not touch a row twice, and claimers that
        // lock rows in the same order never deadlock.
        let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let sql = format!(
            "INSERT INTO claims (key, holder, replica, lease_until, took_over) \
             SELECT k, $2, $4::text, {}, FALSE FROM UNNEST($1::text[]) AS t(k) ORDER BY k \
             ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, \
                 replica = EXCLUDED.replica, lease_until = EXCLUDED.lease_until, \
                 took_over = (claims.holder IS NOT NULL AND claims.holder <> EXCLUDED.holder) \
             WHERE claims.holder IS NULL OR claims.holder = EXCLUDED.holder \
                 OR claims.lease_until <= now() \
                 OR EXISTS (SELECT 1 FROM replicas r \
                            WHERE r.id = claims.replica AND r.expires_at <= now()) \
             RETURNING key, released_seq, took_over",
            plus_ms(3)
        );
        let mut tries = 0;
        let rows: Vec<(String, i64, bool)> = loop {
            let res = sqlx::query_as(&sql)
                .bind(&sorted)
                .bind(holder.id())
                .bind(dur_ms(lease))
                .bind(holder.replica().map(|r| r.0.as_str()))
                .fetch_all(&self.pool)
                .await;
            match res {
                Ok(rows) => break rows,
                Err(e) if is_retryable(&e) && tries < 5 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        };
        // In the caller's order.
        Ok(keys
            .iter()
            .filter_map(|k| {
                rows.iter()
                    .find(|(key, ..)| key == k)
                    .map(|(key, seq, took_over)| Granted {
                        key: key.clone(),
                        stale: *took_over || *seq > since.0,
                    })
            })
            .collect())
    }

    async fn extend_claims(&self, holder: &Holder, lease: Duration) -> Result<u64> {
        let sql = format!(
            "UPDATE claims SET lease_until = {} WHERE holder = $1",
            plus_ms(2)
        );
        let done = sqlx::query(&sql)
            .bind(holder.id())
            .bind(dur_ms(lease))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn release_claims(&self, keys: &[String], holder: &Holder) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // Serialised, so a release's sequence number is the highest committed one + 1 and
        // numbers grow in commit order (the statement's snapshot is taken after the lock).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RELEASE_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE claims SET holder = NULL, replica = NULL, lease_until = NULL, \
             took_over = FALSE, \
             released_seq = (SELECT COALESCE(MAX(released_seq), 0) + 1 FROM claims) \
             WHERE holder = $1 AND key = ANY($2)",
        )
        .bind(holder.id())
        .bind(keys)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expect_webhook(&self, id: &str, project_gid: &str, target: &str) -> Result<()> {
        let res = sqlx::query(
            "INSERT INTO webhooks (id, project_gid, target, state, created_at) \
             VALUES ($1, $2, $3, 'expecting', now())",
        )
        .bind(id)
        .bind(project_gid)
        .bind(target)
        .execute(&self.pool)
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
            "UPDATE webhooks SET secret = $1 \
             WHERE id = $2 AND state = 'expecting' AND secret IS NULL",
        )
        .bind(secret)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn activate_webhook(&self, id: &str, asana_gid: &str) -> Result<()> {
        let res = sqlx::query("UPDATE webhooks SET asana_gid = $1, state = 'active' WHERE id = $2")
            .bind(asana_gid)
            .bind(id)
            .execute(&self.pool)
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
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhooks(&self) -> Result<Vec<WebhookReg>> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_webhook_by_asana_gid(&self, asana_gid: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE asana_gid = $1")
            .bind(asana_gid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sync_token(&self, resource_gid: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT token FROM sync_tokens WHERE resource_gid = $1")
                .bind(resource_gid)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_sync_token(&self, resource_gid: &str, token: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_tokens (resource_gid, token, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (resource_gid) DO UPDATE \
             SET token = EXCLUDED.token, updated_at = EXCLUDED.updated_at",
        )
        .bind(resource_gid)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn sync_mark(&self, rule_key: &str) -> Result<Option<SyncMark>> {
        type Row = (String, String, DateTime<Utc>, DateTime<Utc>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT project_gid, fingerprint, full_started_at, since FROM sync_marks \
             WHERE rule_key = $1",
        )
        .bind(rule_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(project_gid, fingerprint, full_started_at, since)| SyncMark {
                project_gid,
                fingerprint,
                full_started_at,
                since,
            },
        ))
    }

    async fn record_full_sync(
        &self,
        rule_key: &str,
        project_gid: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        // As on SQLite: an earlier full sync under the same fingerprint moves nothing back;
        // another fingerprint replaces the mark. (Every SET reads the old row.)
        sqlx::query(
            "INSERT INTO sync_marks \
               (rule_key, project_gid, fingerprint, full_started_at, since, updated_at) \
             VALUES ($1, $2, $3, $4, $4, now()) \
             ON CONFLICT (rule_key) DO UPDATE SET \
               project_gid = EXCLUDED.project_gid, \
               full_started_at = CASE WHEN sync_marks.fingerprint = EXCLUDED.fingerprint \
                 THEN GREATEST(sync_marks.full_started_at, EXCLUDED.full_started_at) \
                 ELSE EXCLUDED.full_started_at END, \
               since = CASE WHEN sync_marks.fingerprint = EXCLUDED.fingerprint \
                 THEN GREATEST(sync_marks.since, EXCLUDED.since) ELSE EXCLUDED.since END, \
               fingerprint = EXCLUDED.fingerprint, \
               updated_at = EXCLUDED.updated_at",
        )
        .bind(rule_key)
        .bind(project_gid)
        .bind(fingerprint)
        .bind(started_at)
        .execute(&self.pool)
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
            "UPDATE sync_marks SET since = GREATEST(since, $1), updated_at = now() \
             WHERE rule_key = $2 AND fingerprint = $3",
        )
        .bind(started_at)
        .bind(rule_key)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_grants(&self, grants: &[RoomGrant]) -> Result<()> {
        if grants.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for g in grants {
            sqlx::query(
                "INSERT INTO room_grants (room, email, person_id, assignee_gid, access, \
                   prior_access, task_gid, project_gid, granted_at, run_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (room, email) DO UPDATE SET \
                   person_id = EXCLUDED.person_id, assignee_gid = EXCLUDED.assignee_gid, \
                   access = EXCLUDED.access, task_gid = EXCLUDED.task_gid, \
                   project_gid = EXCLUDED.project_gid, granted_at = EXCLUDED.granted_at, \
                   run_id = EXCLUDED.run_id",
            )
            .bind(g.room.as_str())
            .bind(&g.email)
            .bind(&g.person_id)
            .bind(&g.assignee_gid)
            .bind(g.access.as_i32())
            .bind(g.prior_access)
            .bind(&g.task_gid)
            .bind(&g.project_gid)
            .bind(g.granted_at)
            .bind(&g.run_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn room_grants(&self, room: &RoomId) -> Result<Vec<RoomGrant>> {
        let rows = sqlx::query(
            "SELECT email, person_id, assignee_gid, access, prior_access, task_gid, \
               project_gid, granted_at, run_id FROM room_grants WHERE room = $1 ORDER BY email",
        )
        .bind(room.as_str())
        .fetch_all(&self.pool)
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
                    granted_at: r.try_get("granted_at")?,
                    run_id: r.try_get("run_id")?,
                })
            })
            .collect()
    }

    async fn pending_removals(&self, room: &RoomId) -> Result<Vec<PendingRemoval>> {
        let rows: Vec<(String, DateTime<Utc>, String)> = sqlx::query_as(
            "SELECT email, since, why FROM pending_removals WHERE room = $1 ORDER BY email",
        )
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(email, since, why)| PendingRemoval {
                room: room.clone(),
                email,
                since,
                why,
            })
            .collect())
    }

    async fn note_removal(&self, p: &PendingRemoval) -> Result<PendingRemoval> {
        // The older row wins; `DO UPDATE` (a no-op) so that RETURNING gives the stored one.
        let (since, why): (DateTime<Utc>, String) = sqlx::query_as(
            "INSERT INTO pending_removals (room, email, since, why, created_at) \
             VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (room, email) DO UPDATE SET since = pending_removals.since \
             RETURNING since, why",
        )
        .bind(p.room.as_str())
        .bind(&p.email)
        .bind(p.since)
        .bind(&p.why)
        .fetch_one(&self.pool)
        .await?;
        Ok(PendingRemoval {
            room: p.room.clone(),
            email: p.email.clone(),
            since,
            why,
        })
    }

    async fn cancel_removals(&self, keys: &[(RoomId, String)]) -> Result<Vec<PendingRemoval>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut tx = self.pool.begin().await?;
        for (room, email) in keys {
            let row: Option<(DateTime<Utc>, String)> = sqlx::query_as(
                "DELETE FROM pending_removals WHERE room = $1 AND email = $2 RETURNING since, why",
            )
            .bind(room.as_str())
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((since, why)) = row {
                out.push(PendingRemoval {
                    room: room.clone(),
                    email: email.clone(),
                    since,
                    why,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn finish_removal(&self, room: &RoomId, email: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["room_grants", "pending_removals"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE room = $1 AND email = $2"
            ))
            .bind(room.as_str())
            .bind(email)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn schedule_job(&self, job: &NewJob, due: DateTime<Utc>) -> Result<bool> {
        // Created when due: a check scheduled a day ahead is not backlog before then.
        let done = sqlx::query(
            "INSERT INTO jobs (kind, resource_gid, project_gid, dedupe_key, payload, state, \
               attempts, created_at, updated_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, GREATEST($6, now()), now(), $6) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(job.kind.as_str())
        .bind(&job.resource_gid)
        .bind(&job.project_gid)
        .bind(&job.dedupe_key)
        .bind(write_payload(&job.payload))
        .bind(due)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.stop.cancel();
        self.pool.close().await;
    }
}
