//! The harness: both simulators, a temp-file state database, and the real service on a
//! port-0 listener. Each test builds its own, so tests run in parallel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use asana_api::Gid;
use bridge_core::config::Rule;
use bridge_core::record::{self, HistoryFilter, LedgerEntry, QueueDepth, Store};
use bridge_core::Services;
use bridge_service::{manage, ServeConfig, ServiceError};
use bridge_sim::seed::{DEMO_ASANA_TOKEN, DEMO_DOCSPACE_KEY};
use bridge_sim::{
    AsanaSim, AsanaSimOptions, AsanaWorld, DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld,
};
use docspace_api::UserType;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Gids of the test world: one workspace, one project with a rule, ten users and ten
/// unassigned tasks; a second project without a rule.
#[derive(Debug, Clone)]
pub struct Ids {
    pub workspace: String,
    pub project: String,
    pub project_without_rule: String,
    pub users: Vec<String>,
    pub emails: Vec<String>,
    pub tasks: Vec<String>,
}

pub fn world() -> (AsanaWorld, Ids) {
    let mut w = AsanaWorld::new();
    let workspace = w.add_workspace("Acme");
    let project = w.add_project(&workspace, "Launch");
    let project_without_rule = w.add_project(&workspace, "Elsewhere");
    let mut users = Vec::new();
    let mut emails = Vec::new();
    for i in 0..10 {
        let email = format!("person{i}@acme.example");
        users.push(w.add_user(&workspace, &format!("Person {i}"), Some(&email)));
        emails.push(email);
    }
    let tasks = (0..10)
        .map(|i| w.add_task(&project, &format!("Task {i}"), None))
        .collect();
    (
        w,
        Ids {
            workspace,
            project,
            project_without_rule,
            users,
            emails,
            tasks,
        },
    )
}

/// Service settings for tests: millisecond retries, a short poll, no health cache.
pub fn test_config(rules: Vec<Rule>) -> ServeConfig {
    ServeConfig {
        rules,
        workers: 4,
        max_attempts: 3,
        retry_schedule: vec![Duration::from_millis(20)],
        rate_limit_floor: Duration::from_millis(20),
        lease: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(200),
        health_ttl: Duration::ZERO,
        ..ServeConfig::default()
    }
}

pub fn rule(project: &str) -> Rule {
    Rule {
        project: Gid::parse(project).unwrap(),
        room: None,
        user_type: UserType::User,
        include_completed: false,
        on_unassign: bridge_core::config::OnUnassign::Keep,
        revoke_after: bridge_core::config::DEFAULT_REVOKE_AFTER,
    }
}

pub async fn services(
    asana: &AsanaSim,
    docspace: &DocSpaceSim,
    dir: &tempfile::TempDir,
) -> Services {
    services_at(
        asana,
        docspace,
        &dir.path().join("state.db"),
        Duration::from_secs(10),
    )
    .await
}

/// [`services`] with the state database at `state` and DocSpace's client timeout.
pub async fn services_at(
    asana: &AsanaSim,
    docspace: &DocSpaceSim,
    state: &std::path::Path,
    docspace_timeout: Duration,
) -> Services {
    let mut a =
        asana_api::Config::new(&asana.base_url(), DEMO_ASANA_TOKEN.to_string().into()).unwrap();
    a.requests_per_minute = 100_000;
    a.backoff_base = Duration::from_millis(5);
    a.max_retries = 2;
    a.timeout = Duration::from_secs(10);
    let mut d =
        docspace_api::Config::new(&docspace.base_url(), DEMO_DOCSPACE_KEY.to_string().into())
            .unwrap();
    d.backoff_base = Duration::from_millis(5);
    d.max_retries = 2;
    d.timeout = docspace_timeout;
    let store = record::open(state.to_str().unwrap()).await.unwrap();
    Services::new(
        asana_api::Client::new(a).unwrap(),
        docspace_api::Client::new(d).unwrap(),
        store,
    )
}

pub struct TestApp {
    pub asana: AsanaSim,
    pub docspace: DocSpaceSim,
    pub svc: Services,
    pub ids: Ids,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<Result<(), ServiceError>>>,
    pub _dir: tempfile::TempDir,
}

/// A change to the test config, applied after the rules are filled in.
pub type Tweak = Box<dyn FnOnce(&mut ServeConfig) + Send>;

/// Wraps the state store the service gets (a fault hook).
pub type WrapStore = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store> + Send>;

#[derive(Default)]
pub struct Options {
    pub asana: AsanaSimOptions,
    /// Changes to the test config (rules are filled in first).
    pub tweak: Option<Tweak>,
    pub docspace_world: Option<DocSpaceWorld>,
    /// Where the state database lives (default: `state.db` in the test's temp dir).
    pub state: Option<std::path::PathBuf>,
    /// Wraps the store the service (and the test, through `svc`) uses.
    pub wrap_store: Option<WrapStore>,
    /// DocSpace's client timeout (default 10 s).
    pub docspace_timeout: Option<Duration>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestApp {
        let (world, ids) = world();
        let asana = AsanaSim::start(world, opts.asana).await.unwrap();
        let docspace = DocSpaceSim::start(
            opts.docspace_world.unwrap_or_default(),
            DocSpaceSimOptions::default(),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = opts.state.unwrap_or_else(|| dir.path().join("state.db"));
        let mut svc = services_at(
            &asana,
            &docspace,
            &state,
            opts.docspace_timeout.unwrap_or(Duration::from_secs(10)),
        )
        .await;
        if let Some(wrap) = opts.wrap_store {
            svc.store = wrap(svc.store);
        }
        let mut cfg = test_config(vec![rule(&ids.project)]);
        if let Some(t) = opts.tweak {
            t(&mut cfg);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(bridge_service::serve(
            cfg,
            svc.clone(),
            listener,
            shutdown.clone(),
        ));
        TestApp {
            asana,
            docspace,
            svc,
            ids,
            base,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown,
            server: Some(server),
            _dir: dir,
        }
    }

    /// Registers a webhook on the test project through the real `webhooks create` flow.
    pub async fn create_webhook(&self) -> manage::Created {
        manage::create_webhook(
            &self.svc.asana,
            self.svc.store.as_ref(),
            &Gid::parse(&self.ids.project).unwrap(),
            &self.base,
        )
        .await
        .unwrap()
    }

    /// The stored secret of registration `id`.
    pub async fn secret(&self, id: &str) -> String {
        self.svc
            .store
            .webhook(id)
            .await
            .unwrap()
            .unwrap()
            .secret
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts `body` to registration `id` with the given signature header (if any).
    pub async fn post_delivery(
        &self,
        id: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(&format!("/webhooks/asana/{id}")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            req = req.header("X-Hook-Signature", s);
        }
        req.send().await.unwrap()
    }

    pub async fn handshake(&self, id: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/webhooks/asana/{id}")))
            .header("X-Hook-Secret", secret)
            .send()
            .await
            .unwrap()
    }

    pub fn invitations(&self) -> Vec<String> {
        self.docspace.world(|w| w.invitations_sent())
    }

    pub async fn depth(&self) -> QueueDepth {
        self.svc.store.queue_depth().await.unwrap()
    }

    pub async fn history_for_task(&self, task: &str) -> Vec<LedgerEntry> {
        self.svc
            .store
            .history(&HistoryFilter {
                task_gid: Some(task.to_string()),
                ..HistoryFilter::default()
            })
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until deliveries are flushed and the queue has nothing queued or running.
    pub async fn settle(&self) {
        self.asana.flush_deliveries().await;
        let store = self.svc.store.clone();
        eventually("the queue to drain", Duration::from_secs(20), || {
            let store = store.clone();
            async move {
                let d = store.queue_depth().await.unwrap();
                d.queued == 0 && d.running == 0
            }
        })
        .await;
    }

    /// Cancels the service and waits for it to return.
    pub async fn stop(&mut self) -> Result<(), ServiceError> {
        self.shutdown.cancel();
        match self.server.take() {
            Some(h) => tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("serve did not stop within 10 s")
                .unwrap(),
            None => Ok(()),
        }
    }
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A delivery body with one assignee change, the way Asana (and the sim) write it.
pub fn assignee_delivery(task: &str, user: &str, at: &str) -> Vec<u8> {
    delivery(&[(task, user)], at)
}

/// A delivery body with one assignee change per `(task, user)`, all at `at`.
pub fn delivery(changes: &[(&str, &str)], at: &str) -> Vec<u8> {
    let events: Vec<_> = changes
        .iter()
        .map(|(task, user)| {
            serde_json::json!({
                "user": {"gid": "1", "resource_type": "user"},
                "resource": {"gid": task, "resource_type": "task", "resource_subtype": "default_task"},
                "type": "task",
                "action": "changed",
                "parent": null,
                "created_at": at,
                "change": {"field": "assignee", "action": "changed",
                           "new_value": {"gid": user, "resource_type": "user"}}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap()
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    bridge_sim::sign_webhook_body(secret, body)
}

/// Status page credentials of [`TestApp::start_admin`].
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const VIEWER_PASSWORD: &str = "viewer-password-for-tests";

impl TestApp {
    /// The service with the status page on (both users), and idle workers that look for
    /// due jobs only once an hour: a job replayed from the page stays queued (nothing
    /// wakes them but new deliveries), so tests can see it there.
    pub async fn start_admin() -> TestApp {
        Self::start_with(Options {
            tweak: Some(Box::new(|c: &mut ServeConfig| {
                c.admin = bridge_service::config::AdminAuth::from_section(
                    &Default::default(),
                    Some(ADMIN_PASSWORD.to_string().into()),
                    Some(VIEWER_PASSWORD.to_string().into()),
                )
                .unwrap();
                c.poll_interval = Duration::from_secs(3600);
            })),
            ..Options::default()
        })
        .await
    }

    /// Assigns test task `i` to test user `i` in the Asana world (the webhook, if any,
    /// delivers it) and waits for the queue to drain. Returns (task, user, email).
    pub async fn assign(&self, i: usize) -> (String, String, String) {
        let (task, user) = (self.ids.tasks[i].clone(), self.ids.users[i].clone());
        self.asana
            .world(|w| w.assign_task(&task, Some(&user)))
            .unwrap();
        self.settle().await;
        (task, user, self.ids.emails[i].clone())
    }

    /// `n` dead letters: task jobs of the project without a rule (what a worker buries at
    /// once), buried here if no worker took them first. Their ids, oldest first.
    pub async fn dead_letters(&self, n: usize) -> Vec<i64> {
        use bridge_core::domain::{JobKind, JobPayload, Source};
        let before = self.depth().await.dead;
        let jobs: Vec<record::NewJob> = (0..n)
            .map(|i| record::NewJob {
                kind: JobKind::Task,
                resource_gid: self.ids.tasks[i].clone(),
                project_gid: Some(self.ids.project_without_rule.clone()),
                dedupe_key: format!("test-dead-{}-{i}", uuid_like()),
                payload: JobPayload::from_source(Source::Webhook),
            })
            .collect();
        self.svc.store.enqueue(&jobs).await.unwrap();
        for job in self
            .svc
            .store
            .claim(
                n,
                Duration::from_secs(60),
                &bridge_core::record::ReplicaId::new(),
            )
            .await
            .unwrap()
        {
            let error = format!(
                "no [[rules]] entry for project {} in the configuration this service runs with",
                self.ids.project_without_rule
            );
            let fence = self.svc.store.bury(job.lease(), &error).await.unwrap();
            assert_eq!(fence, bridge_core::record::Fence::Held);
        }
        let store = self.svc.store.clone();
        let want = before + n as u64;
        eventually("the dead letters", Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.queue_depth().await.unwrap().dead == want }
        })
        .await;
        let dead = self.svc.store.dead_jobs(10_000).await.unwrap();
        dead[dead.len() - n..].iter().map(|j| j.id).collect()
    }
}

/// A value unique within this process, for dedupe keys.
fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
