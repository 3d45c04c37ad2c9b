//! The webhook path of `on_unassign = "revoke"`: an assignee change away from a person
//! schedules a removal check after the grace; a reassignment back within the grace cancels
//! that person's removal; the check, when due, removes the person no task assigns any more
//! — once.

use std::time::Duration;

use bridge_core::config::{OnUnassign, Revocation, RoomTarget, DEFAULT_MAX_REVOCATIONS};
use bridge_core::domain::RoomId;
use bridge_sim::{DocSpaceWorld, PersonState, SimUserType};
use docspace_api::Access;

use crate::support::{eventually, Options, TestApp};

/// Long enough for the cancelling reassignment to be worked well inside it on a loaded
/// machine; the test waits for it once.
const GRACE: Duration = Duration::from_secs(8);

/// The test service with its project's rule naming a fresh room under
/// `on_unassign = "revoke"` and this grace; the first people of the test world are active
/// DocSpace users. Returns the app and the room.
async fn start(grace: Duration) -> (TestApp, String, RoomId) {
    let mut docspace = DocSpaceWorld::new();
    let room = docspace.add_room("Launch docs", 5);
    let (_, world_ids) = crate::support::world();
    for e in &world_ids.emails[..3] {
        docspace.add_person(e, SimUserType::User, PersonState::Active);
    }
    let room_id = RoomId::parse(&room).unwrap();
    let target = room_id.clone();
    let app = TestApp::start_with(Options {
        docspace_world: Some(docspace),
        tweak: Some(Box::new(move |c| {
            c.rules[0].room = Some(RoomTarget {
                room: target,
                access: Access::Editing,
            });
            c.rules[0].on_unassign = OnUnassign::Revoke;
            c.rules[0].revoke_after = grace;
            c.revocation = Revocation::from_rules(&c.rules, DEFAULT_MAX_REVOCATIONS);
        })),
        ..Options::default()
    })
    .await;
    (app, room, room_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_schedule_cancel_and_carry_out_a_removal() {
    let (app, room, room_id) = start(GRACE).await;
    app.create_webhook().await;
    let ids = app.ids.clone();
    let task = ids.tasks[0].clone();
    let person = |i: usize| {
        app.docspace
            .world(|w| w.person_by_email(&ids.emails[i]).map(|p| p.id.clone()))
            .unwrap()
    };
    let (p0, p1) = (person(0), person(1));
    let member = |id: &str| {
        let id = id.to_string();
        let room = room.clone();
        app.docspace
            .world(move |w| w.room(&room).and_then(|r| r.members.get(&id).copied()))
    };
    let store = app.svc.store.clone();
    let pending = |store: std::sync::Arc<dyn bridge_core::record::Store>, room: RoomId| async move {
        store
            .pending_removals(&room)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.email)
            .collect::<Vec<_>>()
    };
    // Reassigns the task to person `to` and waits until exactly person `left` is pending.
    let reassign = |to: usize, left: usize| {
        let (store, room, ids, task) = (store.clone(), room_id.clone(), ids.clone(), task.clone());
        let asana = &app.asana;
        async move {
            asana
                .world(|w| w.assign_task(&task, Some(&ids.users[to])))
                .unwrap();
            asana.flush_deliveries().await;
            eventually("the pending removal", Duration::from_secs(20), || {
                let (store, room) = (store.clone(), room.clone());
                let want = ids.emails[left].clone();
                async move { pending(store, room).await == vec![want] }
            })
            .await;
        }
    };

    // Person 0 is assigned and shared.
    app.asana
        .world(|w| w.assign_task(&task, Some(&ids.users[0])))
        .unwrap();
    app.settle().await;
    assert_eq!(member(&p0), Some(10));

    // 0 → 1: person 0's removal is pending, and a removal check is queued for later.
    reassign(1, 0).await;
    assert_eq!(member(&p1), Some(10));
    assert_eq!(member(&p0), Some(10), "not before the grace");
    let depth = store.queue_depth().await.unwrap();
    assert!(depth.queued >= 1, "a removal check is scheduled: {depth:?}");

    // 1 → 0 within the grace: person 0's removal is cancelled; person 1's is now pending.
    reassign(0, 1).await;
    let rows = app.history_for_task(&task).await;
    assert!(
        rows.iter().any(|r| r.outcome == "removal_cancelled"
            && r.email.as_deref() == Some(ids.emails[0].as_str())),
        "{rows:#?}"
    );

    // The checks come due: person 1 (no task any more) is removed, once; person 0 stays.
    eventually("person 1's removal", GRACE * 4, || {
        let p1 = p1.clone();
        let room = room.clone();
        let ds = &app.docspace;
        let gone = ds.world(move |w| w.room(&room).is_some_and(|r| !r.members.contains_key(&p1)));
        async move { gone }
    })
    .await;
    app.settle().await;
    assert_eq!(member(&p0), Some(10));
    let removals = app.docspace.world(|w| w.removal_requests());
    assert_eq!(
        removals,
        vec![(room.clone(), p1.clone())],
        "once, and only person 1"
    );
    assert!(pending(store.clone(), room_id.clone()).await.is_empty());
    let done = store.queue_depth().await.unwrap();
    assert_eq!((done.queued, done.dead), (0, 0), "{done:?}");
}

/// A task completed under a rule without `include_completed`, and a task deleted (Asana's
/// `deleted` event): each one's assignee had no other task, so with a grace of "0s" the
/// check runs at once and removes them; the task's other people are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_or_deleted_task_removes_its_assignee_after_the_grace() {
    let (app, room, _) = start(Duration::ZERO).await;
    let hook = app.create_webhook().await;
    let ids = app.ids.clone();
    let member = |i: usize| {
        let email = ids.emails[i].clone();
        let room = room.clone();
        app.docspace.world(move |w| {
            let id = w.person_by_email(&email).unwrap().id.clone();
            w.room(&room).and_then(|r| r.members.get(&id).copied())
        })
    };
    for i in 0..3 {
        app.asana
            .world(|w| w.assign_task(&ids.tasks[i], Some(&ids.users[i])))
            .unwrap();
    }
    app.settle().await;
    assert_eq!(
        (member(0), member(1), member(2)),
        (Some(10), Some(10), Some(10))
    );

    app.asana.world(|w| w.complete_task(&ids.tasks[0])).unwrap();
    app.settle().await;
    assert_eq!(member(0), None, "completed: removed");

    // Deleted in Asana (the sim has no helper: the row goes), and Asana's event for it.
    let gone = ids.tasks[1].clone();
    app.asana.world(move |w| w.tasks.remove(&gone));
    let body = serde_json::to_vec(&serde_json::json!({"events": [{
        "user": {"gid": "1", "resource_type": "user"},
        "resource": {"gid": ids.tasks[1], "resource_type": "task"},
        "action": "deleted",
        "parent": null,
        "created_at": chrono::Utc::now().to_rfc3339(),
    }]}))
    .unwrap();
    let secret = app.secret(&hook.id).await;
    let signature = crate::support::sign(&secret, &body);
    let r = app.post_delivery(&hook.id, body, Some(&signature)).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    assert_eq!(member(1), None, "deleted: removed");
    assert_eq!(member(2), Some(10), "still assigned: untouched");
    let rows = app.history_for_task(&ids.tasks[1]).await;
    assert!(
        rows.iter().any(|r| r.outcome == "revoked"
            && r.detail.as_deref().is_some_and(|d| d.contains("deleted"))),
        "{rows:#?}"
    );
    assert_eq!(app.docspace.world(|w| w.removals()).len(), 2);
}
