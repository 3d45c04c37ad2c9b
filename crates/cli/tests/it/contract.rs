//! Contract check: every request the clients sent during a realistic session conforms to
//! the vendors' OpenAPI documents in `../shared/specs`, as judged by a real validator
//! (`tools/contract/check.py`, openapi-core), and the harness itself can fail.
//!
//! The validator runs in a Python virtual environment made once under
//! `<workspace>/target/contract-venv` from `tools/contract/requirements.txt`; a marker file
//! holding the requirements it was built from skips the install next time. If the venv
//! cannot be built (no Python, no network for pip), this test FAILS, saying why.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use bridge_sim::{log::to_jsonl, seed, AsanaSimOptions, DocSpaceSimOptions, LoggedRequest};

use crate::harness::Sims;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the realistic session against the demo world and returns both request logs.
async fn demo_session() -> Vec<LoggedRequest> {
    let s = Sims::demo().await;
    let ids = s.ids.clone();
    let run = |args: Vec<String>| {
        let cmd = s.cmd().args(args);
        async move { cmd.run().await }
    };
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // One invite per demo case, a room share, a dry run, another user type.
    for (task, code) in [
        (&ids.task_new_assignee, 0),
        (&ids.task_new_assignee, 0),
        (&ids.task_new_assignee_again, 0),
        (&ids.task_active_member, 0),
        (&ids.task_disabled, 1),
        (&ids.task_unassigned, 3),
        (&ids.task_hidden_email, 3),
    ] {
        run(v(&["invite", "--json", "--task", task]))
            .await
            .expect_code(code);
    }
    run(v(&[
        "invite",
        "--task",
        &ids.task_pending,
        "--room",
        &ids.room,
        "--access",
        "editing",
    ]))
    .await
    .expect_code(0);
    run(v(&[
        "invite",
        "--task",
        &ids.task_new_assignee,
        "--room",
        &ids.room,
        "--access",
        "read",
    ]))
    .await
    .expect_code(0);
    run(v(&[
        "invite",
        "--dry-run",
        "--task",
        &ids.task_onboarding_new,
        "--room",
        &ids.room,
        "--access",
        "comment",
    ]))
    .await
    .expect_code(0);
    run(v(&[
        "invite",
        "--task",
        &ids.task_completed,
        "--type",
        "room-admin",
        "--room",
        &ids.room,
        "--access",
        "room-manager",
    ]))
    .await
    .expect_code(0);
    // add-to-workspace: by email, by gid, me.
    for user in ["new.hire@acme.example", ids.user_active.as_str(), "me"] {
        run(v(&[
            "add-to-workspace",
            "--workspace",
            &ids.workspace,
            "--user",
            user,
        ]))
        .await
        .expect_code(0);
    }
    run(v(&["doctor"])).await.expect_code(0);
    // sync --dry-run, then sync, with rules for the demo projects.
    let rules = s.write_file("rules.toml", &s.demo_rules());
    let rules = rules.to_string_lossy().into_owned();
    run(v(&["--config", &rules, "sync", "--dry-run"]))
        .await
        .expect_code(1);
    run(v(&["--config", &rules, "sync", "--json"]))
        .await
        .expect_code(1);

    let mut log = s.asana_requests();
    log.extend(s.docspace_requests());
    log
}

/// A bigger project: paging with `offset`, invitations in batches, shares in one call.
async fn paging_session() -> Vec<LoggedRequest> {
    let (a, d, ids) = seed::bench(230, 12, 0.5);
    let s = Sims::start(
        a,
        d,
        (),
        AsanaSimOptions::default(),
        DocSpaceSimOptions::default(),
    )
    .await;
    let rules = s.write_file(
        "rules.toml",
        &format!(
            "[sync]\ninvite_batch = 4\n\n[[rules]]\nproject = \"{}\"\nroom = \"{}\"\naccess = \"content-creator\"\nuser_type = \"room-admin\"\n",
            ids.project, ids.room
        ),
    );
    s.cmd()
        .arg("--config")
        .arg(&rules)
        .arg("sync")
        .run()
        .await
        .expect_code(0);
    let mut log = s.asana_requests();
    log.extend(s.docspace_requests());
    log
}

/// A project in sections: the sections list, each section's pages (`GET /tasks?section=`),
/// then an incremental re-run (`GET /tasks?project=…&modified_since=…`); then every task
/// unassigned and a full run under `on_unassign = "revoke"`: the removals (access 0).
async fn sections_session() -> Vec<LoggedRequest> {
    let (a, d, ids) = seed::bench_projects(seed::BenchSpec {
        tasks_per_project: 230,
        sections: 3,
        assignees: 12,
        ..seed::BenchSpec::default()
    });
    let s = Sims::start(
        a,
        d,
        (),
        AsanaSimOptions::default(),
        DocSpaceSimOptions::default(),
    )
    .await;
    let rules = s.write_file(
        "rules.toml",
        &format!(
            "[deprovision]\nmax_revocations = 1000\n\n[[rules]]\nproject = \"{}\"\nroom = \"{}\"\non_unassign = \"revoke\"\nrevoke_after = \"0s\"\n",
            ids.project, ids.room
        ),
    );
    for _ in 0..2 {
        s.cmd()
            .arg("--config")
            .arg(&rules)
            .arg("sync")
            .run()
            .await
            .expect_code(0);
    }
    s.asana.world(|w| {
        for t in w.project_task_gids(&ids.project) {
            w.assign_task(&t, None).unwrap();
        }
    });
    s.cmd()
        .arg("--config")
        .arg(&rules)
        .args(["sync", "--full"])
        .run()
        .await
        .expect_code(0);
    assert!(
        s.docspace.world(|w| !w.removals().is_empty()),
        "the session sent removals"
    );
    let mut log = s.asana_requests();
    log.extend(s.docspace_requests());
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_conforms_to_the_vendor_specs() {
    let root = workspace();
    let specs = root.join("../shared/specs");
    assert!(
        specs.join("asana/asana_oas.yaml").is_file(),
        "the vendors' specs are missing at {}",
        specs.display()
    );
    // Build (or reuse) the validator's venv while the sessions run.
    let venv = tokio::task::spawn_blocking({
        let root = root.clone();
        move || ensure_venv(&root)
    });

    let mut log = demo_session().await;
    log.extend(paging_session().await);
    log.extend(sections_session().await);
    let python = venv.await.expect("venv task panicked");

    // What the session must have covered, so the check is not vacuous.
    let has = |service: &str, method: &str, frag: &str| {
        log.iter()
            .any(|r| r.service == service && r.method == method && r.path.contains(frag))
    };
    for (service, method, frag) in [
        ("asana", "GET", "/tasks/"),
        ("asana", "GET", "/users/"),
        ("asana", "POST", "/addUser"),
        ("asana", "GET", "/projects/"),
        ("docspace", "GET", "/people/email"),
        ("docspace", "GET", "/people/filter"),
        ("docspace", "GET", "/people/@self"),
        ("docspace", "POST", "/people/invite"),
        ("docspace", "GET", "/files/rooms/"),
        ("docspace", "PUT", "/share"),
    ] {
        assert!(
            has(service, method, frag),
            "the session sent no {service} {method} *{frag}*"
        );
    }
    assert!(
        log.iter().any(|r| r.query.contains("offset=")),
        "no paged request with offset"
    );
    let asana_get = |path_end: &str, query: &str| {
        log.iter().any(|r| {
            r.service == "asana"
                && r.method == "GET"
                && r.path.ends_with(path_end)
                && r.query.contains(query)
        })
    };
    assert!(
        asana_get("/sections", ""),
        "no GET /projects/{{gid}}/sections"
    );
    assert!(
        asana_get("/api/1.0/tasks", "section="),
        "no GET /tasks?section="
    );
    assert!(
        asana_get("/api/1.0/tasks", "modified_since="),
        "no GET /tasks?project=&modified_since="
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("requests.jsonl");
    fs::write(&good, to_jsonl(&log)).expect("write the log");
    let n = log.len();

    let out = run_check(&python, &root, &specs, &good);
    assert_eq!(out.code, 0, "contract violations:\n{out}");
    let want = format!("contract: {n} requests checked, 0 violations");
    assert!(out.stdout.contains(&want), "expected {want:?}\n{out}");
    assert!(n > 20, "only {n} requests checked");
    eprintln!("{}", out.stdout.lines().last().unwrap_or_default());

    // The harness can fail: a string access level (DocSpace would read an unknown name as
    // "remove the member") must be caught.
    let bad = dir.path().join("bad.jsonl");
    let mut text = to_jsonl(&log);
    let uuid = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    text.push_str(&format!(
        "{{\"service\":\"docspace\",\"method\":\"PUT\",\"path\":\"/api/2.0/files/rooms/10001/share\",\
         \"query\":\"\",\"content_type\":\"application/json\",\
         \"body\":{{\"invitations\":[{{\"id\":\"{uuid}\",\"access\":\"editing\"}}],\"notify\":true}},\
         \"status\":200}}\n"
    ));
    fs::write(&bad, text).expect("write the bad log");
    let out = run_check(&python, &root, &specs, &bad);
    assert_eq!(out.code, 1, "a string access level passed the check\n{out}");
    assert!(
        out.stdout.contains(&format!(
            "contract: {} requests checked, 1 violations",
            n + 1
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains("access: 'editing' is not one of"),
        "{out}"
    );
}

struct CheckOutput {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for CheckOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "check.py exited {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run_check(python: &Path, root: &Path, specs: &Path, log: &Path) -> CheckOutput {
    let out = Command::new(python)
        .arg(root.join("tools/contract/check.py"))
        .arg("--specs")
        .arg(specs)
        .arg(log)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    CheckOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `<workspace>/target/contract-venv` with the pinned requirements installed; returns its
/// Python. Panics with the reason when it cannot be built.
fn ensure_venv(root: &Path) -> PathBuf {
    let target = root.join("target");
    fs::create_dir_all(&target).expect("create target/");
    let venv = target.join("contract-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".requirements-installed");
    let requirements_path = root.join("tools/contract/requirements.txt");
    let requirements = fs::read_to_string(&requirements_path).expect("read requirements.txt");

    let ready =
        || python.is_file() && fs::read_to_string(&marker).ok().as_deref() == Some(&requirements);
    if ready() {
        return python;
    }
    let _lock = Lock::acquire(&target.join("contract-venv.lock"));
    if ready() {
        // Another test process built it while we waited.
        return python;
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).expect("remove a stale contract venv");
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "contract test: `python3 -m venv {}` failed:\n{}",
            venv.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("contract test: cannot run python3 to build the validator's venv: {e}"),
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements_path)
        .output()
        .expect("run pip");
    if !pip.status.success() {
        let _ = fs::remove_dir_all(&venv);
        panic!(
            "contract test: pip could not install {} into {} (is PyPI reachable?). \
             The contract check cannot run without it, so this test fails.\n--- pip stderr ---\n{}",
            requirements_path.display(),
            venv.display(),
            String::from_utf8_lossy(&pip.stderr)
        );
    }
    fs::write(&marker, &requirements).expect("write the venv marker");
    python
}

/// An exclusive lock file (create-new), so two test processes do not build the venv at
/// the same time. A lock older than 15 minutes is taken to be left by a killed run.
struct Lock(PathBuf);

impl Lock {
    fn acquire(path: &Path) -> Lock {
        let deadline = SystemTime::now() + Duration::from_secs(900);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Lock(path.to_path_buf());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(900));
                    if stale {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    assert!(
                        SystemTime::now() < deadline,
                        "contract test: timed out waiting for {}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("contract test: cannot create {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
