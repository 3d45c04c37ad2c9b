//! Reassigning a task twice in quick succession ends with the right people having access.

use crate::support::TestApp;

#[tokio::test]
async fn a_task_reassigned_twice_in_quick_succession_ends_with_the_right_people() {
    let app = TestApp::start().await;
    app.create_webhook().await;
    let ids = app.ids.clone();
    let task = &ids.tasks[0];

    // Assigned to person 0; they get access.
    app.asana
        .world(|w| w.assign_task(task, Some(&ids.users[0])))
        .unwrap();
    app.settle().await;
    assert_eq!(app.invitations(), vec![ids.emails[0].clone()]);

    // Two reassignments before anything is delivered: 0 → 1 → 2. Both events arrive, both
    // jobs re-read the task, and both find person 2: person 1, assigned for a moment,
    // never gets an invitation, and person 2 gets exactly one.
    app.asana.world(|w| {
        w.assign_task(task, Some(&ids.users[1])).unwrap();
        w.assign_task(task, Some(&ids.users[2])).unwrap();
    });
    app.settle().await;
    assert_eq!(
        app.invitations(),
        vec![ids.emails[0].clone(), ids.emails[2].clone()]
    );
    let rows = app.history_for_task(task).await;
    let invited: Vec<_> = rows.iter().filter(|r| r.outcome == "invited").collect();
    assert_eq!(invited.len(), 2, "{rows:#?}");
    let skipped_for_2 = rows
        .iter()
        .filter(|r| {
            r.email.as_deref() == Some(ids.emails[2].as_str()) && r.outcome == "already_invited"
        })
        .count();
    assert_eq!(
        skipped_for_2, 1,
        "the second job must see the first one's invitation: {rows:#?}"
    );

    // Two quick reassignments through the API as a user would make them: 2 → 3 → 4.
    let base = app.asana.base_url();
    for user in [&ids.users[3], &ids.users[4]] {
        let r = app
            .http
            .put(format!("{base}/tasks/{task}"))
            .bearer_auth(bridge_sim::seed::DEMO_ASANA_TOKEN)
            .json(&serde_json::json!({"data": {"assignee": user}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    app.settle().await;
    let sent = app.invitations();
    // Person 4, the final assignee, has access exactly once; person 3 may or may not have
    // been invited depending on whether their event was worked before the second change.
    assert_eq!(
        sent.iter().filter(|e| **e == ids.emails[4]).count(),
        1,
        "{sent:?}"
    );
    assert!(
        sent.iter().filter(|e| **e == ids.emails[3]).count() <= 1,
        "{sent:?}"
    );
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        sent.len(),
        "no duplicate invitation: {sent:?}"
    );
}
