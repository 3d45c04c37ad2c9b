//! The real binary: `asana-docspace serve` as a child process against the in-process
//! simulators, a webhook registered through `asana-docspace webhooks create`, and the
//! server killed with SIGKILL and restarted in between.
//!
//! - an assignment in the Asana sim produces exactly one DocSpace invitation within a
//!   second, before and after a SIGKILL and restart;
//! - 1,000 events queued, the server killed mid-way: after a restart every event is
//!   processed and nobody is invited twice;
//! - a job in flight when the server was SIGKILLed runs again soon after a restart — the
//!   dead process's registry row expires in seconds — long before its lease would end, and
//!   the person claim the dead run held is tied to that row, so the invitation follows at
//!   once instead of after the claim's own lease.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_core::record::{self, HistoryFilter, Store};
use bridge_sim::{AsanaSimOptions, DocSpaceSimOptions};

use crate::harness::{free_port, People, Running, Sims};

/// Both simulators (one project with a rule, `people` users, `tasks` unassigned tasks)
/// and the port `serve` listens on.
struct Env {
    sims: Sims<()>,
    project: String,
    users: Vec<String>,
    emails: Vec<String>,
    tasks: Vec<String>,
    port: u16,
    http: reqwest::Client,
}

impl Deref for Env {
    type Target = Sims<()>;
    fn deref(&self) -> &Sims<()> {
        &self.sims
    }
}

impl Env {
    async fn new(people: usize, tasks: usize) -> Env {
        Env::with_lease(people, tasks, 2).await
    }

    async fn with_lease(people: usize, tasks: usize, lease_secs: u64) -> Env {
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
            AsanaSimOptions::default(),
            DocSpaceSimOptions::default(),
        )
        .await;
        sims.write_config(&format!(
            "[asana]\nrequests_per_minute = 100000\n\n[serve]\nworkers = 4\n\
             lease_secs = {lease_secs}\n\n[[rules]]\nproject = \"{project}\"\n"
        ));
        Env {
            sims,
            project,
            users,
            emails,
            tasks,
            // A free port, reused across the restart: Asana's target URL cannot change.
            port: free_port(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `serve` and waits until it answers `/healthz`.
    async fn serve(&self) -> Running {
        self.configured(&["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("ASANA_DOCSPACE_LOG", "warn")
            .spawn_healthy(self.port, Duration::from_secs(20))
            .await
    }

    async fn create_webhook(&self) -> serde_json::Value {
        let out = self
            .run(&[
                "webhooks",
                "create",
                "--json",
                "--project",
                &self.project,
                "--target",
                &self.base(),
            ])
            .await;
        out.expect_code(0);
        serde_json::from_str(&out.stdout).unwrap()
    }

    async fn wait_for(&self, what: &str, limit: Duration, mut cond: impl FnMut(&Env) -> bool) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_is_one_invitation_within_a_second_across_a_sigkill() {
    let env = Env::new(2, 2).await;
    let mut server = env.serve().await;
    let created = env.create_webhook().await;
    assert!(
        created["gid"].is_string() && created["id"].is_string(),
        "{created}"
    );
    let target = created["target"].as_str().unwrap();
    assert!(
        target.starts_with(&format!("{}/webhooks/asana/", env.base())),
        "{target}"
    );

    let started = Instant::now();
    env.asana
        .world(|w| w.assign_task(&env.tasks[0], Some(&env.users[0])))
        .unwrap();
    env.wait_for("the first invitation", Duration::from_secs(1), |e| {
        !e.invitations_sent().is_empty()
    })
    .await;
    let first = started.elapsed();
    assert_eq!(env.invitations_sent(), vec![env.emails[0].clone()]);

    server.sigkill().await;
    let server = env.serve().await;

    let started = Instant::now();
    env.asana
        .world(|w| w.assign_task(&env.tasks[1], Some(&env.users[1])))
        .unwrap();
    env.wait_for("the second invitation", Duration::from_secs(1), |e| {
        e.invitations_sent().len() == 2
    })
    .await;
    let second = started.elapsed();
    // Give a duplicate every chance to show up before checking there is none.
    env.asana.flush_deliveries().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        env.invitations_sent(),
        vec![env.emails[0].clone(), env.emails[1].clone()]
    );
    eprintln!("assignment → invitation: {first:?} before, {second:?} after the SIGKILL");

    // The audit log tells where each action came from.
    let out = env
        .run(&["history", "--json", "--task", &env.tasks[1]])
        .await;
    out.expect_code(0);
    let rows = out.json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["source"], "webhook");
    assert_eq!(rows[0]["outcome"], "invited");

    // SIGTERM: a clean exit.
    let pid = server.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut server = server;
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_queued_events_survive_a_sigkill_without_duplicate_invitations() {
    const PEOPLE: usize = 50;
    const TASKS: usize = 1000;
    let env = Env::new(PEOPLE, TASKS).await;
    // Slow DocSpace down so the kill lands while the queue is still being worked.
    env.docspace.set_latency(Duration::from_millis(10));
    let mut server = env.serve().await;
    env.create_webhook().await;
    let store: Arc<dyn Store> = record::open(env.state_path().to_str().unwrap())
        .await
        .unwrap();

    // 1,000 assignments (50 people, 20 tasks each), delivered in batches of 100.
    env.asana.world(|w| {
        for (i, t) in env.tasks.iter().enumerate() {
            w.assign_task(t, Some(&env.users[i % PEOPLE])).unwrap();
        }
    });
    env.asana.flush_deliveries().await;
    let delivered: usize = env
        .asana
        .deliveries()
        .iter()
        .filter(|d| d.ok && !d.heartbeat)
        .map(|d| d.events)
        .sum();
    assert_eq!(delivered, TASKS, "every event acknowledged before the kill");
    let metrics = env
        .http
        .get(format!("{}/metrics", env.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "asana_docspace_jobs_enqueued_total{{result=\"new\"}} {TASKS}"
        )),
        "{metrics}"
    );

    server.sigkill().await;
    let before = env.invitations_sent().len();
    let depth = store.queue_depth().await.unwrap();
    assert!(
        depth.queued + depth.running > 0,
        "the kill should land mid-way (invited so far: {before})"
    );

    let server = env.serve().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = store.queue_depth().await.unwrap();
        if d.queued == 0 && d.running == 0 {
            assert_eq!(d.dead, 0);
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);

    let mut sent = env.invitations_sent();
    assert_eq!(sent.len(), PEOPLE, "one invitation per person: {sent:?}");
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), PEOPLE, "no duplicate invitation");
    let mut expected = env.emails.clone();
    expected.sort();
    assert_eq!(sent, expected);

    // Every event's job ran to a recorded answer.
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
    eprintln!("killed after {before} of {PEOPLE} invitations; the restart finished the rest");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_flight_at_a_sigkill_runs_again_soon_after_a_restart_not_after_its_lease() {
    // A two-minute lease: were the job retaken only when its lease ran out, the
    // invitation would come two minutes after the restart.
    let lease = Duration::from_secs(120);
    let env = Env::with_lease(1, 1, lease.as_secs()).await;
    let mut server = env.serve().await;
    env.create_webhook().await;
    // DocSpace hangs: the job is stuck in flight when the process dies.
    env.docspace.set_latency(Duration::from_secs(600));
    let store: Arc<dyn Store> = record::open(env.state_path().to_str().unwrap())
        .await
        .unwrap();
    env.asana
        .world(|w| w.assign_task(&env.tasks[0], Some(&env.users[0])))
        .unwrap();
    // Running, and holding the person's claim (taken before DocSpace is asked).
    let file = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.state_path().display()))
        .await
        .unwrap();
    let person = format!("person:{}", env.emails[0]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let claim_replica: Option<String> = loop {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT replica FROM claims WHERE key = ? AND holder IS NOT NULL")
                .bind(&person)
                .fetch_optional(&file)
                .await
                .unwrap();
        if let Some((replica,)) = row {
            break replica;
        }
        assert!(
            Instant::now() < deadline,
            "the job never claimed the person"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(store.queue_depth().await.unwrap().running, 1);
    server.sigkill().await;
    assert!(env.invitations_sent().is_empty());
    // The claim names the dead process's registry row — the row whose expiry frees its job.
    let replicas: Vec<String> = sqlx::query_scalar("SELECT id FROM replicas")
        .fetch_all(&file)
        .await
        .unwrap();
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    assert_eq!(claim_replica.as_ref(), Some(&replicas[0]));

    env.docspace.set_latency(Duration::ZERO);
    let restarted = Instant::now();
    let server = env.serve().await;
    // Claimed again (a second attempt) by the restarted process…
    let deadline = restarted + lease / 2;
    loop {
        let attempts: i64 = sqlx::query_scalar("SELECT MAX(attempts) FROM jobs")
            .fetch_one(&file)
            .await
            .unwrap();
        if attempts >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the job was not claimed again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let retaken = restarted.elapsed();
    file.close().await;
    // …and acted on: the person's claim the dead run held is free from the same moment,
    // its replica's row having expired (not 10 s after the kill, the claim's lease).
    env.wait_for("the invitation after the restart", lease / 2, |e| {
        e.invitations_sent().len() == 1
    })
    .await;
    let took = restarted.elapsed();
    assert_eq!(env.invitations_sent(), vec![env.emails[0].clone()]);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(depth.dead, 0, "{depth:?}");
    eprintln!(
        "restart → in-flight job run again: {retaken:?}; restart → invitation: {took:?} (job lease {lease:?})"
    );
    drop(server);
    store.close().await;
}
