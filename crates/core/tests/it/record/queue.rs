//! Durable work queue: dedupe, claim under concurrency, leases, retry/bury/replay, release.

use std::{collections::HashSet, time::Duration};

use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::{self, JobState, NewJob, QueueDepth, StoreError};
use chrono::Utc;

use crate::support::store;

const LEASE: Duration = Duration::from_secs(60);

fn job(key: &str) -> NewJob {
    NewJob {
        kind: JobKind::Task,
        resource_gid: format!("r-{key}"),
        project_gid: Some("p1".into()),
        dedupe_key: key.into(),
        payload: JobPayload {
            event: Some(format!("k-{key}")),
            ..JobPayload::from_source(Source::Webhook)
        },
    }
}

#[tokio::test]
async fn enqueue_dedupes_within_a_batch_and_across_calls() {
    let (_d, s) = store().await;
    let first = s
        .enqueue(&[job("a"), job("b"), job("a"), job("c")])
        .await
        .unwrap();
    assert_eq!(first, vec![true, true, false, true]);
    let second = s.enqueue(&[job("c"), job("d"), job("a")]).await.unwrap();
    assert_eq!(second, vec![false, true, false]);
    assert_eq!(s.enqueue(&[]).await.unwrap(), Vec::<bool>::new());
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 4,
            running: 0,
            dead: 0
        }
    );

    let jobs = s.claim(10, LEASE).await.unwrap();
    let keys: Vec<_> = jobs.iter().map(|j| j.dedupe_key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c", "d"], "oldest first");
    let a = &jobs[0];
    assert_eq!(a.kind, JobKind::Task);
    assert_eq!(a.resource_gid, "r-a");
    assert_eq!(a.project_gid.as_deref(), Some("p1"));
    assert_eq!(a.payload.event.as_deref(), Some("k-a"));
    assert_eq!(a.state, JobState::Running);
    assert_eq!(a.attempts, 1);
    assert!(a.lease_until.unwrap() > Utc::now() + chrono::Duration::seconds(50));
    // A done job still holds its dedupe key (redelivery window = lifetime of the row).
    s.complete(a.id).await.unwrap();
    assert_eq!(s.enqueue(&[job("a")]).await.unwrap(), vec![false]);
}

#[tokio::test]
async fn large_batches_dedupe_across_statement_chunks() {
    let (_d, s) = store().await;
    s.enqueue(&[job("k5"), job("k40")]).await.unwrap();
    // 100 jobs: several multi-row chunks plus a remainder; duplicates inside one chunk,
    // across chunks, in the remainder, and of keys stored by an earlier call.
    let keys: Vec<String> = (0..100)
        .map(|i| match i {
            10 => "k3".to_string(),  // same chunk as k3
            50 => "k20".to_string(), // later chunk than k20
            99 => "k97".to_string(), // remainder
            _ => format!("k{i}"),
        })
        .collect();
    let batch: Vec<_> = keys.iter().map(|k| job(k)).collect();
    let created = s.enqueue(&batch).await.unwrap();
    for (i, (k, c)) in keys.iter().zip(&created).enumerate() {
        let expect_new = !matches!(i, 5 | 40 | 10 | 50 | 99);
        assert_eq!(*c, expect_new, "position {i} key {k}");
    }
    assert_eq!(s.queue_depth().await.unwrap().queued, 2 + 95);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_job_goes_to_exactly_one_of_many_concurrent_claimers() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("state.db").to_str().unwrap().to_string();
    // Two independent stores on one file: claimers race across pools and connections too.
    let a = record::open(&loc).await.unwrap();
    let b = record::open(&loc).await.unwrap();
    let total = 600;
    let jobs: Vec<_> = (0..total).map(|i| job(&format!("k{i}"))).collect();
    for chunk in jobs.chunks(100) {
        assert!(a.enqueue(chunk).await.unwrap().iter().all(|n| *n));
    }

    let mut handles = Vec::new();
    for n in 0..8 {
        let s = if n % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim(7, LEASE).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for j in got {
                    assert_eq!(j.state, JobState::Running);
                    assert_eq!(j.attempts, 1, "a job was claimed twice");
                    mine.push(j.id);
                }
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), total, "every job handed out once");
    assert_eq!(unique.len(), total, "no job handed out twice");
    assert_eq!(
        a.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 0,
            running: total as u64,
            dead: 0
        }
    );
}

#[tokio::test]
async fn expired_lease_is_reclaimed_and_counts_an_attempt() {
    let (_d, s) = store().await;
    s.enqueue(&[job("x")]).await.unwrap();
    let first = s.claim(5, Duration::from_millis(150)).await.unwrap();
    assert_eq!(first.len(), 1);
    // Lease still valid: nobody else gets it.
    assert!(s.claim(5, LEASE).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The worker "crashed": the lease expired, another claimer takes it over.
    let again = s.claim(5, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].attempts, 2);
    assert!(s.claim(5, LEASE).await.unwrap().is_empty());
}

#[tokio::test]
async fn retry_bury_replay_lifecycle() {
    let (_d, s) = store().await;
    s.enqueue(&[job("j")]).await.unwrap();
    let j = s.claim(1, LEASE).await.unwrap().remove(0);

    // Retry in the future: not due yet.
    let later = Utc::now() + chrono::Duration::seconds(3600);
    s.retry_later(j.id, "429 from docspace", later)
        .await
        .unwrap();
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 0,
            dead: 0
        }
    );
    assert!(s.claim(1, LEASE).await.unwrap().is_empty());

    // Retry now: due, attempts keep counting, the error is remembered.
    s.retry_later(j.id, "503", Utc::now() - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let j2 = s.claim(1, LEASE).await.unwrap().remove(0);
    assert_eq!(j2.id, j.id);
    assert_eq!(j2.attempts, 2);
    assert_eq!(j2.last_error.as_deref(), Some("503"));

    // Out of retries: dead letter.
    s.bury(j.id, "gave up after 2 attempts").await.unwrap();
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 0,
            running: 0,
            dead: 1
        }
    );
    assert!(s.claim(1, LEASE).await.unwrap().is_empty());
    let dead = s.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].state, JobState::Dead);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("gave up after 2 attempts")
    );
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].lease_until.is_none());

    // Replay: back to queued with attempts reset.
    assert_eq!(s.replay_dead().await.unwrap(), 1);
    assert_eq!(s.replay_dead().await.unwrap(), 0);
    assert!(s.dead_jobs(10).await.unwrap().is_empty());
    let j3 = s.claim(1, LEASE).await.unwrap().remove(0);
    assert_eq!(j3.id, j.id);
    assert_eq!(j3.attempts, 1);

    s.complete(j.id).await.unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), QueueDepth::default());
    assert!(s.claim(1, LEASE).await.unwrap().is_empty());
}

#[tokio::test]
async fn release_does_not_count_an_attempt() {
    let (_d, s) = store().await;
    s.enqueue(&[job("r")]).await.unwrap();
    let j = s.claim(1, LEASE).await.unwrap().remove(0);
    assert_eq!(j.attempts, 1);
    s.release(j.id).await.unwrap();
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 0,
            dead: 0
        }
    );
    // Released jobs are due at once, and the attempt was given back.
    let again = s.claim(1, LEASE).await.unwrap().remove(0);
    assert_eq!(again.id, j.id);
    assert_eq!(again.attempts, 1);
    // Releasing a job that is not running leaves it alone.
    s.complete(j.id).await.unwrap();
    s.release(j.id).await.unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn unknown_job_ids_are_not_found() {
    let (_d, s) = store().await;
    assert!(matches!(
        s.complete(999).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.retry_later(999, "e", Utc::now()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.bury(999, "e").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(s.release(999).await, Err(StoreError::NotFound(_))));
    assert!(s.claim(0, LEASE).await.unwrap().is_empty());
}

#[tokio::test]
async fn prune_done_forgets_old_finished_jobs_only() {
    let (_d, s) = store().await;
    s.enqueue(&[job("old"), job("live"), job("dead")])
        .await
        .unwrap();
    let js = s.claim(3, LEASE).await.unwrap();
    s.complete(js[0].id).await.unwrap();
    s.bury(js[2].id, "boom").await.unwrap();
    assert_eq!(s.prune_done(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.prune_done(Duration::from_millis(5)).await.unwrap(), 1);
    // Its dedupe key is free again; the others are kept.
    assert_eq!(
        s.enqueue(&[job("old"), job("live"), job("dead")])
            .await
            .unwrap(),
        vec![true, false, false]
    );
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 1,
            dead: 1
        }
    );
}

#[tokio::test]
async fn dead_jobs_respects_the_limit() {
    let (_d, s) = store().await;
    let jobs: Vec<_> = (0..5).map(|i| job(&format!("d{i}"))).collect();
    s.enqueue(&jobs).await.unwrap();
    for j in s.claim(5, LEASE).await.unwrap() {
        s.bury(j.id, "x").await.unwrap();
    }
    let dead = s.dead_jobs(3).await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|j| j.dedupe_key.as_str())
            .collect::<Vec<_>>(),
        ["d0", "d1", "d2"]
    );
}

#[tokio::test]
async fn replay_job_requeues_only_that_dead_job_once() {
    let (_d, s) = store().await;
    s.enqueue(&[job("x"), job("y"), job("z")]).await.unwrap();
    let claimed = s.claim(3, LEASE).await.unwrap();
    let (x, y, z) = (claimed[0].id, claimed[1].id, claimed[2].id);
    s.bury(x, "room gone").await.unwrap();
    s.bury(y, "room gone").await.unwrap();

    assert!(s.replay_job(x).await.unwrap());
    // Not dead any more, still running, or never there: nothing to replay.
    assert!(!s.replay_job(x).await.unwrap());
    assert!(!s.replay_job(z).await.unwrap());
    assert!(!s.replay_job(9_999).await.unwrap());

    let dead: Vec<i64> = s
        .dead_jobs(10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(dead, vec![y], "the other dead letter stays dead");
    let again = s.claim(3, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, x);
    assert_eq!(again[0].attempts, 1, "attempts were reset");
    assert_eq!(again[0].last_error.as_deref(), Some("room gone"));
}

#[tokio::test]
async fn oldest_queued_at_is_the_enqueue_time_of_the_longest_waiting_queued_job() {
    let (_d, s) = store().await;
    assert_eq!(s.oldest_queued_at().await.unwrap(), None);
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    s.enqueue(&[job("o1")]).await.unwrap();
    let first = s.oldest_queued_at().await.unwrap().expect("one queued job");
    assert!(first >= before && first <= Utc::now(), "{first}");
    s.enqueue(&[job("o2")]).await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), Some(first));

    // Running and dead jobs are not waiting.
    let claimed = s.claim(2, LEASE).await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), None);
    s.bury(claimed[0].id, "x").await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), None);
    s.replay_dead().await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), Some(first));
}
