//! Group commit: one task owns every enqueue.
//!
//! A SQLite commit costs far more than inserting a row, so committing once per webhook
//! request caps intake at a few hundred requests per second. Instead, handlers send their
//! jobs over a channel to this single writer, which takes whatever is waiting (up to
//! `max_batch` jobs), writes it all in **one** [`Store::enqueue`] transaction, and answers
//! each handler through its oneshot only after that commit. A handler therefore still
//! answers 200 only once its jobs are durable, but hundreds of handlers share one commit.
//!
//! Under light load a batch is a single request, so latency does not suffer; under heavy
//! load batches grow on their own while the previous commit runs.
//!
//! A commit that created jobs wakes idle workers through the store's own signal
//! ([`Store::wakeup`]; on Postgres it reaches every replica), so an event is usually worked
//! within milliseconds instead of waiting for a poll tick. On Postgres the writer works the
//! same way: one multi-row `INSERT … ON CONFLICT DO NOTHING` per batch.
//!
//! Intake goes first: Asana gives a delivery 10 s before it retries (and eventually deletes
//! the webhook), while a queued job can wait. The [`Backlog`] counts submissions not yet
//! committed; workers look at it before claiming their next job and, while deliveries are
//! waiting, hold off (for a bounded time) instead of competing with the writer for the
//! cores and for the state database's single write connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_core::record::{NewJob, Store, StoreError};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// What an enqueue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Jobs that are new in the queue.
    pub new: usize,
    /// Jobs whose dedupe key was already there (a redelivery): nothing was added.
    pub duplicate: usize,
}

/// Why jobs could not be stored. The caller answers 503 so Asana retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    /// The writer has stopped (shutdown).
    #[error("the queue writer has stopped")]
    Closed,
    /// The transaction failed; nothing of this batch was stored. Shared by every
    /// delivery of the group commit, hence the `Arc`.
    #[error("storing jobs failed: {0}")]
    Store(#[source] Arc<StoreError>),
}

struct Submission {
    jobs: Vec<NewJob>,
    reply: oneshot::Sender<Result<Enqueued, EnqueueError>>,
}

/// Submissions handed to the writer and not yet committed, shared by every [`Intake`]
/// handle and the writer. Cheap to clone.
#[derive(Clone, Default)]
pub struct Backlog(Arc<BacklogInner>);

#[derive(Default)]
struct BacklogInner {
    pending: AtomicUsize,
    /// Fired when `pending` drops to zero.
    clear: Notify,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog")
            .field("pending", &self.pending())
            .finish()
    }
}

impl Backlog {
    /// Submissions waiting for a commit (including the batch being committed).
    pub fn pending(&self) -> usize {
        self.0.pending.load(Ordering::Acquire)
    }

    fn add(&self) {
        self.0.pending.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self, n: usize) {
        if n > 0 && self.0.pending.fetch_sub(n, Ordering::AcqRel) == n {
            self.0.clear.notify_waiters();
        }
    }

    /// Returns once nothing waits for a commit, or after `limit` at the latest (so a
    /// continuous stream of deliveries slows the workers down but never stops them).
    ///
    /// When there was something to wait for, the intake must then stay clear for
    /// [`QUIET`]: under a flood the backlog empties for an instant after every commit,
    /// and without this every waiting worker would start a job at each of those instants.
    pub async fn wait_clear(&self, limit: Duration) {
        if self.pending() == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let cleared = self.0.clear.notified();
            tokio::pin!(cleared);
            cleared.as_mut().enable();
            if self.pending() > 0 {
                tokio::select! {
                    _ = &mut cleared => {}
                    _ = tokio::time::sleep_until(deadline) => return,
                }
            }
            let quiet = (tokio::time::Instant::now() + QUIET).min(deadline);
            tokio::time::sleep_until(quiet).await;
            if self.pending() == 0 || quiet >= deadline {
                return;
            }
        }
    }
}

/// How long the intake must stay clear before a waiting worker goes ahead.
const QUIET: Duration = Duration::from_millis(1);

/// Counts one submission as pending until the writer has it (then the writer settles
/// it) or the send failed or was abandoned.
struct PendingGuard<'a> {
    backlog: &'a Backlog,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.backlog.done(1);
        }
    }
}

/// The last group commit that failed, while nothing has been committed since: what
/// `/healthz` reports about writes beside its own probe.
type LastFailure = Arc<std::sync::Mutex<Option<(Instant, String)>>>;

/// The handle handlers and pollers enqueue through. Cheap to clone. The writer stops once
/// every handle is dropped and everything already sent is committed.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Submission>,
    backlog: Backlog,
    failed: LastFailure,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake").finish_non_exhaustive()
    }
}

impl Intake {
    /// Stores `jobs` durably (in a shared transaction) and says how many were new.
    pub async fn submit(&self, jobs: Vec<NewJob>) -> Result<Enqueued, EnqueueError> {
        if jobs.is_empty() {
            return Ok(Enqueued::default());
        }
        let (reply, answer) = oneshot::channel();
        self.backlog.add();
        let mut pending = PendingGuard {
            backlog: &self.backlog,
            armed: true,
        };
        self.tx
            .send(Submission { jobs, reply })
            .await
            .map_err(|_| EnqueueError::Closed)?;
        // Received: the writer settles it after its commit, even if we stop waiting.
        pending.armed = false;
        answer.await.map_err(|_| EnqueueError::Closed)?
    }

    /// The count of submissions waiting for a commit, for the workers to defer to.
    pub fn backlog(&self) -> Backlog {
        self.backlog.clone()
    }

    /// How long ago the last group commit failed and why, if none succeeded since.
    pub fn last_failure(&self) -> Option<(Duration, String)> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(at, e)| (at.elapsed(), e.clone()))
    }
}

/// Starts the writer. `max_batch` bounds the jobs per transaction (a single submission
/// larger than that is still written whole).
pub fn spawn(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_batch: usize,
) -> (Intake, JoinHandle<()>) {
    // Room for a burst of handlers; beyond it they wait (back-pressure) inside their own
    // time budget.
    let (tx, rx) = mpsc::channel(4096);
    let backlog = Backlog::default();
    let failed = LastFailure::default();
    let task = tokio::spawn(run(
        rx,
        backlog.clone(),
        failed.clone(),
        store,
        metrics,
        max_batch.max(1),
    ));
    (
        Intake {
            tx,
            backlog,
            failed,
        },
        task,
    )
}

async fn run(
    mut rx: mpsc::Receiver<Submission>,
    backlog: Backlog,
    failed: LastFailure,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_batch: usize,
) {
    let mut batch: Vec<Submission> = Vec::new();
    let mut jobs: Vec<NewJob> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let mut n = batch[0].jobs.len();
        while n < max_batch {
            match rx.try_recv() {
                Ok(s) => {
                    n += s.jobs.len();
                    batch.push(s);
                }
                Err(_) => break,
            }
        }
        for s in &mut batch {
            sizes.push(s.jobs.len());
            jobs.append(&mut s.jobs);
        }
        let started = Instant::now();
        let result = store.enqueue(&jobs).await;
        *failed.lock().unwrap_or_else(|e| e.into_inner()) = result
            .as_ref()
            .err()
            .map(|e| (Instant::now(), e.to_string()));
        // Before the answers (the store woke the workers at its commit).
        backlog.done(batch.len());
        Metrics::observe(&metrics.commit_seconds, started.elapsed());
        metrics.commit_batch_jobs.observe(jobs.len() as f64);
        match result {
            Ok(created) => {
                let mut offset = 0;
                for (s, size) in batch.drain(..).zip(sizes.drain(..)) {
                    let slice = created.get(offset..offset + size).unwrap_or(&[]);
                    offset += size;
                    let new = slice.iter().filter(|c| **c).count();
                    let e = Enqueued {
                        new,
                        duplicate: size - new,
                    };
                    metrics
                        .jobs_enqueued
                        .get_or_create(&[("result", "new")])
                        .inc_by(e.new as u64);
                    metrics
                        .jobs_enqueued
                        .get_or_create(&[("result", "duplicate")])
                        .inc_by(e.duplicate as u64);
                    // The handler may have given up waiting; the jobs are stored anyway.
                    let _ = s.reply.send(Ok(e));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = jobs.len(), "storing a batch of jobs failed");
                let e = Arc::new(e);
                for s in batch.drain(..) {
                    let _ = s.reply.send(Err(EnqueueError::Store(e.clone())));
                }
                sizes.clear();
            }
        }
        jobs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: &str) -> NewJob {
        NewJob {
            kind: bridge_core::domain::JobKind::Task,
            resource_gid: "1201".into(),
            project_gid: Some("99".into()),
            dedupe_key: key.into(),
            payload: bridge_core::domain::JobPayload::from_source(
                bridge_core::domain::Source::Webhook,
            ),
        }
    }

    async fn writer() -> (Intake, JoinHandle<()>) {
        let store = bridge_core::record::open(":memory:").await.unwrap();
        spawn(store, Arc::new(Metrics::new()), 64)
    }

    #[tokio::test]
    async fn a_submission_is_pending_until_its_commit() {
        let (intake, task) = writer().await;
        let backlog = intake.backlog();
        assert_eq!(backlog.pending(), 0);
        let e = intake.submit(vec![job("a"), job("b")]).await.unwrap();
        assert_eq!((e.new, e.duplicate), (2, 0));
        assert_eq!(backlog.pending(), 0);
        let e = intake.submit(vec![job("a")]).await.unwrap();
        assert_eq!((e.new, e.duplicate), (0, 1));
        assert_eq!(backlog.pending(), 0);
        drop(intake);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_send_is_not_left_pending() {
        let (intake, task) = writer().await;
        task.abort();
        let _ = task.await;
        assert!(matches!(
            intake.submit(vec![job("a")]).await,
            Err(EnqueueError::Closed)
        ));
        assert_eq!(intake.backlog().pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_intake_ends_when_it_clears_or_at_the_limit() {
        let backlog = Backlog::default();
        let start = tokio::time::Instant::now();
        backlog.wait_clear(Duration::from_secs(3600)).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "nothing pending: no wait");

        backlog.add();
        let start = tokio::time::Instant::now();
        backlog.wait_clear(Duration::from_millis(50)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(50), "bounded wait");

        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move {
                let start = tokio::time::Instant::now();
                backlog.wait_clear(Duration::from_secs(3600)).await;
                start.elapsed()
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        backlog.done(1);
        assert_eq!(backlog.pending(), 0);
        assert!(waiter.await.unwrap() < Duration::from_secs(3600));
    }
}
