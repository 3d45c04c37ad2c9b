//! Shared harness for the binary's integration tests: start both simulators in-process
//! on loopback (port 0), run the real `asana-docspace` binary against them in a clean
//! environment, and read its exit code, stdout JSON lines and stderr.
//!
//! Every test owns its simulators and its temporary directory (state database, HOME,
//! config files), so tests run in parallel without sharing anything.

// Each test file compiles this module separately and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bridge_sim::seed::{self, DemoIds};
use bridge_sim::{
    AsanaSim, AsanaSimOptions, AsanaWorld, DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld,
    LoggedRequest,
};
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test, built by Cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_asana-docspace");

/// Longest a single run of the binary may take before the test fails (never a hang).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Both simulators, the demo ids, and a private temporary directory.
pub struct Sims {
    pub asana: AsanaSim,
    pub docspace: DocSpaceSim,
    pub ids: DemoIds,
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
        Self::start(a, d, ids, asana_opts, docspace_opts).await
    }

    /// The demo worlds, changed by the test before the simulators start.
    pub async fn demo_edited(
        edit: impl FnOnce(&mut AsanaWorld, &mut DocSpaceWorld, &DemoIds),
    ) -> Sims {
        let (mut a, mut d, ids) = seed::demo();
        edit(&mut a, &mut d, &ids);
        Self::start(
            a,
            d,
            ids,
            AsanaSimOptions::default(),
            DocSpaceSimOptions::default(),
        )
        .await
    }

    pub async fn start(
        asana_world: AsanaWorld,
        docspace_world: DocSpaceWorld,
        ids: DemoIds,
        asana_opts: AsanaSimOptions,
        docspace_opts: DocSpaceSimOptions,
    ) -> Sims {
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
    /// database and the short test backoff.
    pub fn cmd(&self) -> Cmd {
        Cmd::isolated(self.dir.path())
            .env("ASANA_BASE_URL", &self.asana.base_url())
            .env("ASANA_TOKEN", &self.asana_token)
            .env("DOCSPACE_URL", &self.docspace.base_url())
            .env("DOCSPACE_API_KEY", &self.docspace_key)
            .env("ASANA_DOCSPACE_STATE", &self.state_path().to_string_lossy())
    }

    /// Writes `text` to a file in the temporary directory and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
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

    pub fn asana_requests(&self) -> Vec<LoggedRequest> {
        self.asana.requests()
    }

    pub fn docspace_requests(&self) -> Vec<LoggedRequest> {
        self.docspace.requests()
    }

    /// Every DocSpace request that could change something (anything but GET).
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

/// Requests with this method whose path equals or contains `path`.
pub fn matching(requests: &[LoggedRequest], method: &str, path: &str) -> Vec<LoggedRequest> {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.contains(path))
        .cloned()
        .collect()
}

/// A loopback address nobody listens on: bind port 0, note it, close it.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// One run of the binary, built up like `std::process::Command` but with a clean
/// environment: nothing is inherited except `PATH`; `HOME` is the test's own directory.
pub struct Cmd {
    args: Vec<OsString>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
}

impl Cmd {
    /// No credentials, no URLs: only `PATH`, a private `HOME`, and the short backoff.
    pub fn isolated(home: &Path) -> Cmd {
        let mut env = BTreeMap::new();
        if let Ok(path) = std::env::var("PATH") {
            env.insert("PATH".to_string(), path);
        }
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

    /// Runs the binary to completion (at most [`RUN_TIMEOUT`]).
    pub async fn run(self) -> Output {
        let shown = format!(
            "asana-docspace {}",
            self.args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let started = Instant::now();
        let child = tokio::process::Command::new(BIN)
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(RUN_TIMEOUT, child).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("cannot run {shown}: {e}"),
            Err(_) => panic!("{shown} did not finish within {RUN_TIMEOUT:?}"),
        };
        Output {
            command: shown,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

/// What one run produced.
#[derive(Debug)]
pub struct Output {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {} after {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
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
