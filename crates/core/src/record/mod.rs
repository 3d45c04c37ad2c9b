//! record: the durable state of the bridge.
//!
//! - the **ledger**: every decision and action (`history`, audits);
//! - the **work queue** for `serve`/`watch`: the database row is the truth (state, attempts,
//!   lease); workers receive job ids and must be idempotent, because delivery is at least once;
//! - **webhook registrations** and the secrets Asana hands over in its handshake;
//! - Events API **sync tokens** for `watch`.
//!
//! - the **replica registry**: every `serve`/`watch` process heartbeats a row, so a job held
//!   by a process that died — and the person claims it held — are taken over within
//!   seconds instead of after their lease.
//!
//! Everything goes through the object-safe [`Store`] trait, implemented by [`SqliteStore`]
//! (one host) and [`PgStore`] (several replicas on one PostgreSQL database). [`open`] picks
//! the backend from a location string. The shared conformance suite
//! (`crates/core/tests/it/record/`) runs every store test against both.
//!
//! **Leases and fencing.** A claimed job carries a [`LeaseToken`] that increases with every
//! claim of its row. Every settle (`complete`, `retry_later`, `bury`, `release`) and every
//! heartbeat (`extend_lease`) names the token and acts only while the row is still running
//! under it; otherwise it answers [`Fence::Lost`] and changes nothing. So a worker that
//! stalled past its lease, or whose process was declared dead, can never settle, retry or
//! overwrite a job someone else holds now (River's missing fencing token, next-stage §1).
//!
//! All timestamps are UTC. The SQLite backend stores them as unix milliseconds taken from
//! the process's clock; the Postgres backend as `timestamptz`, and leases from the
//! *database server's* clock, so replicas on hosts whose clocks drift still agree.

mod postgres;
mod sqlite;
mod transfer;

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use tokio::sync::Notify;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::postgres::PgStore;
pub use self::sqlite::SqliteStore;
pub use self::transfer::{copy_sqlite_to_postgres, Copied};
use crate::domain::{Action, JobKind, JobPayload, Recorded, RoomId, Source, Target};
use docspace_api::Access;

/// Result type of the record module.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Errors of the durable state layer. Messages never carry secrets or bound values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed a statement (or could not be reached).
    #[error("state database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Opening the database failed.
    #[error("cannot open the state database {path}: {source}")]
    Open {
        /// What was being opened.
        path: String,
        /// Why it failed.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value is not one this build knows (a hand-edited or newer database).
    #[error("state database holds an unreadable value: {0}")]
    Corrupt(#[from] crate::domain::UnknownWord),
    /// A stored job payload is not valid JSON of the expected shape.
    #[error("state database holds an unreadable job payload: {0}")]
    Payload(#[source] serde_json::Error),
    /// The store was closed (graceful shutdown); later calls fail.
    #[error("the state database is closed")]
    Closed,
    /// Applying the schema migrations failed.
    #[error("state database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// The location names a backend this build does not have.
    #[error("unsupported state location: {0}")]
    Unsupported(String),
    /// The row the call refers to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule was violated (e.g. the same webhook id or Asana gid twice).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Preparing the database file or its folder failed.
    #[error("state file: cannot {what} {path}: {source}")]
    Io {
        /// What was being done (`create folder`, `open`).
        what: &'static str,
        /// The path.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            sqlx::Error::PoolClosed => StoreError::Closed,
            _ => StoreError::Database(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger

/// One decision or action to append to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLedgerEntry {
    /// Groups the entries of one CLI run or one worker job.
    pub run_id: String,
    /// Who asked.
    pub source: Source,
    /// The Asana task the entry is about, if any.
    pub task_gid: Option<String>,
    /// The task's assignee (Asana user gid).
    pub assignee_gid: Option<String>,
    /// The assignee's email, lower-cased.
    pub email: Option<String>,
    /// Portal, a room, or a project.
    pub target: Target,
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: Recorded,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Why it was done: the task, rule and level.
    pub detail: Option<String>,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The row id, increasing with time.
    pub id: i64,
    /// When the entry was recorded (UTC, millisecond precision).
    pub at: DateTime<Utc>,
    /// As [`NewLedgerEntry::run_id`], and so on for the rest.
    pub run_id: String,
    #[allow(missing_docs)]
    pub source: Source,
    #[allow(missing_docs)]
    pub task_gid: Option<String>,
    #[allow(missing_docs)]
    pub assignee_gid: Option<String>,
    #[allow(missing_docs)]
    pub email: Option<String>,
    #[allow(missing_docs)]
    pub target: Target,
    #[allow(missing_docs)]
    pub action: Action,
    #[allow(missing_docs)]
    pub outcome: Recorded,
    #[allow(missing_docs)]
    pub error: Option<String>,
    #[allow(missing_docs)]
    pub detail: Option<String>,
}

/// Filter for [`Store::history`]. All set fields must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Case-insensitive (ASCII) exact match.
    pub email: Option<String>,
    /// Exact task gid.
    pub task_gid: Option<String>,
    /// Exact run id.
    pub run_id: Option<String>,
    /// Keep only the newest `limit` matches (still returned oldest first).
    pub limit: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Queue

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// What the job reconciles.
    pub kind: JobKind,
    /// The task (or project) gid.
    pub resource_gid: String,
    /// The project whose rules apply.
    pub project_gid: Option<String>,
    /// Unique while the job row exists: a second enqueue with the same key is a no-op.
    pub dedupe_key: String,
    /// Where it came from.
    pub payload: JobPayload,
}

/// Life cycle of a job: `Queued → Running → Done`, or back to `Queued` (retry, release,
/// expired lease), or `Dead` (dead letter) until replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to be claimed once due.
    Queued,
    /// Claimed by a worker whose lease holds.
    Running,
    /// Finished.
    Done,
    /// A dead letter.
    Dead,
}

impl JobState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "done" => Ok(JobState::Done),
            "dead" => Ok(JobState::Dead),
            other => Err(StoreError::Corrupt(crate::domain::UnknownWord {
                what: "job state",
                value: other.to_string(),
            })),
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The row id.
    pub id: i64,
    /// As in [`NewJob`].
    pub kind: JobKind,
    /// As in [`NewJob`].
    pub resource_gid: String,
    /// As in [`NewJob`].
    pub project_gid: Option<String>,
    /// As in [`NewJob`].
    pub dedupe_key: String,
    /// As in [`NewJob`].
    pub payload: JobPayload,
    /// Claims so far (a claim counts as an attempt; `release` gives it back).
    pub attempts: u32,
    /// Where it is in its life cycle.
    pub state: JobState,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When a queued job becomes due.
    pub next_attempt_at: DateTime<Utc>,
    /// While running: when the lease expires and another worker may claim the job.
    pub lease_until: Option<DateTime<Utc>>,
    /// The fencing token of the latest claim (0: never claimed).
    pub token: LeaseToken,
}

impl Job {
    /// What a holder names when it settles or renews this claim of the job.
    pub fn lease(&self) -> JobLease {
        JobLease {
            id: self.id,
            token: self.token,
        }
    }
}

/// The fencing token of one claim of a job: it increases with every claim of the row, so
/// a holder whose claim was taken over holds a token that no longer matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseToken(pub i64);

/// One claim of one job: the job's id and the token its claim handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLease {
    /// The job's row id.
    pub id: i64,
    /// The token of the claim.
    pub token: LeaseToken,
}

/// Whether a fenced call on a job acted.
#[must_use = "a lost lease means the call changed nothing"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// The row was still running under the caller's token: the call acted.
    Held,
    /// The row is no longer running under the token (settled, released, or claimed again
    /// by someone else after the lease ran out or the holder was declared dead): nothing
    /// was changed.
    Lost,
}

// ---------------------------------------------------------------------------------------------
// Replicas

/// A `serve` or `watch` process in the replica registry (a random id per process start).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaId(pub String);

impl ReplicaId {
    /// A fresh, unguessable replica id.
    pub fn new() -> ReplicaId {
        ReplicaId(uuid::Uuid::new_v4().to_string())
    }
}

impl Default for ReplicaId {
    fn default() -> Self {
        ReplicaId::new()
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row of the replica registry ([`Store::replicas`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    /// Its id.
    pub id: String,
    /// What it is, for operators (`serve on host (pid 42)`).
    pub info: String,
    /// When it registered.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Past this without a heartbeat it counts as dead and its jobs are taken over.
    pub expires_at: DateTime<Utc>,
}

/// Number of jobs per state, for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Waiting (due or not).
    pub queued: u64,
    /// Being worked.
    pub running: u64,
    /// Dead letters.
    pub dead: u64,
}

// ---------------------------------------------------------------------------------------------
// Claims

/// Who holds claims: one reconcile run, resync or poller (a random id each), so a crashed
/// run's claims are recognisable and expire together.
///
/// A holder acting for a `serve`/`watch` process also names that process's [`ReplicaId`]:
/// its claims are then free as soon as the replica's registry row expires (the process
/// died), as its jobs are, instead of only when their lease runs out — so a restarted or
/// surviving replica acts for the dead one's people within seconds. A CLI run (`sync`,
/// `invite`) has no registry row and is covered by its lease alone; so is a holder whose
/// replica has no row (never registered, or retired).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    id: String,
    replica: Option<ReplicaId>,
}

impl Holder {
    /// A fresh, unguessable holder whose claims only their lease keeps (a CLI run).
    pub fn new() -> Holder {
        Holder {
            id: uuid::Uuid::new_v4().to_string(),
            replica: None,
        }
    }

    /// A fresh holder acting for `replica`, whose claims also end when its registry row
    /// expires.
    pub fn for_replica(replica: &ReplicaId) -> Holder {
        Holder {
            replica: Some(replica.clone()),
            ..Holder::new()
        }
    }

    /// The holder's own id (unique per run).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The registered process it acts for, if any.
    pub fn replica(&self) -> Option<&ReplicaId> {
        self.replica.as_ref()
    }
}

impl Default for Holder {
    fn default() -> Self {
        Holder::new()
    }
}

/// A point in the claim history, read before a reconcile looks at DocSpace: a claim
/// released after it means someone acted on that person since, and what was read is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ClaimEpoch(pub i64);

/// A claim granted by [`Store::claim_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The key.
    pub key: String,
    /// Someone else acted under this key since the epoch the caller passed (released it
    /// later, or held it and died — its lease ran out or its replica's registry row
    /// expired): read DocSpace again before deciding.
    pub stale: bool,
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// What the last complete, successful sync of a rule left ([`Store::sync_mark`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMark {
    /// The rule's project.
    pub project_gid: String,
    /// The rule as it was then; another fingerprint means the rule changed.
    pub fingerprint: String,
    /// When the last full sync started.
    pub full_started_at: DateTime<Utc>,
    /// When the last complete, successful sync (full or incremental) started.
    pub since: DateTime<Utc>,
}

/// A webhook registration: deliveries arrive at `/webhooks/asana/{id}`.
///
/// `Debug` redacts the secret and `Serialize` skips it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct WebhookReg {
    /// Our own id, the last path segment of the delivery URL.
    pub id: String,
    /// The Asana project it watches.
    pub project_gid: String,
    /// The delivery URL registered with Asana.
    pub target: String,
    /// Asana's gid of the webhook, once created.
    pub asana_gid: Option<String>,
    /// The `X-Hook-Secret` from Asana's handshake.
    #[serde(skip_serializing)]
    pub secret: Option<String>,
    /// `"expecting"` (handshake pending) or `"active"`.
    pub state: String,
    /// When `webhooks create` (or the config) registered it.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for WebhookReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReg")
            .field("id", &self.id)
            .field("project_gid", &self.project_gid)
            .field("target", &self.target)
            .field("asana_gid", &self.asana_gid)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Room grants and pending removals

/// Room access this tool granted: written when a share it sent succeeded, the ownership
/// record every removal is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomGrant {
    /// The room.
    pub room: RoomId,
    /// The person's email, lower-cased.
    pub email: String,
    /// Their DocSpace id.
    pub person_id: String,
    /// Their Asana user gid.
    pub assignee_gid: Option<String>,
    /// The level this tool sent.
    pub access: Access,
    /// What they had before this tool's first share (a `FileShare` integer); `None`: not a
    /// member. Someone who was a member before is never removed.
    pub prior_access: Option<i32>,
    /// The task that gave them access, for the why of a later removal.
    pub task_gid: Option<String>,
    /// Its project.
    pub project_gid: Option<String>,
    /// When the share succeeded.
    pub granted_at: DateTime<Utc>,
    /// The run that sent it.
    pub run_id: String,
}

/// A removal waiting for its grace: the person's last qualifying assignment for the room
/// ended at `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRemoval {
    /// The room.
    pub room: RoomId,
    /// The person's email, lower-cased.
    pub email: String,
    /// When the last qualifying assignment ended (as first noticed).
    pub since: DateTime<Utc>,
    /// Which task was unassigned, completed or removed, and how it was noticed.
    pub why: String,
}

// ---------------------------------------------------------------------------------------------
// The trait

/// The durable state. Object safe: callers hold an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    // --- ledger
    /// Appends one entry; returns its id.
    async fn record(&self, e: &NewLedgerEntry) -> Result<i64>;
    /// Appends all entries in one transaction (all or none).
    async fn record_many(&self, es: &[NewLedgerEntry]) -> Result<()>;
    /// Matching entries, oldest first; with a limit, the newest `limit` of them.
    async fn history(&self, f: &HistoryFilter) -> Result<Vec<LedgerEntry>>;

    // --- queue
    /// Enqueues all jobs in one transaction. Per job: `true` if new, `false` if a job with the
    /// same dedupe key already exists (earlier call or earlier in the same batch).
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<bool>>;
    /// Atomically takes up to `max` due jobs for `holder` — queued with `next_attempt_at <=
    /// now`, running with an expired lease, or running for a replica whose registry row
    /// expired (its process died) — marks them running until `now + lease`, counts an
    /// attempt and hands each a new [`LeaseToken`]. Safe with concurrent claimers on any
    /// number of processes: no job is handed out twice while its lease holds. Returned
    /// oldest due first. `holder` need not be registered; an unregistered holder's jobs are
    /// taken over only when their lease runs out.
    async fn claim(&self, max: usize, lease: Duration, holder: &ReplicaId) -> Result<Vec<Job>>;
    /// Extends a running job's lease to `now + lease` — the heartbeat of a job, so it keeps
    /// its job instead of having it claimed by another worker. [`Fence::Lost`] if the row is
    /// no longer running under this claim's token. NotFound if no job has the id.
    async fn extend_lease(&self, lease: JobLease, duration: Duration) -> Result<Fence>;
    /// Marks a job done, if the claim still holds.
    async fn complete(&self, lease: JobLease) -> Result<Fence>;
    /// Back to queued, due at `at`, remembering the error, if the claim still holds.
    async fn retry_later(&self, lease: JobLease, error: &str, at: DateTime<Utc>) -> Result<Fence>;
    /// Dead letter, kept with its error until [`Store::replay_dead`], if the claim still holds.
    async fn bury(&self, lease: JobLease, error: &str) -> Result<Fence>;
    /// Graceful shutdown: a job still running under this claim goes back to queued, due
    /// now, and its attempt is not counted. Anything else is left alone ([`Fence::Lost`]).
    async fn release(&self, lease: JobLease) -> Result<Fence>;
    /// All dead jobs back to queued, due now, attempts reset. Returns how many.
    async fn replay_dead(&self) -> Result<u64>;
    /// One dead job back to queued, due now, attempts reset (the status page's Replay).
    /// `false` if no dead job has that id: already replayed, never dead, or gone.
    async fn replay_job(&self, id: i64) -> Result<bool>;
    /// When the longest-waiting queued job was enqueued (`None`: nothing is queued).
    async fn oldest_queued_at(&self) -> Result<Option<DateTime<Utc>>>;
    /// Dead jobs, oldest first.
    async fn dead_jobs(&self, limit: u32) -> Result<Vec<Job>>;
    /// Jobs per state.
    async fn queue_depth(&self) -> Result<QueueDepth>;
    /// Deletes done jobs finished more than `older_than` ago (their dedupe keys go with them).
    async fn prune_done(&self, older_than: Duration) -> Result<u64>;

    /// The signal idle workers wait on: fired when jobs became claimable now — by an
    /// enqueue, a release or a retry due at once of this store, and on Postgres by any
    /// replica's (through `LISTEN/NOTIFY`). Other processes on one SQLite file, retries
    /// coming due and replayed dead letters are seen by the workers' poll.
    fn wakeup(&self) -> Arc<Notify>;

    // --- replica registry
    /// Adds (or renews) `id` in the registry, alive until `now + ttl`, and forgets replicas
    /// that have been dead for an hour.
    async fn register_replica(&self, id: &ReplicaId, info: &str, ttl: Duration) -> Result<()>;
    /// The replica's heartbeat: alive until `now + ttl`. `false` if its row is gone (it was
    /// retired or forgotten); register again then.
    async fn beat_replica(&self, id: &ReplicaId, ttl: Duration) -> Result<bool>;
    /// Removes a replica on a clean shutdown (after it released its jobs).
    async fn retire_replica(&self, id: &ReplicaId) -> Result<()>;
    /// The registry, oldest first (alive and recently dead).
    async fn replicas(&self) -> Result<Vec<Replica>>;

    // --- claims: at most one actor per person (or per project resync) at a time
    /// The newest point in the claim history; pass it to [`Store::claim_keys`] later.
    async fn claim_epoch(&self) -> Result<ClaimEpoch>;
    /// Atomically takes, for `holder` until `now + lease`, each of `keys` that is free, whose
    /// claim expired, whose holder acted for a replica whose registry row expired (its
    /// process died; the same rule as [`Store::claim`]'s), or that `holder` already holds.
    /// Returns the granted ones (the others are held by someone alive); [`Granted::stale`]
    /// says whether the caller must read DocSpace again because someone acted under the key
    /// after `since` (a key taken over from a dead holder always is).
    async fn claim_keys(
        &self,
        keys: &[String],
        holder: &Holder,
        since: ClaimEpoch,
        lease: Duration,
    ) -> Result<Vec<Granted>>;
    /// Extends every claim `holder` still has to `now + lease`. Returns how many.
    async fn extend_claims(&self, holder: &Holder, lease: Duration) -> Result<u64>;
    /// Gives `keys` back (only those `holder` still holds), marking them as acted on now.
    async fn release_claims(&self, keys: &[String], holder: &Holder) -> Result<()>;

    // --- webhooks
    /// Registers a new id before asking Asana to create the webhook. Conflict if the id exists.
    async fn expect_webhook(&self, id: &str, project_gid: &str, target: &str) -> Result<()>;
    /// Stores the handshake secret only if the id exists, is `"expecting"` and has no secret
    /// yet. Returns whether it was stored.
    async fn store_webhook_secret(&self, id: &str, secret: &str) -> Result<bool>;
    /// Marks the registration active with Asana's webhook gid. NotFound if the id is unknown.
    async fn activate_webhook(&self, id: &str, asana_gid: &str) -> Result<()>;
    /// One registration by our id.
    async fn webhook(&self, id: &str) -> Result<Option<WebhookReg>>;
    /// All registrations, oldest first.
    async fn webhooks(&self) -> Result<Vec<WebhookReg>>;
    /// Deletes a registration by our id (e.g. when creating it at Asana failed).
    async fn delete_webhook(&self, id: &str) -> Result<bool>;
    /// Deletes a registration by Asana's webhook gid (`webhooks delete`).
    async fn delete_webhook_by_asana_gid(&self, asana_gid: &str) -> Result<bool>;

    // --- Events API sync tokens
    /// The Events API sync token saved for a resource.
    async fn sync_token(&self, resource_gid: &str) -> Result<Option<String>>;
    /// Saves the Events API sync token for a resource.
    async fn set_sync_token(&self, resource_gid: &str, token: &str) -> Result<()>;

    // --- incremental sync marks
    /// What the last complete, successful sync of a rule left (`None`: no such sync).
    async fn sync_mark(&self, rule_key: &str) -> Result<Option<SyncMark>>;
    /// After a complete, successful *full* sync of a rule's project that started at
    /// `started_at`: the rule's fingerprint, and both the full sync's and the next
    /// incremental read's start are `started_at` (never moved back).
    async fn record_full_sync(
        &self,
        rule_key: &str,
        project_gid: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<()>;
    /// After a complete, successful *incremental* sync: the next one reads from
    /// `started_at` on (never moved back). Only when the mark still has `fingerprint`;
    /// returns whether it did.
    async fn record_incremental_sync(
        &self,
        rule_key: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<bool>;

    // --- room grants and pending removals (issue 11)
    /// Records shares this tool sent and saw succeed. A row already there for the room and
    /// email keeps its `prior_access` (what the person had before this tool's first share).
    async fn record_grants(&self, grants: &[RoomGrant]) -> Result<()>;
    /// Every grant recorded for a room.
    async fn room_grants(&self, room: &RoomId) -> Result<Vec<RoomGrant>>;
    /// Every pending removal of a room.
    async fn pending_removals(&self, room: &RoomId) -> Result<Vec<PendingRemoval>>;
    /// Records a pending removal unless one exists for the room and email; returns the one
    /// stored (the older one wins: the grace runs from the first time it was noticed).
    async fn note_removal(&self, p: &PendingRemoval) -> Result<PendingRemoval>;
    /// Cancels the pending removals of these (room, email) pairs; returns those that existed.
    async fn cancel_removals(&self, keys: &[(RoomId, String)]) -> Result<Vec<PendingRemoval>>;
    /// After a removal (or finding the access already gone): drops the grant and the
    /// pending removal of the room and email, in one transaction.
    async fn finish_removal(&self, room: &RoomId, email: &str) -> Result<()>;
    /// Enqueues one job due at `due` (a removal check after a grace). `false` if a job with
    /// its dedupe key exists. Its `created_at` is its due time, so it does not count as
    /// backlog ([`Store::oldest_queued_at`]) before it is due.
    async fn schedule_job(&self, job: &NewJob, due: DateTime<Utc>) -> Result<bool>;

    // --- health
    /// Cheap round trip to the database, for `/healthz`.
    async fn ping(&self) -> Result<()>;
    /// Commits one tiny write, for `/healthz`: a read ping answers fine while the disk is
    /// full or another process holds the write lock, and then nothing can be stored. The
    /// default is [`Store::ping`], for a backend that has no cheaper honest probe.
    async fn probe_write(&self) -> Result<()> {
        self.ping().await
    }
    /// Closes the connections (graceful shutdown). Later calls fail.
    async fn close(&self);
}

// ---------------------------------------------------------------------------------------------
// Opening

/// Opens the state store at `location` and applies pending migrations.
///
/// - a file path, `sqlite:PATH` or `sqlite://PATH` → SQLite (parent folders and the file are
///   created; WAL, `synchronous=NORMAL`, 5 s busy timeout, foreign keys on);
/// - `:memory:` / `sqlite::memory:` → a private in-memory SQLite database (tests);
/// - `postgres://…` / `postgresql://…` → PostgreSQL (the database must exist; the schema
///   is migrated under sqlx's migration lock, so replicas may start at once).
pub async fn open(location: &str) -> Result<Arc<dyn Store>> {
    let location = location.trim();
    if location.is_empty() {
        return Err(StoreError::Unsupported("empty state location".into()));
    }
    if is_postgres(location) {
        return Ok(Arc::new(PgStore::open(location).await?));
    }
    let lower = location.to_ascii_lowercase();
    if lower == ":memory:" || lower == "sqlite::memory:" {
        return Ok(Arc::new(SqliteStore::open_in_memory().await?));
    }
    let path = if let Some(rest) = strip_prefix_ci(location, "sqlite://") {
        rest
    } else if let Some(rest) = strip_prefix_ci(location, "sqlite:") {
        rest
    } else if let Some((scheme, _)) = location.split_once("://") {
        return Err(StoreError::Unsupported(format!(
            "no state backend for scheme {scheme:?}; use a SQLite path or postgres://…"
        )));
    } else {
        location
    };
    // `sqlite:` URLs may carry `?mode=…` style options; they are not supported here.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path.is_empty() {
        return Err(StoreError::Unsupported(
            "sqlite location without a file path".into(),
        ));
    }
    Ok(Arc::new(SqliteStore::open(path).await?))
}

/// A state location as it may be shown: a Postgres URL's password is replaced by `***`.
pub fn display_location(location: &str) -> String {
    if is_postgres(location) {
        postgres::redact(location.trim())
    } else {
        location.to_string()
    }
}

/// Whether a state location names a PostgreSQL database.
pub fn is_postgres(location: &str) -> bool {
    let l = location.trim();
    strip_prefix_ci(l, "postgres://").is_some() || strip_prefix_ci(l, "postgresql://").is_some()
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// Where the state lives when neither `--state` nor `ASANA_DOCSPACE_STATE` says:
/// `<user data dir>/asana-docspace/state.db` (e.g. `~/.local/share/asana-docspace/state.db`),
/// or `./asana-docspace.db` when no home folder is known.
pub fn default_location() -> PathBuf {
    directories::ProjectDirs::from("", "", "asana-docspace")
        .map(|dirs| dirs.data_dir().join("state.db"))
        .unwrap_or_else(|| PathBuf::from("asana-docspace.db"))
}
