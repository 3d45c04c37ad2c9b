//! Webhook intake and delivery-to-invite, measured on the real service.
//!
//! ```sh
//! cargo bench -p bridge-service --bench webhooks                  # everything (≈ 30 s)
//! cargo bench -p bridge-service --bench webhooks -- --deliveries 50000 --concurrency 128
//! cargo bench -p bridge-service --bench webhooks -- --skip-intake --rate 50
//! cargo bench -p bridge-service --bench webhooks -- --skip-invite --intake held
//! cargo bench -p bridge-service --bench webhooks -- --backends sqlite,pg2
//! ```
//!
//! **Backends.** Every measurement runs once per entry of `--backends` (default
//! `sqlite,pg1,pg2`): `sqlite` is one service on a SQLite file; `pg1` one service and `pg2`
//! two replicas (two `bridge_service::serve`s, each with its own listener and connection
//! pool, in this process) on a fresh PostgreSQL database on the server named by
//! `ASANA_DOCSPACE_TEST_POSTGRES` (as the tests; `.cargo/config.toml` sets the local one).
//! With two replicas the load generator sends delivery *i* to replica *i mod 2*, as a
//! round-robin load balancer would, and the `/metrics` of both are added up.
//!
//! Everything runs in this one process, on one multi-threaded tokio runtime (a worker
//! thread per core): `bridge_service::serve` on a port-0 loopback listener with a fresh
//! SQLite state database in a temp dir, both simulators, and the load generator
//! (a `reqwest` client, HTTP/1.1 keep-alive). The generator therefore shares the cores
//! with the service it measures. The webhook registration is written with the `Store`
//! API (`expect_webhook`, `store_webhook_secret`, `activate_webhook`) with a known
//! secret, and every delivery is signed with the Asana simulator's signing function.
//!
//! 1. **Intake**: `--deliveries` (20,000) deliveries, each one `changed`/`assignee` event
//!    with a distinct `created_at` (so a distinct dedupe key, so a distinct job), sent
//!    over `--concurrency` (64) keep-alive connections as fast as they are answered,
//!    after `--warmup` (1,000) unmeasured ones. Time to 200 is measured per request from
//!    just before the send to the response head. Two variants:
//!    - *workers held*: the Asana simulator is given an hour of latency first, so each of
//!      the service's workers claims one job and waits on its `GET /tasks`; intake has the
//!      cores (and SQLite's write lock) to itself. Afterwards the service is stopped, the
//!      database reopened, and the queue must hold every delivery's job;
//!    - *workers on*: the same, while the workers reconcile the jobs as they arrive
//!      (task re-read, DocSpace lookup, ledger row; the assignees are already members).
//!      The queue is then drained and every job must have finished `done`.
//! 2. **Delivery-to-invite**: `--invites` (300) deliveries at `--rate` (100/s), each
//!    assigning a task to a person DocSpace does not know yet, for each pair of simulator
//!    latencies in `--latencies` (`asana/docspace` in ms; default `0/0,0/20,20/20`). A
//!    thread polls the DocSpace simulator's invite log every 200 µs and timestamps each
//!    new invitation; delivery-to-invite is that instant minus the send instant. The
//!    invite lands after the worker's `GET /tasks` (Asana latency), `GET /people/email`
//!    (DocSpace latency) and the `POST /people/invite` itself (the simulator applies
//!    latency before its handler runs), so the simulated part of the path is
//!    `asana + 2 × docspace`.
//!
//! The service runs with `ServeConfig::default()` plus one rule for the project
//! (`--workers` overrides the worker count). The API clients are configured as in the
//! service tests: no client-side rate limit (the simulators do not enforce one either).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asana_api::Gid;
use bridge_core::config::Rule;
use bridge_core::record;
use bridge_core::Services;
use bridge_service::{ServeConfig, ServiceError};
use bridge_sim::docspace::InviteOutcome;
use bridge_sim::postgres::TestDatabase;
use bridge_sim::seed::{DEMO_ASANA_TOKEN, DEMO_DOCSPACE_KEY};
use bridge_sim::{
    AsanaSim, AsanaSimOptions, AsanaWorld, DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld,
    PersonState, SimUserType,
};
use bytes::Bytes;
use docspace_api::UserType;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const HOOK_ID: &str = "bench-hook";
const HOOK_SECRET: &str = "0123456789abcdef0123456789abcdef";
/// One hour: "the Asana API does not answer" for as long as a run lasts.
const STALL: Duration = Duration::from_secs(3600);

/// Where the state lives and how many replicas serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres { replicas: usize },
}

impl Backend {
    fn label(self) -> String {
        match self {
            Backend::Sqlite => "SQLite".into(),
            Backend::Postgres { replicas: 1 } => "Postgres, 1 replica".into(),
            Backend::Postgres { replicas } => format!("Postgres, {replicas} replicas"),
        }
    }
}

struct Opts {
    backends: Vec<Backend>,
    deliveries: usize,
    concurrency: usize,
    warmup: usize,
    invites: usize,
    rate: f64,
    /// `(asana ms, docspace ms)`
    latencies: Vec<(u64, u64)>,
    workers: Option<usize>,
    /// Intake variants to run: workers held, workers on.
    intake_held: bool,
    intake_on: bool,
    skip_intake: bool,
    skip_invite: bool,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        backends: vec![
            Backend::Sqlite,
            Backend::Postgres { replicas: 1 },
            Backend::Postgres { replicas: 2 },
        ],
        deliveries: 20_000,
        concurrency: 64,
        warmup: 1_000,
        invites: 300,
        rate: 100.0,
        latencies: vec![(0, 0), (0, 20), (20, 20)],
        workers: None,
        intake_held: true,
        intake_on: true,
        skip_intake: false,
        skip_invite: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> String {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        let num = |name: &str, v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a number, not {v:?}"))
        };
        match a.as_str() {
            // cargo passes `--bench` to harness-less bench targets.
            "--bench" => {}
            "--deliveries" => o.deliveries = num(&a, value(&a)) as usize,
            "--concurrency" => o.concurrency = num(&a, value(&a)) as usize,
            "--warmup" => o.warmup = num(&a, value(&a)) as usize,
            "--invites" => o.invites = num(&a, value(&a)) as usize,
            "--rate" => o.rate = num(&a, value(&a)),
            "--workers" => o.workers = Some(num(&a, value(&a)) as usize),
            "--latencies" => {
                o.latencies = value(&a)
                    .split(',')
                    .map(|pair| {
                        let (x, y) = pair.split_once('/').unwrap_or_else(|| {
                            panic!("--latencies: {pair:?} is not ASANA/DOCSPACE")
                        });
                        (
                            num("--latencies", x.into()) as u64,
                            num("--latencies", y.into()) as u64,
                        )
                    })
                    .collect()
            }
            "--intake" => match value(&a).as_str() {
                "held" => o.intake_on = false,
                "on" => o.intake_held = false,
                "both" => {}
                v => panic!("--intake takes held, on or both, not {v:?}"),
            },
            "--backends" => {
                o.backends = value(&a)
                    .split(',')
                    .map(|b| match b {
                        "sqlite" => Backend::Sqlite,
                        "pg1" => Backend::Postgres { replicas: 1 },
                        "pg2" => Backend::Postgres { replicas: 2 },
                        v => panic!("--backends takes sqlite, pg1 and pg2, not {v:?}"),
                    })
                    .collect()
            }
            "--skip-intake" => o.skip_intake = true,
            "--skip-invite" => o.skip_invite = true,
            other => panic!(
                "unknown argument {other:?}; use --deliveries N --concurrency C --warmup W \
                 --intake held|on|both --invites M --rate R --latencies A/D,... --workers K \
                 --backends sqlite,pg1,pg2 --skip-intake --skip-invite"
            ),
        }
    }
    assert!(o.deliveries > 0 && o.concurrency > 0 && o.invites > 0 && o.rate > 0.0);
    o
}

// ------------------------------------------------------------------------------------------
// The world, the service, the deliveries

/// Gids of a bench world: one project, `users` people with emails, one task per person,
/// assigned to them.
struct Ids {
    project: String,
    users: Vec<String>,
    emails: Vec<String>,
    tasks: Vec<String>,
}

fn asana_world(people: usize, email_prefix: &str) -> (AsanaWorld, Ids) {
    let mut w = AsanaWorld::new();
    let ws = w.add_workspace("Acme");
    let project = w.add_project(&ws, "Launch");
    let mut ids = Ids {
        project,
        users: Vec::new(),
        emails: Vec::new(),
        tasks: Vec::new(),
    };
    for i in 0..people {
        let email = format!("{email_prefix}{i}@acme.example");
        let user = w.add_user(&ws, &format!("Person {i}"), Some(&email));
        let task = w.add_task(&ids.project, &format!("Task {i}"), Some(&user));
        ids.users.push(user);
        ids.emails.push(email);
        ids.tasks.push(task);
    }
    (w, ids)
}

struct Bench {
    asana: AsanaSim,
    docspace: Arc<DocSpaceSim>,
    ids: Ids,
    svc: Services,
    /// One delivery URL per replica.
    urls: Vec<String>,
    http: reqwest::Client,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<Result<(), ServiceError>>>,
    /// The state location (a SQLite path or a Postgres URL).
    location: String,
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

impl Bench {
    /// Simulators over the given worlds and the real service in front of them.
    async fn start(
        asana_world: AsanaWorld,
        ids: Ids,
        docspace_world: DocSpaceWorld,
        workers: Option<usize>,
        concurrency: usize,
        backend: Backend,
    ) -> Bench {
        let asana = AsanaSim::start(asana_world, AsanaSimOptions::default())
            .await
            .unwrap();
        let docspace = DocSpaceSim::start(docspace_world, DocSpaceSimOptions::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (location, pg, replicas) = match backend {
            Backend::Sqlite => (
                dir.path().join("state.db").to_string_lossy().into_owned(),
                None,
                1,
            ),
            Backend::Postgres { replicas } => {
                let db = TestDatabase::create().await;
                (db.url().to_string(), Some(db), replicas)
            }
        };
        let mut a =
            asana_api::Config::new(&asana.base_url(), DEMO_ASANA_TOKEN.to_string().into()).unwrap();
        a.requests_per_minute = 1_000_000;
        // Longer than a stalled run: a held worker must keep waiting, not retry.
        a.timeout = STALL;
        let d =
            docspace_api::Config::new(&docspace.base_url(), DEMO_DOCSPACE_KEY.to_string().into())
                .unwrap();
        let store = record::open(&location).await.unwrap();
        store
            .expect_webhook(
                HOOK_ID,
                &ids.project,
                "http://bench/webhooks/asana/bench-hook",
            )
            .await
            .unwrap();
        assert!(store
            .store_webhook_secret(HOOK_ID, HOOK_SECRET)
            .await
            .unwrap());
        store
            .activate_webhook(HOOK_ID, "1209999999999999")
            .await
            .unwrap();
        let asana_client = asana_api::Client::new(a).unwrap();
        let docspace_client = docspace_api::Client::new(d).unwrap();
        let svc = Services::new(asana_client.clone(), docspace_client.clone(), store);
        let mut cfg = ServeConfig {
            rules: vec![Rule {
                project: Gid::parse(&ids.project).unwrap(),
                room: None,
                user_type: UserType::User,
                include_completed: false,
                on_unassign: bridge_core::config::OnUnassign::Keep,
                revoke_after: bridge_core::config::DEFAULT_REVOKE_AFTER,
            }],
            ..ServeConfig::default()
        };
        if let Some(w) = workers {
            cfg.workers = w;
        }
        // Only shortens the bench's stops (held workers are released after it).
        cfg.shutdown_grace = Duration::from_millis(200);
        let shutdown = CancellationToken::new();
        let mut urls = Vec::new();
        let mut servers = Vec::new();
        for n in 0..replicas {
            // Every replica has a connection pool of its own, as separate processes would.
            let svc = if n == 0 {
                svc.clone()
            } else {
                Services::new(
                    asana_client.clone(),
                    docspace_client.clone(),
                    record::open(&location).await.unwrap(),
                )
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!(
                "http://{}/webhooks/asana/{HOOK_ID}",
                listener.local_addr().unwrap()
            ));
            servers.push(tokio::spawn(bridge_service::serve(
                cfg.clone(),
                svc,
                listener,
                shutdown.clone(),
            )));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .build()
            .unwrap();
        Bench {
            asana,
            docspace: Arc::new(docspace),
            ids,
            svc,
            urls,
            http,
            shutdown,
            servers,
            location,
            _dir: dir,
            _pg: pg,
        }
    }

    /// Every replica's `/metrics`, to be added up.
    async fn metrics(&self) -> Metrics {
        let mut texts = Vec::new();
        for url in &self.urls {
            let url = url.replace(&format!("/webhooks/asana/{HOOK_ID}"), "/metrics");
            let text = self
                .http
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            texts.push(text);
        }
        Metrics(texts)
    }

    /// Waits until nothing is queued or running (at most `limit`).
    async fn drain(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let d = self.svc.store.queue_depth().await.unwrap();
            if d.queued == 0 && d.running == 0 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "the queue did not drain within {limit:?}: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the service (releasing held jobs), then the simulators. Returns what keeps
    /// the state alive (drop it to delete the file or the database).
    async fn stop(self) -> (Services, String, (tempfile::TempDir, Option<TestDatabase>)) {
        self.shutdown.cancel();
        for server in self.servers {
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .expect("serve did not stop within 30 s")
                .unwrap()
                .unwrap();
        }
        self.asana.shutdown().await;
        if let Ok(ds) = Arc::try_unwrap(self.docspace) {
            ds.shutdown().await;
        }
        (self.svc, self.location, (self._dir, self._pg))
    }
}

/// A delivery with one assignee change, as Asana writes it, signed.
fn delivery(task: &str, user: &str, at_ms: i64) -> (Bytes, String) {
    let at = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = serde_json::to_vec(&serde_json::json!({"events": [{
        "user": {"gid": "1", "resource_type": "user"},
        "resource": {"gid": task, "resource_type": "task", "resource_subtype": "default_task"},
        "type": "task",
        "action": "changed",
        "parent": null,
        "created_at": at,
        "change": {"field": "assignee", "action": "changed",
                   "new_value": {"gid": user, "resource_type": "user"}}
    }]}))
    .unwrap();
    let sig = bridge_sim::sign_webhook_body(HOOK_SECRET, &body);
    (Bytes::from(body), sig)
}

async fn post(http: &reqwest::Client, url: &str, body: &(Bytes, String)) -> u16 {
    match http
        .post(url)
        .header("content-type", "application/json")
        .header("x-hook-signature", &body.1)
        .body(body.0.clone())
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Sends every body over `concurrency` connections as fast as answers come back.
/// Returns the wall time and each request's time to its answer; panics on a non-200.
/// Sends every body, delivery `i` to `urls[i % urls.len()]` (a round-robin balancer).
async fn blast(
    http: &reqwest::Client,
    urls: &[String],
    bodies: Arc<Vec<(Bytes, String)>>,
    concurrency: usize,
) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<JoinHandle<Vec<Duration>>> = (0..concurrency)
        .map(|_| {
            let (http, urls, bodies, next) =
                (http.clone(), urls.to_vec(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(bodies.len() / concurrency + 1);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return lat;
                    };
                    let url = &urls[i % urls.len()];
                    let t = Instant::now();
                    let status = post(&http, url, body).await;
                    lat.push(t.elapsed());
                    assert_eq!(status, 200, "delivery {i} was answered {status}");
                }
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(bodies.len());
    for h in handles {
        lat.extend(h.await.unwrap());
    }
    (started.elapsed(), lat)
}

// ------------------------------------------------------------------------------------------
// Statistics and /metrics

#[derive(Debug, Clone, Copy)]
struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summary(mut v: Vec<Duration>) -> Summary {
    assert!(!v.is_empty());
    v.sort_unstable();
    // Nearest rank.
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Summary {
        p50: rank(0.50),
        p99: rank(0.99),
        max: v[v.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The `/metrics` text of every replica.
struct Metrics(Vec<String>);

impl Metrics {
    /// The sum over the replicas.
    fn value(&self, name: &str) -> f64 {
        self.0
            .iter()
            .map(|text| {
                text.lines()
                    .find_map(|l| {
                        let (k, v) = l.rsplit_once(' ')?;
                        (k == name).then(|| v.parse().ok()).flatten()
                    })
                    .unwrap_or(0.0)
            })
            .sum()
    }

    /// `(count, sum)` of a histogram.
    fn histogram(&self, name: &str) -> (f64, f64) {
        (
            self.value(&format!("{name}_count")),
            self.value(&format!("{name}_sum")),
        )
    }

    fn commits(&self) -> (f64, f64, f64) {
        let (commits, jobs) = self.histogram("asana_docspace_commit_batch_jobs");
        let (_, secs) = self.histogram("asana_docspace_commit_duration_seconds");
        (commits, jobs, secs)
    }
}

// ------------------------------------------------------------------------------------------
// 1. Intake

struct IntakeRow {
    backend: Backend,
    variant: &'static str,
    stored: u64,
    elapsed: Duration,
    lat: Summary,
    commits: f64,
    jobs_per_commit: f64,
    commit_ms: f64,
    after: String,
}

async fn intake(o: &Opts, backend: Backend, hold_workers: bool) -> IntakeRow {
    // Ten tasks, their assignees already DocSpace members: a worked job re-reads the task,
    // looks the person up, and records `already_member`.
    let (world, ids) = asana_world(10, "member");
    let mut ds = DocSpaceWorld::new();
    for e in &ids.emails {
        ds.add_person(e, SimUserType::User, PersonState::Active);
    }
    let bench = Bench::start(world, ids, ds, o.workers, o.concurrency, backend).await;
    if hold_workers {
        bench.asana.set_latency(STALL);
    }
    let total = o.warmup + o.deliveries;
    let t0 = 1_700_000_000_000i64;
    let bodies: Vec<(Bytes, String)> = (0..total)
        .map(|i| {
            let k = i % bench.ids.tasks.len();
            delivery(&bench.ids.tasks[k], &bench.ids.users[k], t0 + i as i64)
        })
        .collect();
    let measured = Arc::new(bodies[o.warmup..].to_vec());
    let warmup = Arc::new(bodies[..o.warmup].to_vec());
    drop(bodies);
    if !warmup.is_empty() {
        blast(&bench.http, &bench.urls, warmup, o.concurrency).await;
    }
    let before = bench.metrics().await.commits();
    let (elapsed, lat) = blast(&bench.http, &bench.urls, measured, o.concurrency).await;
    let m = bench.metrics().await;
    let after_commits = m.commits();
    let new_jobs = m.value("asana_docspace_jobs_enqueued_total{result=\"new\"}") as u64;
    assert_eq!(new_jobs, total as u64, "every delivery must be a new job");
    let commits = after_commits.0 - before.0;
    let jobs = after_commits.1 - before.1;
    let commit_secs = after_commits.2 - before.2;

    let (stored, after) = if hold_workers {
        let (svc, location, keep) = bench.stop().await;
        svc.store.close().await;
        drop(svc);
        // Reopen the database: what is there is what was committed.
        let store = record::open(&location).await.unwrap();
        let d = store.queue_depth().await.unwrap();
        store.close().await;
        drop(keep);
        assert_eq!(
            d.queued + d.running,
            total as u64,
            "the reopened database must hold every delivery's job: {d:?}"
        );
        (
            d.queued + d.running,
            format!(
                "reopened DB: {} queued ({} measured + {} warm-up)",
                d.queued + d.running,
                o.deliveries,
                o.warmup
            ),
        )
    } else {
        let at_end = bench.svc.store.queue_depth().await.unwrap();
        let done_during = total as u64 - at_end.queued - at_end.running - at_end.dead;
        let drained = bench.drain(Duration::from_secs(600)).await;
        let m = bench.metrics().await;
        let done = m.value("asana_docspace_jobs_finished_total{result=\"done\"}") as u64;
        let d = bench.svc.store.queue_depth().await.unwrap();
        assert_eq!(d.dead, 0, "no job may fail: {d:?}");
        assert_eq!(done, total as u64, "every job must finish done");
        let worked = total as f64 / (elapsed + drained).as_secs_f64();
        bench.stop().await;
        (
            total as u64,
            format!(
                "{done_during} jobs done while sending; all {done} done {:.1} s later \
                 (workers ≈ {worked:.0} jobs/s)",
                drained.as_secs_f64()
            ),
        )
    };
    IntakeRow {
        backend,
        variant: if hold_workers {
            "workers held"
        } else {
            "workers on"
        },
        stored,
        elapsed,
        lat: summary(lat),
        commits,
        jobs_per_commit: jobs / commits.max(1.0),
        commit_ms: commit_secs * 1000.0 / commits.max(1.0),
        after,
    }
}

// ------------------------------------------------------------------------------------------
// 2. Delivery-to-invite

struct InviteRow {
    backend: Backend,
    asana_ms: u64,
    docspace_ms: u64,
    sent: usize,
    achieved_rate: f64,
    to_200: Summary,
    to_invite: Summary,
    invitations: usize,
    job_ms: f64,
}

/// Polls the invite log and timestamps each new invitation by email, until `stop`.
fn watch_invites(
    docspace: Arc<DocSpaceSim>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<HashMap<String, Instant>> {
    std::thread::spawn(move || {
        let mut seen = 0;
        let mut at = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let new: Vec<String> = docspace.world(|w| {
                let fresh = w.invite_log[seen..]
                    .iter()
                    .filter(|r| r.outcome == InviteOutcome::Invited)
                    .map(|r| r.email.clone())
                    .collect();
                seen = w.invite_log.len();
                fresh
            });
            for e in new {
                at.entry(e).or_insert(now);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        at
    })
}

async fn delivery_to_invite(
    o: &Opts,
    backend: Backend,
    asana_ms: u64,
    docspace_ms: u64,
) -> InviteRow {
    // Every task is assigned to a person DocSpace has never seen.
    let (world, ids) = asana_world(o.invites, "new");
    let bench = Bench::start(world, ids, DocSpaceWorld::new(), o.workers, 8, backend).await;
    bench.asana.set_latency(Duration::from_millis(asana_ms));
    bench
        .docspace
        .set_latency(Duration::from_millis(docspace_ms));
    let t0 = 1_710_000_000_000i64;
    let bodies: Vec<(Bytes, String)> = (0..o.invites)
        .map(|i| delivery(&bench.ids.tasks[i], &bench.ids.users[i], t0 + i as i64))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_invites(bench.docspace.clone(), stop.clone());
    let period = Duration::from_secs_f64(1.0 / o.rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut sends: Vec<JoinHandle<(Instant, Duration)>> = Vec::with_capacity(o.invites);
    for (i, body) in bodies.into_iter().enumerate() {
        tokio::time::sleep_until(start + period * i as u32).await;
        let (http, url) = (bench.http.clone(), bench.urls[i % bench.urls.len()].clone());
        sends.push(tokio::spawn(async move {
            let t = Instant::now();
            let status = post(&http, &url, &body).await;
            let lat = t.elapsed();
            assert_eq!(status, 200, "delivery {i} was answered {status}");
            (t, lat)
        }));
    }
    let mut sent_at = Vec::with_capacity(o.invites);
    let mut to_200 = Vec::with_capacity(o.invites);
    for h in sends {
        let (t, lat) = h.await.unwrap();
        sent_at.push(t);
        to_200.push(lat);
    }
    let first = sent_at[0];
    let last = sent_at[sent_at.len() - 1];
    let achieved_rate = (o.invites - 1) as f64 / (last - first).as_secs_f64().max(1e-9);

    // Wait for every invitation (and for the jobs to finish), then stop the watcher.
    bench.drain(Duration::from_secs(300)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bench.docspace.world(|w| w.invitations_sent().len()) < o.invites
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let arrived = watcher.join().unwrap();
    let invitations = bench.docspace.world(|w| w.invitations_sent());
    assert_eq!(
        invitations.len(),
        o.invites,
        "one invitation per new person, none twice"
    );
    let mut to_invite = Vec::with_capacity(o.invites);
    for (i, email) in bench.ids.emails.iter().enumerate() {
        let at = arrived
            .get(email)
            .unwrap_or_else(|| panic!("no invitation seen for {email}"));
        to_invite.push(at.saturating_duration_since(sent_at[i]));
    }
    let m = bench.metrics().await;
    let (jobs, job_secs) = m.histogram("asana_docspace_job_duration_seconds");
    let d = bench.svc.store.queue_depth().await.unwrap();
    assert_eq!(d.dead, 0, "no job may fail: {d:?}");
    bench.stop().await;
    InviteRow {
        backend,
        asana_ms,
        docspace_ms,
        sent: o.invites,
        achieved_rate,
        to_200: summary(to_200),
        to_invite: summary(to_invite),
        invitations: invitations.len(),
        job_ms: job_secs * 1000.0 / jobs.max(1.0),
    }
}

// ------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let o = parse_args();
    let workers = o.workers.unwrap_or(ServeConfig::default().workers);
    println!(
        "webhooks bench: {} cores, tokio runtime with one worker thread per core; service workers = {workers}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    if !o.skip_intake {
        let mut rows = Vec::new();
        let variants = [(true, o.intake_held), (false, o.intake_on)];
        for &backend in &o.backends {
            for hold in variants.into_iter().filter(|v| v.1).map(|v| v.0) {
                let row = intake(&o, backend, hold).await;
                eprintln!(
                    "intake ({}, {}): {:.0} deliveries/s",
                    backend.label(),
                    row.variant,
                    o.deliveries as f64 / row.elapsed.as_secs_f64()
                );
                rows.push(row);
            }
        }
        println!();
        println!(
            "## Intake: {} signed deliveries (1 event each) over {} keep-alive connections, after {} warm-up",
            o.deliveries, o.concurrency, o.warmup
        );
        println!();
        println!("| state | workers | stored deliveries/s | time to 200 p50 | p99 | max | commits | jobs/commit | ms/commit | stored |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in &rows {
            println!(
                "| {} | {} | {:.0} | {} ms | {} ms | {} ms | {:.0} | {:.1} | {:.2} | {} |",
                r.backend.label(),
                r.variant,
                o.deliveries as f64 / r.elapsed.as_secs_f64(),
                ms(r.lat.p50),
                ms(r.lat.p99),
                ms(r.lat.max),
                r.commits,
                r.jobs_per_commit,
                r.commit_ms,
                r.after,
            );
            assert!(r.stored >= o.deliveries as u64);
        }
    }

    if !o.skip_invite {
        let mut rows = Vec::new();
        for &backend in &o.backends {
            for &(a, d) in &o.latencies {
                let row = delivery_to_invite(&o, backend, a, d).await;
                eprintln!(
                    "delivery-to-invite ({}, asana {a} ms, docspace {d} ms): p99 {} ms",
                    backend.label(),
                    ms(row.to_invite.p99)
                );
                rows.push(row);
            }
        }
        println!();
        println!(
            "## Delivery-to-invite: {} deliveries at {:.0}/s, each a new person",
            o.invites, o.rate
        );
        println!();
        println!("| state | Asana latency | DocSpace latency | simulated path (A + 2D) | sent/s | to 200 p50 | p99 | to invite p50 | p99 | max | p99 target | mean job | invitations |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let path = r.asana_ms + 2 * r.docspace_ms;
            println!(
                "| {} | {} ms | {} ms | {} ms | {:.0} | {} ms | {} ms | {} ms | {} ms | {} ms | < {} ms | {:.1} ms | {}/{} |",
                r.backend.label(),
                r.asana_ms,
                r.docspace_ms,
                path,
                r.achieved_rate,
                ms(r.to_200.p50),
                ms(r.to_200.p99),
                ms(r.to_invite.p50),
                ms(r.to_invite.p99),
                ms(r.to_invite.max),
                100 + path,
                r.job_ms,
                r.invitations,
                r.sent,
            );
        }
    }
}
