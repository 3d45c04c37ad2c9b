//! Several replicas on one PostgreSQL database, with the real binary: two `serve`
//! processes behind a round-robin load balancer, and two `watch` processes.
//!
//! - `webhooks create` registers through the balancer: the handshake is answered by
//!   whichever replica it reaches, and both verify deliveries with the secret from the
//!   database;
//! - 1,000 deliveries (one event each) spread over both replicas; one replica is SIGKILLed
//!   midway: every event is processed, each person is invited once, and the jobs the dead
//!   replica held are finished by the other within one lease;
//! - two `watch` processes on one project: one polls, the other stands by and takes over
//!   when the first is SIGKILLed.
//!
//! Each test runs in a database of its own on the server named by
//! `ASANA_DOCSPACE_TEST_POSTGRES` (see `bridge_sim::postgres`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bridge_core::record::{HistoryFilter, PgStore, Store};
use bridge_sim::postgres::TestDatabase;
use bridge_sim::{AsanaSimOptions, DocSpaceSimOptions};

use crate::harness::{assert_each_once, free_port, People, Running, Sims};

/// A round-robin HTTP load balancer in front of the replicas: each request goes to the
/// next backend; one that refuses the connection (a killed replica) is skipped.
struct Balancer {
    backends: Vec<String>,
    next: AtomicUsize,
    /// Webhook requests each backend answered.
    served: Vec<AtomicUsize>,
    client: reqwest::Client,
}

async fn forward(State(lb): State<Arc<Balancer>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (http_status(400), "unreadable body").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let start = lb.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..lb.backends.len() {
        let n = (start + i) % lb.backends.len();
        let mut rb = lb
            .client
            .request(parts.method.clone(), format!("{}{path}", lb.backends[n]))
            .body(bytes.clone());
        for (k, v) in &parts.headers {
            if k != axum::http::header::HOST && k != axum::http::header::CONTENT_LENGTH {
                rb = rb.header(k, v);
            }
        }
        match rb.send().await {
            Ok(resp) => {
                if path.starts_with("/webhooks/") {
                    lb.served[n].fetch_add(1, Ordering::Relaxed);
                }
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes().await.unwrap_or_default();
                let mut out = Response::new(Body::from(body));
                *out.status_mut() = status;
                for (k, v) in &headers {
                    if k != axum::http::header::CONTENT_LENGTH
                        && k != axum::http::header::TRANSFER_ENCODING
                    {
                        out.headers_mut().insert(k, v.clone());
                    }
                }
                return out;
            }
            Err(e) if e.is_connect() => continue,
            Err(_) => return (http_status(502), "backend failed").into_response(),
        }
    }
    (http_status(502), "no backend answers").into_response()
}

fn http_status(code: u16) -> axum::http::StatusCode {
    axum::http::StatusCode::from_u16(code).unwrap()
}

impl Balancer {
    async fn start(backends: Vec<String>) -> (Arc<Balancer>, String) {
        let lb = Arc::new(Balancer {
            served: backends.iter().map(|_| AtomicUsize::new(0)).collect(),
            backends,
            next: AtomicUsize::new(0),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(lb.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (lb, base)
    }

    fn served(&self, n: usize) -> usize {
        self.served[n].load(Ordering::Relaxed)
    }
}

/// The simulators (one project with a rule, `people` users, `tasks` unassigned tasks)
/// and a database of the test's own.
struct Env {
    sims: Sims<()>,
    db: TestDatabase,
    project: String,
    users: Vec<String>,
    emails: Vec<String>,
    tasks: Vec<String>,
}

impl std::ops::Deref for Env {
    type Target = Sims<()>;
    fn deref(&self) -> &Sims<()> {
        &self.sims
    }
}

impl Env {
    async fn new(people: usize, tasks: usize, asana: AsanaSimOptions) -> Env {
        let (
            w,
            People {
                project,
                users,
                emails,
                tasks,
            },
        ) = People::world(people, tasks);
        let sims = Sims::start(
            w,
            Default::default(),
            (),
            asana,
            DocSpaceSimOptions::default(),
        )
        .await;
        sims.write_config(&format!(
            "[asana]\nrequests_per_minute = 100000\n\n[serve]\nworkers = 4\n\n\
             [[rules]]\nproject = \"{project}\"\n"
        ));
        Env {
            sims,
            db: TestDatabase::create().await,
            project,
            users,
            emails,
            tasks,
        }
    }

    /// A run of the binary on this test's Postgres database.
    fn on_postgres(&self, args: &[&str]) -> crate::harness::Cmd {
        self.sims
            .configured(args)
            .env("ASANA_DOCSPACE_STATE", self.db.url())
    }

    /// Starts `serve` on `port` and waits until it answers `/healthz`.
    async fn serve(&self, port: u16) -> Running {
        self.on_postgres(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("ASANA_DOCSPACE_LOG", "warn")
            .spawn_healthy(port, Duration::from_secs(30))
            .await
    }

    async fn store(&self) -> PgStore {
        PgStore::open(self.db.url()).await.unwrap()
    }
}

/// The registry id of the replica with this pid.
async fn replica_of(store: &PgStore, pid: u32) -> String {
    let rows = store.replicas().await.unwrap();
    rows.iter()
        .find(|r| r.info.ends_with(&format!("(pid {pid})")))
        .unwrap_or_else(|| panic!("no replica with pid {pid} in {rows:?}"))
        .id
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_a_thousand_deliveries_and_survive_a_sigkill_of_one() {
    const PEOPLE: usize = 50;
    const TASKS: usize = 1000;
    let env = Env::new(
        PEOPLE,
        TASKS,
        AsanaSimOptions {
            // One event per delivery: 1,000 deliveries.
            max_events_per_delivery: 1,
            ..AsanaSimOptions::default()
        },
    )
    .await;
    // Slow DocSpace down so the kill lands while both replicas are working the queue.
    env.docspace.set_latency(Duration::from_millis(20));
    let ports = [free_port(), free_port()];
    let mut a = env.serve(ports[0]).await;
    let b = env.serve(ports[1]).await;
    let (lb, base) = Balancer::start(
        ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
    )
    .await;

    // Registered by the CLI, handshaken through the balancer by whichever replica it hit.
    let out = env
        .on_postgres(&[
            "webhooks",
            "create",
            "--json",
            "--project",
            &env.project,
            "--target",
            &base,
        ])
        .run()
        .await;
    out.expect_code(0);

    let store = env.store().await;
    let replica_a = replica_of(&store, a.id().unwrap()).await;
    env.asana.world(|w| {
        for (i, t) in env.tasks.iter().enumerate() {
            w.assign_task(t, Some(&env.users[i % PEOPLE])).unwrap();
        }
    });
    // Kill A once both have taken a good share of the deliveries and work is in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while lb.served(0) + lb.served(1) < TASKS / 2 {
        assert!(Instant::now() < deadline, "deliveries stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.sigkill().await;
    let killed = Instant::now();
    let orphans: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM jobs WHERE holder = $1 AND state = 'running'")
            .bind(&replica_a)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        !orphans.is_empty(),
        "the kill should land while replica A works jobs"
    );

    // The rest of the deliveries reach B (the balancer skips the dead replica).
    env.asana.flush_deliveries().await;
    let delivered: usize = env
        .asana
        .deliveries()
        .iter()
        .filter(|d| d.ok && !d.heartbeat)
        .map(|d| d.events)
        .sum();
    assert_eq!(delivered, TASKS, "every event acknowledged");
    assert!(
        lb.served(0) > 0 && lb.served(1) > 0,
        "deliveries spread over both replicas: {} and {}",
        lb.served(0),
        lb.served(1)
    );

    // A's jobs are taken over by B within one lease (30 s; the registry row of the dead
    // replica expires after a few seconds).
    let lease = Duration::from_secs(30);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE id = ANY($1) AND state <> 'done'")
                .bind(&orphans)
                .fetch_one(store.pool())
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            killed.elapsed() < lease,
            "{left} of the dead replica's {} jobs not done within one lease",
            orphans.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken_over = killed.elapsed();
    let holders: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT holder FROM jobs WHERE id = ANY($1)")
            .bind(&orphans)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        !holders.contains(&replica_a),
        "finished by the surviving replica: {holders:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = store.queue_depth().await.unwrap();
        if d.queued == 0 && d.running == 0 {
            assert_eq!(d.dead, 0);
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(b);

    assert_each_once(&env.invitations_sent(), &env.emails);
    let rows = store.history(&HistoryFilter::default()).await.unwrap();
    let mut tasks: Vec<&str> = rows
        .iter()
        .filter(|r| {
            r.source == bridge_core::domain::Source::Webhook
                && r.target == bridge_core::domain::Target::Portal
        })
        .filter_map(|r| r.task_gid.as_deref())
        .collect();
    tasks.sort();
    tasks.dedup();
    assert_eq!(tasks.len(), TASKS, "every event processed");
    eprintln!(
        "deliveries: {} via A, {} via B; A's {} in-flight jobs were done by B {taken_over:?} after the kill",
        lb.served(0),
        lb.served(1),
        orphans.len()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watch_processes_poll_a_project_once_and_the_standby_takes_over() {
    let env = Env::new(2, 2, AsanaSimOptions::default()).await;
    let watch = |env: &Env| {
        env.on_postgres(&["watch", "--interval", "1"])
            .env("ASANA_DOCSPACE_LOG", "info")
            .spawn()
    };
    let events = |env: &Env| {
        env.asana_requests()
            .iter()
            .filter(|r| r.path.ends_with("/events"))
            .count()
    };
    let first = watch(&env);
    // The first process holds the project's poller claim before the second starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&env) == 0 {
        assert!(Instant::now() < deadline, "the first watch never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = watch(&env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let claim: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT key, holder FROM claims WHERE key LIKE 'watch:%'")
            .fetch_all(env.store().await.pool())
            .await
            .unwrap();
    assert_eq!(claim.len(), 1, "{claim:?}");
    assert_eq!(claim[0].0, format!("watch:{}", env.project));
    assert!(claim[0].1.is_some(), "held: {claim:?}");

    // The poller dies; the standby takes over once the dead process's registry row has
    // expired (6 s), which frees its poller claim.
    let mut first = first;
    first.sigkill().await;
    let first_out = first.output().await;
    let killed = Instant::now();
    let before = events(&env);
    let deadline = Instant::now() + Duration::from_secs(40);
    while events(&env) <= before + 1 {
        assert!(
            Instant::now() < deadline,
            "the standby never took over\n{first_out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_over = killed.elapsed();
    // SIGTERM: a clean stop, then read what it said.
    let pid = second.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let second_out = second.output().await;
    second_out.expect_code(0);
    assert!(
        !first_out.stderr.contains("standing by"),
        "the first process polled from the start\n{first_out}"
    );
    second_out.stderr_has(&["standing by", "taking over polling this project"]);
    eprintln!("the standby took over {took_over:?} after the poller was killed");
}
