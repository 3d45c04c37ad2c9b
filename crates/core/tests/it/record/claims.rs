//! Claims: at most one holder per key while its lease holds; a dead holder's claim is
//! taken over and reported stale — at once when the holder acted for a replica whose
//! registry row expired; a release after the caller's epoch makes its reading stale too;
//! heartbeats keep a claim.

use std::time::Duration;

use bridge_core::record::{ClaimEpoch, Fence, Holder, ReplicaId};

use super::Backend;

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

async fn a_held_key_is_refused_to_others_and_granted_again_to_its_holder(backend: &Backend) {
    let s = backend.open().await;
    let (a, b) = (Holder::new(), Holder::new());
    let epoch = s.claim_epoch().await.unwrap();
    let lease = Duration::from_secs(60);
    let got = s
        .claim_keys(&keys(&["person:x", "person:y"]), &a, epoch, lease)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|g| !g.stale), "nobody acted before: {got:?}");
    let other = s
        .claim_keys(&keys(&["person:x", "person:z"]), &b, epoch, lease)
        .await
        .unwrap();
    assert_eq!(
        other.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(),
        ["person:z"]
    );
    let again = s
        .claim_keys(&keys(&["person:x"]), &a, epoch, lease)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the holder keeps its own claim");
    // Releasing only gives back what the caller holds.
    s.release_claims(&keys(&["person:x"]), &b).await.unwrap();
    assert!(s
        .claim_keys(&keys(&["person:x"]), &b, epoch, lease)
        .await
        .unwrap()
        .is_empty());
}

async fn a_release_after_the_epoch_makes_the_reading_stale_and_a_later_epoch_does_not(
    backend: &Backend,
) {
    let s = backend.open().await;
    let (a, b) = (Holder::new(), Holder::new());
    let lease = Duration::from_secs(60);
    let before = s.claim_epoch().await.unwrap();
    s.claim_keys(&keys(&["person:x"]), &a, before, lease)
        .await
        .unwrap();
    s.release_claims(&keys(&["person:x"]), &a).await.unwrap();
    let after = s.claim_epoch().await.unwrap();
    assert!(after > before);
    let stale = s
        .claim_keys(&keys(&["person:x"]), &b, before, lease)
        .await
        .unwrap();
    assert!(stale[0].stale, "a read before A acted is stale");
    s.release_claims(&keys(&["person:x"]), &b).await.unwrap();
    let c = Holder::new();
    let epoch = s.claim_epoch().await.unwrap();
    let fresh = s
        .claim_keys(&keys(&["person:x"]), &c, epoch, lease)
        .await
        .unwrap();
    assert!(!fresh[0].stale, "a read after the last release is fresh");
}

async fn an_expired_claim_is_taken_over_as_stale_and_a_heartbeat_keeps_it(backend: &Backend) {
    let s = backend.open().await;
    let (dead, alive, newcomer) = (Holder::new(), Holder::new(), Holder::new());
    let epoch = ClaimEpoch::default();
    let short = Duration::from_millis(200);
    s.claim_keys(&keys(&["person:dead"]), &dead, epoch, short)
        .await
        .unwrap();
    s.claim_keys(&keys(&["person:alive"]), &alive, epoch, short)
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.extend_claims(&alive, short).await.unwrap(), 1);
    }
    let got = s
        .claim_keys(
            &keys(&["person:dead", "person:alive"]),
            &newcomer,
            epoch,
            short,
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].key, "person:dead");
    assert!(
        got[0].stale,
        "the dead holder may have acted before it died"
    );
}

async fn a_claim_of_a_dead_replica_is_free_at_once_and_others_keep_their_lease(backend: &Backend) {
    let s = backend.open().await;
    let (dying, alive, unregistered) = (ReplicaId::new(), ReplicaId::new(), ReplicaId::new());
    let ttl = Duration::from_secs(60);
    s.register_replica(&dying, "serve on a (pid 1)", ttl)
        .await
        .unwrap();
    s.register_replica(&alive, "serve on b (pid 2)", ttl)
        .await
        .unwrap();
    // Every claim has a minute of lease left throughout the test.
    let lease = Duration::from_secs(60);
    let epoch = ClaimEpoch::default();
    let holders = [
        ("person:dying", Holder::for_replica(&dying)),
        ("person:alive", Holder::for_replica(&alive)),
        ("person:unregistered", Holder::for_replica(&unregistered)),
        ("person:cli", Holder::new()),
    ];
    for (key, h) in &holders {
        assert_eq!(
            s.claim_keys(&keys(&[key]), h, epoch, lease)
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let all = keys(&holders.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    let newcomer = Holder::for_replica(&alive);
    assert!(
        s.claim_keys(&all, &newcomer, epoch, lease)
            .await
            .unwrap()
            .is_empty(),
        "every holder is alive"
    );
    // The dying replica's last heartbeat runs out now (SIGKILL, then its TTL passing).
    assert!(s.beat_replica(&dying, Duration::ZERO).await.unwrap());
    let got = s.claim_keys(&all, &newcomer, epoch, lease).await.unwrap();
    assert_eq!(
        got.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(),
        ["person:dying"],
        "only the dead replica's claim is free before its lease ends: {got:?}"
    );
    assert!(got[0].stale, "the dead replica's run may have acted");
    // Its run cannot renew or give back what it lost; the newcomer holds it now.
    assert_eq!(s.extend_claims(&holders[0].1, lease).await.unwrap(), 0);
    s.release_claims(&keys(&["person:dying"]), &holders[0].1)
        .await
        .unwrap();
    let cli = Holder::new();
    assert!(s
        .claim_keys(&keys(&["person:dying"]), &cli, epoch, lease)
        .await
        .unwrap()
        .is_empty());
    // Released, the key no longer names a replica: a CLI holder's claim of it waits for
    // its lease, whatever becomes of the replica the previous holder worked for.
    s.release_claims(&keys(&["person:dying"]), &newcomer)
        .await
        .unwrap();
    assert_eq!(
        s.claim_keys(&keys(&["person:dying"]), &cli, epoch, lease)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.beat_replica(&alive, Duration::ZERO).await.unwrap());
    let later = s
        .claim_keys(
            &keys(&["person:dying", "person:cli"]),
            &Holder::new(),
            epoch,
            lease,
        )
        .await
        .unwrap();
    assert!(later.is_empty(), "CLI claims keep their lease: {later:?}");
}

/// More keys than one statement takes, some held by another: the free ones are granted in
/// the order asked, the held ones refused, and a released key comes back stale.
async fn a_large_claim_grants_the_free_keys_in_order_and_refuses_the_held(backend: &Backend) {
    let s = backend.open().await;
    let (a, b) = (Holder::new(), Holder::new());
    let lease = Duration::from_secs(60);
    let all: Vec<String> = (0..1_203).map(|i| format!("person:p{i:04}")).collect();
    let held: Vec<String> = all.iter().step_by(100).cloned().collect();
    let epoch = s.claim_epoch().await.unwrap();
    s.claim_keys(&held, &b, epoch, lease).await.unwrap();
    s.claim_keys(&all[1..2], &b, epoch, lease).await.unwrap();
    s.release_claims(&all[1..2], &b).await.unwrap();

    let got = s.claim_keys(&all, &a, epoch, lease).await.unwrap();
    let want: Vec<&String> = all.iter().filter(|k| !held.contains(k)).collect();
    assert_eq!(got.iter().map(|g| &g.key).collect::<Vec<_>>(), want);
    let stale: Vec<&str> = got
        .iter()
        .filter(|g| g.stale)
        .map(|g| g.key.as_str())
        .collect();
    assert_eq!(stale, ["person:p0001"], "released after the epoch");
}

async fn concurrent_claimers_never_share_a_key(backend: &Backend) {
    let s = backend.open().await;
    let all: Vec<String> = (0..50).map(|i| format!("person:{i}")).collect();
    let runs = (0..8).map(|_| {
        let s = s.clone();
        let all = all.clone();
        tokio::spawn(async move {
            let h = Holder::new();
            s.claim_keys(&all, &h, ClaimEpoch::default(), Duration::from_secs(60))
                .await
                .unwrap()
        })
    });
    let mut granted: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap().into_iter().map(|g| g.key))
        .collect();
    granted.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(granted, want, "each key granted exactly once");
}

async fn a_running_jobs_lease_is_extended_until_it_is_settled(backend: &Backend) {
    use bridge_core::domain::{JobKind, JobPayload, Source};
    use bridge_core::record::NewJob;
    let s = backend.open().await;
    s.enqueue(&[NewJob {
        kind: JobKind::Project,
        resource_gid: "1".into(),
        project_gid: Some("1".into()),
        dedupe_key: "k".into(),
        payload: JobPayload::from_source(Source::Watch),
    }])
    .await
    .unwrap();
    let short = Duration::from_millis(300);
    let me = bridge_core::record::ReplicaId::new();
    let job = s.claim(1, short, &me).await.unwrap().pop().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            s.extend_lease(job.lease(), short).await.unwrap(),
            Fence::Held
        );
    }
    assert!(
        s.claim(1, short, &me).await.unwrap().is_empty(),
        "a renewed job is not handed out again"
    );
    assert_eq!(s.complete(job.lease()).await.unwrap(), Fence::Held);
    assert_eq!(
        s.extend_lease(job.lease(), short).await.unwrap(),
        Fence::Lost
    );
}

super::conformance!(
    a_large_claim_grants_the_free_keys_in_order_and_refuses_the_held,
    a_held_key_is_refused_to_others_and_granted_again_to_its_holder,
    a_release_after_the_epoch_makes_the_reading_stale_and_a_later_epoch_does_not,
    an_expired_claim_is_taken_over_as_stale_and_a_heartbeat_keeps_it,
    a_claim_of_a_dead_replica_is_free_at_once_and_others_keep_their_lease,
    concurrent_claimers_never_share_a_key,
    a_running_jobs_lease_is_extended_until_it_is_settled,
);
