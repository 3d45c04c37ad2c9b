//! Which failures are retried, how long the client waits, and the limits.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{response::IntoResponse, routing::post, Router};
use docspace_api::{Client, Error, Invitation, Metrics, UserType};
use futures::future::join_all;

use crate::support::*;

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_waiting() {
    let mock = Mock::start(|_, n| {
        if n == 0 {
            let mut r = json(
                429,
                r#"{"error":{"message":"Too many requests"},"status":1}"#,
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        } else {
            json(200, PERSON_ACTIVE)
        }
    })
    .await;
    let c = client(&mock.url);
    let started = Instant::now();
    let me = c.me().await.unwrap();
    assert_eq!(me.email.as_deref(), Some("ada@example.com"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(mock.count(), 2);
    assert_eq!(
        c.metrics(),
        Metrics {
            requests: 2,
            rate_limited: 1,
            retries: 1
        }
    );
}

#[tokio::test]
async fn a_429_is_retried_on_post_too_with_backoff_when_retry_after_is_absent() {
    let mock = Mock::start(|_, n| {
        if n < 2 {
            empty(429)
        } else {
            json(200, INVITE_RESPONSE)
        }
    })
    .await;
    let c = client(&mock.url);
    c.invite(&[Invitation::new("grace@example.com", UserType::User)])
        .await
        .unwrap();
    assert_eq!(mock.count(), 3);
    assert_eq!(c.metrics().rate_limited, 2);
    assert_eq!(c.metrics().retries, 2);
}

#[tokio::test]
async fn retry_after_is_capped_by_max_backoff() {
    let mock = Mock::start(|_, n| {
        if n == 0 {
            let mut r = empty(429);
            r.headers_mut()
                .insert("retry-after", "3600".parse().unwrap());
            r
        } else {
            json(200, PERSON_ACTIVE)
        }
    })
    .await;
    let mut cfg = config(&mock.url);
    cfg.max_backoff = Duration::from_millis(200);
    let c = Client::new(cfg).unwrap();
    let started = Instant::now();
    c.me().await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn a_500_on_get_is_retried() {
    let mock = Mock::start(|_, n| {
        if n < 2 {
            json(
                500,
                r#"{"error":{"message":"boom"},"status":1,"statusCode":500}"#,
            )
        } else {
            json(200, PERSON_ACTIVE)
        }
    })
    .await;
    let c = client(&mock.url);
    assert!(c
        .find_person_by_email("ada@example.com")
        .await
        .unwrap()
        .is_some());
    assert_eq!(mock.count(), 3);
    assert_eq!(c.metrics().retries, 2);
    assert_eq!(c.metrics().rate_limited, 0);
}

#[tokio::test]
async fn a_500_on_post_is_not_retried() {
    let mock = Mock::start(|_, _| {
        json(
            500,
            r#"{"error":{"message":"This email is attached to the user X as a third-party provider"},"status":1}"#,
        )
    })
    .await;
    let c = client(&mock.url);
    let err = c
        .invite(&[Invitation::new("grace@example.com", UserType::User)])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(
        err.is_retryable(),
        "retryable in principle, but not by the client"
    );
    assert_eq!(mock.count(), 1);
    assert_eq!(c.metrics().retries, 0);
}

#[tokio::test]
async fn a_500_on_put_is_not_retried() {
    let mock = Mock::start(|_, _| empty(503)).await;
    let err = client(&mock.url)
        .share_room(
            "5",
            &[docspace_api::RoomShare::new(
                "4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f",
                docspace_api::Access::Read,
            )],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn a_dropped_connection_on_get_is_retried() {
    let mock = Mock::start(|_, n| {
        if n == 0 {
            drop_connection()
        }
        json(200, PERSON_ACTIVE)
    })
    .await;
    let c = client(&mock.url);
    let found = c.find_person_by_email("ada@example.com").await.unwrap();
    assert!(found.is_some());
    assert_eq!(mock.count(), 2);
    assert_eq!(c.metrics().retries, 1);
}

#[tokio::test]
async fn a_dropped_connection_on_post_is_not_retried() {
    let mock = Mock::start(|_, _| drop_connection()).await;
    let err = client(&mock.url)
        .invite(&[Invitation::new("grace@example.com", UserType::User)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn retries_stop_after_max_retries_with_the_last_error() {
    let mock = Mock::start(|_, _| {
        (
            axum::http::StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            PROXY_502,
        )
            .into_response()
    })
    .await;
    let c = client(&mock.url);
    let err = c.me().await.unwrap_err();
    assert_eq!(
        err,
        Error::Api {
            status: 502,
            message: "502 Bad Gateway".into()
        }
    );
    assert_eq!(mock.count(), 4, "1 attempt + max_retries (3)");
    assert_eq!(c.metrics().retries, 3);
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let mock = Mock::start(|_, _| {
        json(
            403,
            r#"{"error":{"message":"Access denied"},"status":1,"statusCode":403}"#,
        )
    })
    .await;
    let c = client(&mock.url);
    let err = c.me().await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(!err.is_retryable());
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn an_unreachable_portal_is_a_transport_error_after_retries() {
    // Bind then drop a listener: nothing listens on that port any more.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = client(&format!("http://{addr}"));
    let err = c.find_person_by_email("ada@example.com").await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(c.metrics().requests, 4);
}

#[tokio::test]
async fn writes_are_limited_by_the_write_semaphore_shared_by_clones() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let app = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        Router::new().route(
            "/api/2.0/people/invite",
            post(move || {
                let (in_flight, peak) = (in_flight.clone(), peak.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    json(200, INVITE_RESPONSE)
                }
            }),
        )
    };
    let url = serve(app).await;
    let mut cfg = config(&url);
    cfg.max_concurrent_writes = 2;
    let c = Client::new(cfg).unwrap();
    let calls = (0..6).map(|i| {
        let c = c.clone();
        async move {
            c.invite(&[Invitation::new(format!("u{i}@example.com"), UserType::User)])
                .await
        }
    });
    for r in join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(c.metrics().requests, 6);
}

#[tokio::test]
async fn the_rate_limiter_spaces_requests_after_a_burst() {
    let mock = Mock::start(|_, _| json(200, PERSON_ACTIVE)).await;
    let mut cfg = config(&mock.url);
    cfg.requests_per_minute = Some(0);
    assert!(matches!(
        Client::new(cfg.clone()),
        Err(Error::InvalidInput(_))
    ));

    // 120 per minute: a burst of 20 (ten seconds' worth), then one every 500 ms.
    cfg.requests_per_minute = Some(120);
    let c = Client::new(cfg).unwrap();
    let started = Instant::now();
    for _ in 0..22 {
        c.me().await.unwrap();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(mock.count(), 22);
}
