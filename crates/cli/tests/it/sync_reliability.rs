//! `sync` under a hostile network: a fault storm on both APIs, a run killed with SIGKILL
//! midway, and rate-limited simulators. In every case the end state is the same as after a
//! calm run, and nobody is invited twice.

use std::time::{Duration, Instant};

use bridge_sim::{seed, AsanaSimOptions, DocSpaceSimOptions, Fault};

use crate::harness::{assert_each_once, new_people, rules, storm, Sims};

/// Faults on every request of both simulators with the rates — 10 % 5xx, 5 % 429
/// and 2 % dropped connections — plus one guaranteed failure of each write kind, so the
/// "did my write land?" path is always exercised whatever the draws. The run completes
/// with nothing failed, each new assignee is invited exactly once, everyone is in the room,
/// and a calm rerun sends no write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_storm_completes_and_invites_each_new_assignee_once() {
    let (aw, dw, ids) = seed::bench(2_000, 60, 0.5);
    let env = Sims::start(
        aw,
        dw,
        (),
        AsanaSimOptions {
            rng_seed: 11,
            ..Default::default()
        },
        DocSpaceSimOptions {
            rng_seed: 12,
            ..Default::default()
        },
    )
    .await;
    // A paid token's budget: the default 150/min would pace 20 pages at 2.5 per second.
    env.write_config(&format!(
        "[asana]\nrequests_per_minute = 1500\n\n[sync]\ninvite_batch = 5\n\n{}",
        rules(&[(&ids.project, Some(&ids.room))])
    ));

    env.asana.set_faults(
        [
            vec![Fault::drop_connection().on_path("/tasks").times(1)],
            storm(0.10, 0.05, 0.02),
        ]
        .concat(),
    );
    env.docspace.set_faults(
        [
            vec![
                // The first invitation call and the first share call get no usable answer.
                Fault::status(503)
                    .on_method("POST")
                    .on_path("/people/invite")
                    .times(1),
                Fault::drop_connection()
                    .on_method("PUT")
                    .on_path("/share")
                    .times(1),
            ],
            storm(0.10, 0.05, 0.02),
        ]
        .concat(),
    );

    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(0);

    // The faults really happened, on both sides and on the writes.
    let a_log = env.asana.requests();
    let d_log = env.docspace.requests();
    let failed = |log: &[bridge_sim::LoggedRequest], status: u16| {
        log.iter().filter(|r| r.status == status).count()
    };
    let d_faults = failed(&d_log, 503) + failed(&d_log, 429) + failed(&d_log, 0);
    let a_faults = failed(&a_log, 503) + failed(&a_log, 429) + failed(&a_log, 0);
    assert!(
        a_faults >= 1 && d_faults >= 2,
        "asana {a_faults}, docspace {d_faults}"
    );
    assert!(
        d_log.iter().any(|r| r.method == "POST" && r.status == 503),
        "no invitation call failed"
    );
    assert!(
        d_log.iter().any(|r| r.method == "PUT" && r.status == 0),
        "no share call was dropped"
    );

    let new = new_people(&ids);
    assert_each_once(&env.invitations_sent(), &new);

    let outcomes = run.outcomes();
    assert_eq!(outcomes.get("invited"), Some(&30), "{outcomes:?}");
    assert_eq!(outcomes.get("already_member"), Some(&30), "{outcomes:?}");
    assert_eq!(outcomes.get("failed"), None, "{run}");
    assert_eq!(run.room_outcomes().get("shared"), Some(&60));
    let summary = run.summary();
    assert_eq!(summary["tasks"], 2_000);
    assert_eq!(summary["people"], 60);

    // Everyone is in the room at Editing (10), whatever the network did.
    let in_room = env.docspace.world(|w| {
        let room = w.room(&ids.room).cloned().expect("room");
        ids.assignee_emails
            .iter()
            .filter(|e| {
                w.person_by_email(e)
                    .and_then(|p| room.members.get(&p.id))
                    .is_some_and(|a| *a == 10)
            })
            .count()
    });
    assert_eq!(in_room, 60);

    // A calm rerun finds nothing to do.
    env.asana.set_faults(Vec::new());
    env.docspace.set_faults(Vec::new());
    env.docspace.clear_requests();
    let again = env.run(&["--json", "sync"]).await;
    again.expect_code(0);
    assert!(
        env.docspace_writes().is_empty(),
        "{:?}",
        env.docspace_writes()
    );
    assert_eq!(again.outcomes().get("already_invited"), Some(&30));
    assert_each_once(&env.invitations_sent(), &new);
}

/// A run killed with SIGKILL while it is inviting, then run again: the second run finishes
/// the job — the union of both runs' invitations is exactly the new assignees, once each —
/// and a third run sends no write at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_midway_then_rerun_ends_in_the_same_state_without_duplicates() {
    let (aw, dw, ids) = seed::bench(600, 120, 0.5);
    let env = Sims::start(aw, dw, (), Default::default(), Default::default()).await;
    // One invitation per call and a slow DocSpace: the inviting phase lasts long enough
    // (60 calls, 8 at a time, 40 ms each) to be interrupted.
    env.write_config(&format!(
        "[sync]\ninvite_batch = 1\n\n{}",
        rules(&[(&ids.project, Some(&ids.room))])
    ));
    env.docspace.set_latency(Duration::from_millis(40));
    let new = new_people(&ids);
    assert_eq!(new.len(), 60);

    let mut child = env.configured(&["--json", "sync"]).spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if env.invitations_sent().len() >= 20 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sync finished ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "sync never started inviting");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.start_kill().expect("SIGKILL");
    let killed = child.output().await;
    assert_eq!(killed.code, None, "not killed by a signal: {killed}");
    // Let requests the dead process left in flight settle in the sim.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = env.invitations_sent();
    assert!(
        before.len() < new.len(),
        "the run was not interrupted midway: {} of {} invited",
        before.len(),
        new.len()
    );
    assert!(
        env.docspace_writes().iter().all(|r| r.method != "PUT"),
        "killed before sharing, as intended"
    );

    // The killed run recorded the batches it saw answered, as they were answered.
    let history = env.run(&["--json", "history", "--limit", "1000"]).await;
    history.expect_code(0);
    let recorded: Vec<String> = history
        .json()
        .iter()
        .filter(|r| r["action"] == "invite" && r["outcome"] == "invited")
        .filter_map(|r| r["email"].as_str().map(str::to_string))
        .collect();
    assert!(
        !recorded.is_empty(),
        "the killed run left no invite in the ledger ({} were sent)",
        before.len()
    );
    assert!(
        recorded.iter().all(|e| before.contains(e)),
        "{recorded:?} vs {before:?}"
    );

    env.docspace.set_latency(Duration::ZERO);
    let rerun = env.run(&["--json", "sync"]).await;
    rerun.expect_code(0);
    assert_each_once(&env.invitations_sent(), &new);
    let outcomes = rerun.outcomes();
    let invited_now = (new.len() - before.len()) as u64;
    assert_eq!(outcomes.get("invited"), Some(&invited_now), "{outcomes:?}");
    assert_eq!(
        outcomes.get("already_invited"),
        Some(&(before.len() as u64)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes.get("already_member"), Some(&60), "{outcomes:?}");
    assert_eq!(outcomes.get("failed"), None);
    assert_eq!(rerun.room_outcomes().get("shared"), Some(&120));

    // Same final state as an uninterrupted run: everybody on the portal, in the room.
    let (people, members) = env.docspace.world(|w| {
        (
            w.people.len(),
            w.room(&ids.room).map(|r| r.members.len()).unwrap_or(0),
        )
    });
    assert_eq!(people, 1 + 120, "owner + every assignee");
    assert_eq!(members, 1 + 120, "owner + every assignee");

    env.docspace.clear_requests();
    let third = env.run(&["--json", "sync"]).await;
    third.expect_code(0);
    assert!(
        env.docspace_writes().is_empty(),
        "{:?}",
        env.docspace_writes()
    );
    assert_eq!(third.outcomes().get("already_invited"), Some(&60));
    assert_eq!(third.room_outcomes().get("already_shared"), Some(&120));
}

/// Both simulators enforce a small sliding-window limit and answer 429 with
/// `Retry-After`: the run waits as told and completes with zero failed actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_run_completes_with_zero_failed_actions() {
    let (aw, dw, ids) = seed::bench(600, 40, 0.5);
    let window = Duration::from_secs(1);
    let env = Sims::start(
        aw,
        dw,
        (),
        AsanaSimOptions {
            requests_per_minute: Some(4),
            rate_window: window,
            ..Default::default()
        },
        DocSpaceSimOptions {
            // The room check, the first people page and the room's members go out within
            // a few milliseconds: the third is always over this limit.
            requests_per_minute: Some(2),
            rate_window: window,
            ..Default::default()
        },
    )
    .await;
    // The client believes it has a paid token's budget, so the server's limit is what bites.
    env.write_config(&format!(
        "[asana]\nrequests_per_minute = 1500\n\n[sync]\ninvite_batch = 10\n\n{}",
        rules(&[(&ids.project, Some(&ids.room))])
    ));

    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(0);
    let summary = run.summary();
    assert!(summary["asana_429"].as_u64().unwrap_or(0) >= 1, "{summary}");
    assert!(
        summary["docspace_429"].as_u64().unwrap_or(0) >= 1,
        "{summary}"
    );
    assert!(env.asana.requests().iter().any(|r| r.status == 429));
    assert!(env.docspace.requests().iter().any(|r| r.status == 429));

    let outcomes = run.outcomes();
    assert_eq!(outcomes.get("failed"), None, "{run}");
    assert_eq!(outcomes.get("invited"), Some(&20), "{outcomes:?}");
    assert_eq!(outcomes.get("already_member"), Some(&20), "{outcomes:?}");
    assert_eq!(run.room_outcomes().get("failed"), None);
    assert_eq!(run.room_outcomes().get("shared"), Some(&40));
    assert_each_once(&env.invitations_sent(), &new_people(&ids));
}
