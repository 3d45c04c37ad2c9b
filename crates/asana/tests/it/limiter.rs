//! The rate window: the whole per-minute budget at once, then exactly as Asana's rolling
//! window frees it. Timing runs on tokio's paused clock, so nothing here depends on how
//! fast the machine is; the test against a server checks what the server saw.

use std::time::Duration;

use asana_api::RateWindow;
use futures::future::join_all;
use tokio::time::Instant;

use crate::support::{Reply, Server};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn the_whole_budget_goes_without_waiting() {
    let w = RateWindow::new(150, MINUTE);
    let t0 = Instant::now();
    // 100 calls of a job, as the benchmark's sync makes them: none waits.
    let slots = join_all((0..100).map(|_| w.acquire())).await;
    assert_eq!(Instant::now(), t0, "a slot within the budget waited");
    drop(slots);
    // …and neither do the other 50 of the minute's 150.
    for _ in 0..50 {
        drop(w.acquire().await);
    }
    assert_eq!(Instant::now(), t0);
    assert_eq!(w.used(), 150);
}

#[tokio::test(start_paused = true)]
async fn call_limit_plus_one_waits_until_the_first_leaves_the_window() {
    let w = RateWindow::new(5, MINUTE);
    let t0 = Instant::now();
    drop(w.acquire().await);
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..4 {
        drop(w.acquire().await);
    }
    assert_eq!(w.used(), 5);
    // The sixth: not before the first slot's minute is over, and right then.
    let sixth = w.acquire();
    tokio::pin!(sixth);
    tokio::select! {
        biased;
        _ = &mut sixth => panic!("the sixth call went inside the window"),
        _ = tokio::time::sleep(Duration::from_secs(49)) => {}
    }
    let slot = sixth.await;
    assert_eq!(Instant::now() - t0, MINUTE);
    drop(slot);
    // The seventh waits for the second-oldest, which finished at 10 s.
    drop(w.acquire().await);
    assert_eq!(Instant::now() - t0, MINUTE + Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_slot_counts_from_when_its_request_finished() {
    let w = RateWindow::new(1, MINUTE);
    let t0 = Instant::now();
    let slot = w.acquire().await;
    // A slow request: 30 s in flight. Asana may have counted it any time until it answered.
    tokio::time::advance(Duration::from_secs(30)).await;
    drop(slot);
    drop(w.acquire().await);
    assert_eq!(Instant::now() - t0, Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_every_caller() {
    let w = RateWindow::new(1000, MINUTE);
    let t0 = Instant::now();
    w.pause_for(Duration::from_secs(30));
    w.pause_for(Duration::from_secs(5)); // a shorter one does not shorten it
    let both = join_all([w.acquire(), w.acquire()]).await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(30));
    assert_eq!(both.len(), 2);
}

/// Clones share one window: 3 clones × 4 calls with a budget of 4 per 300 ms. Whatever the
/// scheduling, no 5 requests reach the server within one window, and none meets a 429.
#[tokio::test]
async fn clones_share_the_window_as_the_server_counts_it() {
    let server = Server::always(Reply::json(200, r#"{"data":{"gid":"1"}}"#)).await;
    let window = Duration::from_millis(300);
    let client = server.client_with(|c| {
        c.requests_per_minute = 4;
        c.rate_window = window;
    });
    let gid = asana_api::Gid::parse("1").unwrap();
    join_all((0..3).map(|_| {
        let c = client.clone();
        let gid = gid.clone();
        async move {
            for _ in 0..4 {
                c.get_task(&gid, &[]).await.unwrap();
            }
        }
    }))
    .await;
    let mut arrived: Vec<_> = server.requests().iter().map(|r| r.arrived).collect();
    arrived.sort();
    assert_eq!(arrived.len(), 12);
    for w in arrived.windows(5) {
        assert!(
            w[4].duration_since(w[0]) >= window,
            "5 requests within one window: {:?}",
            w[4].duration_since(w[0])
        );
    }
    assert_eq!(client.metrics().rate_limited, 0);
}

/// A 429 with `Retry-After` holds back the other callers too: the server sees nothing
/// from anyone until the wait is over.
#[tokio::test]
async fn a_429_pauses_the_clones() {
    let server = Server::start(vec![
        Reply::rate_limited(Some("1")),
        Reply::json(200, r#"{"data":{"gid":"1"}}"#),
        Reply::json(200, r#"{"data":{"gid":"1"}}"#),
    ])
    .await;
    let client = server.client_with(|c| c.max_backoff = Duration::from_secs(5));
    let gid = asana_api::Gid::parse("1").unwrap();
    client.get_task(&gid, &[]).await.unwrap();
    let other = client.clone();
    other.get_task(&gid, &[]).await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs[1].arrived.duration_since(reqs[0].arrived) >= Duration::from_secs(1));
}
