//! `watch`: the Events API poller, its first-call 412 and its recovery from an expired
//! sync token.

use std::sync::Arc;
use std::time::Duration;

use asana_api::Gid;
use bridge_core::record::ReplicaId;
use bridge_service::intake::events::poll_once;
use bridge_service::{writer, Metrics, WatchConfig, Workers};
use bridge_sim::{AsanaSim, AsanaSimOptions, DocSpaceSim, DocSpaceSimOptions};
use tokio_util::sync::CancellationToken;

use crate::support::{eventually, rule, services, test_config, world};

/// Works every due job, one at a time, until none is left.
async fn drain(workers: &Workers) -> usize {
    let mut n = 0;
    while workers.run_one().await.unwrap().is_some() {
        n += 1;
    }
    n
}

#[tokio::test]
async fn watch_recovers_from_an_expired_sync_token() {
    let (mut w, ids) = world();
    // Assigned before anyone watched: only the first resync can find this one.
    w.assign_task(&ids.tasks[0], Some(&ids.users[0])).unwrap();
    let asana = AsanaSim::start(w, AsanaSimOptions::default())
        .await
        .unwrap();
    let docspace = DocSpaceSim::start(Default::default(), DocSpaceSimOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let svc = services(&asana, &docspace, &dir).await;
    let cfg = Arc::new(test_config(vec![rule(&ids.project)]));
    let metrics = Arc::new(Metrics::new());
    let (intake, _writer) = writer::spawn(svc.store.clone(), metrics.clone(), 64);
    let workers = Workers::new(svc.clone(), cfg, metrics.clone(), ReplicaId::new());
    let project = Gid::parse(&ids.project).unwrap();
    let invited = || docspace.world(|w| w.invitations_sent());

    // First call: no token → 412 → the whole project is reconciled.
    let p = poll_once(&svc, &intake, &metrics, &project).await.unwrap();
    assert!(p.resync && p.new_jobs == 1, "{p:?}");
    assert!(svc
        .store
        .sync_token(project.as_str())
        .await
        .unwrap()
        .is_some());
    assert_eq!(drain(&workers).await, 1);
    assert_eq!(invited(), vec![ids.emails[0].clone()]);

    // Normal operation: the event arrives with the next poll and becomes a task job.
    asana
        .world(|w| w.assign_task(&ids.tasks[1], Some(&ids.users[1])))
        .unwrap();
    let p = poll_once(&svc, &intake, &metrics, &project).await.unwrap();
    assert!(!p.resync && p.events == 1 && p.new_jobs == 1, "{p:?}");
    drain(&workers).await;
    assert_eq!(
        invited(),
        vec![ids.emails[0].clone(), ids.emails[1].clone()]
    );

    // The token expires while a change happens: its event is gone for good, and only the
    // resync the 412 triggers can find it.
    asana
        .world(|w| w.assign_task(&ids.tasks[2], Some(&ids.users[2])))
        .unwrap();
    asana.expire_sync_tokens();
    let p = poll_once(&svc, &intake, &metrics, &project).await.unwrap();
    assert!(p.resync && p.events == 0 && p.new_jobs == 1, "{p:?}");
    drain(&workers).await;
    assert_eq!(
        invited(),
        vec![
            ids.emails[0].clone(),
            ids.emails[1].clone(),
            ids.emails[2].clone()
        ]
    );
    // The fresh token works: nothing new, no resync; the old people are not re-invited.
    let p = poll_once(&svc, &intake, &metrics, &project).await.unwrap();
    assert!(!p.resync && p.events == 0, "{p:?}");
    assert_eq!(drain(&workers).await, 0);

    let rows = svc
        .store
        .history(&bridge_core::record::HistoryFilter {
            email: Some(ids.emails[2].clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        (rows[0].source.as_str(), rows[0].outcome.as_str()),
        ("watch", "invited")
    );
    let m = metrics.encode();
    assert!(m.contains("watch_polls_total{result=\"resync\"} 2"), "{m}");
}

#[tokio::test]
async fn watch_runs_until_cancelled_and_resumes_from_its_token() {
    let (w, ids) = world();
    let asana = AsanaSim::start(w, AsanaSimOptions::default())
        .await
        .unwrap();
    let docspace = DocSpaceSim::start(Default::default(), DocSpaceSimOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let svc = services(&asana, &docspace, &dir).await;
    let project = Gid::parse(&ids.project).unwrap();
    let start = |svc: bridge_core::Services| {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(bridge_service::watch(
            test_config(vec![rule(&ids.project)]),
            svc,
            WatchConfig {
                projects: vec![project.clone()],
                interval: Duration::from_millis(50),
            },
            cancel.clone(),
        ));
        (cancel, task)
    };

    let (cancel, task) = start(svc.clone());
    eventually("the first poll", Duration::from_secs(10), || async {
        svc.store.sync_token(&ids.project).await.unwrap().is_some()
    })
    .await;
    asana
        .world(|w| w.assign_task(&ids.tasks[0], Some(&ids.users[0])))
        .unwrap();
    eventually("the invitation", Duration::from_secs(10), || async {
        docspace.world(|w| w.invitations_sent()) == vec![ids.emails[0].clone()]
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();

    // While nobody watches, someone is assigned; the saved token still knows the event.
    asana
        .world(|w| w.assign_task(&ids.tasks[1], Some(&ids.users[1])))
        .unwrap();
    let (cancel, task) = start(svc.clone());
    eventually(
        "the invitation after restart",
        Duration::from_secs(10),
        || async { docspace.world(|w| w.invitations_sent()).len() == 2 },
    )
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        docspace.world(|w| w.invitations_sent()),
        vec![ids.emails[0].clone(), ids.emails[1].clone()]
    );

    // A project without a rule is refused up front.
    let err = bridge_service::watch(
        test_config(vec![rule(&ids.project)]),
        svc.clone(),
        WatchConfig {
            projects: vec![Gid::parse(&ids.project_without_rule).unwrap()],
            interval: Duration::from_millis(50),
        },
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no [[rules]] entry"), "{err}");
}
