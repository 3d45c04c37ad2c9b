//! `on_unassign = "revoke"` through the real binary against the simulators: a reassignment
//! removes exactly the room access this tool granted, after the grace, only when no other
//! qualifying task still assigns the person; access it did not grant is left alone; the
//! threshold holds everything back (exit 4) until `--allow-revocations`; a dry run lists
//! and sends nothing; reruns and a SIGKILLed run never send a removal twice.

use std::time::{Duration, Instant};

use bridge_sim::{AsanaWorld, DocSpaceWorld, Fault, PersonState, SimUserType};
use serde_json::Value;

use crate::harness::Sims;

/// Who and what the test world holds.
struct Ids {
    project: String,
    project2: String,
    room: String,
    room2: String,
    /// Asana user gids by name.
    users: std::collections::BTreeMap<&'static str, String>,
    /// DocSpace person ids by name.
    people: std::collections::BTreeMap<&'static str, String>,
}

const NAMES: [&str; 6] = ["ada", "bob", "cy", "dana", "eve", "fay"];

fn email(name: &str) -> String {
    format!("{name}@example.com")
}

/// One workspace, two projects, two custom rooms; everyone is an active DocSpace user.
/// `dana` is in the room by hand (Editing), `eve` was a Read member before any share.
fn world() -> (AsanaWorld, DocSpaceWorld, Ids) {
    let mut a = AsanaWorld::new();
    let ws = a.add_workspace("Acme");
    let users = NAMES
        .iter()
        .map(|n| (*n, a.add_user(&ws, n, Some(&email(n)))))
        .collect();
    let project = a.add_project(&ws, "Website");
    let project2 = a.add_project(&ws, "Launch");
    let mut d = DocSpaceWorld::new();
    let room = d.add_room("Website docs", 5);
    let room2 = d.add_room("Launch docs", 5);
    let people: std::collections::BTreeMap<&'static str, String> = NAMES
        .iter()
        .map(|n| {
            (
                *n,
                d.add_person(&email(n), SimUserType::User, PersonState::Active),
            )
        })
        .collect();
    d.add_member(&room, &people["dana"], 10);
    d.add_member(&room, &people["eve"], 2);
    (
        a,
        d,
        Ids {
            project,
            project2,
            room,
            room2,
            users,
            people,
        },
    )
}

async fn start(edit: impl FnOnce(&mut AsanaWorld, &mut DocSpaceWorld, &Ids)) -> Sims<Ids> {
    let (mut a, mut d, ids) = world();
    edit(&mut a, &mut d, &ids);
    Sims::start(a, d, ids, Default::default(), Default::default()).await
}

fn config(env: &Sims<Ids>, revoke_after: &str, extra: &str) -> String {
    format!(
        "{extra}\n[[rules]]\nproject = \"{}\"\nroom = \"{}\"\naccess = \"editing\"\non_unassign = \"revoke\"\nrevoke_after = \"{revoke_after}\"\n",
        env.ids.project, env.ids.room
    )
}

fn add_task(env: &Sims<Ids>, project: &str, name: &str, who: Option<&str>) -> String {
    let user = who.map(|w| env.ids.users[w].clone());
    env.asana
        .world(|w| w.add_task(project, name, user.as_deref()))
}

fn assign(env: &Sims<Ids>, task: &str, who: Option<&str>) {
    let user = who.map(|w| env.ids.users[w].clone());
    env.asana
        .world(|w| w.assign_task(task, user.as_deref()))
        .expect("assign the task");
}

/// `room`'s level for `name`, as the DocSpace simulator holds it.
fn level(env: &Sims<Ids>, room: &str, name: &str) -> Option<u8> {
    let id = env.ids.people[name].clone();
    env.docspace
        .world(|w| w.room(room).and_then(|r| r.members.get(&id).copied()))
}

/// Removal entries (access 0) the DocSpace simulator received, as (room, person name).
fn removal_requests(env: &Sims<Ids>) -> Vec<(String, String)> {
    let names: std::collections::BTreeMap<String, &str> = env
        .ids
        .people
        .iter()
        .map(|(n, id)| (id.clone(), *n))
        .collect();
    env.docspace
        .world(|w| w.removal_requests())
        .into_iter()
        .map(|(room, id)| (room, names.get(&id).copied().unwrap_or("?").to_string()))
        .collect()
}

fn revocations(out: &crate::harness::Output) -> Vec<Value> {
    out.json()
        .into_iter()
        .filter(|v| v["revocation"] == true)
        .collect()
}

fn outcome_of(lines: &[Value], name: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|v| v["email"] == email(name).as_str())
        .map(|v| v["outcome"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A→B leaves A in the room while another open task assigns A; once A's last task goes,
/// A's access is removed (grace "0s": in the same run), and nothing else is: not the
/// member added by hand, not the one whose level was changed by hand, not the one who was a
/// member before this tool's share. History says which task ended. A rerun sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignment_removes_only_access_we_granted_once_no_task_assigns_the_person() {
    let env = start(|_, _, _| {}).await;
    let p = env.ids.project.clone();
    let t1 = add_task(&env, &p, "Draft", Some("ada"));
    let t2 = add_task(&env, &p, "Review", Some("ada"));
    let t3 = add_task(&env, &p, "Copy", Some("cy"));
    let t4 = add_task(&env, &p, "Images", Some("eve"));
    env.write_config(&config(&env, "0s", ""));
    let room = env.ids.room.clone();

    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    assert_eq!(level(&env, &room, "ada"), Some(10));
    assert_eq!(level(&env, &room, "cy"), Some(10));
    assert_eq!(level(&env, &room, "eve"), Some(10), "upgraded from Read");
    // Cy's level is changed by hand after our share (raised: while she is assigned, a
    // lower level would be raised back to the rule's).
    let cy = env.ids.people["cy"].clone();
    env.docspace.world(|w| w.add_member(&room, &cy, 11));

    // A→B on one of Ada's two tasks: Ada keeps her access.
    assign(&env, &t1, Some("bob"));
    let out = env.run(&["--json", "sync", "--full"]).await;
    out.expect_code(0);
    assert!(
        removal_requests(&env).is_empty(),
        "{:?}",
        removal_requests(&env)
    );
    assert_eq!(level(&env, &room, "ada"), Some(10));
    assert_eq!(level(&env, &room, "bob"), Some(10));

    // Her last task goes to Bob too, and Cy's and Eve's tasks are unassigned.
    assign(&env, &t2, Some("bob"));
    assign(&env, &t3, None);
    assign(&env, &t4, None);
    let out = env.run(&["--json", "sync", "--full"]).await;
    out.expect_code(0);
    assert_eq!(
        removal_requests(&env),
        vec![(room.clone(), "ada".to_string())]
    );
    assert_eq!(level(&env, &room, "ada"), None);
    assert_eq!(level(&env, &room, "bob"), Some(10));
    assert_eq!(
        level(&env, &room, "cy"),
        Some(11),
        "changed by hand: untouched"
    );
    assert_eq!(
        level(&env, &room, "eve"),
        Some(10),
        "member before our share"
    );
    assert_eq!(level(&env, &room, "dana"), Some(10), "added by hand");
    let lines = revocations(&out);
    assert_eq!(outcome_of(&lines, "ada"), vec!["revoked"], "{lines:?}");
    assert_eq!(outcome_of(&lines, "cy"), vec!["kept"], "{lines:?}");
    assert_eq!(outcome_of(&lines, "eve"), vec!["kept"], "{lines:?}");
    assert!(outcome_of(&lines, "dana").is_empty(), "{lines:?}");
    let s = out.summary();
    assert_eq!(s["revoked"], 1, "{s}");
    assert_eq!(s["revocations"]["revoked"], 1, "{s}");
    // The existing fields are still there.
    assert_eq!(s["people"], 1, "{s}");

    // History: the removal and its why (the task that ended, reassigned to Bob).
    let h = env
        .run(&["--json", "history", "--email", &email("ada")])
        .await;
    h.expect_code(0);
    let revoked: Vec<Value> = h
        .json()
        .into_iter()
        .filter(|r| r["outcome"] == "revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{}", h.stdout);
    let detail = revoked[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&t1) && detail.contains("bob@example.com"),
        "the why names the task and who has it now: {detail}"
    );

    // Rerun: nothing more to remove, no second request.
    let again = env.run(&["--json", "sync", "--full"]).await;
    again.expect_code(0);
    assert_eq!(removal_requests(&env).len(), 1);
    assert_eq!(again.summary()["revoked"], 0);
}

/// A nonzero grace: the first full sync after the last task ended only notes the pending
/// removal (with when it becomes due), a rerun inside the grace does nothing, an
/// assignment within it cancels the removal, and once the grace has passed — here by
/// making it "0s", since the grace runs from the time the store recorded, not from a timer
/// — the next run removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_defers_the_removal_and_an_assignment_inside_it_cancels_it() {
    let env = start(|_, _, _| {}).await;
    let p = env.ids.project.clone();
    let t1 = add_task(&env, &p, "Draft", Some("ada"));
    env.write_config(&config(&env, "1h", ""));
    let room = env.ids.room.clone();
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);

    assign(&env, &t1, Some("bob"));
    let out = env.run(&["--json", "sync", "--full"]).await;
    out.expect_code(0);
    let lines = revocations(&out);
    assert_eq!(
        outcome_of(&lines, "ada"),
        vec!["pending_removal"],
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l["due_at"].is_string()), "{lines:?}");
    let again = env.run(&["--json", "sync", "--full"]).await;
    again.expect_code(0);
    assert_eq!(
        outcome_of(&revocations(&again), "ada"),
        vec!["pending_removal"]
    );
    assert!(removal_requests(&env).is_empty());

    // Back to Ada inside the grace: cancelled.
    assign(&env, &t1, Some("ada"));
    let back = env.run(&["--json", "sync", "--full"]).await;
    back.expect_code(0);
    assert_eq!(
        outcome_of(&revocations(&back), "ada"),
        vec!["removal_cancelled"],
        "{}",
        back.stdout
    );

    // Away again: a new grace from now. Still there with "1h"…
    assign(&env, &t1, Some("bob"));
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    assert_eq!(level(&env, &room, "ada"), Some(10));
    // …and due once the grace is over.
    env.write_config(&config(&env, "0s", ""));
    let done = env.run(&["--json", "sync", "--full"]).await;
    done.expect_code(0);
    assert_eq!(outcome_of(&revocations(&done), "ada"), vec!["revoked"]);
    assert_eq!(
        removal_requests(&env),
        vec![(room.clone(), "ada".to_string())]
    );
    assert_eq!(level(&env, &room, "ada"), None);
}

/// Over `max_revocations`: nothing is removed, the other work is done, the people held
/// back are named (output and history) and the exit code is 4. A dry run lists each
/// removal with its reason and sends nothing; `--allow-revocations N` lets them go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_holds_every_removal_back_until_allowed_and_a_dry_run_sends_nothing() {
    let env = start(|_, _, _| {}).await;
    let p = env.ids.project.clone();
    let tasks: Vec<String> = ["ada", "bob", "cy"]
        .iter()
        .map(|n| add_task(&env, &p, "Task", Some(n)))
        .collect();
    env.write_config(&config(&env, "0s", "[deprovision]\nmax_revocations = 2\n"));
    let room = env.ids.room.clone();
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    for t in &tasks {
        assign(&env, t, None);
    }
    // Fay gets a task in the same run: her share must still happen.
    add_task(&env, &p, "New", Some("fay"));

    // The dry run: each removal with its reason; nothing sent.
    let writes_before = env.docspace_writes().len();
    let dry = env.run(&["--json", "sync", "--full", "--dry-run"]).await;
    dry.expect_code(0);
    assert_eq!(
        env.docspace_writes().len(),
        writes_before,
        "a dry run sends nothing"
    );
    let lines = revocations(&dry);
    for n in ["ada", "bob", "cy"] {
        let l: Vec<&Value> = lines
            .iter()
            .filter(|v| v["email"] == email(n).as_str())
            .collect();
        assert_eq!(l.len(), 1, "{n}: {lines:?}");
        assert_eq!(l[0]["outcome"], "dry_run");
        let reason = l[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("would remove") && reason.contains("no assignee"),
            "{reason}"
        );
    }
    // Members it did not grant are listed with why they stay.
    let dana = lines.iter().find(|v| v["email"] == email("dana").as_str());
    assert!(
        dana.is_some_and(|d| d["outcome"] == "kept"
            && d["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("never removed")),
        "{lines:?}"
    );
    let human = env.run(&["sync", "--full", "--dry-run"]).await;
    human.expect_code(0);
    human.stdout_has(&[
        "would remove",
        "ada@example.com",
        "leaving dana@example.com",
    ]);
    assert_eq!(env.docspace_writes().len(), writes_before);

    // The real run: held back, exit 4, Fay still shared.
    let held = env.run(&["--json", "sync", "--full"]).await;
    held.expect_code(4);
    assert!(removal_requests(&env).is_empty());
    assert_eq!(
        level(&env, &room, "fay"),
        Some(10),
        "the other work was done"
    );
    let lines = revocations(&held);
    for n in ["ada", "bob", "cy"] {
        assert_eq!(outcome_of(&lines, n), vec!["held_back"], "{lines:?}");
        assert_eq!(level(&env, &room, n), Some(10));
    }
    assert_eq!(held.summary()["revocations_held_back"], 3);
    let h = env
        .run(&["--json", "history", "--email", &email("bob")])
        .await;
    assert!(
        h.json().iter().any(|r| r["outcome"] == "held_back"
            && r["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("max_revocations")),
        "{}",
        h.stdout
    );
    let human = env.run(&["sync", "--full"]).await;
    human.expect_code(4);
    human.stdout_has(&["HELD BACK", "--allow-revocations 3"]);

    // Allowed: all three go, once each.
    let go = env
        .run(&["--json", "sync", "--full", "--allow-revocations", "3"])
        .await;
    go.expect_code(0);
    assert_eq!(go.summary()["revoked"], 3);
    let mut removed: Vec<String> = removal_requests(&env).into_iter().map(|(_, n)| n).collect();
    removed.sort();
    assert_eq!(removed, vec!["ada", "bob", "cy"]);
}

/// DocSpace's answer is compared with the request: a member the key cannot see (dropped
/// without an error) and one holding a form role (refused without `force`, which this tool
/// never sends) are reported as failed with the reason, not counted as removed; a
/// member the tool never granted is left alone; an incremental sync computes no removals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_docspace_drops_or_refuses_are_reported_and_incremental_syncs_compute_none() {
    let env = start(|_, _, _| {}).await;
    let p = env.ids.project.clone();
    let ta = add_task(&env, &p, "A", Some("ada"));
    let tb = add_task(&env, &p, "B", Some("bob"));
    env.write_config(&config(&env, "0s", ""));
    let room = env.ids.room.clone();
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    let (ada, bob) = (env.ids.people["ada"].clone(), env.ids.people["bob"].clone());
    env.docspace.world(|w| {
        w.hide_from_key(&ada);
        w.give_form_role(&room, &bob);
    });
    assign(&env, &ta, None);
    assign(&env, &tb, None);

    // Incremental (the default sync within full_every): no removal computed, and it says so.
    let inc = env.run(&["sync"]).await;
    inc.expect_code(0);
    inc.stdout_has(&["removals not computed", "sync --full"]);
    assert!(removal_requests(&env).is_empty());

    let out = env.run(&["--json", "sync", "--full"]).await;
    out.expect_code(1);
    let lines = revocations(&out);
    let failed = |n: &str| {
        lines
            .iter()
            .find(|v| v["email"] == email(n).as_str())
            .and_then(|v| v["error"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(failed("ada").contains("may not see"), "{lines:?}");
    assert!(failed("bob").contains("form role"), "{lines:?}");
    assert_eq!(level(&env, &room, "ada"), Some(10));
    assert_eq!(level(&env, &room, "bob"), Some(10));
    assert_eq!(out.summary()["revoked"], 0);
}

/// A run SIGKILLed between two rooms' removals, then run again: the removal that landed is
/// never sent again, the other is made once, and both end removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_midway_and_a_rerun_end_removed_without_a_second_request() {
    let env = start(|_, _, _| {}).await;
    let (p, p2) = (env.ids.project.clone(), env.ids.project2.clone());
    let (room, room2) = (env.ids.room.clone(), env.ids.room2.clone());
    let t1 = add_task(&env, &p, "A", Some("ada"));
    let t2 = add_task(&env, &p2, "A2", Some("ada"));
    env.write_config(&format!(
        "{}\n[[rules]]\nproject = \"{p2}\"\nroom = \"{room2}\"\naccess = \"editing\"\non_unassign = \"revoke\"\nrevoke_after = \"0s\"\n",
        config(&env, "0s", "")
    ));
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    assert_eq!(level(&env, &room2, "ada"), Some(10));
    assign(&env, &t1, None);
    assign(&env, &t2, None);
    // The second room's removal hangs, so the run can be killed after the first landed.
    let mut slow = Fault::delay(Duration::from_secs(30));
    slow.method = Some("PUT".into());
    slow.path_contains = Some(format!("/rooms/{room2}/share"));
    env.docspace.set_faults(vec![slow]);

    let mut child = env.configured(&["--json", "sync", "--full"]).spawn();
    let deadline = Instant::now() + Duration::from_secs(40);
    while level(&env, &room, "ada").is_some() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sync finished ({status}) before it could be killed");
        }
        assert!(
            Instant::now() < deadline,
            "the first removal never happened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let it record the first removal and send the second (which hangs).
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.start_kill().expect("SIGKILL");
    let killed = child.output().await;
    assert_eq!(killed.code, None, "not killed by a signal: {killed}");
    env.docspace.set_faults(Vec::new());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let rerun = env.run(&["--json", "sync", "--full"]).await;
    rerun.expect_code(0);
    assert_eq!(level(&env, &room, "ada"), None);
    assert_eq!(level(&env, &room2, "ada"), None);
    let reqs = removal_requests(&env);
    assert_eq!(
        reqs.iter().filter(|(r, _)| *r == room).count(),
        1,
        "the removal that landed was not sent again: {reqs:?}"
    );
    let applied = env.docspace.world(|w| w.removals());
    assert_eq!(
        applied.len(),
        2,
        "each room's removal applied once: {applied:?}"
    );
    // A third run: nothing at all to send.
    let writes = env.docspace_writes().len();
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    assert_eq!(env.docspace_writes().len(), writes);
}

/// Two `sync` processes at once on one state database, both finding the same four people
/// due for removal: DocSpace answers slowly, so both read the room before either acts.
/// The person claims decide who removes whom; each removal is requested once in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_syncs_remove_each_person_once() {
    let env = start(|_, _, _| {}).await;
    let p = env.ids.project.clone();
    let room = env.ids.room.clone();
    let who = ["ada", "bob", "cy", "fay"];
    let tasks: Vec<String> = who.iter().map(|n| add_task(&env, &p, n, Some(n))).collect();
    env.write_config(&config(&env, "0s", ""));
    env.run(&["--json", "sync", "--full"]).await.expect_code(0);
    for n in who {
        assert_eq!(level(&env, &room, n), Some(10), "{n} shared first");
    }
    for t in &tasks {
        assign(&env, t, None);
    }
    let mut slow = Fault::delay(Duration::from_millis(300));
    slow.path_contains = Some("/api/2.0/".into());
    env.docspace.set_faults(vec![slow]);

    let args = ["--json", "sync", "--full"];
    let (a, b) = tokio::join!(env.run(&args), env.run(&args));
    a.expect_code(0);
    b.expect_code(0);
    for n in who {
        assert_eq!(level(&env, &room, n), None, "{n} removed");
    }
    let reqs = removal_requests(&env);
    for n in who {
        assert_eq!(
            reqs.iter().filter(|(r, m)| *r == room && m == n).count(),
            1,
            "{n}'s removal requested once across both runs: {reqs:?}"
        );
    }
}
