//! Opening the store: backends by location, migrations, persistence across reopen.

use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::{
    self, default_location, HistoryFilter, NewJob, NewLedgerEntry, SqliteStore, Store, StoreError,
};

fn entry(run: &str) -> NewLedgerEntry {
    NewLedgerEntry {
        run_id: run.into(),
        source: "invite".parse().unwrap(),
        task_gid: Some("1001".into()),
        assignee_gid: Some("2002".into()),
        email: Some("ann@example.com".into()),
        target: "portal".parse().unwrap(),
        action: "invite".parse().unwrap(),
        outcome: "invited".parse().unwrap(),
        error: None,
        detail: None,
    }
}

#[tokio::test]
async fn fresh_file_in_missing_folders_is_created_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/state.db");
    let store = record::open(path.to_str().unwrap()).await.unwrap();
    store.ping().await.unwrap();
    assert!(path.exists());
    store.record(&entry("r1")).await.unwrap();
    // WAL mode: the log file sits beside the database while it is open.
    assert!(dir.path().join("a/b/c/state.db-wal").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "state file must be owner-only, got {mode:o}"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn reopen_is_idempotent_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let loc = path.to_str().unwrap().to_string();

    let store = record::open(&loc).await.unwrap();
    let id = store.record(&entry("run-1")).await.unwrap();
    let created = store
        .enqueue(&[NewJob {
            kind: JobKind::Task,
            resource_gid: "1001".into(),
            project_gid: Some("77".into()),
            dedupe_key: "1001:assignee:2024-01-01T00:00:00Z".into(),
            payload: JobPayload {
                event: Some("x".into()),
                ..JobPayload::from_source(Source::Watch)
            },
        }])
        .await
        .unwrap();
    assert_eq!(created, vec![true]);
    store
        .expect_webhook("wh1", "77", "https://b.example/webhooks/asana/wh1")
        .await
        .unwrap();
    assert!(store.store_webhook_secret("wh1", "s3cr3t").await.unwrap());
    store.set_sync_token("77", "tok-1").await.unwrap();
    store.close().await;
    drop(store);

    // Second and third open: migrations already applied, nothing lost.
    for _ in 0..2 {
        let store = record::open(&loc).await.unwrap();
        let h = store.history(&HistoryFilter::default()).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].id, id);
        assert_eq!(h[0].email.as_deref(), Some("ann@example.com"));
        let depth = store.queue_depth().await.unwrap();
        assert_eq!(depth.queued, 1);
        let wh = store.webhook("wh1").await.unwrap().unwrap();
        assert_eq!(wh.secret.as_deref(), Some("s3cr3t"));
        assert_eq!(
            store.sync_token("77").await.unwrap().as_deref(),
            Some("tok-1")
        );
        // The dedupe key is still known after a restart.
        let again = store
            .enqueue(&[NewJob {
                kind: JobKind::Task,
                resource_gid: "1001".into(),
                project_gid: Some("77".into()),
                dedupe_key: "1001:assignee:2024-01-01T00:00:00Z".into(),
                payload: JobPayload::from_source(Source::Webhook),
            }])
            .await
            .unwrap();
        assert_eq!(again, vec![false]);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_opens_of_a_fresh_file_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("race.db").to_str().unwrap().to_string();
    let (a, b, c) = tokio::join!(record::open(&loc), record::open(&loc), record::open(&loc));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    a.record(&entry("a")).await.unwrap();
    b.record(&entry("b")).await.unwrap();
    assert_eq!(c.history(&HistoryFilter::default()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn sqlite_url_forms_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (i, prefix) in ["sqlite:", "sqlite://", "SQLITE://"].iter().enumerate() {
        let path = dir.path().join(format!("s{i}.db"));
        let loc = format!("{prefix}{}", path.display());
        let store = record::open(&loc).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
        assert!(path.exists(), "{loc}");
    }
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = record::open(":memory:").await.unwrap();
    store.record(&entry("m")).await.unwrap();
    assert_eq!(
        store
            .history(&HistoryFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let s2 = SqliteStore::open_in_memory().await.unwrap();
    // Separate in-memory stores do not share data.
    assert!(s2
        .history(&HistoryFilter::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn unknown_schemes_and_empty_locations_are_unsupported() {
    assert!(record::is_postgres("postgres://u:p@localhost/db"));
    assert!(record::is_postgres("PostgreSQL://localhost/db"));
    assert!(!record::is_postgres("/var/lib/state.db"));
    assert!(matches!(
        record::open("mysql://localhost/db").await,
        Err(StoreError::Unsupported(_))
    ));
    assert!(matches!(
        record::open("  ").await,
        Err(StoreError::Unsupported(_))
    ));
}

#[tokio::test]
async fn closed_store_reports_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = record::open(dir.path().join("c.db").to_str().unwrap())
        .await
        .unwrap();
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
}

#[test]
fn default_location_is_a_db_file() {
    let p = default_location();
    let name = p.file_name().unwrap().to_str().unwrap();
    assert!(name == "state.db" || name == "asana-docspace.db", "{p:?}");
}

#[test]
fn store_is_object_safe_and_shareable() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Store>();
    let _: Option<std::sync::Arc<dyn Store>> = None;
}
