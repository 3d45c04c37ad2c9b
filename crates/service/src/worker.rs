//! Workers: claim → reconcile → complete, retry later, or bury.
//!
//! The database row is the truth about a job (state, attempts, lease); a worker holds a
//! job only while its lease lasts. Processing is idempotent by construction: a `task` job
//! re-reads the task and runs the same reconcile as `invite --task` (`bridge_core::invite`),
//! which asks DocSpace who is already there before sending anything; a `project` job
//! (a resync after the Events API lost track) runs `bridge_core::sync` for the project's
//! rule. Delivering a job twice, or running it again after a crash, therefore never sends
//! a second invitation.
//!
//! Each attempt ends in one of four verdicts:
//!
//! | verdict   | when                                                            | then |
//! |-----------|-----------------------------------------------------------------|------|
//! | done      | reconciled, or nothing to do                                     | `complete` |
//! | failed    | a permanent answer for this task (gone, invisible, disabled account, invalid address) | ledger row `failed`, `complete` |
//! | retry     | 429, 5xx, transport, 401 or the state database, after the clients' own retries | `retry_later` on the backoff schedule; past `max_attempts`, dead |
//! | dead      | a configuration problem no retry can fix (no rule for the project, missing room) | `bury` + ledger row `dead`; `asana-docspace replay` queues it again |
//!
//! A `project` job can run for minutes (a whole project under Asana's rate limit), longer
//! than a claim's lease; it parks itself first (queued, due after `resync_lease`), so no
//! other worker starts a second resync meanwhile and a crash still brings it back.
//!
//! Workers sleep on a `Notify` the group-commit writer pokes after each commit that
//! created jobs, and otherwise poll every `poll_interval` for retries coming due. Before
//! claiming, a worker of `serve` or `watch` lets pending deliveries be committed first
//! (at most [`INTAKE_YIELD`] per job; see [`crate::writer`]): answering Asana in time
//! matters more than starting a job a few milliseconds earlier.
//! On shutdown a worker stops claiming, lets its job finish for `shutdown_grace`, and
//! releases it (back to queued, attempt not counted) if it is still running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_core::config::{RoomTarget, Rule};
use bridge_core::invite::{self, InviteOptions, InviteRequest, TaskRun};
use bridge_core::record::{Job, NewLedgerEntry, StoreError};
use bridge_core::sync::{self, NoProgress, SyncRequest};
use bridge_core::{CoreError, Services};
use chrono::Utc;
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::intake::webhook::payload_source;
use crate::metrics::Metrics;
use crate::writer::Backlog;

/// How long a successful room check is trusted: rooms rarely change, and checking per
/// job would double the DocSpace calls.
const ROOM_CHECK_TTL: Duration = Duration::from_secs(600);

/// Longest a worker defers its next claim to deliveries waiting for their commit. Under
/// a steady flow a commit takes a millisecond or two; only a flood that keeps the writer
/// busy makes workers wait this long, and then each still starts a job this often.
pub const INTAKE_YIELD: Duration = Duration::from_millis(200);

/// What one attempt concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reconciled (or nothing to do).
    Done,
    /// A permanent failure for this task: recorded, not retried.
    Failed(String),
    /// Might work later.
    Retry {
        /// What went wrong this time (kept as the job's `last_error`).
        error: String,
        /// The failure was a 429: wait at least the rate-limit floor.
        rate_limited: bool,
    },
    /// Cannot work until someone changes the configuration: a dead letter now.
    Dead(String),
}

/// What happened to a claimed job, for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worked {
    /// The job's id.
    pub job: i64,
    /// The verdict of this attempt.
    pub verdict: Verdict,
    /// Where it went: `done`, `retry`, `dead`.
    pub result: &'static str,
}

/// The backoff for a job that failed its `attempts`-th attempt: `schedule[attempts-1]`
/// (the last entry repeats), at least `floor` after a 429, with ±20 % jitter.
pub fn retry_delay(
    schedule: &[Duration],
    attempts: u32,
    rate_limited: bool,
    floor: Duration,
) -> Duration {
    let i = (attempts.max(1) - 1) as usize;
    let mut base = schedule
        .get(i)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(5));
    if rate_limited {
        base = base.max(floor);
    }
    let jitter: f64 = rand::rng().random_range(0.8..=1.2);
    base.mul_f64(jitter)
}

/// Serialises jobs for the same task inside this process, so two events about one task
/// (a quick double reassignment) are reconciled one after the other: the second then sees
/// the first one's invitation instead of racing it.
#[derive(Default)]
struct TaskLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

struct TaskGuard {
    locks: Arc<TaskLocks>,
    task: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl TaskLocks {
    async fn lock(self: &Arc<Self>, task: &str) -> TaskGuard {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(task.to_string()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        TaskGuard {
            locks: self.clone(),
            task: task.to_string(),
            lock,
            guard: Some(guard),
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and this guard hold it: nobody waits, forget the entry.
        if Arc::strong_count(&self.lock) <= 2 {
            map.remove(&self.task);
        }
    }
}

/// The worker pool's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    svc: Services,
    cfg: Arc<ServeConfig>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    rooms_ok: Mutex<HashMap<RoomTarget, Instant>>,
    locks: Arc<TaskLocks>,
    /// The intake the worker loops defer to, once set.
    intake: std::sync::OnceLock<Backlog>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("workers", &self.inner.cfg.workers)
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// A pool working `svc.store`'s queue under `cfg`'s rules; `wake` is poked by the
    /// writer when jobs arrive.
    pub fn new(
        svc: Services,
        cfg: Arc<ServeConfig>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Workers {
        Workers {
            inner: Arc::new(Inner {
                svc,
                cfg,
                metrics,
                wake,
                rooms_ok: Mutex::new(HashMap::new()),
                locks: Arc::new(TaskLocks::default()),
                intake: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Makes the worker loops let `backlog`'s deliveries be committed before each claim
    /// (for at most [`INTAKE_YIELD`]). Set once; later calls are ignored.
    pub fn defer_to(&self, backlog: Backlog) {
        let _ = self.inner.intake.set(backlog);
    }

    /// Starts `cfg.workers` worker loops; they stop when `cancel` fires.
    pub fn spawn(&self, cancel: CancellationToken) -> Vec<JoinHandle<()>> {
        (0..self.inner.cfg.workers.max(1))
            .map(|n| {
                let w = self.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move { w.run_loop(n, cancel).await })
            })
            .collect()
    }

    async fn run_loop(&self, n: usize, cancel: CancellationToken) {
        let cfg = &self.inner.cfg;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            if let Some(backlog) = self.inner.intake.get() {
                backlog.wait_clear(INTAKE_YIELD).await;
            }
            // Register for a wake-up *before* looking, so a commit landing between the
            // empty claim and the wait is not missed.
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let job = match self.inner.svc.store.claim(1, cfg.lease).await {
                Ok(mut jobs) => jobs.pop(),
                Err(e) => {
                    tracing::warn!(worker = n, error = %e, "claiming a job failed");
                    None
                }
            };
            let Some(job) = job else {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(cfg.poll_interval) => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            };
            let grace = async {
                cancel.cancelled().await;
                tokio::time::sleep(cfg.shutdown_grace).await;
            };
            tokio::select! {
                _ = self.work(job.clone()) => {}
                _ = grace => {
                    let store = &self.inner.svc.store;
                    let released = if job.kind == "project" {
                        // Parked (queued with a far due time) rather than running: make it
                        // due now so the next start resumes it.
                        store.retry_later(job.id, "released at shutdown", Utc::now()).await
                    } else {
                        store.release(job.id).await
                    };
                    match released {
                        Ok(()) => tracing::info!(job = job.id, "shutdown: job released, it will run again"),
                        Err(e) => tracing::warn!(job = job.id, error = %e, "shutdown: releasing a job failed; it runs again when its lease ends"),
                    }
                    self.inner.metrics.finished("released");
                    return;
                }
            }
        }
    }

    /// Claims one due job and works it. `None` when nothing is due. Tests drive the queue
    /// with this instead of sleeping.
    pub async fn run_one(&self) -> Result<Option<Worked>, StoreError> {
        let Some(job) = self
            .inner
            .svc
            .store
            .claim(1, self.inner.cfg.lease)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        Ok(Some(self.work(job).await))
    }

    /// Processes one claimed job and records the verdict.
    async fn work(&self, job: Job) -> Worked {
        let started = Instant::now();
        let lease = if job.kind == "project" {
            self.inner.cfg.resync_lease
        } else {
            self.inner.cfg.lease
        };
        let timeout = lease.saturating_sub(lease / 10);
        let verdict = match tokio::time::timeout(timeout, self.process(&job)).await {
            Ok(v) => v,
            Err(_) => Verdict::Retry {
                error: format!(
                    "gave up after {:.0} s so the job's lease does not run out mid-way",
                    timeout.as_secs_f64()
                ),
                rate_limited: false,
            },
        };
        Metrics::observe(&self.inner.metrics.job_seconds, started.elapsed());
        let result = self.settle(&job, &verdict).await;
        tracing::debug!(job = job.id, kind = %job.kind, resource = %job.resource_gid, ?verdict, result, "job worked");
        Worked {
            job: job.id,
            verdict,
            result,
        }
    }

    async fn process(&self, job: &Job) -> Verdict {
        match job.kind.as_str() {
            "task" => self.task_job(job).await,
            "project" => self.project_job(job).await,
            other => Verdict::Dead(format!("unknown job kind {other:?}")),
        }
    }

    fn rules_for(&self, project: Option<&str>) -> Result<Vec<Rule>, Verdict> {
        let Some(project) = project else {
            return Err(Verdict::Dead("the job names no project".into()));
        };
        let rules: Vec<Rule> = self
            .inner
            .cfg
            .rules_for(project)
            .into_iter()
            .cloned()
            .collect();
        if rules.is_empty() {
            return Err(Verdict::Dead(format!(
                "no [[rules]] entry for project {project} in the configuration this service runs with; add one and run `asana-docspace replay`"
            )));
        }
        Ok(rules)
    }

    async fn task_job(&self, job: &Job) -> Verdict {
        let rules = match self.rules_for(job.project_gid.as_deref()) {
            Ok(r) => r,
            Err(v) => return v,
        };
        let _guard = self.inner.locks.lock(&job.resource_gid).await;
        let mut retry: Option<Verdict> = None;
        for rule in &rules {
            if let Some(room) = &rule.room {
                if let Err(v) = self.check_room(room).await {
                    return v;
                }
            }
            let req = InviteRequest {
                task: job.resource_gid.clone(),
                user_type: rule.user_type,
                room: rule.room.clone(),
                dry_run: false,
                run_id: format!("job-{}", job.id),
                source: payload_source(job.payload.as_deref()).to_string(),
            };
            let opts = InviteOptions {
                check_room: false,
                skip_completed: !rule.include_completed,
            };
            match invite::run_with(&self.inner.svc, &req, opts).await {
                Ok(TaskRun::SkippedCompleted) => {
                    self.inner.metrics.action("portal", "completed");
                    return Verdict::Done;
                }
                Ok(TaskRun::Report(r)) => {
                    self.inner.metrics.action("portal", r.outcome.as_str());
                    if let Some(room) = &r.room {
                        self.inner.metrics.action("room", room.outcome.as_str());
                    }
                    if r.transient {
                        let error = r
                            .error
                            .clone()
                            .or_else(|| r.room.as_ref().and_then(|x| x.error.clone()))
                            .unwrap_or_else(|| "temporary failure".into());
                        let rate_limited = mentions_429(&error);
                        retry = Some(Verdict::Retry {
                            error,
                            rate_limited,
                        });
                    }
                    if r.outcome.is_nothing_to_do() || r.outcome == bridge_core::Outcome::Failed {
                        // Nobody to give access to (or the portal step failed): the other
                        // rules of this project would only repeat the same answer.
                        break;
                    }
                }
                Err(e) => return classify(e),
            }
        }
        retry.unwrap_or(Verdict::Done)
    }

    async fn project_job(&self, job: &Job) -> Verdict {
        let rules = match self.rules_for(Some(&job.resource_gid)) {
            Ok(r) => r,
            Err(v) => return v,
        };
        // A resync can outlast the claim's lease; another worker must not start a second
        // one meanwhile. Park the job (queued, due only after `resync_lease`): if this
        // process dies, the resync runs again then; otherwise the verdict below replaces it.
        let until = Utc::now()
            + chrono::Duration::from_std(self.inner.cfg.resync_lease)
                .unwrap_or(chrono::Duration::minutes(30));
        let note = format!(
            "resync started at {}; if it did not finish, it runs again at {}",
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            until.format("%Y-%m-%d %H:%M:%S UTC")
        );
        if let Err(e) = self.inner.svc.store.retry_later(job.id, &note, until).await {
            return Verdict::Retry {
                error: format!("state database: {e}"),
                rate_limited: false,
            };
        }
        let req = SyncRequest {
            rules,
            dry_run: false,
            run_id: format!("job-{}", job.id),
            source: payload_source(job.payload.as_deref()).to_string(),
            invite_batch: self.inner.cfg.invite_batch,
            progress: Arc::new(NoProgress),
        };
        match run_sync(self.inner.svc.clone(), req).await {
            Ok(report) => {
                for l in &report.lines {
                    self.inner.metrics.action("portal", l.outcome.as_str());
                    for r in &l.rooms {
                        self.inner.metrics.action("room", r.outcome.as_str());
                    }
                }
                self.inner.metrics.action(
                    "project",
                    if report.project_errors.is_empty() {
                        "synced"
                    } else {
                        "failed"
                    },
                );
                if report.project_errors.is_empty() {
                    Verdict::Done
                } else {
                    let error = report
                        .project_errors
                        .iter()
                        .map(|e| e.error.clone())
                        .collect::<Vec<_>>()
                        .join("; ");
                    Verdict::Retry {
                        rate_limited: mentions_429(&error),
                        error,
                    }
                }
            }
            // A room that does not exist or does not allow the level: configuration.
            Err(CoreError::Input(m)) => Verdict::Dead(m),
            Err(e) => classify(e),
        }
    }

    /// Checks a rule's room once per [`ROOM_CHECK_TTL`]; a room that is missing or does
    /// not allow the level is a configuration problem (dead letter).
    async fn check_room(&self, room: &RoomTarget) -> Result<(), Verdict> {
        {
            let ok = self
                .inner
                .rooms_ok
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if ok.get(room).is_some_and(|t| t.elapsed() < ROOM_CHECK_TTL) {
                return Ok(());
            }
        }
        match invite::check_room(&self.inner.svc, room).await {
            Ok(()) => {
                self.inner
                    .rooms_ok
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(room.clone(), Instant::now());
                Ok(())
            }
            Err(CoreError::Input(m)) => Err(Verdict::Dead(m)),
            Err(e) => Err(classify(e)),
        }
    }

    /// Writes the verdict to the job row (and the ledger). Returns where the job went.
    async fn settle(&self, job: &Job, verdict: &Verdict) -> &'static str {
        let store = &self.inner.svc.store;
        let cfg = &self.inner.cfg;
        let m = &self.inner.metrics;
        let result = match verdict {
            Verdict::Done => {
                with_retries(|| store.complete(job.id)).await;
                "done"
            }
            Verdict::Failed(error) => {
                self.ledger(job, "failed", error, None).await;
                with_retries(|| store.complete(job.id)).await;
                "done"
            }
            Verdict::Retry {
                error,
                rate_limited,
            } if job.attempts < cfg.max_attempts => {
                let wait = retry_delay(
                    &cfg.retry_schedule,
                    job.attempts,
                    *rate_limited,
                    cfg.rate_limit_floor,
                );
                let at = Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
                tracing::info!(job = job.id, attempt = job.attempts, wait_ms = wait.as_millis() as u64, error = %error, "job failed; will retry");
                with_retries(|| store.retry_later(job.id, error, at)).await;
                "retry"
            }
            Verdict::Retry { error, .. } | Verdict::Dead(error) => {
                let detail = format!(
                    "job {} ({} {}) gave up after {} attempt(s); `asana-docspace replay` queues it again",
                    job.id, job.kind, job.resource_gid, job.attempts
                );
                tracing::warn!(job = job.id, error = %error, "job is a dead letter");
                self.ledger(job, "dead", error, Some(detail)).await;
                with_retries(|| store.bury(job.id, error)).await;
                "dead"
            }
        };
        m.finished(result);
        if result == "done" {
            let waited = Utc::now().signed_duration_since(job.created_at);
            if let Ok(d) = waited.to_std() {
                Metrics::observe(&m.enqueue_to_done_seconds, d);
            }
        }
        result
    }

    async fn ledger(&self, job: &Job, outcome: &str, error: &str, detail: Option<String>) {
        let (task, target, action) = match job.kind.as_str() {
            "project" => (None, format!("project:{}", job.resource_gid), "sync"),
            _ => (
                Some(job.resource_gid.clone()),
                "portal".to_string(),
                "invite",
            ),
        };
        let entry = NewLedgerEntry {
            run_id: format!("job-{}", job.id),
            source: payload_source(job.payload.as_deref()).to_string(),
            task_gid: task,
            assignee_gid: None,
            email: None,
            target,
            action: action.into(),
            outcome: outcome.into(),
            error: Some(error.to_string()),
            detail,
        };
        if let Err(e) = self.inner.svc.store.record(&entry).await {
            tracing::warn!(job = job.id, error = %e, "writing the ledger failed");
        }
    }
}

/// Runs `sync::run` on a blocking-pool thread.
///
/// Its future cannot be proven `Send` (a closure over `&str` inside `sync::resolve_people`
/// trips rustc's higher-ranked lifetime check), so it cannot be awaited inside a spawned
/// worker task. Resyncs are rare (one per lost sync token), so a thread for their
/// duration is cheap; `block_on` there drives the same runtime's I/O and timers.
async fn run_sync(svc: Services, req: SyncRequest) -> Result<sync::SyncReport, CoreError> {
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || handle.block_on(sync::run(&svc, &req))).await {
        Ok(r) => r,
        Err(e) => Err(CoreError::Config(format!(
            "the project reconcile stopped: {e}"
        ))),
    }
}

/// Sorts an error that stopped a job before any per-person answer.
fn classify(e: CoreError) -> Verdict {
    let transient = |status: Option<u16>, retryable: bool| retryable || status == Some(401);
    match e {
        CoreError::Asana(a) if transient(a.status(), a.is_retryable()) => Verdict::Retry {
            rate_limited: a.status() == Some(429),
            error: format!("Asana: {a}"),
        },
        CoreError::DocSpace(d) if invite::is_transient(&d) => Verdict::Retry {
            rate_limited: d.status() == Some(429),
            error: format!("DocSpace: {d}"),
        },
        CoreError::Store(s) => Verdict::Retry {
            error: format!("state database: {s}"),
            rate_limited: false,
        },
        CoreError::Config(m) => Verdict::Dead(m),
        // Unknown or invisible task (404/403), a refused request: retrying repeats it.
        other => Verdict::Failed(other.to_string()),
    }
}

fn mentions_429(error: &str) -> bool {
    error.contains(" 429")
}

/// Job-row updates are tiny; a transient database hiccup (another process holding the
/// write lock past the busy timeout) gets three quick retries. If all fail, the lease
/// runs out and the job is simply worked again, which is safe.
async fn with_retries<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    for wait in [10u64, 20, 40, 0] {
        match f().await {
            Ok(()) => return,
            Err(e) if wait > 0 => {
                tracing::debug!(error = %e, "job update failed; retrying");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "job update failed; the job runs again when its lease ends")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_follows_the_schedule_with_jitter_and_floor() {
        let s = [Duration::from_secs(5), Duration::from_secs(30)];
        for _ in 0..100 {
            let d = retry_delay(&s, 1, false, Duration::from_secs(60));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
            let d = retry_delay(&s, 7, false, Duration::from_secs(60));
            assert!(
                d >= Duration::from_secs(24) && d <= Duration::from_secs(36),
                "{d:?}"
            );
            let d = retry_delay(&s, 1, true, Duration::from_secs(60));
            assert!(d >= Duration::from_secs(48), "{d:?}");
        }
        assert!(retry_delay(&[], 3, false, Duration::ZERO) <= Duration::from_secs(6));
    }

    #[test]
    fn errors_are_sorted_into_retry_failed_and_dead() {
        let api = |status: u16| asana_api::Error::Api {
            status,
            message: "x".into(),
            help: None,
        };
        assert!(matches!(
            classify(CoreError::Asana(api(503))),
            Verdict::Retry {
                rate_limited: false,
                ..
            }
        ));
        assert!(matches!(
            classify(CoreError::Asana(api(429))),
            Verdict::Retry {
                rate_limited: true,
                ..
            }
        ));
        assert!(matches!(
            classify(CoreError::Asana(api(401))),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(CoreError::Asana(api(403))),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            classify(CoreError::Input("Asana has no task".into())),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            classify(CoreError::Config("x".into())),
            Verdict::Dead(_)
        ));
        assert!(mentions_429("DocSpace: DocSpace answered 429: Too many"));
    }
}
