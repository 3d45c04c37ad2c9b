//! The fault suite: the real service against the simulators, each case ending with the
//! service answering and nothing it acknowledged lost.
//!
//! - the state database cannot write (a store fault hook; a disk that really fills up);
//! - the state database is locked by another connection for 10 s;
//! - slow and silent clients, a full connection cap, shutdown with a client mid-request;
//! - malformed events beside valid ones, too many events in one delivery;
//! - DocSpace slower than the client's timeout; Asana down for a job's whole retry window.
//!
//! (The real binary's side — SIGTERM with a partial request, `--config /dev/zero` — is in
//! `crates/cli/tests/it/serve_faults.rs`.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridge_service::ServeConfig;
use bridge_sim::Fault;
use sqlx::{Connection, Executor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::faulty_store::WriteFaults;
use crate::support::{assignee_delivery, delivery, eventually, sign, Options, TestApp};

const AT: &str = "2024-05-01T10:00:00.000Z";

impl TestApp {
    /// `GET /healthz`: status and body.
    async fn healthz(&self) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(self.url("/healthz"))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Posts a delivery signed with `secret` and returns the status.
    async fn deliver(&self, id: &str, secret: &str, body: &[u8]) -> u16 {
        self.post_delivery(id, body.to_vec(), Some(&sign(secret, body)))
            .await
            .status()
            .as_u16()
    }

    /// Waits until test users `0..n`, and only they, were invited (once each), then
    /// checks the service reports itself healthy again.
    async fn await_invited(&self, n: usize) {
        let want: Vec<String> = self.ids.emails[..n].to_vec();
        eventually("the invitations", Duration::from_secs(20), || async {
            let mut got = self.invitations();
            got.sort();
            got == want
        })
        .await;
        let (status, health) = self.healthz().await;
        assert_eq!(status, 200, "{health}");
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Assigns test tasks `0..n` to test users `0..n` in the Asana world *before* a webhook
    /// exists (so the sim delivers nothing), then registers one: the test sends the
    /// deliveries itself, and the workers, re-reading each task, find the assignee.
    /// Returns the registration id and its secret.
    async fn assigned_then_webhook(&self, n: usize) -> (String, String) {
        for i in 0..n {
            let (task, user) = (&self.ids.tasks[i], &self.ids.users[i]);
            self.asana
                .world(|w| w.assign_task(task, Some(user)))
                .unwrap();
        }
        let created = self.create_webhook().await;
        let secret = self.secret(&created.id).await;
        (created.id, secret)
    }
}

/// The test service with `tweak` applied to its config.
async fn tweaked(tweak: impl FnOnce(&mut ServeConfig) + Send + 'static) -> TestApp {
    TestApp::start_with(Options {
        tweak: Some(Box::new(tweak)),
        ..Options::default()
    })
    .await
}

/// A connection that sent a delivery's head (declaring 100 bytes of body) and four
/// bytes of its body, then stalls.
async fn stalled_body(app: &TestApp, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(app.addr()).await.unwrap();
    let head = format!(
        "POST /webhooks/asana/{id} HTTP/1.1\r\nHost: b\r\nX-Hook-Signature: {}\r\n\
         Content-Length: 100\r\n\r\n{{\"ev",
        "0".repeat(64)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Asserts `/healthz` is 503 and names the database as the reason.
fn assert_database_unhealthy(status: u16, body: &serde_json::Value) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert_eq!(body["database"]["ok"], false, "{body}");
}

#[tokio::test]
async fn a_store_that_cannot_write_answers_503_and_deliveries_are_stored_once_it_can() {
    let faults = WriteFaults::default();
    let app = TestApp::start_with(Options {
        wrap_store: Some(faults.wrapper()),
        ..Options::default()
    })
    .await;
    let (id, secret) = app.assigned_then_webhook(1).await;
    let body = assignee_delivery(&app.ids.tasks[0], &app.ids.users[0], AT);

    faults.fail_writes(true);
    assert_eq!(app.deliver(&id, &secret, &body).await, 503);
    let (status, health) = app.healthz().await;
    assert_database_unhealthy(status, &health);
    let error = health["database"]["error"].as_str().unwrap();
    assert!(error.contains("write"), "{error}");
    assert_eq!(app.depth().await.queued, 0, "nothing was stored");
    assert!(faults.refused() > 0);

    // The store can write again: Asana's retry of the same delivery is stored and worked.
    faults.fail_writes(false);
    assert_eq!(app.deliver(&id, &secret, &body).await, 200);
    eventually("the invitation", Duration::from_secs(10), || async {
        app.invitations() == vec![app.ids.emails[0].clone()]
    })
    .await;
    let (status, health) = app.healthz().await;
    assert_eq!(status, 200, "{health}");
}

/// A tmpfs of `size` mounted on a temp dir; unmounted (lazily, the service may still hold
/// files) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) when this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0");
        if !root {
            eprintln!(
                "SKIPPED: mounting a tmpfs to fill needs root (this test runs as another user)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: mount -t tmpfs failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write_all(&block).and_then(|()| f.flush()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last partial block, byte by byte.
    while f.write_all(&[0]).and_then(|()| f.flush()).is_ok() {}
}

/// Checkpoints the WAL into the database file and truncates it, from a connection of
/// its own, so that the service's next commit needs new blocks on the disk.
async fn truncate_wal(state: &Path) {
    let url = format!("sqlite://{}", state.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for _ in 0..200 {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut c)
            .await
            .unwrap();
        if busy == 0 {
            c.close().await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the WAL could not be checkpointed");
}

#[tokio::test]
async fn a_full_disk_answers_503_and_deliveries_are_stored_again_once_space_is_freed() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let state: PathBuf = disk.path().join("state.db");
    let app = TestApp::start_with(Options {
        state: Some(state.clone()),
        ..Options::default()
    })
    .await;
    let (id, secret) = app.assigned_then_webhook(3).await;
    let bodies: Vec<Vec<u8>> = (0..3)
        .map(|i| assignee_delivery(&app.ids.tasks[i], &app.ids.users[i], AT))
        .collect();

    truncate_wal(&state).await;
    let ballast = disk.path().join("ballast");
    fill(&ballast);
    for body in &bodies {
        assert_eq!(
            app.deliver(&id, &secret, body).await,
            503,
            "a delivery was acknowledged on a full disk"
        );
    }
    let (status, health) = app.healthz().await;
    assert_database_unhealthy(status, &health);
    let error = health["database"]["error"].as_str().unwrap();
    assert!(error.contains("full"), "{error}");

    // Space again: without a restart, Asana's retries are stored within seconds (before
    // the fix, the write connection stayed "inside" the transaction SQLite had already
    // rolled back, and every later delivery failed).
    std::fs::remove_file(&ballast).unwrap();
    let started = Instant::now();
    for body in &bodies {
        let mut status = 0;
        while started.elapsed() < Duration::from_secs(10) {
            status = app.deliver(&id, &secret, body).await;
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            status, 200,
            "deliveries are still refused after space was freed"
        );
    }
    app.await_invited(3).await;
    drop(app);
}

#[tokio::test]
async fn a_database_locked_by_another_connection_for_10_s_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let app = TestApp::start_with(Options {
        state: Some(state.clone()),
        ..Options::default()
    })
    .await;
    let (id, secret) = app.assigned_then_webhook(4).await;

    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", state.display()))
        .await
        .unwrap();
    locker.execute("BEGIN EXCLUSIVE").await.unwrap();
    let locked_at = Instant::now();

    // Four deliveries during the lock, each retried like Asana does until it is a 200.
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let body = assignee_delivery(&app.ids.tasks[i], &app.ids.users[i], AT);
            let (url, http, secret) = (
                app.url(&format!("/webhooks/asana/{}", id)),
                app.http.clone(),
                secret.clone(),
            );
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let status = http
                        .post(&url)
                        .header("X-Hook-Signature", sign(&secret, &body))
                        .body(body.clone())
                        .timeout(Duration::from_secs(20))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    answers.push((Instant::now(), status));
                    if status == 200 {
                        return answers;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        })
        .collect();
    let (status, health) = app.healthz().await;
    assert_database_unhealthy(status, &health);

    tokio::time::sleep(Duration::from_secs(10).saturating_sub(locked_at.elapsed())).await;
    let released_at = Instant::now();
    locker.execute("ROLLBACK").await.unwrap();
    drop(locker);

    for s in senders {
        let answers = tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("a delivery was never stored after the lock ended")
            .unwrap();
        for (at, status) in &answers {
            assert!(
                *status == 200 || *status == 503,
                "unexpected answer {status}"
            );
            if *status == 200 {
                assert!(
                    *at >= released_at,
                    "a 200 while the database could not write"
                );
            }
        }
        assert!(
            answers.iter().any(|(_, s)| *s == 503),
            "the lock had no effect: {answers:?}"
        );
    }
    app.await_invited(4).await;
}

/// Reads until the server closes the connection; `false` if it is still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {} // e.g. a 408 before the close
        }
    }
}

#[tokio::test]
async fn slow_and_silent_clients_do_not_starve_healthz_and_are_closed_after_the_timeout() {
    let app = tweaked(|c| {
        c.header_read_timeout = Duration::from_secs(5);
    })
    .await;
    let (id, secret) = app.assigned_then_webhook(1).await;

    let mut slow = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(app.addr()).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /webhooks/asana/x HTTP/1.1\r\nHost: bridge\r\nContent-Le")
                .await
                .unwrap();
        }
        slow.push(s);
    }
    let (status, health) = app.healthz().await;
    assert_eq!(status, 200, "{health}");
    let m = app.metrics().await;
    let open: i64 = m
        .lines()
        .find_map(|l| l.strip_prefix("asana_docspace_connections_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connections_open gauge: {m}"));
    assert!(open > 300, "{open} connections open, 300 of them slow");
    let body = assignee_delivery(&app.ids.tasks[0], &app.ids.users[0], AT);
    assert_eq!(app.deliver(&id, &secret, &body).await, 200);
    eventually("the invitation", Duration::from_secs(10), || async {
        app.invitations() == vec![app.ids.emails[0].clone()]
    })
    .await;

    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(20)).await,
            "a silent or half-header connection is still open"
        );
    }
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let app = tweaked(|c| {
        c.header_read_timeout = Duration::from_secs(60);
        c.keep_alive_timeout = Duration::from_secs(1);
    })
    .await;
    let mut s = TcpStream::connect(app.addr()).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bridge\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then (the header timeout being a minute) the keep-alive timeout
    // closes the idle connection.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("# EOF") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert!(closed_within(&mut s, Duration::from_secs(20)).await);
}

#[tokio::test]
async fn beyond_the_connection_cap_clients_wait_until_a_slot_frees() {
    let app = tweaked(|c| {
        c.max_connections = 8;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(app.addr()).await.unwrap());
    }
    // Every slot is held: a ninth client is not served (it waits in the accept queue).
    let held = app
        .http
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(held.is_err(), "served beyond the cap: {held:?}");
    // One silent client leaves: the next one is served.
    drop(silent.pop());
    let (status, health) = app.healthz().await;
    assert_eq!(status, 200, "{health}");
}

#[tokio::test]
async fn shutdown_ends_within_the_grace_period_with_a_client_holding_a_partial_request() {
    let mut app = tweaked(|c| {
        c.shutdown_grace = Duration::from_secs(1);
        c.header_read_timeout = Duration::from_secs(600);
        c.body_timeout = Duration::from_secs(600);
    })
    .await;
    let created = app.create_webhook().await;
    // One client stuck in its header, one stuck in its body.
    let mut head = TcpStream::connect(app.addr()).await.unwrap();
    head.write_all(b"POST /webhooks/asana/x HTTP/1.1\r\nHost: b")
        .await
        .unwrap();
    let mut body = stalled_body(&app, &created.id).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.stop().await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "shutdown took {took:?} with a 1 s grace"
    );
    assert!(closed_within(&mut head, Duration::from_secs(5)).await);
    assert!(closed_within(&mut body, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_stores_nothing() {
    let app = tweaked(|c| {
        c.body_timeout = Duration::from_secs(1);
    })
    .await;
    let created = app.create_webhook().await;
    let mut s = stalled_body(&app, &created.id).await;
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .expect("no answer to a body that stalled")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(app.metrics().await.contains("reason=\"body_timeout\"} 1"));
}

#[tokio::test]
async fn a_malformed_event_is_counted_and_skipped_while_the_valid_ones_beside_it_are_stored() {
    let app = TestApp::start().await;
    let (id, secret) = app.assigned_then_webhook(2).await;
    let good: serde_json::Value = serde_json::from_slice(&delivery(
        &[
            (app.ids.tasks[0].as_str(), app.ids.users[0].as_str()),
            (app.ids.tasks[1].as_str(), app.ids.users[1].as_str()),
        ],
        AT,
    ))
    .unwrap();
    let mut events = good["events"].as_array().unwrap().clone();
    // A wrong-typed field: the gid as a number.
    let mut bad = events[0].clone();
    bad["resource"]["gid"] = serde_json::json!(12345);
    events.insert(1, bad);
    let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();

    assert_eq!(app.deliver(&id, &secret, &body).await, 200);
    app.await_invited(2).await;
    // The redelivery Asana may send is the same: answered the same, nothing twice.
    assert_eq!(app.deliver(&id, &secret, &body).await, 200);
    app.settle().await;
    assert_eq!(app.invitations().len(), 2);
    let m = app.metrics().await;
    assert!(m.contains("asana_docspace_events_malformed_total 2"), "{m}");
}

#[tokio::test]
async fn a_delivery_with_more_events_than_the_cap_is_413_and_stores_nothing() {
    let app = tweaked(|c| c.max_events_per_delivery = 3).await;
    let created = app.create_webhook().await;
    let secret = app.secret(&created.id).await;
    let pairs: Vec<(&str, &str)> = (0..4)
        .map(|i| (app.ids.tasks[i].as_str(), app.ids.users[i].as_str()))
        .collect();
    assert_eq!(
        app.deliver(&created.id, &secret, &delivery(&pairs, AT))
            .await,
        413
    );
    assert_eq!(app.depth().await.queued, 0);
    assert_eq!(
        app.deliver(&created.id, &secret, &delivery(&pairs[..3], AT))
            .await,
        200
    );
    assert!(app
        .metrics()
        .await
        .contains("reason=\"too_many_events\"} 1"));
}

#[tokio::test]
async fn docspace_slower_than_the_client_timeout_is_retried_and_invites_once() {
    let app = TestApp::start_with(Options {
        docspace_timeout: Some(Duration::from_millis(300)),
        ..Options::default()
    })
    .await;
    app.create_webhook().await;
    // Every DocSpace request answers after a second, three times over: the client gives
    // up on each (and on its own retries), the job is retried on the queue's schedule.
    app.docspace
        .set_faults(vec![Fault::delay(Duration::from_secs(1)).times(3)]);
    let (task, user) = (app.ids.tasks[0].clone(), app.ids.users[0].clone());
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    eventually("the invitation", Duration::from_secs(20), || async {
        !app.invitations().is_empty()
    })
    .await;
    app.settle().await;
    // A timed-out request DocSpace still carried out is found on the next read: once.
    assert_eq!(app.invitations(), vec![app.ids.emails[0].clone()]);
    let m = app.metrics().await;
    assert!(m.contains("jobs_finished_total{result=\"retry\"}"), "{m}");
    let (status, health) = app.healthz().await;
    assert_eq!(status, 200, "{health}");
}

#[tokio::test]
async fn asana_down_for_a_jobs_whole_retry_window_ends_as_a_replayable_dead_letter() {
    let app = TestApp::start().await; // 3 attempts, 20 ms apart
    let (id, secret) = app.assigned_then_webhook(1).await;
    app.asana
        .set_faults(vec![Fault::status(503).on_path("/tasks/")]);
    let body = assignee_delivery(&app.ids.tasks[0], &app.ids.users[0], AT);
    assert_eq!(app.deliver(&id, &secret, &body).await, 200);
    eventually("a dead letter", Duration::from_secs(20), || async {
        app.depth().await.dead == 1
    })
    .await;
    let dead = app.svc.store.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].resource_gid, app.ids.tasks[0]);
    assert_eq!(dead[0].attempts, 3);
    let error = dead[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("503"), "{error}");
    assert!(app.invitations().is_empty());
    let (status, health) = app.healthz().await;
    assert_eq!(status, 200, "the service itself is fine: {health}");

    // Asana is back; the operator replays: the event acknowledged hours ago is worked.
    app.asana.set_faults(vec![]);
    assert_eq!(app.svc.store.replay_dead().await.unwrap(), 1);
    eventually(
        "the invitation after replay",
        Duration::from_secs(10),
        || async { app.invitations() == vec![app.ids.emails[0].clone()] },
    )
    .await;
    app.settle().await;
    assert_eq!(app.depth().await.dead, 0);
}
