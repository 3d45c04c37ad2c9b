//! "Exactly once" under overlap: several processes of the real binary on one state
//! database — concurrent `sync`s, `invite` racing `sync` — send one invitation request per
//! person and record one `invited` per person, however their work interleaves.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge_core::record::{self, HistoryFilter};
use bridge_sim::{seed, AsanaSimOptions, DocSpaceSimOptions};

use crate::harness::{new_people, rules, Sims};

/// Every email in every `POST /people/invite` the simulator received, once per request.
fn invite_requests<I>(s: &Sims<I>) -> Vec<String> {
    s.docspace.invite_requests()
}

/// Emails per person id in every room share request, once per request.
fn share_requests<I>(s: &Sims<I>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in s.share_puts() {
        for inv in r
            .body
            .as_ref()
            .and_then(|b| b["invitations"].as_array().cloned())
            .unwrap_or_default()
        {
            if let Some(id) = inv["id"].as_str() {
                *out.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    out
}

fn counts(v: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in v {
        *out.entry(e.clone()).or_default() += 1;
    }
    out
}

/// One `invited` ledger row per person, read from the shared state database.
async fn invited_rows<I>(s: &Sims<I>) -> BTreeMap<String, usize> {
    let store = record::open(&s.state_path().to_string_lossy())
        .await
        .unwrap();
    let rows = store.history(&HistoryFilter::default()).await.unwrap();
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| r.outcome == "invited") {
        *out.entry(r.email.clone().unwrap_or_default()).or_default() += 1;
    }
    store.close().await;
    out
}

/// A backfill world: `people` new assignees (none in DocSpace yet), two tasks each, one
/// room, a little latency so that concurrent runs really overlap.
async fn backfill(people: usize) -> (Sims<seed::BenchIds>, Vec<String>) {
    let (aw, dw, ids) = seed::bench(people * 2, people, 0.0);
    let s = Sims::start(
        aw,
        dw,
        ids,
        AsanaSimOptions::default(),
        DocSpaceSimOptions::default(),
    )
    .await;
    s.asana.set_latency(Duration::from_millis(2));
    s.docspace.set_latency(Duration::from_millis(2));
    s.write_config(&format!(
        "[asana]\nrequests_per_minute = 100000\n\n[sync]\ninvite_batch = 20\n\n{}",
        rules(&[(&s.ids.project, Some(&s.ids.room))])
    ));
    let fresh = new_people(&s.ids);
    assert_eq!(fresh.len(), people);
    (s, fresh)
}

async fn concurrent_syncs(n: usize) {
    let (s, fresh) = backfill(300).await;
    let runs: Vec<_> = (0..n)
        .map(|_| s.configured(&["--json", "sync"]).spawn())
        .collect();
    for run in runs {
        let out = run.output().await;
        out.expect_code(0);
    }
    let sent = counts(&invite_requests(&s));
    assert_eq!(sent.len(), fresh.len(), "every new person invited");
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "invite requests sent twice: {twice:?}");
    let invited = invited_rows(&s).await;
    assert_eq!(invited.len(), fresh.len());
    assert!(
        invited.values().all(|n| *n == 1),
        "`invited` recorded twice"
    );
    let shares = share_requests(&s);
    assert_eq!(shares.len(), fresh.len(), "everyone shared into the room");
    assert!(shares.values().all(|n| *n == 1), "a share sent twice");
    assert_eq!(s.invitations_sent().len(), fresh.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_syncs_over_300_new_people_invite_each_once() {
    concurrent_syncs(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_syncs_over_300_new_people_invite_each_once() {
    concurrent_syncs(4).await;
}

/// `invite --task` for a dozen new people while a `sync` of their project runs: each
/// person gets one invitation request and one `invited` row, whoever got there first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_racing_sync_invites_each_person_once() {
    let (s, fresh) = backfill(60).await;
    let tasks: Vec<String> = s
        .asana
        .world(|w| w.project_task_gids(&s.ids.project))
        .into_iter()
        .take(12)
        .collect();
    let sync = s.configured(&["--json", "sync"]).spawn();
    let invites: Vec<_> = tasks
        .iter()
        .map(|t| s.configured(&["--json", "invite", "--task", t]).spawn())
        .collect();
    sync.output().await.expect_code(0);
    for run in invites {
        let out = run.output().await;
        out.expect_code(0);
        let outcome = out.one()["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            matches!(outcome.as_str(), "invited" | "already_invited"),
            "{out}"
        );
    }
    let sent = counts(&invite_requests(&s));
    assert_eq!(sent.len(), fresh.len());
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
    let invited = invited_rows(&s).await;
    assert_eq!(invited.len(), fresh.len());
    assert!(invited.values().all(|n| *n == 1), "{invited:?}");
}

/// Two `sync` processes, and the one holding the people is SIGKILLed while it invites,
/// after the other has read the portal: the other waits for the dead holder's claims to
/// lapse (10 s), reads DocSpace again instead of trusting its earlier reading, and
/// finishes the job. Every person ends up invited by exactly one answered request, and a
/// third run sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_midway_beside_another_leaves_each_person_invited_once() {
    let (s, fresh) = backfill(300).await;
    // Small batches and slow answers: the first run is still inviting when the second
    // has read the portal.
    s.write_config(&format!(
        "[asana]\nrequests_per_minute = 100000\n\n[sync]\ninvite_batch = 5\n\n{}",
        rules(&[(&s.ids.project, Some(&s.ids.room))])
    ));
    s.docspace.set_latency(Duration::from_millis(100));
    let mut first = s.configured(&["--json", "sync"]).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.invite_posts().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first sync never invited"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The second run reads the portal's people while the first is still inviting, so
    // what it read is stale by the time it may act.
    let seen = s.docspace_requests().len();
    let second = s.configured(&["--json", "sync"]).spawn();
    while !s.docspace_requests()[seen..]
        .iter()
        .any(|r| r.path.ends_with("/people/filter") && r.status == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the second sync never read the portal"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.start_kill().expect("SIGKILL the first sync");
    let killed = first.output().await;
    assert_eq!(
        killed.code, None,
        "the first sync should have been killed: {killed}"
    );
    let done_before_kill = s.invitations_sent().len();
    assert!(
        done_before_kill < fresh.len(),
        "the kill should land midway ({done_before_kill} of {} invited)",
        fresh.len()
    );
    second.output().await.expect_code(0);

    let answered: Vec<String> = s
        .invite_posts()
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| {
            r.body
                .as_ref()
                .and_then(|b| b["invitations"].as_array().cloned())
                .unwrap_or_default()
        })
        .filter_map(|i| i["email"].as_str().map(str::to_string))
        .collect();
    let answered = counts(&answered);
    assert!(
        answered.values().all(|n| *n == 1),
        "answered twice: {answered:?}"
    );
    let sent = counts(&s.invitations_sent());
    assert_eq!(sent.len(), fresh.len(), "every new person invited");
    assert!(
        sent.values().all(|n| *n == 1),
        "invitation e-mails: {sent:?}"
    );
    assert!(invited_rows(&s).await.values().all(|n| *n == 1));

    let posts = s.invite_posts().len();
    s.configured(&["--json", "sync"]).run().await.expect_code(0);
    assert_eq!(
        s.invite_posts().len(),
        posts,
        "a third run sent invitations"
    );
}
