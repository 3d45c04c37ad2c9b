//! `state migrate --to postgres://…` with the real binary: a SQLite state (ledger, queue,
//! a webhook registration and its secret, sync tokens and marks) copied into a fresh
//! Postgres database; a rerun copies nothing twice; passwords never reach the output.

use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::{self, HistoryFilter, NewJob, NewLedgerEntry, PgStore, Store};
use bridge_sim::postgres::TestDatabase;

use crate::harness::Sims;

fn entry(task: &str) -> NewLedgerEntry {
    NewLedgerEntry {
        run_id: "r1".into(),
        source: Source::Sync,
        task_gid: Some(task.into()),
        assignee_gid: None,
        email: Some(format!("{task}@example.com")),
        target: "portal".parse().unwrap(),
        action: "invite".parse().unwrap(),
        outcome: "invited".parse().unwrap(),
        error: None,
        detail: None,
    }
}

fn job(key: &str) -> NewJob {
    NewJob {
        kind: JobKind::Task,
        resource_gid: "1201".into(),
        project_gid: Some("99".into()),
        dedupe_key: key.into(),
        payload: JobPayload::from_source(Source::Webhook),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_state_is_copied_once_and_a_rerun_copies_nothing() {
    let sims = Sims::demo().await;
    let sqlite = record::open(sims.state_path().to_str().unwrap())
        .await
        .unwrap();
    sqlite
        .record_many(&[entry("1"), entry("2"), entry("3")])
        .await
        .unwrap();
    sqlite.enqueue(&[job("a"), job("b")]).await.unwrap();
    sqlite
        .expect_webhook(
            "hook-1",
            "99",
            "https://bridge.example/webhooks/asana/hook-1",
        )
        .await
        .unwrap();
    assert!(sqlite
        .store_webhook_secret("hook-1", "the-secret")
        .await
        .unwrap());
    sqlite.set_sync_token("99", "tok-1").await.unwrap();
    let t0 = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    sqlite
        .record_full_sync("99:-", "99", "fp", t0)
        .await
        .unwrap();
    sqlite.close().await;

    let db = TestDatabase::create().await;
    // Trust authentication ignores the password; it is only there to be kept out of sight.
    let to = db.url().replacen("postgres@", "postgres:pa55word@", 1);
    assert!(to.contains("pa55word"), "{to}");

    let out = sims
        .cmd()
        .args(["state", "migrate", "--json", "--to", &to])
        .run()
        .await;
    out.expect_code(0);
    let line = out.one();
    assert_eq!(line["copied"]["ledger"], 3, "{line}");
    assert_eq!(line["copied"]["jobs"], 2, "{line}");
    assert_eq!(line["copied"]["webhooks"], 1, "{line}");
    assert_eq!(line["copied"]["sync_tokens"], 1, "{line}");
    assert_eq!(line["copied"]["sync_marks"], 1, "{line}");
    assert!(
        !out.stdout.contains("pa55word") && !out.stderr.contains("pa55word"),
        "{out}"
    );
    assert!(!out.stdout.contains("the-secret"), "{out}");

    // Again: nothing twice.
    let again = sims
        .cmd()
        .args(["state", "migrate", "--to", &to])
        .run()
        .await;
    again.expect_code(0);
    again.stdout_has(&["0 ledger entries", "0 jobs", "everything was already there"]);
    assert!(!again.stdout.contains("pa55word"), "{again}");

    let pg = PgStore::open(db.url()).await.unwrap();
    assert_eq!(
        pg.history(&HistoryFilter::default()).await.unwrap().len(),
        3
    );
    assert_eq!(pg.queue_depth().await.unwrap().queued, 2);
    assert_eq!(
        pg.enqueue(&[job("a")]).await.unwrap(),
        vec![false],
        "dedupe keys came along"
    );
    let hook = pg.webhook("hook-1").await.unwrap().unwrap();
    assert_eq!(hook.secret.as_deref(), Some("the-secret"));
    assert_eq!(pg.sync_token("99").await.unwrap().as_deref(), Some("tok-1"));
    assert_eq!(
        pg.sync_mark("99:-")
            .await
            .unwrap()
            .map(|m| m.full_started_at),
        Some(t0)
    );
    pg.close().await;

    // Not a Postgres URL: a usage error.
    let bad = sims
        .cmd()
        .args(["state", "migrate", "--to", "/tmp/x.db"])
        .run()
        .await;
    bad.expect_code(2).stderr_has(&["postgres://"]);
}
