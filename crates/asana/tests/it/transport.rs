//! Rate limits, retries and concurrency caps of the single transport.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use asana_api::{Error, Gid, Metrics};
use futures::future::join_all;

use crate::support::{Reply, Server, TOKEN};

const TASK: &str = r#"{"data":{"gid":"1201","name":"t"}}"#;
const USER: &str = r#"{"data":{"gid":"1100","email":"a@example.com","name":"A"}}"#;

fn gid(s: &str) -> Gid {
    Gid::parse(s).unwrap()
}

#[tokio::test]
async fn a_429_waits_at_least_retry_after() {
    let server = Server::start(vec![Reply::rate_limited(Some("1")), Reply::json(200, TASK)]).await;
    let client = server.client_with(|c| c.max_backoff = Duration::from_secs(5));
    let started = Instant::now();
    client.get_task(&gid("1201"), &[]).await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(
        client.metrics(),
        Metrics {
            requests: 2,
            rate_limited: 1,
            retries: 1
        }
    );
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_by_max_backoff() {
    let server = Server::start(vec![
        Reply::rate_limited(Some("3600")),
        Reply::json(200, TASK),
    ])
    .await;
    let client = server.client_with(|c| c.max_backoff = Duration::from_millis(50));
    let started = Instant::now();
    client.get_task(&gid("1201"), &[]).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_even_for_a_post() {
    let server = Server::start(vec![
        Reply::rate_limited(None),
        Reply::rate_limited(None),
        Reply::json(200, USER),
    ])
    .await;
    let client = server.client();
    let user = client
        .add_user_to_workspace(&gid("1331"), "a@example.com")
        .await
        .unwrap();
    assert_eq!(user.gid, "1100");
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        client.metrics(),
        Metrics {
            requests: 3,
            rate_limited: 2,
            retries: 2
        }
    );
}

#[tokio::test]
async fn a_5xx_on_get_is_retried() {
    let server = Server::start(vec![
        Reply::json(
            500,
            r#"{"errors":[{"message":"Server Error","phrase":"6 sad squid snuggle softly"}]}"#,
        ),
        Reply::text(
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        Reply::json(200, TASK),
    ])
    .await;
    let client = server.client();
    let task = client.get_task(&gid("1201"), &[]).await.unwrap();
    assert_eq!(task.gid, "1201");
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        client.metrics(),
        Metrics {
            requests: 3,
            rate_limited: 0,
            retries: 2
        }
    );
}

#[tokio::test]
async fn a_5xx_on_post_is_not_retried() {
    let server = Server::start(vec![
        Reply::json(
            500,
            r#"{"errors":[{"message":"Server Error","phrase":"6 sad squid snuggle softly"}]}"#,
        ),
        Reply::json(200, USER),
    ])
    .await;
    let client = server.client();
    let err = client
        .add_user_to_workspace(&gid("1331"), "a@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(client.metrics().retries, 0);
}

#[tokio::test]
async fn a_dropped_connection_on_get_is_retried() {
    let server = Server::start(vec![Reply::dropped(), Reply::json(200, TASK)]).await;
    let client = server.client();
    client.get_task(&gid("1201"), &[]).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(client.metrics().retries, 1);
}

#[tokio::test]
async fn a_dropped_connection_on_post_is_not_retried() {
    let server = Server::start(vec![Reply::dropped(), Reply::json(200, USER)]).await;
    let client = server.client();
    let err = client
        .add_user_to_workspace(&gid("1331"), "a@example.com")
        .await
        .unwrap_err();
    let Error::Transport(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("POST /api/1.0/workspaces/1331/addUser"),
        "{msg}"
    );
    assert!(!msg.contains(TOKEN) && !msg.contains("opt_fields"), "{msg}");
    assert!(err.is_retryable());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn retries_are_capped_and_end_in_an_api_error() {
    let server = Server::always(Reply::rate_limited(Some("0"))).await;
    let client = server.client_with(|c| c.max_retries = 2);
    let err = client.get_task(&gid("1201"), &[]).await.unwrap_err();
    match &err {
        Error::Api {
            status, message, ..
        } => {
            assert_eq!(*status, 429);
            assert!(message.contains("too many requests"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        client.metrics(),
        Metrics {
            requests: 3,
            rate_limited: 3,
            retries: 2
        }
    );
}

#[tokio::test]
async fn a_proxy_page_that_persists_becomes_an_excerpt() {
    let server = Server::always(Reply::text(
        503,
        "text/html",
        "<html><head><title>503 Service Temporarily Unavailable</title></head><body>nginx</body></html>",
    ))
    .await;
    let client = server.client_with(|c| c.max_retries = 1);
    let err = client.get_task(&gid("1201"), &[]).await.unwrap_err();
    let Error::Api {
        status: 503,
        message,
        help: None,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(message, "503 Service Temporarily Unavailable nginx");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = Server::always(Reply::json(
        401,
        r#"{"errors":[{"message":"Not Authorized"}]}"#,
    ))
    .await;
    let client = server.client();
    let err = client.get_task(&gid("1201"), &[]).await.unwrap_err();
    assert_eq!(
        err,
        Error::Api {
            status: 401,
            message: "Not Authorized".into(),
            help: None
        }
    );
    assert!(!err.is_retryable());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn reads_respect_the_concurrency_cap_across_clones() {
    let server = Server::always(Reply::json(200, TASK).delay(Duration::from_millis(100))).await;
    let client = server.client_with(|c| c.max_concurrent_reads = 3);
    let calls = (0..12).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { c.get_task(&Gid::parse("1201").unwrap(), &[]).await })
    });
    for r in join_all(calls).await {
        r.unwrap().unwrap();
    }
    assert_eq!(server.requests().len(), 12);
    assert_eq!(server.max_in_flight(), 3);
    assert_eq!(client.metrics().requests, 12);
}

#[tokio::test]
async fn writes_have_their_own_cap() {
    let server = Server::always(Reply::json(200, USER).delay(Duration::from_millis(100))).await;
    let client = server.client_with(|c| {
        c.max_concurrent_writes = 2;
        c.max_concurrent_reads = 50;
    });
    let calls = (0..8).map(|_| {
        let c = client.clone();
        tokio::spawn(async move {
            c.add_user_to_workspace(&Gid::parse("1331").unwrap(), "a@example.com")
                .await
        })
    });
    for r in join_all(calls).await {
        r.unwrap().unwrap();
    }
    assert_eq!(server.max_in_flight(), 2);
}

#[tokio::test]
async fn the_rate_limiter_is_shared_by_clones() {
    // 8 per 500 ms, counted over all clones: the first 8 go at once, the 9th and 10th
    // only once the first ones have left the window (the old token bucket paced them).
    let server = Server::always(Reply::json(200, TASK)).await;
    let window = Duration::from_millis(500);
    let client = server.client_with(|c| {
        c.requests_per_minute = 8;
        c.rate_window = window;
    });
    let calls = (0..10).map(|i| {
        let c = client.clone();
        async move {
            c.get_task(&Gid::parse("1201").unwrap(), &[])
                .await
                .map(|_| i)
        }
    });
    for r in join_all(calls).await {
        r.unwrap();
    }
    let mut arrived: Vec<_> = server.requests().iter().map(|r| r.arrived).collect();
    arrived.sort();
    assert_eq!(arrived.len(), 10);
    let late = arrived[8].duration_since(arrived[0]);
    assert!(
        late >= window,
        "the 9th call went inside the window: {late:?}"
    );
}

/// A `MakeWriter` that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_logs_name_method_path_status_attempt_but_no_secrets() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start(vec![Reply::rate_limited(Some("0")), Reply::json(200, TASK)]).await;
    server
        .client()
        .get_task(&gid("1201"), &["assignee.email"])
        .await
        .unwrap();

    let logs = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("path=\"/api/1.0/tasks/1201\"") || logs.contains("path=/api/1.0/tasks/1201"),
        "{logs}"
    );
    assert!(
        logs.contains("status=429") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(logs.contains("attempt=2"), "{logs}");
    assert!(logs.contains("method=GET"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(
        !logs.contains("assignee.email"),
        "the query string is not logged: {logs}"
    );
}
