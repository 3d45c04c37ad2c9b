//! Incremental sync marks: what the last complete, successful sync of a rule left.

use chrono::{Duration, TimeZone, Utc};

use super::Backend;

async fn full_then_incremental_then_a_changed_rule(backend: &Backend) {
    let s = backend.open().await;
    assert_eq!(s.sync_mark("1201:-").await.unwrap(), None);
    // An incremental sync with no full one before it records nothing.
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
    assert!(!s
        .record_incremental_sync("1201:-", "fp1", t0)
        .await
        .unwrap());
    assert_eq!(s.sync_mark("1201:-").await.unwrap(), None);

    s.record_full_sync("1201:-", "1201", "fp1", t0)
        .await
        .unwrap();
    let m = s.sync_mark("1201:-").await.unwrap().unwrap();
    assert_eq!(m.project_gid, "1201");
    assert_eq!(m.fingerprint, "fp1");
    assert_eq!(m.full_started_at, t0);
    assert_eq!(m.since, t0);

    // An incremental one moves `since`, not the full sync's start…
    let t1 = t0 + Duration::minutes(10);
    assert!(s
        .record_incremental_sync("1201:-", "fp1", t1)
        .await
        .unwrap());
    let m = s.sync_mark("1201:-").await.unwrap().unwrap();
    assert_eq!((m.full_started_at, m.since), (t0, t1));
    // …never back (an overlapping run that started earlier finishing later)…
    assert!(s
        .record_incremental_sync("1201:-", "fp1", t0)
        .await
        .unwrap());
    s.record_full_sync("1201:-", "1201", "fp1", t0)
        .await
        .unwrap();
    let m = s.sync_mark("1201:-").await.unwrap().unwrap();
    assert_eq!((m.full_started_at, m.since), (t0, t1));
    // …and not under another fingerprint (the rule changed since).
    assert!(!s
        .record_incremental_sync("1201:-", "fp2", t1)
        .await
        .unwrap());

    // A full sync under the new rule replaces the mark, even with an earlier start.
    let early = t0 - Duration::hours(1);
    s.record_full_sync("1201:-", "1201", "fp2", early)
        .await
        .unwrap();
    let m = s.sync_mark("1201:-").await.unwrap().unwrap();
    assert_eq!(m.fingerprint, "fp2");
    assert_eq!((m.full_started_at, m.since), (early, early));

    // Marks are per rule key.
    assert_eq!(s.sync_mark("1201:5").await.unwrap(), None);
}

async fn marks_survive_a_reopen(backend: &Backend) {
    let s = backend.open().await;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
    s.record_full_sync("9:7", "9", "fp", t0).await.unwrap();
    s.close().await;
    let s = backend.open().await;
    assert_eq!(
        s.sync_mark("9:7").await.unwrap().map(|m| m.full_started_at),
        Some(t0)
    );
}

super::conformance!(
    full_then_incremental_then_a_changed_rule,
    marks_survive_a_reopen,
);
