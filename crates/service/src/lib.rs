//! The always-on side of asana-docspace: Asana webhook intake, the durable queue's
//! workers, the Events API poller, `/healthz` and `/metrics`.
//!
//! ```text
//!  Asana ──POST /webhooks/asana/{id}──▶ http ──verify, events→jobs──▶ writer ──┐
//!  Asana ◀──GET /events (watch)──────── intake::events ──events→jobs──▶ writer ─┤ one
//!                                                                              │ transaction
//!                                    state database (jobs, ledger, secrets) ◀──┘ per batch
//!                                          │ claim (lease)        ▲ complete / retry / bury
//!                                          ▼                      │
//!                                       worker ── bridge_core::reconcile ──▶ DocSpace
//! ```
//!
//! - [`intake`]: signature verification over raw bytes, dedupe keys, event → job, and the
//!   Events API poller;
//! - [`writer`]: group commit — many deliveries, one SQLite transaction, each answered
//!   only after the commit;
//! - [`worker`]: claim → reconcile (the same code as `invite` and `sync`) → complete,
//!   retry with jittered backoff, or dead-letter;
//! - [`registrations`]: which handshakes to answer, and the cached webhook secrets;
//! - [`http`]: the axum router; [`server`]: the connections under it (timeouts, a cap,
//!   a bounded shutdown); [`metrics`]: Prometheus; [`manage`]: `webhooks
//!   create|list|delete`;
//! - [`admin`]: the status page under `/admin` (overview, dead letters with Replay, a
//!   person's ledger), behind basic auth.
//!
//! The queue and the ledger live in the same state database as `sync` and `history`
//! (`bridge_core::record`); the database row is the truth about every job, and every
//! step is idempotent, so a crash at any point loses nothing and duplicates nothing.
//!
//! [`serve`] and [`watch`] take a bound listener (or none) and a `CancellationToken`, so
//! the binary wires them to a port and SIGTERM, and tests to port 0 and a token.

#![deny(missing_docs)]

pub mod admin;
pub mod config;
pub mod http;
pub mod intake;
pub mod manage;
pub mod metrics;
pub mod registrations;
pub mod server;
pub mod worker;
pub mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bridge_core::record::{ReplicaId, StoreError};
use bridge_core::Services;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::ServeConfig;
pub use intake::events::WatchConfig;
pub use metrics::Metrics;
pub use worker::Workers;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration cannot work (e.g. a configured webhook id that is not usable).
    #[error("configuration: {0}")]
    Config(String),
    /// The state database failed at startup.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// How long a replica counts as alive after its last heartbeat. Its jobs are taken over
/// by the others (or by itself after a restart) once this has passed without one — long
/// before their lease ends, so a SIGKILLed process's work resumes within seconds.
pub const REPLICA_TTL: Duration = Duration::from_secs(6);
/// How often a replica renews its registry row (a third of [`REPLICA_TTL`]).
pub const REPLICA_BEAT: Duration = Duration::from_secs(2);

/// The parts `serve` and `watch` share: the replica's registry row, the writer, the
/// workers and housekeeping.
struct Engine {
    intake: writer::Intake,
    writer: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    housekeeping: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    metrics: Arc<Metrics>,
    cfg: Arc<ServeConfig>,
    svc: Services,
    replica: ReplicaId,
}

impl Engine {
    async fn start(
        role: &str,
        cfg: ServeConfig,
        svc: &Services,
        metrics: Arc<Metrics>,
        shutdown: &CancellationToken,
    ) -> Result<Engine, ServiceError> {
        let cfg = Arc::new(cfg);
        if cfg.rules.is_empty() {
            tracing::warn!("no [[rules]] configured: every job will become a dead letter");
        }
        let depth = svc.store.queue_depth().await?;
        if depth.queued + depth.running + depth.dead > 0 {
            tracing::info!(
                queued = depth.queued,
                running = depth.running,
                dead = depth.dead,
                "resuming the queue"
            );
        }
        let replica = ReplicaId::new();
        let info = replica_info(role);
        svc.store
            .register_replica(&replica, &info, REPLICA_TTL)
            .await?;
        tracing::info!(replica = %replica, %info, "registered in the replica registry");
        let heartbeat = tokio::spawn(beat(svc.clone(), replica.clone(), info));
        let (intake, writer) = writer::spawn(svc.store.clone(), metrics.clone(), cfg.max_batch);
        let pool = Workers::new(svc.clone(), cfg.clone(), metrics.clone(), replica.clone());
        pool.defer_to(intake.backlog());
        let workers = pool.spawn(shutdown.clone());
        let housekeeping = tokio::spawn(housekeeping(svc.clone(), cfg.keep_done, shutdown.clone()));
        Ok(Engine {
            intake,
            writer,
            workers,
            housekeeping,
            heartbeat,
            metrics,
            cfg,
            svc: svc.clone(),
            replica,
        })
    }

    /// After `shutdown` fired and every intake handle but ours is gone: let the writer
    /// commit what it holds, then wait for the workers (which finish or release their job).
    async fn finish(self) {
        drop(self.intake);
        if let Err(e) = self.writer.await {
            tracing::warn!(error = %e, "the queue writer stopped abnormally");
        }
        for w in self.workers {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "a worker stopped abnormally");
            }
        }
        self.housekeeping.abort();
        let _ = self.housekeeping.await;
        // Every job of ours is finished or released: leave the registry.
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        if let Err(e) = self.svc.store.retire_replica(&self.replica).await {
            tracing::warn!(error = %e, "leaving the replica registry failed; the row expires by itself");
        }
    }
}

/// What the registry shows about this process: role, host and pid.
fn replica_info(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into());
    format!("{role} on {host} (pid {})", std::process::id())
}

/// Renews this replica's registry row every [`REPLICA_BEAT`]; registers it again if it
/// was forgotten (the database was unreachable for a long while).
async fn beat(svc: Services, replica: ReplicaId, info: String) {
    loop {
        tokio::time::sleep(REPLICA_BEAT).await;
        match svc.store.beat_replica(&replica, REPLICA_TTL).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(replica = %replica, "this replica's registry row was gone; registering again");
                if let Err(e) = svc
                    .store
                    .register_replica(&replica, &info, REPLICA_TTL)
                    .await
                {
                    tracing::warn!(error = %e, "registering the replica again failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the replica heartbeat failed; other replicas may take over this one's jobs (their tokens keep it from settling them twice)")
            }
        }
    }
}

/// Deletes done jobs (and their dedupe keys) once they are older than `keep_done`.
async fn housekeeping(svc: Services, keep_done: Duration, cancel: CancellationToken) {
    loop {
        match svc.store.prune_done(keep_done).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "old done jobs deleted"),
            Err(e) => tracing::warn!(error = %e, "pruning done jobs failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Registers the config file's webhooks as expected (once; their handshake is then
/// answered only before their `handshake_until`) and warns about registrations no rule
/// covers.
async fn prepare_registrations(
    cfg: &ServeConfig,
    svc: &Services,
) -> Result<HashMap<String, Option<DateTime<Utc>>>, ServiceError> {
    let mut configured = HashMap::new();
    for hook in &cfg.configured_webhooks {
        let (id, project) = (&hook.id, &hook.project);
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ServiceError::Config(format!(
                "[[serve.webhooks]] id {id:?}: use 1-64 letters, digits, '-' or '_'"
            )));
        }
        let has_secret = match svc.store.webhook(id).await? {
            Some(reg) => reg.secret.is_some(),
            None => {
                // Another replica starting at the same time may write it first.
                match svc
                    .store
                    .expect_webhook(
                        id,
                        project,
                        &format!("(configured){}{id}", manage::WEBHOOK_PATH),
                    )
                    .await
                {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                false
            }
        };
        if !has_secret {
            match hook.handshake_until {
                Some(until) if until > Utc::now() => {
                    tracing::info!(webhook = %id, until = %until.to_rfc3339(), "hand-listed webhook: its handshake is accepted until then")
                }
                _ => {
                    tracing::warn!(webhook = %id, "hand-listed webhook without a handshake yet, and no open window: set [[serve.webhooks]] handshake_until to a time shortly ahead, restart, then create the webhook at Asana")
                }
            }
        }
        configured.insert(id.clone(), hook.handshake_until);
    }
    for reg in svc.store.webhooks().await? {
        if !cfg.has_rules_for(&reg.project_gid) {
            tracing::warn!(webhook = %reg.id, project = %reg.project_gid, "webhook registration for a project without a [[rules]] entry: its events will become dead letters");
        }
    }
    Ok(configured)
}

/// Runs the webhook service on `listener` until `shutdown` fires: deliveries and
/// handshakes, `/healthz`, `/metrics`, the group-commit writer and the workers.
///
/// On shutdown it stops accepting connections, answers the requests in flight (their jobs
/// are committed), lets running jobs and open connections finish for `shutdown_grace`,
/// releases the rest of the jobs to the queue, closes the rest of the connections, and
/// returns. It does not close `svc.store`: the caller owns it.
pub async fn serve(
    cfg: ServeConfig,
    svc: Services,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let configured = prepare_registrations(&cfg, &svc).await?;
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::start("serve", cfg, &svc, metrics.clone(), &shutdown).await?;
    let regs = registrations::Registrations::new(
        svc.store.clone(),
        engine.cfg.handshake_window,
        configured,
    );
    let app = Arc::new(http::App::new(
        regs,
        engine.intake.clone(),
        engine.metrics.clone(),
        svc.clone(),
        engine.cfg.clone(),
    ));
    let router = http::router(app);
    let limits = server::Limits {
        header_read_timeout: engine.cfg.header_read_timeout,
        keep_alive_timeout: engine.cfg.keep_alive_timeout,
        max_connections: engine.cfg.max_connections,
        grace: engine.cfg.shutdown_grace,
    };
    let served = server::run(
        listener,
        router,
        limits,
        engine.metrics.connections_open.clone(),
        shutdown.clone(),
    )
    .await;
    // A failed server still ends the workers cleanly.
    shutdown.cancel();
    engine.finish().await;
    served.map_err(ServiceError::Io)
}

/// Runs `watch` until `shutdown` fires: one Events API poller per project feeding the
/// queue, and the same workers as `serve`. Each poller first claims `watch:<project>` in
/// the state store, so however many `watch` processes run on one database, one polls a
/// project at a time and the others stand by to take over when it stops.
pub async fn watch(
    cfg: ServeConfig,
    svc: Services,
    watch: WatchConfig,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    for p in &watch.projects {
        if !cfg.has_rules_for(p.as_str()) {
            return Err(ServiceError::Config(format!(
                "project {p} has no [[rules]] entry; watch only projects with a rule"
            )));
        }
    }
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::start("watch", cfg, &svc, metrics.clone(), &shutdown).await?;
    let pollers: Vec<JoinHandle<()>> = watch
        .projects
        .iter()
        .map(|p| {
            tokio::spawn(intake::events::run_poller(
                svc.clone(),
                engine.intake.clone(),
                metrics.clone(),
                p.clone(),
                watch.interval,
                engine.replica.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    shutdown.cancelled().await;
    for p in pollers {
        let _ = p.await;
    }
    engine.finish().await;
    Ok(())
}
