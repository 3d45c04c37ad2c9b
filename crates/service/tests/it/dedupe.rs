//! Asana may deliver an event twice; it is acted on once.

use std::time::Duration;

use bridge_sim::AsanaSimOptions;

use crate::support::{assignee_delivery, eventually, sign, Options, TestApp};

#[tokio::test]
async fn a_redelivered_event_is_acted_on_once() {
    // Every successful delivery is sent a second time, byte for byte.
    let app = TestApp::start_with(Options {
        asana: AsanaSimOptions {
            redeliver_probability: 1.0,
            ..AsanaSimOptions::default()
        },
        ..Options::default()
    })
    .await;
    let created = app.create_webhook().await;
    let (task, user, email) = (
        app.ids.tasks[0].clone(),
        app.ids.users[0].clone(),
        app.ids.emails[0].clone(),
    );
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    app.settle().await;

    let deliveries = app.asana.deliveries();
    assert!(
        deliveries
            .iter()
            .any(|d| d.redelivery && d.ok && d.events == 1),
        "the sim should have redelivered: {deliveries:?}"
    );
    assert_eq!(app.invitations(), vec![email.clone()]);
    let invited: Vec<_> = app
        .history_for_task(&task)
        .await
        .into_iter()
        .filter(|e| e.action == "invite")
        .collect();
    assert_eq!(invited.len(), 1, "{invited:?}");
    assert_eq!(invited[0].source, "webhook");
    assert_eq!(invited[0].outcome, "invited");

    // The same bytes posted again by hand: 200 (Asana must stop retrying), no new job.
    let secret = app.secret(&created.id).await;
    let body = assignee_delivery(&task, &user, "2024-05-01T10:00:00.000Z");
    for _ in 0..3 {
        let r = app
            .post_delivery(&created.id, body.clone(), Some(&sign(&secret, &body)))
            .await;
        assert_eq!(r.status(), 200);
    }
    app.settle().await;
    let m = app.metrics().await;
    assert!(
        m.contains("asana_docspace_jobs_enqueued_total{result=\"new\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("asana_docspace_jobs_enqueued_total{result=\"duplicate\"} 3"),
        "{m}"
    );
    // The second job (the hand-posted event) found the person already invited.
    assert_eq!(app.invitations(), vec![email]);
    eventually("jobs done", Duration::from_secs(5), || async {
        app.metrics()
            .await
            .contains("jobs_finished_total{result=\"done\"} 2")
    })
    .await;
}
