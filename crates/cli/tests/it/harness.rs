//! The one harness of the binary's integration tests: start both simulators in-process on
//! loopback (port 0), run the real `asana-docspace` binary against them, and read its exit
//! code, stdout JSON lines and stderr.
//!
//! Every test owns its simulators and its temporary directory (state database, HOME,
//! config files), so tests run in parallel without sharing anything.
//!
//! # The environment rule
//!
//! A run of the binary inherits **nothing** from the test process (`env_clear`). It sees
//! exactly:
//!
//! 1. the base every run gets ([`Cmd::isolated`]): `HOME` and `XDG_DATA_HOME` inside the
//!    test's temporary directory (so a default state location never touches a real home)
//!    and `ASANA_DOCSPACE_BACKOFF_MS=5` (retries cost milliseconds);
//! 2. the connection [`Sims::cmd`] adds: `ASANA_BASE_URL`, `ASANA_TOKEN`, `DOCSPACE_URL`,
//!    `DOCSPACE_API_KEY` and `ASANA_DOCSPACE_STATE`, pointing at this test's simulators;
//! 3. whatever the test itself sets or removes with [`Cmd::env`] / [`Cmd::env_remove`].
//!
//! So a developer's `ASANA_TOKEN`, `ONLYOFFICE_API_KEY`, `RUST_LOG` or `HTTP_PROXY` can
//! never change a result, and a test that wants one of them says so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bridge_sim::seed::{self, BenchIds, DemoIds};
use bridge_sim::{
    AsanaSim, AsanaSimOptions, AsanaWorld, DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld, Fault,
    FaultKind, LoggedRequest,
};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Child;

/// The binary under test, built by Cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_asana-docspace");

/// Longest a single run of the binary may take before the test fails (never a hang).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Both simulators, the ids of their world, and a private temporary directory.
///
/// `I` is whatever the test knows about the world: [`DemoIds`] for `seed::demo()` (the
/// default), or `()` when the test keeps its own ids.
pub struct Sims<I = DemoIds> {
    pub asana: AsanaSim,
    pub docspace: DocSpaceSim,
    pub ids: I,
    pub dir: TempDir,
    /// The token the binary is given (`ASANA_TOKEN`).
    pub asana_token: String,
    /// The key the binary is given (`DOCSPACE_API_KEY`).
    pub docspace_key: String,
}

impl Sims {
    /// The seeded demo worlds with the demo credentials.
    pub async fn demo() -> Sims {
        Self::demo_with(AsanaSimOptions::default(), DocSpaceSimOptions::default()).await
    }

    /// The seeded demo worlds with custom simulator options. The binary is given the first
    /// accepted token / key of the options (admin tokens first).
    pub async fn demo_with(asana_opts: AsanaSimOptions, docspace_opts: DocSpaceSimOptions) -> Sims {
        let (a, d, ids) = seed::demo();
        Sims::start(a, d, ids, asana_opts, docspace_opts).await
    }

    /// The demo worlds, changed by the test before the simulators start.
    pub async fn demo_edited(
        edit: impl FnOnce(&mut AsanaWorld, &mut DocSpaceWorld, &DemoIds),
    ) -> Sims {
        let (mut a, mut d, ids) = seed::demo();
        edit(&mut a, &mut d, &ids);
        Sims::start(
            a,
            d,
            ids,
            AsanaSimOptions::default(),
            DocSpaceSimOptions::default(),
        )
        .await
    }

    /// The demo rules: Website → the room at editing, Onboarding → portal only,
    /// Board minutes → a project the token cannot read.
    pub fn demo_rules(&self) -> String {
        format!(
            "[[rules]]\nproject = \"{}\"\nroom = \"{}\"\naccess = \"editing\"\n\n\
             [[rules]]\nproject = \"{}\"\n\n[[rules]]\nproject = \"{}\"\n",
            self.ids.project_website,
            self.ids.room,
            self.ids.project_onboarding,
            self.ids.project_restricted
        )
    }
}

impl<I> Sims<I> {
    /// Starts both simulators on port 0. The binary is given the first accepted token /
    /// key of the options (admin tokens first), or the demo credentials.
    pub async fn start(
        asana_world: AsanaWorld,
        docspace_world: DocSpaceWorld,
        ids: I,
        asana_opts: AsanaSimOptions,
        docspace_opts: DocSpaceSimOptions,
    ) -> Sims<I> {
        let asana_token = asana_opts
            .tokens
            .first()
            .or(asana_opts.non_admin_tokens.first())
            .cloned()
            .unwrap_or_else(|| seed::DEMO_ASANA_TOKEN.to_string());
        let docspace_key = docspace_opts
            .api_keys
            .first()
            .cloned()
            .unwrap_or_else(|| seed::DEMO_DOCSPACE_KEY.to_string());
        let asana = AsanaSim::start(asana_world, asana_opts)
            .await
            .expect("start the Asana simulator");
        let docspace = DocSpaceSim::start(docspace_world, docspace_opts)
            .await
            .expect("start the DocSpace simulator");
        Sims {
            asana,
            docspace,
            ids,
            dir: tempfile::tempdir().expect("temporary directory"),
            asana_token,
            docspace_key,
        }
    }

    /// The state database this test's runs share (inside the temporary directory).
    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// A command with the full, correct environment: both URLs, both credentials, the state
    /// database (and the base of [`Cmd::isolated`]).
    pub fn cmd(&self) -> Cmd {
        Cmd::isolated(self.dir.path())
            .env("ASANA_BASE_URL", &self.asana.base_url())
            .env("ASANA_TOKEN", &self.asana_token)
            .env("DOCSPACE_URL", &self.docspace.base_url())
            .env("DOCSPACE_API_KEY", &self.docspace_key)
            .env("ASANA_DOCSPACE_STATE", &self.state_path().to_string_lossy())
    }

    /// The config file [`Sims::write_config`] writes and [`Sims::configured`] passes.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Writes the config file every [`Sims::configured`] run of this test uses.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write the config file");
    }

    /// [`Sims::cmd`] with `--config` (the file [`Sims::write_config`] wrote), then `args`.
    pub fn configured(&self, args: &[&str]) -> Cmd {
        self.cmd()
            .arg("--config")
            .arg(self.config_path())
            .args(args.iter().copied())
    }

    /// Runs [`Sims::configured`] to completion (at most [`RUN_TIMEOUT`]).
    pub async fn run(&self, args: &[&str]) -> Output {
        self.configured(args).run().await
    }

    /// Writes `text` to a file in the temporary directory and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    pub fn asana_requests(&self) -> Vec<LoggedRequest> {
        self.asana.requests()
    }

    pub fn docspace_requests(&self) -> Vec<LoggedRequest> {
        self.docspace.requests()
    }

    /// Every DocSpace request that could change something (anything but GET), in order.
    pub fn docspace_writes(&self) -> Vec<LoggedRequest> {
        self.docspace
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// `POST /api/2.0/people/invite` requests received.
    pub fn invite_posts(&self) -> Vec<LoggedRequest> {
        matching(&self.docspace.requests(), "POST", "/api/2.0/people/invite")
    }

    /// `PUT /api/2.0/files/rooms/{id}/share` requests received.
    pub fn share_puts(&self) -> Vec<LoggedRequest> {
        self.docspace
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with("/share"))
            .collect()
    }

    /// Emails the DocSpace simulator sent an invitation e-mail to, in order.
    pub fn invitations_sent(&self) -> Vec<String> {
        self.docspace.world(|w| w.invitations_sent())
    }

    /// Total requests both simulators received.
    pub fn request_count(&self) -> usize {
        self.asana.requests().len() + self.docspace.requests().len()
    }
}

/// A world of one project ("Launch") with `people` users (`p{i}@acme.example`) and `tasks`
/// unassigned tasks, for the service tests that assign tasks while `serve` runs.
pub struct People {
    pub project: String,
    pub users: Vec<String>,
    pub emails: Vec<String>,
    pub tasks: Vec<String>,
}

impl People {
    pub fn world(people: usize, tasks: usize) -> (AsanaWorld, People) {
        let mut w = AsanaWorld::new();
        let ws = w.add_workspace("Acme");
        let project = w.add_project(&ws, "Launch");
        let mut users = Vec::new();
        let mut emails = Vec::new();
        for i in 0..people {
            let email = format!("p{i}@acme.example");
            users.push(w.add_user(&ws, &format!("P {i}"), Some(&email)));
            emails.push(email);
        }
        let tasks = (0..tasks)
            .map(|i| w.add_task(&project, &format!("T{i}"), None))
            .collect();
        (
            w,
            People {
                project,
                users,
                emails,
                tasks,
            },
        )
    }
}

/// Requests with this method whose path equals or contains `path`.
pub fn matching(requests: &[LoggedRequest], method: &str, path: &str) -> Vec<LoggedRequest> {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.contains(path))
        .cloned()
        .collect()
}

/// A free loopback port: bind port 0, note it, close it.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A loopback address nobody listens on.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// One run of the binary, built up like `std::process::Command`, under the environment
/// rule of this module.
pub struct Cmd {
    args: Vec<OsString>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
}

impl Cmd {
    /// No credentials, no URLs: a private `HOME` / `XDG_DATA_HOME` and the short backoff.
    pub fn isolated(home: &Path) -> Cmd {
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
        env.insert(
            "XDG_DATA_HOME".into(),
            home.join("xdg-data").to_string_lossy().into_owned(),
        );
        env.insert("ASANA_DOCSPACE_BACKOFF_MS".into(), "5".into());
        Cmd {
            args: Vec::new(),
            env,
            cwd: home.to_path_buf(),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// `asana-docspace ARGS…`, for messages.
    fn shown(&self) -> String {
        format!(
            "asana-docspace {}",
            self.args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    fn spawn_with(self, stdout: Stdio, stderr: Stdio) -> Running {
        let command = self.shown();
        let started = Instant::now();
        let child = tokio::process::Command::new(BIN)
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        Running {
            child,
            command,
            started,
        }
    }

    /// Starts the binary; [`Running::output`] collects what it printed.
    pub fn spawn(self) -> Running {
        self.spawn_with(Stdio::piped(), Stdio::piped())
    }

    /// Starts a long-running binary (`serve`): stdout discarded, stderr shown with the
    /// test's output, so nothing fills a pipe nobody reads.
    pub fn spawn_server(self) -> Running {
        self.spawn_with(Stdio::null(), Stdio::inherit())
    }

    /// Starts `serve` (already given `--listen 127.0.0.1:{port}`) as [`Cmd::spawn_server`]
    /// does, and returns once its `/healthz` answers 200 (failing the test after `limit`).
    pub async fn spawn_healthy(self, port: u16, limit: Duration) -> Running {
        let child = self.spawn_server();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://127.0.0.1:{port}/healthz");
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status() == 200 {
                    return child;
                }
            }
            assert!(Instant::now() < deadline, "serve did not become healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the binary to completion (at most [`RUN_TIMEOUT`]).
    pub async fn run(self) -> Output {
        self.spawn().output().await
    }
}

/// A started run. Derefs to the child process (`id`, `try_wait`, `start_kill`, `wait`).
pub struct Running {
    child: Child,
    command: String,
    started: Instant,
}

impl Running {
    /// Waits for the run (at most [`RUN_TIMEOUT`]) and collects its output.
    pub async fn output(self) -> Output {
        let Running {
            child,
            command,
            started,
        } = self;
        let out = match tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("cannot wait for {command}: {e}"),
            Err(_) => panic!("{command} did not finish within {RUN_TIMEOUT:?}"),
        };
        Output {
            command,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

impl Running {
    /// Kills the process with SIGKILL and checks that the signal is what ended it.
    pub async fn sigkill(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
}

impl Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// What one run produced.
#[derive(Debug)]
pub struct Output {
    pub command: String,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// The last 40 lines of `s`, each cut at 400 characters (a big `sync` prints thousands).
fn tail(s: &str) -> String {
    let lines: Vec<String> = s
        .lines()
        .map(|l| l.chars().take(400).collect::<String>())
        .collect();
    let mut out = lines[lines.len().saturating_sub(40)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?} after {:?}\n--- stdout (tail) ---\n{}--- stderr (tail) ---\n{}",
            self.command,
            self.code,
            self.elapsed,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

impl Output {
    /// Panics with the output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }

    /// Every non-empty stdout line parsed as a JSON object (panics on anything else: with
    /// `--json`, stdout is JSON lines only).
    #[track_caller]
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}\n{self}"));
                assert!(v.is_object(), "stdout line is not an object: {l:?}\n{self}");
                v
            })
            .collect()
    }

    /// The single JSON line an `invite --json` prints.
    #[track_caller]
    pub fn one(&self) -> Value {
        let lines = self.json();
        assert_eq!(lines.len(), 1, "expected exactly one JSON line\n{self}");
        lines.into_iter().next().unwrap_or(Value::Null)
    }

    /// The `"summary": true` object of a `sync --json`, which must be the last line.
    #[track_caller]
    pub fn summary(&self) -> Value {
        let lines = self.json();
        let last = lines
            .last()
            .unwrap_or_else(|| panic!("no output\n{self}"))
            .clone();
        assert_eq!(
            last["summary"],
            Value::Bool(true),
            "the last line is not the summary\n{self}"
        );
        last
    }

    /// `summary.outcomes` as a map (absent outcomes are simply missing).
    #[track_caller]
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        counts(&self.summary()["outcomes"])
    }

    /// `summary.rooms` as a map.
    #[track_caller]
    pub fn room_outcomes(&self) -> BTreeMap<String, u64> {
        counts(&self.summary()["rooms"])
    }

    /// The person lines of a `sync --json` (those with an `email`), keyed by email.
    #[track_caller]
    pub fn people(&self) -> BTreeMap<String, Value> {
        self.json()
            .into_iter()
            .filter(|l| l.get("summary").is_none())
            .filter_map(|l| Some((l.get("email")?.as_str()?.to_string(), l.clone())))
            .collect()
    }

    /// Panics unless stderr contains every fragment.
    #[track_caller]
    pub fn stderr_has(&self, fragments: &[&str]) -> &Self {
        for f in fragments {
            assert!(self.stderr.contains(f), "stderr lacks {f:?}\n{self}");
        }
        self
    }

    /// Panics unless stdout contains every fragment.
    #[track_caller]
    pub fn stdout_has(&self, fragments: &[&str]) -> &Self {
        for f in fragments {
            assert!(self.stdout.contains(f), "stdout lacks {f:?}\n{self}");
        }
        self
    }
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The `--json` contract every per-task / per-person line must meet: `task`, `email`
/// (string or null), a known `outcome`, and `error` exactly when failed.
#[track_caller]
pub fn assert_contract_line(v: &Value) {
    const OUTCOMES: [&str; 7] = [
        "invited",
        "already_member",
        "already_invited",
        "dry_run",
        "no_assignee",
        "email_hidden",
        "failed",
    ];
    assert!(v["task"].is_string(), "`task` missing: {v}");
    assert!(
        v.get("email").is_some_and(|e| e.is_string() || e.is_null()),
        "`email` missing: {v}"
    );
    let outcome = v["outcome"].as_str().unwrap_or_default();
    assert!(OUTCOMES.contains(&outcome), "unknown outcome: {v}");
    if outcome == "failed" {
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "failed without `error`: {v}"
        );
    } else {
        assert!(v.get("error").is_none(), "`error` on a non-failure: {v}");
    }
}

/// A rules file with one rule per `(project, room)`, every room at `editing`.
pub fn rules(projects: &[(&str, Option<&str>)]) -> String {
    let mut out = String::new();
    for (project, room) in projects {
        out.push_str(&format!("[[rules]]\nproject = \"{project}\"\n"));
        if let Some(room) = room {
            out.push_str(&format!("room = \"{room}\"\naccess = \"editing\"\n"));
        }
        out.push('\n');
    }
    out
}

/// Faults hitting every request with *marginal* probabilities `p_5xx`, `p_429` and
/// `p_drop`. The sim draws each matching fault in order and stops at the first that
/// fires, so later faults get their probability conditioned on the earlier ones not firing.
pub fn storm(p_5xx: f64, p_429: f64, p_drop: f64) -> Vec<Fault> {
    let f429 = p_429 / (1.0 - p_5xx);
    let fdrop = p_drop / (1.0 - p_5xx - p_429);
    vec![
        Fault::status(503).with_probability(p_5xx),
        // No `Retry-After`: Asana's concurrency 429s come without one, and it keeps the
        // test fast (the client backs off 5 ms here).
        Fault::new(FaultKind::Status {
            code: 429,
            retry_after: None,
        })
        .with_probability(f429),
        Fault::drop_connection().with_probability(fdrop),
    ]
}

/// Asserts that `sent` holds each of `expected` exactly once and nothing else.
#[track_caller]
pub fn assert_each_once(sent: &[String], expected: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in sent {
        *counts.entry(e.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "invited more than once: {twice:?}");
    let mut got: Vec<&str> = counts.keys().copied().collect();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    let missing: Vec<_> = want.iter().filter(|e| !got.contains(e)).collect();
    let extra: Vec<_> = got.iter().filter(|e| !want.contains(e)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "invitations differ from the new assignees: missing {missing:?}, unexpected {extra:?}"
    );
}

/// The assignees of a `seed::bench` world that are not yet in DocSpace.
pub fn new_people(ids: &BenchIds) -> Vec<String> {
    ids.assignee_emails
        .iter()
        .filter(|e| !ids.existing_emails.contains(e))
        .cloned()
        .collect()
}
