//! Helpers for the `sync_*` integration tests: both simulators in-process on port 0, the
//! real binary run against them with a clean environment, and readers for its `--json`
//! output and the simulators' logs.
//!
//! Each test file uses a subset of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bridge_sim::{AsanaSim, AsanaSimOptions, AsanaWorld, DocSpaceSim, DocSpaceSimOptions};
use bridge_sim::{Fault, FaultKind, LoggedRequest};
use serde_json::Value;
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_asana-docspace");

/// Longest any one CLI run may take before the test fails instead of hanging.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Both simulators, and a directory for the state database and the config file.
pub struct Env {
    pub asana: AsanaSim,
    pub docspace: DocSpaceSim,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    pub async fn start(
        asana_world: AsanaWorld,
        docspace_world: bridge_sim::DocSpaceWorld,
        asana_opts: AsanaSimOptions,
        docspace_opts: DocSpaceSimOptions,
    ) -> Env {
        let asana = AsanaSim::start(asana_world, asana_opts)
            .await
            .expect("start the Asana sim");
        let docspace = DocSpaceSim::start(docspace_world, docspace_opts)
            .await
            .expect("start the DocSpace sim");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("rules.toml");
        Env {
            asana,
            docspace,
            dir,
            config,
        }
    }

    /// Writes the config file every run of this test uses.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// The binary with a clean environment pointing at the simulators.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            let upper = k.to_ascii_uppercase();
            if upper.starts_with("ASANA_")
                || upper.starts_with("DOCSPACE_")
                || upper.starts_with("ONLYOFFICE_")
                || upper.ends_with("_PROXY")
                || upper == "RUST_LOG"
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("ASANA_BASE_URL", self.asana.base_url())
            .env("ASANA_TOKEN", bridge_sim::seed::DEMO_ASANA_TOKEN)
            .env("DOCSPACE_URL", self.docspace.base_url())
            .env("DOCSPACE_API_KEY", bridge_sim::seed::DEMO_DOCSPACE_KEY)
            .env("ASANA_DOCSPACE_STATE", self.state_path())
            .env("ASANA_DOCSPACE_BACKOFF_MS", "5")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs the binary to completion (at most [`RUN_TIMEOUT`]).
    pub async fn run(&self, args: &[&str]) -> Run {
        let child = self.command(args).spawn().expect("spawn asana-docspace");
        wait(child).await
    }

    /// Every request that could change DocSpace (anything but GET), in order.
    pub fn docspace_writes(&self) -> Vec<LoggedRequest> {
        self.docspace
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// Emails the DocSpace sim sent an invitation e-mail to, in order.
    pub fn invitations_sent(&self) -> Vec<String> {
        self.docspace.world(|w| w.invitations_sent())
    }
}

/// Waits for a spawned run and collects its output.
pub async fn wait(child: Child) -> Run {
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .expect("asana-docspace did not finish in time")
        .expect("wait for asana-docspace");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        code: out.status.code(),
        stdout,
        stderr,
    }
}

/// One finished CLI run.
#[derive(Debug)]
pub struct Run {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Every stdout line as JSON (panics on a line that is not: `--json` promises JSON).
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.describe()))
            })
            .collect()
    }

    /// The `"summary": true` object, which must be the last line.
    pub fn summary(&self) -> Value {
        let lines = self.json_lines();
        let last = lines
            .last()
            .unwrap_or_else(|| panic!("no output\n{}", self.describe()))
            .clone();
        assert_eq!(
            last["summary"],
            Value::Bool(true),
            "the last line is not the summary\n{}",
            self.describe()
        );
        last
    }

    /// `summary.outcomes` as a map (absent outcomes are simply missing).
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        counts(&self.summary()["outcomes"])
    }

    /// `summary.rooms` as a map.
    pub fn room_outcomes(&self) -> BTreeMap<String, u64> {
        counts(&self.summary()["rooms"])
    }

    /// The person lines (those with an `email`), keyed by email.
    pub fn people(&self) -> BTreeMap<String, Value> {
        self.json_lines()
            .into_iter()
            .filter(|l| l.get("summary").is_none())
            .filter_map(|l| Some((l.get("email")?.as_str()?.to_string(), l.clone())))
            .collect()
    }

    pub fn describe(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<String> = s
                .lines()
                .map(|l| l.chars().take(400).collect::<String>())
                .collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "exit: {:?}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.code,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }

    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "{}", self.describe());
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
pub fn new_people(ids: &bridge_sim::seed::BenchIds) -> Vec<String> {
    ids.assignee_emails
        .iter()
        .filter(|e| !ids.existing_emails.contains(e))
        .cloned()
        .collect()
}

/// Whether a path exists (for asserting the state database was created).
pub fn exists(p: &Path) -> bool {
    p.exists()
}
