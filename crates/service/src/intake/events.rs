//! `watch`: the Events API poller, for deployments Asana cannot reach with webhooks.
//!
//! Per watched project, every `interval`:
//!
//! 1. read the project's sync token from the state database;
//! 2. `GET /events?resource=<project>&sync=<token>`; each page's events become the same
//!    jobs a webhook delivery would produce (same dedupe keys, so an event seen through
//!    both paths is one job); the jobs are committed **before** the new token is saved, so
//!    a crash in between replays a page (deduped) instead of losing it; `has_more` → next
//!    page at once;
//! 3. a 412 (no token yet, or one Asana no longer knows — they expire after ~24 h) means
//!    events were or may have been missed: enqueue one `project` job, which reconciles the
//!    whole project (`sync` for its rule), then continue from the fresh token the 412
//!    carried.
//!
//! Errors (Asana down, 429 past the client's retries) are logged and counted; the poller
//! backs off (doubling up to 10 × the interval) and carries on from the saved token.
//!
//! **One poller per project across processes.** Before polling, a poller claims
//! `watch:<project>` in the state store (a lease of [`POLLER_LEASE`], renewed every third
//! of it while it runs). Another `watch` on the same database — on this host or another —
//! finds the claim held and stands by, trying again every interval; when the holder stops
//! (shutdown releases the claim; after a crash it is free once the dead process's registry
//! row expires, [`crate::REPLICA_TTL`]) one of them takes over from the saved sync token.

use std::sync::Arc;
use std::time::Duration;

use asana_api::Gid;
use bridge_core::record::{ClaimEpoch, Holder, NewJob, ReplicaId, StoreError};
use bridge_core::Services;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use bridge_core::domain::{JobKind, JobPayload, Source};

use crate::intake::webhook::{jobs_for_events, Origin};
use crate::metrics::Metrics;
use crate::writer::{EnqueueError, Intake};

/// What `watch` polls and how often.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Projects to watch (each must have a rule).
    pub projects: Vec<Gid>,
    /// Time between polls of one project.
    pub interval: Duration,
}

/// Why a poll did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Asana failed after the client's retries.
    #[error("Asana: {0}")]
    Asana(#[from] asana_api::Error),
    /// The sync token could not be read or saved.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    /// The jobs could not be stored.
    #[error("{0}")]
    Enqueue(#[from] EnqueueError),
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    /// Events read.
    pub events: usize,
    /// New jobs enqueued (tasks and resyncs).
    pub new_jobs: usize,
    /// A 412 led to a full resync of the project.
    pub resync: bool,
}

/// The job that reconciles a whole project after a 412. Keyed on the fresh token, so a
/// crash before the token is saved re-enqueues the same job (deduped), while every later
/// 412 gets its own resync.
pub fn resync_job(project: &Gid, sync: &str) -> NewJob {
    let digest = Sha256::digest(sync.as_bytes());
    NewJob {
        kind: JobKind::Project,
        resource_gid: project.to_string(),
        project_gid: Some(project.to_string()),
        dedupe_key: format!("resync:{project}:{}", hex::encode(&digest[..12])),
        payload: JobPayload {
            event: Some("resync".into()),
            ..JobPayload::from_source(Source::Watch)
        },
    }
}

/// Polls one project until Asana has nothing more (following `has_more`).
pub async fn poll_once(
    svc: &Services,
    intake: &Intake,
    metrics: &Metrics,
    project: &Gid,
) -> Result<Polled, PollError> {
    let mut polled = Polled::default();
    loop {
        let token = svc.store.sync_token(project.as_str()).await?;
        match svc.asana.get_events(project, token.as_deref()).await {
            Ok(page) => {
                polled.events += page.data.len();
                metrics
                    .events_received
                    .get_or_create(&[("source", "watch")])
                    .inc_by(page.data.len() as u64);
                let jobs = jobs_for_events(&page.data, project.as_str(), &Origin::Watch);
                polled.new_jobs += intake.submit(jobs).await?.new;
                svc.store
                    .set_sync_token(project.as_str(), &page.sync)
                    .await?;
                if !page.has_more {
                    metrics.watch_polls.get_or_create(&[("result", "ok")]).inc();
                    return Ok(polled);
                }
            }
            Err(asana_api::Error::SyncTokenExpired { sync }) => {
                if token.is_some() {
                    tracing::warn!(%project, "Events API sync token expired; reconciling the whole project");
                } else {
                    tracing::info!(%project, "first poll: reconciling the whole project, then following events");
                }
                polled.resync = true;
                polled.new_jobs += intake.submit(vec![resync_job(project, &sync)]).await?.new;
                svc.store.set_sync_token(project.as_str(), &sync).await?;
                metrics
                    .watch_polls
                    .get_or_create(&[("result", "resync")])
                    .inc();
                return Ok(polled);
            }
            Err(e) => {
                metrics
                    .watch_polls
                    .get_or_create(&[("result", "error")])
                    .inc();
                return Err(e.into());
            }
        }
    }
}

/// The lease of a poller's `watch:<project>` claim. The claim is tied to the poller's
/// replica, so a crashed poller keeps its project from the standbys only until its
/// registry row expires; the lease covers a replica that has no row.
pub const POLLER_LEASE: Duration = Duration::from_secs(10);

/// The claim key that makes one poller per project across processes.
pub fn poller_key(project: &Gid) -> String {
    format!("watch:{project}")
}

/// Polls `project` every `interval` until `cancel` fires, while this process (`replica`)
/// holds the project's poller claim (standing by while another process holds it).
pub async fn run_poller(
    svc: Services,
    intake: Intake,
    metrics: Arc<Metrics>,
    project: Gid,
    interval: Duration,
    replica: ReplicaId,
    cancel: CancellationToken,
) {
    let holder = Holder::for_replica(&replica);
    let key = vec![poller_key(&project)];
    let heartbeat = async {
        loop {
            tokio::time::sleep(POLLER_LEASE / 3).await;
            if let Err(e) = svc.store.extend_claims(&holder, POLLER_LEASE).await {
                tracing::warn!(%project, error = %e, "renewing the poller claim failed");
            }
        }
    };
    let polling = async {
        let mut wait = interval;
        let mut standing_by = false;
        loop {
            let held = svc
                .store
                .claim_keys(&key, &holder, ClaimEpoch::default(), POLLER_LEASE)
                .await;
            match held {
                Ok(granted) if granted.is_empty() => {
                    if !standing_by {
                        tracing::info!(%project, "another watch process polls this project; standing by");
                        standing_by = true;
                    }
                    metrics
                        .watch_polls
                        .get_or_create(&[("result", "standby")])
                        .inc();
                    wait = interval;
                }
                Ok(_) => {
                    if standing_by {
                        tracing::info!(%project, "taking over polling this project");
                        standing_by = false;
                    }
                    match poll_once(&svc, &intake, &metrics, &project).await {
                        Ok(p) => {
                            if p.events > 0 || p.resync {
                                tracing::debug!(%project, events = p.events, new_jobs = p.new_jobs, resync = p.resync, "polled");
                            }
                            wait = interval;
                        }
                        Err(e) => {
                            wait = (wait * 2).min(interval * 10);
                            tracing::warn!(%project, error = %e, retry_in_ms = wait.as_millis() as u64, "polling Asana events failed");
                        }
                    }
                }
                Err(e) => {
                    wait = (wait * 2).min(interval * 10);
                    tracing::warn!(%project, error = %e, "claiming the project's poller failed");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    };
    tokio::select! {
        _ = polling => {}
        _ = heartbeat => {}
    }
    if let Err(e) = svc.store.release_claims(&key, &holder).await {
        tracing::warn!(%project, error = %e, "giving back the poller claim failed; it expires with its lease");
    }
}
