//! Scale without wall-clock assertions: the queue's hot queries must be served by
//! indexes (a full scan is what would make `claim` slow on a big table). Throughput is
//! measured in the webhook benchmark (`docs/benchmarks.md`), not asserted here.

use bridge_core::record;

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
