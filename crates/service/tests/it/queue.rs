//! The queue: retries, dead letters and replay, permanent failures, completed tasks,
//! graceful shutdown.

use std::time::Duration;

use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::NewJob;
use bridge_sim::{DocSpaceWorld, Fault, PersonState, SimUserType};

use crate::support::{eventually, Options, TestApp};

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_visibly_and_replayed_once() {
    let app = TestApp::start().await; // max_attempts 3, 20 ms between attempts
    app.create_webhook().await;
    // DocSpace cannot be reached for lookups: every attempt fails after the client's retries.
    app.docspace
        .set_faults(vec![Fault::status(503).on_path("/people/email")]);
    let (task, user, email) = (
        app.ids.tasks[0].clone(),
        app.ids.users[0].clone(),
        app.ids.emails[0].clone(),
    );
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    eventually("a dead letter", Duration::from_secs(20), || async {
        app.depth().await.dead == 1
    })
    .await;
    let dead = app.svc.store.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].last_error.as_deref().unwrap_or("").contains("503"),
        "{dead:?}"
    );
    // Visible in `history`: each failed attempt, then the dead letter.
    let rows = app.history_for_task(&task).await;
    assert_eq!(
        rows.iter().filter(|r| r.outcome == "failed").count(),
        3,
        "{rows:#?}"
    );
    let last = rows.last().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.source.as_str()),
        ("dead", "webhook")
    );
    assert!(
        last.detail.as_deref().unwrap_or("").contains("replay"),
        "{last:?}"
    );
    assert!(app.invitations().is_empty());

    // The outage ends; an operator replays the dead letters.
    app.docspace.set_faults(vec![]);
    assert_eq!(app.svc.store.replay_dead().await.unwrap(), 1);
    eventually(
        "the invitation after replay",
        Duration::from_secs(10),
        || async { app.invitations() == vec![email.clone()] },
    )
    .await;
    app.settle().await;
    assert_eq!(app.depth().await.dead, 0);
    assert_eq!(app.invitations(), vec![email]);
    let m = app.metrics().await;
    assert!(m.contains("jobs_finished_total{result=\"dead\"} 1"), "{m}");
    assert!(m.contains("jobs_finished_total{result=\"retry\"} 2"), "{m}");
}

#[tokio::test]
async fn permanent_failures_are_recorded_once_and_not_retried() {
    // Person 0 has a disabled DocSpace account: DocSpace refuses to re-invite it.
    let mut ds = DocSpaceWorld::new();
    ds.add_person(
        "person0@acme.example",
        SimUserType::User,
        PersonState::Disabled,
    );
    let app = TestApp::start_with(Options {
        docspace_world: Some(ds),
        ..Options::default()
    })
    .await;
    app.create_webhook().await;
    let task = app.ids.tasks[0].clone();
    let user = app.ids.users[0].clone();
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    app.settle().await;
    let rows = app.history_for_task(&task).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].outcome, "failed");
    assert!(
        rows[0].error.as_deref().unwrap_or("").contains("disabled"),
        "{rows:?}"
    );
    let d = app.depth().await;
    assert_eq!((d.queued, d.running, d.dead), (0, 0, 0));
    assert!(app.invitations().is_empty());
}

#[tokio::test]
async fn completed_tasks_are_skipped_when_the_rule_excludes_them() {
    let app = TestApp::start().await;
    app.create_webhook().await;
    let task = app.ids.tasks[0].clone();
    let user = app.ids.users[0].clone();
    app.asana.world(|w| {
        w.complete_task(&task).unwrap();
        w.assign_task(&task, Some(&user)).unwrap();
    });
    app.settle().await;
    assert!(app.invitations().is_empty());
    // One job per event (the completion, then the assignment), each finding it completed.
    let rows = app.history_for_task(&task).await;
    assert!(!rows.is_empty(), "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| (r.action.as_str(), r.outcome.as_str()) == ("skip", "completed")),
        "{rows:#?}"
    );
}

#[tokio::test]
async fn jobs_for_a_project_without_a_rule_are_dead_letters_at_once() {
    let app = TestApp::start().await;
    let created = app
        .svc
        .store
        .enqueue(&[NewJob {
            kind: JobKind::Task,
            resource_gid: app.ids.tasks[0].clone(),
            project_gid: Some(app.ids.project_without_rule.clone()),
            dedupe_key: "manual-1".into(),
            payload: JobPayload::from_source(Source::Webhook),
        }])
        .await
        .unwrap();
    assert_eq!(created, vec![true]);
    // Enqueued by another process: the idle poll finds it.
    eventually("a dead letter", Duration::from_secs(10), || async {
        app.depth().await.dead == 1
    })
    .await;
    let dead = app.svc.store.dead_jobs(10).await.unwrap();
    assert_eq!(dead[0].attempts, 1);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("no [[rules]] entry"));
}

#[tokio::test]
async fn shutdown_releases_a_job_that_cannot_finish_in_time() {
    let mut app = TestApp::start().await; // shutdown grace 200 ms
    app.create_webhook().await;
    app.docspace.set_latency(Duration::from_secs(3));
    let task = app.ids.tasks[0].clone();
    let user = app.ids.users[0].clone();
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    eventually("the job to run", Duration::from_secs(10), || async {
        app.depth().await.running == 1
    })
    .await;
    let started = std::time::Instant::now();
    app.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let d = app.depth().await;
    assert_eq!((d.queued, d.running), (1, 0), "released back to the queue");
    // The release did not count as an attempt.
    let jobs = app
        .svc
        .store
        .claim(
            1,
            Duration::from_secs(1),
            &bridge_core::record::ReplicaId::new(),
        )
        .await
        .unwrap();
    assert_eq!(jobs[0].attempts, 1);
}
