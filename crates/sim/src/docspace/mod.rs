//! A loopback simulator of the ONLYOFFICE DocSpace `api/2.0` endpoints the tool uses:
//! people lookup, invite, people lists, rooms and room sharing.
//!
//! It reproduces the server's traps on purpose (notes `docspace-api.md`): `type: "All"`
//! makes a paid room admin, re-inviting is a silent no-op, a disabled user is a 400, the
//! invite answer lists every pending user without emails, and an unknown access name
//! removes the member. A client that passes against this sim has met each of them.

mod handlers;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use world::{
    DocSpaceWorld, InviteOutcome, InviteRecord, Person, PersonState, Room, ShareRecord, SimUserType,
};

use crate::faults::{Fault, FaultEngine};
use crate::log::{LoggedRequest, RequestLog};
use crate::seed::DEMO_DOCSPACE_KEY;
use crate::server::{middleware, Harness, Running, Service, SlidingWindow};

/// How the DocSpace simulator behaves.
#[derive(Debug, Clone)]
pub struct DocSpaceSimOptions {
    /// Accepted `Authorization: Bearer` keys; all authenticate as the portal owner.
    pub api_keys: Vec<String>,
    /// Seat quota: creating a user beyond it answers 402, as `TenantQuotaException` does.
    pub max_users: Option<usize>,
    /// Sliding-window limit per key; over it answers 429 with `Retry-After`.
    pub requests_per_minute: Option<u32>,
    /// Length of that window (one minute, like the server; tests shorten it).
    pub rate_window: Duration,
    /// Seed for fault probabilities.
    pub rng_seed: u64,
    /// Where to bind; port 0 picks a free port.
    pub addr: SocketAddr,
}

impl Default for DocSpaceSimOptions {
    fn default() -> Self {
        Self {
            api_keys: vec![DEMO_DOCSPACE_KEY.to_string()],
            max_users: None,
            requests_per_minute: None,
            rate_window: Duration::from_secs(60),
            rng_seed: 0,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

pub(crate) struct DsState {
    pub world: Mutex<DocSpaceWorld>,
    pub max_users: Option<usize>,
}

/// A running DocSpace simulator.
pub struct DocSpaceSim {
    running: Running,
    harness: Arc<Harness>,
    state: Arc<DsState>,
}

impl DocSpaceSim {
    /// Binds and starts serving `world`.
    pub async fn start(world: DocSpaceWorld, opts: DocSpaceSimOptions) -> std::io::Result<Self> {
        let harness = Arc::new(Harness {
            service: Service::DocSpace,
            log: RequestLog::default(),
            faults: Mutex::new(FaultEngine::new(opts.rng_seed)),
            latency: Mutex::new(Duration::ZERO),
            tokens: opts.api_keys.iter().map(|k| (k.clone(), true)).collect(),
            rate: opts
                .requests_per_minute
                .map(|n| SlidingWindow::new(n, opts.rate_window)),
            concurrency: None,
        });
        let state = Arc::new(DsState {
            world: Mutex::new(world),
            max_users: opts.max_users,
        });
        let router = handlers::router(state.clone()).layer(axum::middleware::from_fn_with_state(
            harness.clone(),
            middleware,
        ));
        let running = Running::start(router, opts.addr).await?;
        Ok(Self {
            running,
            harness,
            state,
        })
    }

    /// `http://127.0.0.1:PORT`; clients append `/api/2.0/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// The bound address, for restarting a simulator on the same port.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.harness.log.snapshot()
    }

    /// Every email of every `POST /people/invite` received, once per request that named
    /// it: what "one invitation request per person" is checked against.
    pub fn invite_requests(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/people/invite"))
            .flat_map(|r| {
                r.body
                    .as_ref()
                    .and_then(|b| b["invitations"].as_array().cloned())
                    .unwrap_or_default()
            })
            .filter_map(|i| i["email"].as_str().map(str::to_string))
            .collect()
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

    /// Reads or changes the portal's data under the sim's lock.
    pub fn world<R>(&self, f: impl FnOnce(&mut DocSpaceWorld) -> R) -> R {
        let mut world = self.state.world.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut world)
    }

    /// Stops the server, letting in-flight requests finish (at most 5 s).
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}
