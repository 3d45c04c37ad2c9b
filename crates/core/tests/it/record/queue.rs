//! Durable work queue: dedupe, claim under concurrency, leases, retry/bury/replay, release.

use std::{collections::HashSet, time::Duration};

use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::{
    Fence, JobLease, JobState, LeaseToken, NewJob, QueueDepth, ReplicaId, StoreError,
};
use chrono::Utc;

use super::Backend;

const LEASE: Duration = Duration::from_secs(60);

/// A claimer that is not in the replica registry: its jobs are taken over only once their
/// lease runs out.
fn me() -> ReplicaId {
    ReplicaId("test-claimer".into())
}

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

async fn enqueue_dedupes_within_a_batch_and_across_calls(backend: &Backend) {
    let s = backend.open().await;
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

    let jobs = s.claim(10, LEASE, &me()).await.unwrap();
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
    assert_eq!(s.complete(a.lease()).await.unwrap(), Fence::Held);
    assert_eq!(s.enqueue(&[job("a")]).await.unwrap(), vec![false]);
}

async fn large_batches_dedupe_across_statement_chunks(backend: &Backend) {
    let s = backend.open().await;
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

async fn each_job_goes_to_exactly_one_of_many_concurrent_claimers(backend: &Backend) {
    // Two independent stores on one database: claimers race across pools and connections
    // too (on Postgres, as two replicas would).
    let a = backend.open().await;
    let b = backend.open().await;
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
                let got = s.claim(7, LEASE, &me()).await.unwrap();
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

async fn expired_lease_is_reclaimed_and_counts_an_attempt(backend: &Backend) {
    let s = backend.open().await;
    s.enqueue(&[job("x")]).await.unwrap();
    let first = s.claim(5, Duration::from_millis(150), &me()).await.unwrap();
    assert_eq!(first.len(), 1);
    // Lease still valid: nobody else gets it.
    assert!(s.claim(5, LEASE, &me()).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The worker "crashed": the lease expired, another claimer takes it over.
    let again = s.claim(5, LEASE, &me()).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].attempts, 2);
    assert!(s.claim(5, LEASE, &me()).await.unwrap().is_empty());
}

async fn retry_bury_replay_lifecycle(backend: &Backend) {
    let s = backend.open().await;
    s.enqueue(&[job("later"), job("j")]).await.unwrap();
    let claimed = s.claim(2, LEASE, &me()).await.unwrap();
    let (later_job, j) = (&claimed[0], &claimed[1]);

    // Retry in the future: not due yet.
    let later = Utc::now() + chrono::Duration::seconds(3600);
    assert_eq!(
        s.retry_later(later_job.lease(), "429 from docspace", later)
            .await
            .unwrap(),
        Fence::Held
    );
    // Retry now: due, attempts keep counting, the error is remembered.
    assert_eq!(
        s.retry_later(j.lease(), "503", Utc::now() - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        Fence::Held
    );
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 2,
            running: 0,
            dead: 0
        }
    );
    // A settled claim cannot settle again.
    assert_eq!(s.complete(j.lease()).await.unwrap(), Fence::Lost);
    let j2 = s.claim(5, LEASE, &me()).await.unwrap().remove(0);
    assert_eq!(j2.id, j.id, "only the due one is claimed");
    assert_eq!(j2.attempts, 2);
    assert_eq!(j2.last_error.as_deref(), Some("503"));
    assert!(j2.token > j.token, "each claim hands out a new token");
    assert!(s.claim(5, LEASE, &me()).await.unwrap().is_empty());

    // Out of retries: dead letter.
    assert_eq!(
        s.bury(j2.lease(), "gave up after 2 attempts")
            .await
            .unwrap(),
        Fence::Held
    );
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 0,
            dead: 1
        }
    );
    assert!(s.claim(1, LEASE, &me()).await.unwrap().is_empty());
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
    let j3 = s.claim(1, LEASE, &me()).await.unwrap().remove(0);
    assert_eq!(j3.id, j.id);
    assert_eq!(j3.attempts, 1);

    assert_eq!(s.complete(j3.lease()).await.unwrap(), Fence::Held);
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 0,
            dead: 0
        }
    );
    assert!(s.claim(1, LEASE, &me()).await.unwrap().is_empty());
}

async fn release_does_not_count_an_attempt(backend: &Backend) {
    let s = backend.open().await;
    s.enqueue(&[job("r")]).await.unwrap();
    let j = s.claim(1, LEASE, &me()).await.unwrap().remove(0);
    assert_eq!(j.attempts, 1);
    assert_eq!(s.release(j.lease()).await.unwrap(), Fence::Held);
    assert_eq!(
        s.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 0,
            dead: 0
        }
    );
    // Released jobs are due at once, and the attempt was given back.
    let again = s.claim(1, LEASE, &me()).await.unwrap().remove(0);
    assert_eq!(again.id, j.id);
    assert_eq!(again.attempts, 1);
    // The released claim's token is spent.
    assert_eq!(s.complete(j.lease()).await.unwrap(), Fence::Lost);
    // Releasing a job that is not running leaves it alone.
    assert_eq!(s.complete(again.lease()).await.unwrap(), Fence::Held);
    assert_eq!(s.release(again.lease()).await.unwrap(), Fence::Lost);
    assert_eq!(s.queue_depth().await.unwrap(), QueueDepth::default());
}

async fn unknown_job_ids_are_not_found(backend: &Backend) {
    let s = backend.open().await;
    let nobody = JobLease {
        id: 999,
        token: LeaseToken(1),
    };
    assert!(matches!(
        s.complete(nobody).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.retry_later(nobody, "e", Utc::now()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.bury(nobody, "e").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.release(nobody).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.extend_lease(nobody, LEASE).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.claim(0, LEASE, &me()).await.unwrap().is_empty());
}

async fn prune_done_forgets_old_finished_jobs_only(backend: &Backend) {
    let s = backend.open().await;
    s.enqueue(&[job("old"), job("live"), job("dead")])
        .await
        .unwrap();
    let js = s.claim(3, LEASE, &me()).await.unwrap();
    assert_eq!(s.complete(js[0].lease()).await.unwrap(), Fence::Held);
    assert_eq!(s.bury(js[2].lease(), "boom").await.unwrap(), Fence::Held);
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

async fn dead_jobs_respects_the_limit(backend: &Backend) {
    let s = backend.open().await;
    let jobs: Vec<_> = (0..5).map(|i| job(&format!("d{i}"))).collect();
    s.enqueue(&jobs).await.unwrap();
    for j in s.claim(5, LEASE, &me()).await.unwrap() {
        assert_eq!(s.bury(j.lease(), "x").await.unwrap(), Fence::Held);
    }
    let dead = s.dead_jobs(3).await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|j| j.dedupe_key.as_str())
            .collect::<Vec<_>>(),
        ["d0", "d1", "d2"]
    );
}

async fn replay_job_requeues_only_that_dead_job_once(backend: &Backend) {
    let s = backend.open().await;
    s.enqueue(&[job("x"), job("y"), job("z")]).await.unwrap();
    let claimed = s.claim(3, LEASE, &me()).await.unwrap();
    let (x, y, z) = (claimed[0].id, claimed[1].id, claimed[2].id);
    for j in &claimed[..2] {
        assert_eq!(s.bury(j.lease(), "room gone").await.unwrap(), Fence::Held);
    }

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
    let again = s.claim(3, LEASE, &me()).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, x);
    assert_eq!(again[0].attempts, 1, "attempts were reset");
    assert_eq!(again[0].last_error.as_deref(), Some("room gone"));
}

async fn oldest_queued_at_is_the_enqueue_time_of_the_longest_waiting_queued_job(backend: &Backend) {
    let s = backend.open().await;
    assert_eq!(s.oldest_queued_at().await.unwrap(), None);
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    s.enqueue(&[job("o1")]).await.unwrap();
    let first = s.oldest_queued_at().await.unwrap().expect("one queued job");
    assert!(first >= before && first <= Utc::now(), "{first}");
    s.enqueue(&[job("o2")]).await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), Some(first));

    // Running and dead jobs are not waiting.
    let claimed = s.claim(2, LEASE, &me()).await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), None);
    assert_eq!(s.bury(claimed[0].lease(), "x").await.unwrap(), Fence::Held);
    assert_eq!(s.oldest_queued_at().await.unwrap(), None);
    s.replay_dead().await.unwrap();
    assert_eq!(s.oldest_queued_at().await.unwrap(), Some(first));
}

async fn a_worker_whose_lease_was_taken_cannot_settle_retry_or_renew(backend: &Backend) {
    let s = backend.open().await;
    s.enqueue(&[job("f")]).await.unwrap();
    let stalled = s
        .claim(1, Duration::from_millis(150), &me())
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The stalled worker's lease ran out; another worker takes the job over.
    let other = ReplicaId("other-claimer".into());
    let current = s.claim(1, LEASE, &other).await.unwrap().remove(0);
    assert_eq!(current.id, stalled.id);
    assert!(current.token > stalled.token);

    // Whatever the stalled worker tries, the row is not its any more.
    let old = stalled.lease();
    assert_eq!(s.extend_lease(old, LEASE).await.unwrap(), Fence::Lost);
    assert_eq!(s.complete(old).await.unwrap(), Fence::Lost);
    assert_eq!(
        s.retry_later(old, "stale", Utc::now()).await.unwrap(),
        Fence::Lost
    );
    assert_eq!(s.bury(old, "stale").await.unwrap(), Fence::Lost);
    assert_eq!(s.release(old).await.unwrap(), Fence::Lost);
    let depth = s.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running, depth.dead), (0, 1, 0));
    assert!(s.claim(1, LEASE, &me()).await.unwrap().is_empty());

    // The current holder still owns it.
    assert_eq!(
        s.extend_lease(current.lease(), LEASE).await.unwrap(),
        Fence::Held
    );
    assert_eq!(s.complete(current.lease()).await.unwrap(), Fence::Held);
    assert_eq!(
        s.extend_lease(current.lease(), LEASE).await.unwrap(),
        Fence::Lost,
        "a settled job has no lease to renew"
    );
}

async fn a_dead_replicas_jobs_are_taken_over_before_their_lease_ends(backend: &Backend) {
    let s = backend.open().await;
    let (dying, alive) = (ReplicaId::new(), ReplicaId::new());
    let ttl = Duration::from_millis(400);
    s.register_replica(&dying, "serve on a (pid 1)", ttl)
        .await
        .unwrap();
    s.register_replica(&alive, "serve on b (pid 2)", Duration::from_secs(60))
        .await
        .unwrap();
    s.enqueue(&[job("held"), job("alive")]).await.unwrap();
    let held = s.claim(1, LEASE, &dying).await.unwrap().remove(0);
    let kept = s.claim(1, LEASE, &alive).await.unwrap().remove(0);
    // While the replica beats, its job stays with it.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(s.beat_replica(&dying, ttl).await.unwrap());
        assert!(s.claim(5, LEASE, &alive).await.unwrap().is_empty());
    }
    // It stops beating (SIGKILL): once its row expires, its job — with 60 s of lease
    // left — goes to another replica; the living replica's job stays where it is.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let taken = s.claim(5, LEASE, &alive).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].id, held.id);
    assert_eq!(taken[0].attempts, 2);
    assert_eq!(s.complete(held.lease()).await.unwrap(), Fence::Lost);
    assert_eq!(s.complete(taken[0].lease()).await.unwrap(), Fence::Held);
    assert_eq!(s.complete(kept.lease()).await.unwrap(), Fence::Held);
}

/// What a dead replica had in flight goes before what was queued after it: it keeps its
/// place in the queue, not its lease (which still lies ahead).
async fn a_dead_replicas_job_goes_before_jobs_queued_after_it(backend: &Backend) {
    let s = backend.open().await;
    let (dying, alive) = (ReplicaId::new(), ReplicaId::new());
    s.register_replica(&dying, "serve on a (pid 1)", Duration::from_secs(60))
        .await
        .unwrap();
    s.enqueue(&[job("in-flight")]).await.unwrap();
    let held = s.claim(1, LEASE, &dying).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.enqueue(&[job("later-1"), job("later-2")]).await.unwrap();
    // SIGKILL: its registry row expires (a beat with no time to live).
    assert!(s.beat_replica(&dying, Duration::ZERO).await.unwrap());
    let next = s.claim(1, LEASE, &alive).await.unwrap();
    assert_eq!(
        next.iter()
            .map(|j| j.dedupe_key.as_str())
            .collect::<Vec<_>>(),
        ["in-flight"]
    );
    assert_eq!(next[0].id, held.id);
}

async fn replicas_register_beat_and_retire(backend: &Backend) {
    let s = backend.open().await;
    let r = ReplicaId::new();
    assert!(
        !s.beat_replica(&r, LEASE).await.unwrap(),
        "not registered yet"
    );
    s.register_replica(&r, "serve on h (pid 7)", LEASE)
        .await
        .unwrap();
    let rows = s.replicas().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, r.0);
    assert_eq!(rows[0].info, "serve on h (pid 7)");
    assert!(rows[0].expires_at > Utc::now() + chrono::Duration::seconds(50));
    assert!(s.beat_replica(&r, LEASE).await.unwrap());
    s.retire_replica(&r).await.unwrap();
    assert!(s.replicas().await.unwrap().is_empty());
    assert!(!s.beat_replica(&r, LEASE).await.unwrap());
}

async fn enqueue_and_release_fire_the_wakeup(backend: &Backend) {
    let s = backend.open().await;
    let wake = s.wakeup();
    let fired = wake.notified();
    tokio::pin!(fired);
    fired.as_mut().enable();
    s.enqueue(&[job("w")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut fired)
        .await
        .expect("an enqueue that created a job wakes idle workers");

    let j = s.claim(1, LEASE, &me()).await.unwrap().remove(0);
    let fired = wake.notified();
    tokio::pin!(fired);
    fired.as_mut().enable();
    assert_eq!(s.release(j.lease()).await.unwrap(), Fence::Held);
    tokio::time::timeout(Duration::from_secs(5), &mut fired)
        .await
        .expect("a released job wakes idle workers");
}

super::conformance!(
    a_worker_whose_lease_was_taken_cannot_settle_retry_or_renew,
    a_dead_replicas_jobs_are_taken_over_before_their_lease_ends,
    a_dead_replicas_job_goes_before_jobs_queued_after_it,
    replicas_register_beat_and_retire,
    enqueue_and_release_fire_the_wakeup,
    enqueue_dedupes_within_a_batch_and_across_calls,
    large_batches_dedupe_across_statement_chunks,
    each_job_goes_to_exactly_one_of_many_concurrent_claimers,
    expired_lease_is_reclaimed_and_counts_an_attempt,
    retry_bury_replay_lifecycle,
    release_does_not_count_an_attempt,
    unknown_job_ids_are_not_found,
    prune_done_forgets_old_finished_jobs_only,
    dead_jobs_respects_the_limit,
    replay_job_requeues_only_that_dead_job_once,
    oldest_queued_at_is_the_enqueue_time_of_the_longest_waiting_queued_job,
);
