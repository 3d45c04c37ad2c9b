//! "Exactly once" inside the service: many workers on one delivery about one person, and
//! a `watch` resync of the whole project running beside `serve`'s task jobs on the same
//! state database. One invitation request per person, one `invited` row per person.

use std::collections::BTreeMap;
use std::time::Duration;

use asana_api::Gid;
use bridge_core::record::HistoryFilter;
use bridge_service::WatchConfig;
use tokio_util::sync::CancellationToken;

use crate::support::{delivery, eventually, rule, sign, test_config, Options, TestApp};

/// Emails in every `POST /people/invite` the simulator received, counted per request.
fn invite_requests(app: &TestApp) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in app.docspace.invite_requests() {
        *out.entry(e).or_default() += 1;
    }
    out
}

async fn invited_rows(app: &TestApp) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in app
        .svc
        .store
        .history(&HistoryFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome == "invited")
    {
        *out.entry(r.email.unwrap_or_default()).or_default() += 1;
    }
    out
}

fn many_workers() -> Options {
    Options {
        tweak: Some(Box::new(|c| c.workers = 16)),
        ..Options::default()
    }
}

/// One delivery, five tasks newly assigned to the same new person: five jobs worked at
/// once by sixteen workers send one invitation, and `history` shows one `invited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_with_five_tasks_for_one_new_person_sends_one_invitation() {
    let app = TestApp::start_with(many_workers()).await;
    let user = app.ids.users[0].clone();
    for t in &app.ids.tasks[..5] {
        app.asana.world(|w| w.assign_task(t, Some(&user))).unwrap();
    }
    // Slow answers widen the window in which the five jobs overlap.
    app.docspace.set_latency(Duration::from_millis(20));
    let created = app.create_webhook().await;
    let secret = app.secret(&created.id).await;
    let changes: Vec<(&str, &str)> = app.ids.tasks[..5]
        .iter()
        .map(|t| (t.as_str(), user.as_str()))
        .collect();
    let body = delivery(&changes, "2024-06-01T09:00:00.000Z");
    let r = app
        .post_delivery(&created.id, body.clone(), Some(&sign(&secret, &body)))
        .await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let email = app.ids.emails[0].clone();
    assert_eq!(
        invite_requests(&app),
        BTreeMap::from([(email.clone(), 1)]),
        "one invite request for the person"
    );
    assert_eq!(invited_rows(&app).await, BTreeMap::from([(email, 1)]));
    let per_task: Vec<usize> = {
        let mut v = Vec::new();
        for t in &app.ids.tasks[..5] {
            v.push(app.history_for_task(t).await.len());
        }
        v
    };
    assert!(
        per_task.iter().all(|n| *n >= 1),
        "every job recorded its decision: {per_task:?}"
    );
}

/// `watch`'s first poll (no sync token: a 412) resyncs the whole project while `serve`'s
/// workers run task jobs for the same people from a delivery: each person is invited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resync_beside_serve_jobs_invites_each_person_once() {
    let app = TestApp::start_with(many_workers()).await;
    for (t, u) in app.ids.tasks.iter().zip(&app.ids.users) {
        app.asana.world(|w| w.assign_task(t, Some(u))).unwrap();
    }
    app.docspace.set_latency(Duration::from_millis(10));
    let created = app.create_webhook().await;
    let secret = app.secret(&created.id).await;
    let changes: Vec<(&str, &str)> = app
        .ids
        .tasks
        .iter()
        .zip(&app.ids.users)
        .map(|(t, u)| (t.as_str(), u.as_str()))
        .collect();
    let body = delivery(&changes, "2024-06-01T10:00:00.000Z");

    // `watch` on the same state database, started at the same moment as the delivery.
    let stop_watch = CancellationToken::new();
    let watch = tokio::spawn(bridge_service::watch(
        test_config(vec![rule(&app.ids.project)]),
        app.svc.clone(),
        WatchConfig {
            projects: vec![Gid::parse(&app.ids.project).unwrap()],
            interval: Duration::from_millis(200),
        },
        stop_watch.clone(),
    ));
    let r = app
        .post_delivery(&created.id, body.clone(), Some(&sign(&secret, &body)))
        .await;
    assert_eq!(r.status(), 200);
    let store = app.svc.store.clone();
    let project = app.ids.project.clone();
    eventually("watch's first poll", Duration::from_secs(20), || {
        let store = store.clone();
        let project = project.clone();
        async move { store.sync_token(&project).await.unwrap().is_some() }
    })
    .await;
    app.settle().await;
    stop_watch.cancel();
    watch.await.unwrap().unwrap();

    let resyncs = app
        .svc
        .store
        .history(&HistoryFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.source == "watch")
        .count();
    assert!(resyncs > 0, "the resync ran and recorded its decisions");
    let sent = invite_requests(&app);
    assert_eq!(sent.len(), app.ids.emails.len(), "{sent:?}");
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
    let invited = invited_rows(&app).await;
    assert_eq!(invited.len(), app.ids.emails.len(), "{invited:?}");
    assert!(invited.values().all(|n| *n == 1), "{invited:?}");
}

/// Two resync jobs for one project (two 412s, or `watch` on two hosts): while one runs,
/// the other does not start a second reconcile of the project; it is retried later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_project_is_never_resynced_twice_at_once() {
    use std::sync::Arc;

    use bridge_core::domain::JobKind;
    use bridge_service::intake::events::resync_job;
    use bridge_service::worker::Verdict;
    use bridge_service::{Metrics, Workers};

    let (mut w, ids) = crate::support::world();
    for (t, u) in ids.tasks.iter().zip(&ids.users) {
        w.assign_task(t, Some(u)).unwrap();
    }
    let asana = bridge_sim::AsanaSim::start(w, Default::default())
        .await
        .unwrap();
    let docspace = bridge_sim::DocSpaceSim::start(Default::default(), Default::default())
        .await
        .unwrap();
    // Slow pages: the first resync is still reading when the second one starts.
    asana.set_latency(Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    let svc = crate::support::services(&asana, &docspace, &dir).await;
    let project = Gid::parse(&ids.project).unwrap();
    let jobs = [
        resync_job(&project, "token-a"),
        resync_job(&project, "token-b"),
    ];
    assert!(jobs.iter().all(|j| j.kind == JobKind::Project));
    assert_eq!(svc.store.enqueue(&jobs).await.unwrap(), vec![true, true]);
    let workers = Workers::new(
        svc.clone(),
        Arc::new(test_config(vec![rule(&ids.project)])),
        Arc::new(Metrics::new()),
        bridge_core::record::ReplicaId::new(),
    );
    let (a, b) = tokio::join!(workers.run_one(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        workers.run_one().await
    });
    let verdicts = [a.unwrap().unwrap().verdict, b.unwrap().unwrap().verdict];
    assert!(verdicts.contains(&Verdict::Done), "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .any(|v| matches!(v, Verdict::Retry { error, .. } if error.contains("another resync"))),
        "{verdicts:?}"
    );
    assert_eq!(
        docspace.world(|w| w.invitations_sent()).len(),
        ids.emails.len()
    );
}
