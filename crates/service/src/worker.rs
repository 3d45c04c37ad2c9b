//! Workers: claim → reconcile → complete, retry later, or bury.
//!
//! The database row is the truth about a job (state, attempts, lease, fencing token); a
//! worker holds a job only while its lease lasts (30 s by default), and renews the lease
//! every third of it while the job runs (a heartbeat), so a long resync keeps its job. A
//! job whose worker stopped renewing is taken over once one lease has passed; one whose
//! whole process died is taken over as soon as the process's registry row expires (a few
//! seconds, see [`crate::REPLICA_TTL`]). Every heartbeat and every settle names the claim's
//! token: a worker whose claim was taken over gets [`Fence::Lost`] and can neither renew,
//! settle, retry nor bury the job — it stops and leaves the row to its new holder.
//!
//! Processing is idempotent by construction: every job runs the one reconcile
//! (`bridge_core::reconcile::run`) — a `task` job for the task under all of its project's
//! rules, a `project` job (a resync after the Events API lost track) for the whole
//! project — and the reconcile claims each person before acting, so however many workers
//! and processes overlap, nobody is invited twice.
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
//! "Retry later?" is decided from typed errors ([`bridge_core::Transience`]), never from
//! message text. One project is never resynced twice at once: a `project` job first
//! claims `resync:<gid>` in the state store, and a second one waits its turn as a retry.
//!
//! Workers sleep on the store's wake-up signal ([`bridge_core::record::Store::wakeup`]),
//! fired after each commit that created jobs — on Postgres by any replica's, through
//! `LISTEN/NOTIFY` — and otherwise poll every `poll_interval` for retries coming due. Before
//! claiming, a worker of `serve` or `watch` lets pending deliveries be committed first
//! (at most [`INTAKE_YIELD`] per job; see [`crate::writer`]): answering Asana in time
//! matters more than starting a job a few milliseconds earlier.
//! On shutdown a worker stops claiming, lets its job finish for `shutdown_grace`, then
//! drops it — which really stops the reconcile — and releases the job (back to queued,
//! attempt not counted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use asana_api::Gid;
use backon::{ExponentialBuilder, Retryable};
use bridge_core::domain::{Action, JobKind, JobPayload, Recorded, RoomId, Target};
use bridge_core::reconcile::{self, Options, Scope, TaskEvent};
use bridge_core::record::{Fence, Holder, Job, NewJob, NewLedgerEntry, ReplicaId, StoreError};
use bridge_core::report::Report;
use bridge_core::{CoreError, Services, Transience};
use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::writer::Backlog;

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
    /// The job's lease was lost (this worker stalled past it and another worker has the
    /// job now): the row is left to its new holder.
    Lost,
}

/// Where a claimed job went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Completed.
    Done,
    /// Queued again for a later attempt.
    Retry,
    /// A dead letter.
    Dead,
    /// Left alone: another worker holds it.
    Lost,
}

impl Settled {
    /// The `/metrics` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::Retry => "retry",
            Settled::Dead => "dead",
            Settled::Lost => "lost",
        }
    }
}

/// What happened to a claimed job, for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worked {
    /// The job's id.
    pub job: i64,
    /// The verdict of this attempt.
    pub verdict: Verdict,
    /// Where it went.
    pub result: Settled,
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
    /// This process in the replica registry: the holder of the jobs it claims.
    replica: ReplicaId,
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
    /// A pool working `svc.store`'s queue under `cfg`'s rules, claiming for `replica`;
    /// idle workers wait on the store's wake-up signal ([`bridge_core::record::Store::wakeup`]).
    pub fn new(
        svc: Services,
        cfg: Arc<ServeConfig>,
        metrics: Arc<Metrics>,
        replica: ReplicaId,
    ) -> Workers {
        let wake = svc.store.wakeup();
        Workers {
            inner: Arc::new(Inner {
                svc,
                cfg,
                metrics,
                wake,
                replica,
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
            let job = match self
                .inner
                .svc
                .store
                .claim(1, cfg.lease, &self.inner.replica)
                .await
            {
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
                    // The reconcile future is dropped here: its work stops, and its claims
                    // are given back by their guard.
                    match self.inner.svc.store.release(job.lease()).await {
                        Ok(Fence::Held) => tracing::info!(job = job.id, "shutdown: job released, it will run again"),
                        Ok(Fence::Lost) => tracing::info!(job = job.id, "shutdown: the job's lease was already lost; left to its holder"),
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
            .claim(1, self.inner.cfg.lease, &self.inner.replica)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        Ok(Some(self.work(job).await))
    }

    /// Processes one claimed job under a heartbeat and a timeout, and records the verdict.
    async fn work(&self, job: Job) -> Worked {
        let started = Instant::now();
        let cfg = &self.inner.cfg;
        let timeout = match job.kind {
            JobKind::Task => cfg.job_timeout,
            JobKind::Project | JobKind::Room => cfg.resync_timeout,
        };
        let heartbeat = async {
            loop {
                tokio::time::sleep(cfg.lease / 3).await;
                match self
                    .inner
                    .svc
                    .store
                    .extend_lease(job.lease(), cfg.lease)
                    .await
                {
                    Ok(Fence::Held) => {}
                    Ok(Fence::Lost) => return,
                    Err(e) => {
                        tracing::warn!(job = job.id, error = %e, "renewing a job's lease failed; retrying")
                    }
                }
            }
        };
        let verdict = tokio::select! {
            v = tokio::time::timeout(timeout, self.process(&job)) => v.unwrap_or_else(|_| Verdict::Retry {
                error: format!("stopped after {} s (the job timeout)", timeout.as_secs()),
                rate_limited: false,
            }),
            () = heartbeat => {
                tracing::warn!(job = job.id, "lost the job's lease; stopping it and leaving it to its new holder");
                Verdict::Lost
            }
        };
        Metrics::observe(&self.inner.metrics.job_seconds, started.elapsed());
        let result = self.settle(&job, &verdict).await;
        tracing::debug!(job = job.id, kind = %job.kind, resource = %job.resource_gid, ?verdict, result = result.as_str(), "job worked");
        Worked {
            job: job.id,
            verdict,
            result,
        }
    }

    async fn process(&self, job: &Job) -> Verdict {
        let Some(project) = job.project_gid.as_deref() else {
            return Verdict::Dead("the job names no project".into());
        };
        if !self.inner.cfg.has_rules_for(project) {
            return Verdict::Dead(format!(
                "no [[rules]] entry for project {project} in the configuration this service runs with; add one and run `asana-docspace replay`"
            ));
        }
        let (Ok(resource), Ok(project_gid)) = (Gid::parse(&job.resource_gid), Gid::parse(project))
        else {
            return Verdict::Failed(format!(
                "job names {} in project {project}, which are not Asana gids",
                job.resource_gid
            ));
        };
        let opts = Options {
            settings: self.inner.cfg.sync,
            revocation: self.inner.cfg.revocation.clone(),
            event: match job.kind {
                JobKind::Task => Some(TaskEvent {
                    at: job
                        .payload
                        .at
                        .as_deref()
                        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                        .map(|at| at.with_timezone(&Utc)),
                    what: job.payload.event.clone().unwrap_or_default(),
                }),
                _ => None,
            },
            // The reconcile's person claims follow this process's registry row: if it dies,
            // they are free when its jobs are taken over, not a claim lease later.
            replica: Some(self.inner.replica.clone()),
            ..Options::new(format!("job-{}", job.id), job.payload.source)
        };
        match job.kind {
            // A removal check: every rule naming the room, read whole.
            JobKind::Room => {
                let scope = Scope::Projects(self.inner.cfg.rules_naming_room(&job.resource_gid));
                self.reconcile(&scope, &opts).await
            }
            JobKind::Task => {
                let scope = Scope::Task {
                    task: resource,
                    project: Some(project_gid),
                    asks: self.inner.cfg.asks_for(project),
                };
                self.reconcile(&scope, &opts).await
            }
            JobKind::Project => self.resync(job, project, &opts).await,
        }
    }

    /// A whole-project reconcile, under the project's resync claim so that no other worker
    /// or process resyncs it at the same time. The claim is tied to this replica, like the
    /// reconcile's person claims: a retry of the job after this process died is not refused
    /// for the rest of the claim's lease.
    async fn resync(&self, job: &Job, project: &str, opts: &Options) -> Verdict {
        let store = &self.inner.svc.store;
        let holder = Holder::for_replica(&self.inner.replica);
        let key = vec![format!("resync:{project}")];
        let lease = self.inner.cfg.lease;
        let epoch = bridge_core::record::ClaimEpoch::default();
        match store.claim_keys(&key, &holder, epoch, lease).await {
            Ok(granted) if granted.is_empty() => {
                return Verdict::Retry {
                    error: format!("another resync of project {project} is running"),
                    rate_limited: false,
                }
            }
            Ok(_) => {}
            Err(e) => return classify(CoreError::Store(e)),
        }
        let scope = Scope::Projects(self.inner.cfg.rules_for(project));
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(e) = store.extend_claims(&holder, lease).await {
                    tracing::warn!(job = job.id, error = %e, "renewing the resync claim failed");
                }
            }
        };
        let verdict = tokio::select! {
            v = self.reconcile(&scope, opts) => v,
            _ = heartbeat => unreachable!("the heartbeat loop never ends"),
        };
        if let Err(e) = store.release_claims(&key, &holder).await {
            tracing::warn!(job = job.id, error = %e, "giving back the resync claim failed; it expires with its lease");
        }
        self.inner.metrics.action(
            "project",
            if verdict == Verdict::Done {
                "synced"
            } else {
                "failed"
            },
        );
        verdict
    }

    async fn reconcile(&self, scope: &Scope, opts: &Options) -> Verdict {
        match reconcile::run(&self.inner.svc, scope, opts).await {
            Ok(report) => {
                self.count(&report);
                if let Err(e) = self.schedule_checks(&report, opts).await {
                    return classify(CoreError::Store(e));
                }
                verdict_of(&report)
            }
            Err(e) => classify(e),
        }
    }

    /// The removal checks the reconcile asked for: one `room` job per pending removal (the
    /// dedupe key names the room, the person and when the removal was noted), due when its
    /// grace ends. A check that finds other removals still in their grace asks for theirs,
    /// which are the same jobs.
    async fn schedule_checks(&self, report: &Report, opts: &Options) -> Result<(), StoreError> {
        for c in &report.checks {
            let Some(rule) = self
                .inner
                .cfg
                .rules_naming_room(c.room.as_str())
                .into_iter()
                .next()
            else {
                continue;
            };
            let job = NewJob {
                kind: JobKind::Room,
                resource_gid: c.room.to_string(),
                project_gid: Some(rule.project.to_string()),
                dedupe_key: format!("revoke-check:{}:{}", c.room, c.pending),
                payload: JobPayload {
                    source: opts.source,
                    event: Some("revoke-check".into()),
                    webhook: None,
                    at: Some(c.due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                },
            };
            if self.inner.svc.store.schedule_job(&job, c.due).await? {
                tracing::info!(room = %c.room, due = %c.due, "removal check scheduled");
            }
        }
        Ok(())
    }

    fn count(&self, report: &Report) {
        let m = &self.inner.metrics;
        for _ in &report.completed {
            m.action("portal", "completed");
        }
        for l in &report.lines {
            m.action("portal", l.outcome.as_str());
            for r in &l.rooms {
                m.action("room", r.outcome.as_str());
            }
        }
    }

    /// Writes the verdict to the job row (and the ledger). Returns where the job went.
    async fn settle(&self, job: &Job, verdict: &Verdict) -> Settled {
        let store = &self.inner.svc.store;
        let cfg = &self.inner.cfg;
        let m = &self.inner.metrics;
        let lease = job.lease();
        let result = match verdict {
            Verdict::Lost => Settled::Lost,
            Verdict::Done => persist(job, Settled::Done, || store.complete(lease)).await,
            Verdict::Failed(error) => {
                self.ledger(job, Recorded::Failed, error, None).await;
                persist(job, Settled::Done, || store.complete(lease)).await
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
                persist(job, Settled::Retry, || store.retry_later(lease, error, at)).await
            }
            Verdict::Retry { error, .. } | Verdict::Dead(error) => {
                let detail = format!(
                    "job {} ({} {}) gave up after {} attempt(s); `asana-docspace replay` queues it again",
                    job.id, job.kind, job.resource_gid, job.attempts
                );
                tracing::warn!(job = job.id, error = %error, "job is a dead letter");
                self.ledger(job, Recorded::Dead, error, Some(detail)).await;
                persist(job, Settled::Dead, || store.bury(lease, error)).await
            }
        };
        m.finished(result.as_str());
        if result == Settled::Done {
            let waited = Utc::now().signed_duration_since(job.created_at);
            if let Ok(d) = waited.to_std() {
                Metrics::observe(&m.enqueue_to_done_seconds, d);
            }
        }
        result
    }

    async fn ledger(&self, job: &Job, outcome: Recorded, error: &str, detail: Option<String>) {
        let (task, target, action) = match job.kind {
            JobKind::Project => (
                None,
                Target::Project(job.resource_gid.clone()),
                Action::Sync,
            ),
            JobKind::Task => (
                Some(job.resource_gid.clone()),
                Target::Portal,
                Action::Invite,
            ),
            JobKind::Room => (
                None,
                RoomId::parse(&job.resource_gid)
                    .map(Target::Room)
                    .unwrap_or_else(|_| Target::Project(job.resource_gid.clone())),
                Action::Revoke,
            ),
        };
        let entry = NewLedgerEntry {
            run_id: format!("job-{}", job.id),
            source: job.payload.source,
            task_gid: task,
            assignee_gid: None,
            email: None,
            target,
            action,
            outcome,
            error: Some(error.to_string()),
            detail,
        };
        if let Err(e) = self.inner.svc.store.record(&entry).await {
            tracing::warn!(job = job.id, error = %e, "writing the ledger failed");
        }
    }
}

/// The verdict of a reconcile that answered: retry when a failure may pass by itself.
fn verdict_of(report: &Report) -> Verdict {
    match report.retry() {
        Some((t, error)) => Verdict::Retry {
            error,
            rate_limited: t == Transience::RateLimited,
        },
        None => Verdict::Done,
    }
}

/// Sorts an error that stopped a job before any per-person answer.
fn classify(e: CoreError) -> Verdict {
    match &e {
        // A missing room, a level the room does not allow: configuration.
        CoreError::Config(m) => Verdict::Dead(m.clone()),
        _ => match e.transience() {
            Transience::Permanent => Verdict::Failed(e.to_string()),
            t => Verdict::Retry {
                rate_limited: t == Transience::RateLimited,
                error: e.to_string(),
            },
        },
    }
}

/// Job-row updates are tiny; a transient database hiccup (another process holding the
/// write lock past the busy timeout) gets three quick retries. If all fail, the lease
/// runs out and the job is simply worked again, which is safe. A [`Fence::Lost`] answer
/// means someone else holds the job now: it is [`Settled::Lost`], whatever `settled`.
async fn persist<F, Fut>(job: &Job, settled: Settled, f: F) -> Settled
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Fence, StoreError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_times(3);
    match f
        .retry(backoff)
        .notify(|e, wait| tracing::debug!(error = %e, ?wait, "job update failed; retrying"))
        .await
    {
        Ok(Fence::Held) => settled,
        Ok(Fence::Lost) => {
            tracing::warn!(
                job = job.id,
                "the job's lease was taken over before it was settled; its new holder settles it"
            );
            Settled::Lost
        }
        Err(e) => {
            tracing::warn!(job = job.id, error = %e, "job update failed; the job runs again when its lease ends");
            settled
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
    }
}
