//! Room grants and pending removals (migration 0005): a later share keeps what the person
//! had before the first one; the first noticed end of an assignment wins; cancelling and
//! finishing remove exactly their rows; a scheduled job waits for its due time. On every
//! backend (the conformance suite).

use std::time::Duration;

use bridge_core::domain::{JobKind, JobPayload, RoomId, Source};
use bridge_core::record::{NewJob, PendingRemoval, ReplicaId, RoomGrant};
use chrono::{DateTime, Utc};
use docspace_api::Access;

use super::{conformance, Backend};

fn grant(room: &RoomId, email: &str, access: Access, prior: Option<i32>) -> RoomGrant {
    RoomGrant {
        room: room.clone(),
        email: email.into(),
        person_id: format!("id-{email}"),
        assignee_gid: Some("42".into()),
        access,
        prior_access: prior,
        task_gid: Some("1201".into()),
        project_gid: Some("99".into()),
        granted_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
        run_id: "r1".into(),
    }
}

async fn a_later_share_keeps_the_prior_level_of_the_first(backend: &Backend) {
    let s = backend.open().await;
    let room = RoomId::parse("5").unwrap();
    s.record_grants(&[
        grant(&room, "a@x.io", Access::Read, Some(2)),
        grant(&room, "b@x.io", Access::Editing, None),
    ])
    .await
    .unwrap();
    // The same person shared again at another level (a rule changed): still "was a member".
    s.record_grants(&[grant(&room, "a@x.io", Access::Editing, None)])
        .await
        .unwrap();
    let got = s.room_grants(&room).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].email, "a@x.io");
    assert_eq!(got[0].access, Access::Editing);
    assert_eq!(got[0].prior_access, Some(2));
    assert_eq!(got[1], grant(&room, "b@x.io", Access::Editing, None));
    assert!(s
        .room_grants(&RoomId::parse("6").unwrap())
        .await
        .unwrap()
        .is_empty());
}

/// A batch larger than one statement, naming one person twice: every person stored once,
/// the later grant of the two kept (as when each row was its own statement).
async fn a_large_batch_of_grants_keeps_every_person_and_the_last_of_a_repeat(backend: &Backend) {
    let s = backend.open().await;
    let room = RoomId::parse("7").unwrap();
    let mut grants: Vec<RoomGrant> = (0..1_100)
        .map(|i| grant(&room, &format!("p{i:04}@x.io"), Access::Editing, None))
        .collect();
    grants.push(grant(&room, "p0003@x.io", Access::Read, None));
    s.record_grants(&grants).await.unwrap();
    let got = s.room_grants(&room).await.unwrap();
    assert_eq!(got.len(), 1_100);
    assert_eq!(got[3].email, "p0003@x.io");
    assert_eq!(got[3].access, Access::Read, "the later grant wins");
    assert_eq!(
        got[1_099],
        grant(&room, "p1099@x.io", Access::Editing, None)
    );
}

async fn pending_removals_keep_the_first_time_and_go_with_cancel_or_finish(backend: &Backend) {
    let s = backend.open().await;
    let room = RoomId::parse("5").unwrap();
    let t0 = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let pending = |email: &str, since: DateTime<Utc>, why: &str| PendingRemoval {
        room: room.clone(),
        email: email.into(),
        since,
        why: why.into(),
    };
    let first = s
        .note_removal(&pending("a@x.io", t0, "first"))
        .await
        .unwrap();
    assert_eq!(first, pending("a@x.io", t0, "first"));
    let later = t0 + chrono::Duration::hours(1);
    let again = s
        .note_removal(&pending("a@x.io", later, "second"))
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "the grace runs from the first time it was noticed"
    );
    s.note_removal(&pending("b@x.io", later, "b"))
        .await
        .unwrap();
    s.record_grants(&[grant(&room, "b@x.io", Access::Editing, None)])
        .await
        .unwrap();

    let cancelled = s
        .cancel_removals(&[
            (room.clone(), "a@x.io".into()),
            (room.clone(), "nobody@x.io".into()),
        ])
        .await
        .unwrap();
    assert_eq!(cancelled, vec![first]);
    assert_eq!(s.pending_removals(&room).await.unwrap().len(), 1);

    s.finish_removal(&room, "b@x.io").await.unwrap();
    assert!(s.pending_removals(&room).await.unwrap().is_empty());
    assert!(s.room_grants(&room).await.unwrap().is_empty());
}

async fn a_scheduled_job_is_not_claimed_before_it_is_due_nor_counted_as_backlog(backend: &Backend) {
    let s = backend.open().await;
    let job = NewJob {
        kind: JobKind::Room,
        resource_gid: "5".into(),
        project_gid: Some("99".into()),
        dedupe_key: "revoke-check:5:1".into(),
        payload: JobPayload::from_source(Source::Webhook),
    };
    let due = Utc::now() + chrono::Duration::hours(1);
    assert!(s.schedule_job(&job, due).await.unwrap());
    assert!(!s.schedule_job(&job, due).await.unwrap(), "deduplicated");
    assert!(s
        .claim(
            10,
            Duration::from_secs(60),
            &ReplicaId("test-claimer".into())
        )
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.queue_depth().await.unwrap().queued, 1);
    let oldest = s.oldest_queued_at().await.unwrap().unwrap();
    assert!(oldest > Utc::now(), "not backlog before it is due");
    let now = NewJob {
        dedupe_key: "revoke-check:5:0".into(),
        ..job
    };
    s.schedule_job(&now, Utc::now() - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let claimed = s
        .claim(
            10,
            Duration::from_secs(60),
            &ReplicaId("test-claimer".into()),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].kind, JobKind::Room);
}

conformance!(
    a_later_share_keeps_the_prior_level_of_the_first,
    a_large_batch_of_grants_keeps_every_person_and_the_last_of_a_repeat,
    pending_removals_keep_the_first_time_and_go_with_cancel_or_finish,
    a_scheduled_job_is_not_claimed_before_it_is_due_nor_counted_as_backlog,
);
