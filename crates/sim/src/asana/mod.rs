//! A loopback simulator of the Asana REST API (`/api/1.0`) for the endpoints the tool uses:
//! tasks (read, reassign), users, `workspaces/{gid}/addUser`, projects and their tasks with
//! real pagination, webhooks (handshake, signed deliveries with retries) and the Events API.
//!
//! Limits behave like Asana's: a per-token sliding window answering 429 with `Retry-After`,
//! and 50 concurrent reads / 15 concurrent writes answering 429 *without* it.

mod handlers;
mod select;
mod webhooks;
pub(crate) use webhooks::sign;
pub mod world;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use world::{
    AsanaUser, AsanaWorld, Event, Project, Section, Task, Webhook, WebhookFilter, Workspace,
    WorldError,
};

use crate::faults::{Fault, FaultEngine};
use crate::log::{LoggedRequest, RequestLog};
use crate::seed::DEMO_ASANA_TOKEN;
use crate::server::{middleware, Concurrency, Harness, Running, Service, SlidingWindow};

/// How the Asana simulator behaves. Build with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct AsanaSimOptions {
    /// Accepted bearer tokens (admins of every workspace).
    pub tokens: Vec<String>,
    /// Also accepted, but not workspace admins: `addUser` answers them 403.
    pub non_admin_tokens: Vec<String>,
    /// Per-token sliding-window limit (Asana: 150 free, 1,500 paid); `None` = unlimited.
    pub requests_per_minute: Option<u32>,
    /// Length of that window; one minute like Asana, shorter in tests.
    pub rate_window: Duration,
    /// In-flight GETs allowed per token (Asana: 50).
    pub max_concurrent_reads: usize,
    /// In-flight writes allowed per token (Asana: 15).
    pub max_concurrent_writes: usize,
    /// Seed for fault probabilities, secrets, sync tokens and redeliveries.
    pub rng_seed: u64,
    /// Where to bind; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Waits between delivery attempts after a failure; attempts = 1 + its length.
    /// Asana backs off over 24 h; the default is short so tests finish quickly.
    pub delivery_retry_schedule: Vec<Duration>,
    /// A delivery not answered within this is a failure (Asana: 10 s).
    pub delivery_timeout: Duration,
    /// How long the webhook handshake may take before `POST /webhooks` fails.
    pub handshake_timeout: Duration,
    /// Chance that a successful delivery is sent a second time, byte for byte, as Asana
    /// may do; receivers must dedupe.
    pub redeliver_probability: f64,
    /// Send signed empty `{"events":[]}` heartbeats this often (Asana: 8 h).
    pub heartbeat_interval: Option<Duration>,
    /// Most events in one delivery.
    pub max_events_per_delivery: usize,
    /// Wait this long after a change before delivering, to batch several events together.
    pub delivery_batch_window: Duration,
}

impl Default for AsanaSimOptions {
    fn default() -> Self {
        Self {
            tokens: vec![DEMO_ASANA_TOKEN.to_string()],
            non_admin_tokens: Vec::new(),
            requests_per_minute: None,
            rate_window: Duration::from_secs(60),
            max_concurrent_reads: 50,
            max_concurrent_writes: 15,
            rng_seed: 0,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            delivery_retry_schedule: vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400),
                Duration::from_millis(800),
            ],
            delivery_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            redeliver_probability: 0.0,
            heartbeat_interval: None,
            max_events_per_delivery: 100,
            delivery_batch_window: Duration::ZERO,
        }
    }
}

/// One attempt to deliver to a webhook target, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryAttempt {
    /// Gid of the webhook delivered to.
    pub webhook: String,
    /// The URL the body was posted to.
    pub target: String,
    /// HTTP status answered; `None` when the request failed or timed out.
    pub status: Option<u16>,
    /// Whether this attempt counted as delivered (2xx within the timeout).
    pub ok: bool,
    /// How many events the body carried (0 for a heartbeat).
    pub events: usize,
    /// 1 for the first try of a body, 2 for its first retry, and so on.
    pub attempt: u32,
    /// An empty `{"events":[]}` body sent to keep the webhook alive.
    pub heartbeat: bool,
    /// A deliberate duplicate sent because of `redeliver_probability`.
    pub redelivery: bool,
    /// The transport error, when the request got no answer (refused, timed out).
    pub error: Option<String>,
    /// When the attempt was made.
    pub at: DateTime<Utc>,
}

/// Delivery knobs copied out of the options.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryConfig {
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    pub handshake_timeout: Duration,
    pub redeliver_probability: f64,
    pub heartbeat_interval: Option<Duration>,
    pub max_events: usize,
    pub batch_window: Duration,
}

pub(crate) struct AsanaState {
    pub world: Mutex<AsanaWorld>,
    pub http: reqwest::Client,
    /// Events API sync tokens → (resource gid, journal position).
    pub sync_tokens: Mutex<HashMap<String, (String, usize)>>,
    /// Secrets, sync tokens and redelivery draws (kept apart from the fault generator so
    /// fault outcomes do not depend on how many webhooks were created).
    pub rng: Mutex<StdRng>,
    pub wake: Notify,
    pub deliveries: Mutex<Vec<DeliveryAttempt>>,
    /// Webhooks with a delivery job in flight (one at a time per webhook keeps order).
    pub busy: Mutex<HashSet<String>>,
    pub jobs: AtomicUsize,
    pub delivery: DeliveryConfig,
}

impl AsanaState {
    pub fn world(&self) -> std::sync::MutexGuard<'_, AsanaWorld> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// 32 lowercase hex characters from the seeded generator.
    pub fn random_hex(&self) -> String {
        use rand::Rng;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: [u8; 16] = rng.random();
        hex::encode(bytes)
    }
}

/// A running Asana simulator.
pub struct AsanaSim {
    running: Running,
    harness: Arc<Harness>,
    state: Arc<AsanaState>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

impl AsanaSim {
    /// Binds and starts serving `world`, plus the webhook delivery task.
    pub async fn start(world: AsanaWorld, opts: AsanaSimOptions) -> std::io::Result<Self> {
        let mut tokens: Vec<(String, bool)> =
            opts.tokens.iter().map(|t| (t.clone(), true)).collect();
        tokens.extend(opts.non_admin_tokens.iter().map(|t| (t.clone(), false)));
        let harness = Arc::new(Harness {
            service: Service::Asana,
            log: RequestLog::default(),
            faults: Mutex::new(FaultEngine::new(opts.rng_seed)),
            latency: Mutex::new(Duration::ZERO),
            tokens,
            rate: opts
                .requests_per_minute
                .map(|n| SlidingWindow::new(n, opts.rate_window)),
            concurrency: Some(Concurrency::new(
                opts.max_concurrent_reads,
                opts.max_concurrent_writes,
            )),
        });
        // Deliveries go to loopback receivers: never through a proxy from the environment.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(AsanaState {
            world: Mutex::new(world),
            http,
            sync_tokens: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(opts.rng_seed ^ 0xa5a5_5a5a_0f0f_f0f0)),
            wake: Notify::new(),
            deliveries: Mutex::new(Vec::new()),
            busy: Mutex::new(HashSet::new()),
            jobs: AtomicUsize::new(0),
            delivery: DeliveryConfig {
                retry_schedule: opts.delivery_retry_schedule.clone(),
                timeout: opts.delivery_timeout,
                handshake_timeout: opts.handshake_timeout,
                redeliver_probability: opts.redeliver_probability.clamp(0.0, 1.0),
                heartbeat_interval: opts.heartbeat_interval,
                max_events: opts.max_events_per_delivery.max(1),
                batch_window: opts.delivery_batch_window,
            },
        });
        // Webhooks created from now on start at the journal's end.
        let router = handlers::router(state.clone()).layer(axum::middleware::from_fn_with_state(
            harness.clone(),
            middleware,
        ));
        let running = Running::start(router, opts.addr).await?;
        let dispatcher = tokio::spawn(webhooks::dispatcher(state.clone(), running.cancel.clone()));
        Ok(Self {
            running,
            harness,
            state,
            dispatcher: Mutex::new(Some(dispatcher)),
        })
    }

    /// `http://127.0.0.1:PORT/api/1.0`, the value for `ASANA_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/1.0", self.running.addr)
    }

    /// The bound address, for restarting a simulator on the same port.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.harness.log.snapshot()
    }

    /// Forgets the request log, so a test can assert on what a later step sends.
    pub fn clear_requests(&self) {
        self.harness.log.clear();
    }

    /// Replaces the active faults (and reseeds their generator).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.harness.set_faults(faults);
    }

    /// Latency added to every request from now on.
    pub fn set_latency(&self, d: Duration) {
        self.harness.set_latency(d);
    }

    /// Gives every token its whole per-minute budget back, as if a quiet minute had
    /// passed: benchmarks start each measured run on a fresh window.
    pub fn reset_rate_window(&self) {
        self.harness.reset_rate_window();
    }

    /// Reads or changes the data under the sim's lock; events recorded by the helpers are
    /// handed to webhook delivery right after `f` returns.
    pub fn world<R>(&self, f: impl FnOnce(&mut AsanaWorld) -> R) -> R {
        let r = {
            let mut world = self.state.world();
            f(&mut world)
        };
        self.state.wake.notify_one();
        r
    }

    /// Every webhook delivery attempt so far, in order.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.state
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until every recorded event has been delivered (or given up on) and no delivery
    /// is in flight. Gives up after 60 s so a broken test cannot hang forever.
    pub async fn flush_deliveries(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.state.wake.notify_one();
            if self.delivery_idle() {
                // Settle once more: a job may have just finished and re-armed the dispatcher.
                tokio::time::sleep(Duration::from_millis(5)).await;
                if self.delivery_idle() {
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("flush_deliveries gave up after 60 s");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn delivery_idle(&self) -> bool {
        if self.state.jobs.load(Ordering::SeqCst) != 0 {
            return false;
        }
        let world = self.state.world();
        let end = world.events.len();
        world
            .webhooks
            .values()
            .filter(|w| w.active)
            .all(|w| w.cursor >= end)
    }

    /// Invalidates every outstanding Events API sync token: the next `GET /events` with any
    /// of them answers 412 with a fresh token, as after Asana's 24 h expiry.
    pub fn expire_sync_tokens(&self) {
        self.state
            .sync_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Stops the server and the delivery task.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
        let task = self
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}
