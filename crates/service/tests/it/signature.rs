//! Every way a delivery can fail verification is a 401 and stores nothing; size and
//! shape problems are 413 and 400.

use std::time::Duration;

use crate::support::{assignee_delivery, eventually, sign, Options, TestApp};

#[tokio::test]
async fn each_signature_failure_mode_is_401_and_stores_nothing() {
    let app = TestApp::start().await;
    let (task, user) = (&app.ids.tasks[0], &app.ids.users[0]);
    // Assigned before the webhook exists, so only our hand-made delivery reports it.
    app.asana
        .world(|w| w.assign_task(task, Some(user)))
        .unwrap();
    let created = app.create_webhook().await;
    let secret = app.secret(&created.id).await;
    let body = assignee_delivery(task, user, "2024-05-01T10:00:00.000Z");
    let good = sign(&secret, &body);

    let mut tampered = body.clone();
    let n = tampered.len();
    tampered[n - 3] = b' ';
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("missing", body.clone(), None),
        ("empty", body.clone(), Some(String::new())),
        ("not hex", body.clone(), Some("z".repeat(64))),
        ("too short", body.clone(), Some(good[..40].to_string())),
        ("too long", body.clone(), Some(format!("{good}ab"))),
        (
            "other secret",
            body.clone(),
            Some(sign("not-the-secret", &body)),
        ),
        (
            "sha256= prefix",
            body.clone(),
            Some(format!("sha256={good}")),
        ),
        ("tampered body", tampered, Some(good.clone())),
    ];
    for (name, b, sig) in cases {
        let r = app.post_delivery(&created.id, b, sig.as_deref()).await;
        assert_eq!(r.status(), 401, "{name}");
    }

    // A registration whose handshake never happened cannot verify anything.
    app.svc
        .store
        .expect_webhook("pending01", &app.ids.project, "t")
        .await
        .unwrap();
    let r = app
        .post_delivery("pending01", body.clone(), Some(&sign("guess", &body)))
        .await;
    assert_eq!(r.status(), 401);
    // An id nobody registered.
    let r = app.post_delivery("nobody", body.clone(), Some(&good)).await;
    assert_eq!(r.status(), 404);

    let d = app.depth().await;
    assert_eq!(
        (d.queued, d.running, d.dead),
        (0, 0, 0),
        "nothing may be stored"
    );
    assert!(app.history_for_task(task).await.is_empty());
    let m = app.metrics().await;
    for reason in [
        "signature_missing",
        "signature_malformed",
        "signature_mismatch",
        "no_secret",
        "unknown_webhook",
    ] {
        assert!(
            m.contains(&format!("reason=\"{reason}\"")),
            "{reason} not counted:\n{m}"
        );
    }

    // The genuine signature over the genuine bytes is accepted and acted on.
    let r = app.post_delivery(&created.id, body, Some(&good)).await;
    assert_eq!(r.status(), 200);
    eventually("the invitation", Duration::from_secs(10), || async {
        app.invitations() == vec![app.ids.emails[0].clone()]
    })
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_413_and_malformed_signed_json_is_400() {
    let app = TestApp::start_with(Options {
        tweak: Some(Box::new(|c| c.max_body_bytes = 4096)),
        ..Options::default()
    })
    .await;
    let created = app.create_webhook().await;
    let secret = app.secret(&created.id).await;

    // Declared too large.
    let big = vec![b' '; 5000];
    let r = app
        .post_delivery(&created.id, big.clone(), Some(&sign(&secret, &big)))
        .await;
    assert_eq!(r.status(), 413);
    // Too large without a Content-Length (chunked): caught while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let r = app
        .http
        .post(app.url(&format!("/webhooks/asana/{}", created.id)))
        .header("X-Hook-Signature", "0".repeat(64))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Correctly signed, but not a delivery.
    for bad in [&b"not json"[..], b"{\"events\": 3}"] {
        let r = app
            .post_delivery(&created.id, bad.to_vec(), Some(&sign(&secret, bad)))
            .await;
        assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(bad));
    }
    // A delivery whose only event does not have Asana's shape: the event is skipped and
    // counted, the delivery answered (a redelivery would not be any better).
    let odd = b"{\"events\": [ {\"resource\": 5} ]}".to_vec();
    let r = app
        .post_delivery(&created.id, odd.clone(), Some(&sign(&secret, &odd)))
        .await;
    assert_eq!(r.status(), 200);
    // A signed heartbeat is fine and stores nothing.
    let hb = br#"{"events":[]}"#.to_vec();
    let r = app
        .post_delivery(&created.id, hb.clone(), Some(&sign(&secret, &hb)))
        .await;
    assert_eq!(r.status(), 200);

    let d = app.depth().await;
    assert_eq!((d.queued, d.running, d.dead), (0, 0, 0));
    let m = app.metrics().await;
    assert!(m.contains("reason=\"too_large\"} 2"), "{m}");
    assert!(m.contains("reason=\"malformed\"} 2"), "{m}");
    assert!(m.contains("asana_docspace_events_malformed_total 1"), "{m}");
    assert!(m.contains("kind=\"heartbeat\"} 1"), "{m}");
}
