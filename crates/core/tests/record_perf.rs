//! Throughput and scale: group-committed enqueue, claim on a large table.
//!
//! Bounds are generous (debug build, shared CI machine); the measured rates are printed
//! (`cargo test --test record_perf -- --nocapture`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bridge_core::record::{self, NewJob, Store};

const LEASE: Duration = Duration::from_secs(60);

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = record::open(dir.path().join("state.db").to_str().unwrap())
        .await
        .unwrap();
    (dir, s)
}

fn job(i: usize) -> NewJob {
    NewJob {
        kind: "task".into(),
        resource_gid: format!("{}", 1_200_000_000_000_000u64 + i as u64),
        project_gid: Some("1200000000000001".into()),
        dedupe_key: format!("{i}:assignee:2025-01-01T00:00:00.{i:06}Z"),
        payload: Some(format!(
            r#"{{"action":"changed","resource":{{"gid":"{i}","resource_type":"task"}},"change":{{"field":"assignee"}}}}"#
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_enqueue_from_concurrent_producers_exceeds_5000_per_second() {
    let (_d, s) = store().await;
    let producers = 8;
    let batches = 50;
    let batch = 50;
    let start = Instant::now();
    let mut hs = Vec::new();
    for p in 0..producers {
        let s = s.clone();
        hs.push(tokio::spawn(async move {
            for b in 0..batches {
                let jobs: Vec<_> = (0..batch)
                    .map(|k| job(p * batches * batch + b * batch + k))
                    .collect();
                let created = s.enqueue(&jobs).await.unwrap();
                assert!(created.iter().all(|c| *c));
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    let n = producers * batches * batch;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("enqueue: {n} jobs in batches of {batch} from {producers} producers: {rate:.0}/s");
    assert_eq!(s.queue_depth().await.unwrap().queued, n as u64);
    assert!(rate >= 5_000.0, "only {rate:.0} enqueues/s");

    // Redelivery of the same events is recognised at the same speed.
    let start = Instant::now();
    let again: Vec<_> = (0..2_000).map(job).collect();
    for chunk in again.chunks(100) {
        assert!(s.enqueue(chunk).await.unwrap().iter().all(|c| !*c));
    }
    let rate = 2_000.0 / start.elapsed().as_secs_f64();
    println!("enqueue of duplicates: {rate:.0}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_stays_fast_on_a_100k_row_table() {
    let (_d, s) = store().await;
    let total = 100_000;
    let start = Instant::now();
    let jobs: Vec<_> = (0..total).map(job).collect();
    for chunk in jobs.chunks(1_000) {
        s.enqueue(chunk).await.unwrap();
    }
    println!("filled {total} jobs in {:?}", start.elapsed());

    // A third finished, a backlog still queued, and many in flight under live leases.
    let mut timings = Vec::new();
    for round in 0..90 {
        let t = Instant::now();
        let got = s.claim(1_000, LEASE).await.unwrap();
        timings.push(t.elapsed());
        assert_eq!(got.len(), 1_000);
        if round % 3 == 0 {
            for j in &got {
                s.complete(j.id).await.unwrap();
            }
        }
    }
    let t = Instant::now();
    let got = s.claim(10, LEASE).await.unwrap();
    let small = t.elapsed();
    assert_eq!(got.len(), 10);
    let depth = s.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (9_990, 60_010));
    timings.sort();
    let median = timings[timings.len() / 2];
    println!("claim(1000) median {median:?}, claim(10) {small:?} on {total} rows");
    assert!(
        small < Duration::from_millis(100),
        "claim(10) took {small:?}"
    );
    assert!(
        median < Duration::from_millis(500),
        "claim(1000) median {median:?}"
    );
}

#[tokio::test]
async fn claim_and_depth_queries_are_served_by_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let s = record::open(path.to_str().unwrap()).await.unwrap();
    s.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let plan = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
        }
    };
    // The two halves of claim: ordered index range scans, no sort, no table scan.
    let queued = plan(
        "SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= 1 \
         ORDER BY next_attempt_at LIMIT 10",
    )
    .await;
    assert!(
        queued.contains("jobs_state_due (state=? AND next_attempt_at<?)"),
        "{queued}"
    );
    assert!(!queued.contains("TEMP B-TREE"), "{queued}");
    let expired = plan(
        "SELECT id FROM jobs WHERE state = 'running' AND lease_until <= 1 \
         ORDER BY lease_until LIMIT 10",
    )
    .await;
    assert!(
        expired.contains("jobs_lease (state=? AND lease_until<?)"),
        "{expired}"
    );
    assert!(!expired.contains("TEMP B-TREE"), "{expired}");
    let dedupe = plan("SELECT id FROM jobs WHERE dedupe_key = 'x'").await;
    assert!(dedupe.contains("jobs_dedupe"), "{dedupe}");
    let email = plan("SELECT id FROM ledger WHERE email = 'a@b' COLLATE NOCASE").await;
    assert!(email.contains("ledger_email"), "{email}");
    pool.close().await;
}
