//! What only the Postgres backend does: wake-ups across replicas through `LISTEN/NOTIFY`,
//! replicas migrating one fresh database at once, and connection errors that never show
//! a password.

use std::time::Duration;

use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::{self, NewJob, StoreError};

use super::Backend;

fn job(key: &str) -> NewJob {
    NewJob {
        kind: JobKind::Task,
        resource_gid: "1".into(),
        project_gid: Some("2".into()),
        dedupe_key: key.into(),
        payload: JobPayload::from_source(Source::Webhook),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_on_one_replica_wakes_the_workers_of_another() {
    let backend = Backend::postgres().await;
    let (a, b) = tokio::join!(backend.open(), backend.open());
    // Let b's listener connect (it fires once when it does).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wake = b.wakeup();
    let fired = wake.notified();
    tokio::pin!(fired);
    fired.as_mut().enable();
    assert_eq!(a.enqueue(&[job("x")]).await.unwrap(), vec![true]);
    tokio::time::timeout(Duration::from_secs(5), &mut fired)
        .await
        .expect("NOTIFY from replica a reaches replica b's workers");

    // A duplicate creates nothing and wakes nobody needlessly: no assertion on silence
    // (a listener reconnect may fire), only that the dedupe holds across stores.
    assert_eq!(b.enqueue(&[job("x")]).await.unwrap(), vec![false]);
    a.close().await;
    b.close().await;
}

/// How many of `n` idle workers of `store` a wake-up reaches within `wait`.
async fn woken_of(
    store: &dyn record::Store,
    n: usize,
    wait: Duration,
    act: impl std::future::Future<Output = ()>,
) -> usize {
    let wake = store.wakeup();
    let mut waiters: Vec<_> = (0..n).map(|_| Box::pin(wake.notified())).collect();
    for w in &mut waiters {
        w.as_mut().enable();
    }
    act.await;
    let woken = waiters
        .into_iter()
        .map(|w| async move { tokio::time::timeout(wait, w).await.is_ok() });
    futures::future::join_all(woken)
        .await
        .into_iter()
        .filter(|w| *w)
        .count()
}

/// A commit of two new jobs wakes two idle workers on every replica, not all of them: with
/// 16 workers a replica, waking all made every job a storm of claims. The committing
/// replica wakes its own two at its commit and ignores its own notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_one_idle_worker_per_new_job_on_each_replica() {
    let backend = Backend::postgres().await;
    let (a, b) = tokio::join!(backend.open(), backend.open());
    // Let both listeners connect (each fires once when it does).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wait = Duration::from_millis(500);
    let (on_a, on_b) = tokio::join!(
        woken_of(a.as_ref(), 6, wait, async {
            assert_eq!(
                a.enqueue(&[job("one"), job("two")]).await.unwrap(),
                vec![true, true]
            );
        }),
        woken_of(b.as_ref(), 6, wait, async {}),
    );
    assert_eq!((on_a, on_b), (2, 2), "workers woken on a and on b");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_one_fresh_database() {
    let backend = Backend::postgres().await;
    let loc = backend.location();
    let (a, b, c) = tokio::join!(record::open(&loc), record::open(&loc), record::open(&loc));
    for s in [a.unwrap(), b.unwrap(), c.unwrap()] {
        s.ping().await.unwrap();
        s.close().await;
    }
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_an_open_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://bridge:hunter2@127.0.0.1:{port}/state");
    match record::open(&url).await {
        Err(e @ StoreError::Open { .. }) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("127.0.0.1"), "{shown}");
        }
        other => panic!("expected an open error, got {other:?}"),
    }
}
