//! `sync` as an admin uses it: dry run, real run, second run, `history`; bad rules and bad
//! rooms refused before anything is sent; a project the token cannot see reported while
//! the others complete.

use bridge_sim::{seed, AsanaWorld, DocSpaceWorld, PersonState, SimUserType};
use serde_json::Value;

use crate::harness::{assert_each_once, new_people, rules, Sims};

/// `sync --dry-run` sends no write; `sync` then invites each new person exactly once and
/// shares the room; a second `sync` makes no write at all; `history` says why each person
/// was invited (the task and project that gave them access).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_then_sync_invites_once_then_second_sync_writes_nothing_and_history_explains() {
    let (aw, dw, ids) = seed::bench(300, 30, 0.5);
    let env = Sims::start(aw, dw, (), Default::default(), Default::default()).await;
    env.write_config(&format!(
        "[asana]\nrequests_per_minute = 1500\n\n{}",
        rules(&[(&ids.project, Some(&ids.room))])
    ));
    let new = new_people(&ids);
    assert_eq!(new.len(), 15);

    // 1. Dry run: the plan, and nothing sent.
    let dry = env.run(&["--json", "sync", "--dry-run"]).await;
    dry.expect_code(0);
    assert!(
        env.docspace_writes().is_empty(),
        "{:?}",
        env.docspace_writes()
    );
    assert!(env.invitations_sent().is_empty());
    let s = dry.summary();
    assert_eq!(s["dry_run"], true);
    assert_eq!(s["tasks"], 300);
    assert_eq!(s["people"], 30);
    assert_eq!(dry.outcomes().get("dry_run"), Some(&15), "{s}");
    assert_eq!(dry.outcomes().get("already_member"), Some(&15), "{s}");
    assert_eq!(dry.room_outcomes().get("dry_run"), Some(&30), "{s}");
    let planned: Vec<String> = dry
        .people()
        .into_iter()
        .filter(|(_, l)| l["outcome"] == "dry_run")
        .map(|(e, _)| e)
        .collect();
    assert_each_once(&planned, &new);

    // 2. The real run: each new person invited once, with an integer type, room shared.
    let real = env.run(&["--json", "sync"]).await;
    real.expect_code(0);
    assert_each_once(&env.invitations_sent(), &new);
    assert_eq!(real.outcomes().get("invited"), Some(&15));
    assert_eq!(real.outcomes().get("already_member"), Some(&15));
    assert_eq!(real.room_outcomes().get("shared"), Some(&30));
    let types: Vec<Value> = env
        .docspace
        .world(|w| w.invite_log.iter().map(|r| r.type_sent.clone()).collect());
    assert!(types.iter().all(|t| *t == 4), "{types:?}");
    for (email, line) in real.people() {
        if new.contains(&email) {
            assert_eq!(line["outcome"], "invited", "{line}");
            assert!(line["person_id"].is_string(), "{line}");
        }
    }

    // 3. A second run: no write at all.
    env.docspace.clear_requests();
    let second = env.run(&["--json", "sync"]).await;
    second.expect_code(0);
    assert!(
        env.docspace_writes().is_empty(),
        "{:?}",
        env.docspace_writes()
    );
    assert_eq!(second.outcomes().get("already_invited"), Some(&15));
    assert_eq!(second.room_outcomes().get("already_shared"), Some(&30));
    assert_each_once(&env.invitations_sent(), &new);

    // 4. History says why: one `invite` entry per new person, naming an actual task of
    //    theirs and the project.
    let tasks_of = |email: &str| -> Vec<String> {
        env.asana.world(|w| {
            let user = w.user_by_email(email).map(|u| u.gid.clone());
            w.tasks
                .values()
                .filter(|t| t.assignee == user)
                .map(|t| t.gid.clone())
                .collect()
        })
    };
    for email in &new {
        let h = env.run(&["--json", "history", "--email", email]).await;
        h.expect_code(0);
        let rows = h.json();
        let invites: Vec<&Value> = rows
            .iter()
            .filter(|r| r["target"] == "portal" && r["action"] == "invite")
            .collect();
        assert_eq!(invites.len(), 1, "{email}: {rows:?}");
        let row = invites[0];
        assert_eq!(row["outcome"], "invited");
        assert_eq!(row["source"], "sync");
        let task = row["task_gid"].as_str().expect("task_gid");
        assert!(tasks_of(email).contains(&task.to_string()), "{row}");
        let detail = row["detail"].as_str().expect("detail");
        assert!(
            detail.contains(&format!("assigned task {task}"))
                && detail.contains(&format!("in project {}", ids.project)),
            "{detail}"
        );
        // The dry run and the second run left their own, non-invite entries.
        assert!(rows.iter().any(|r| r["action"] == "plan"), "{rows:?}");
        assert!(
            rows.iter()
                .any(|r| r["action"] == "share" && r["outcome"] == "shared"),
            "{rows:?}"
        );
    }
    // And in human form.
    let h = env.run(&["history", "--email", &new[0]]).await;
    h.expect_code(0);
    assert!(
        h.stdout.lines().any(|l| l.contains(" invite ")
            && l.contains("invited")
            && l.contains("assigned task")),
        "{h}"
    );
}

/// An access level DocSpace does not know (it would read it as "remove the member") or
/// one that is dangerous is refused from the config file with exit 2, naming the valid
/// levels — before a single request to either API, even when other rules are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_room_access_names_are_refused_before_any_call() {
    let (aw, dw, ids) = seed::bench(50, 5, 0.0);
    let env = Sims::start(aw, dw, (), Default::default(), Default::default()).await;
    for bad in ["editor", "none", "full-access", "Editing Plus"] {
        env.write_config(&format!(
            "[[rules]]\nproject = \"{p}\"\n\n[[rules]]\nproject = \"{p}\"\nroom = \"{r}\"\naccess = \"{bad}\"\n",
            p = ids.project,
            r = ids.room,
        ));
        let run = env.run(&["--json", "sync"]).await;
        run.expect_code(2);
        assert!(run.stderr.contains("rules[1]"), "{bad}: {run}");
        assert!(run.stderr.contains("editing"), "{bad}: {run}");
        assert!(run.stdout.is_empty(), "{bad}: {run}");
        // Dry runs too: validation comes before everything.
        let dry = env.run(&["--json", "sync", "--dry-run"]).await;
        dry.expect_code(2);
    }
    assert!(
        env.asana.requests().is_empty(),
        "{:?}",
        env.asana.requests()
    );
    assert!(
        env.docspace.requests().is_empty(),
        "{:?}",
        env.docspace.requests()
    );
}

/// A room that does not exist, or whose type does not offer the rule's level, stops the
/// run with exit 2 before any write. The rooms are checked while the projects' first pages
/// are read, so Asana sees at most each rule's first page and sections call, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_problems_stop_the_run_before_any_write() {
    let (aw, mut dw, ids) = seed::bench(50, 5, 0.0);
    let public_room = dw.add_room("Public room", 6);
    let env = Sims::start(aw, dw, (), Default::default(), Default::default()).await;
    for (room, access, expect) in [
        ("99999", "editing", "no room 99999"),
        (public_room.as_str(), "editing", "does not allow access"),
    ] {
        env.write_config(&format!(
            "[[rules]]\nproject = \"{}\"\n\n[[rules]]\nproject = \"{}\"\nroom = \"{room}\"\naccess = \"{access}\"\n",
            ids.project, ids.project
        ));
        let asana_before = env.asana.requests().len();
        let run = env.run(&["--json", "sync"]).await;
        run.expect_code(2);
        assert!(run.stderr.contains(expect), "{run}");
        let reads = &env.asana.requests()[asana_before..];
        let first_reads = [
            format!("/api/1.0/projects/{}/tasks", ids.project),
            format!("/api/1.0/projects/{}/sections", ids.project),
        ];
        assert!(
            reads.len() <= 4
                && reads
                    .iter()
                    .all(|r| r.method == "GET" && first_reads.contains(&r.path)),
            "at most the first page and the sections of each rule: {reads:?}"
        );
    }
    assert!(
        env.docspace_writes().is_empty(),
        "{:?}",
        env.docspace_writes()
    );
    assert!(env.invitations_sent().is_empty());
    let history = env.run(&["--json", "history"]).await;
    history.expect_code(0);
    assert!(history.json().is_empty(), "nothing recorded: {history}");
}

/// Four rules: two visible projects, one the token cannot see (403) and one that does not
/// exist (404). Each failing project is reported clearly, on its own line and in the
/// summary, with exit 1; the visible projects still complete in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_project_is_reported_clearly_while_other_projects_complete() {
    let mut a = AsanaWorld::with_me("Admin", "admin@corp.example");
    let ws = a.add_workspace("Corp");
    let ann = a.add_user(&ws, "Ann", Some("ann@corp.example"));
    let ben = a.add_user(&ws, "Ben", Some("ben@corp.example"));
    let cat = a.add_user(&ws, "Cat", Some("cat@corp.example"));
    let dan = a.add_user(&ws, "Dan", Some("dan@corp.example")); // only in the hidden project
    let open = a.add_project(&ws, "Open");
    let other = a.add_project(&ws, "Other");
    let hidden = a.add_project(&ws, "Board");
    a.projects.get_mut(&hidden).expect("project").no_access = true;
    a.add_task(&open, "one", Some(&ann));
    a.add_task(&open, "two", Some(&ben));
    a.add_task(&open, "three", None);
    a.add_task(&other, "four", Some(&cat));
    a.add_task(&other, "five", Some(&ann));
    a.add_task(&hidden, "secret", Some(&dan));
    let missing = "1999999999999999";

    let mut d = DocSpaceWorld::with_owner("admin@corp.example", "Ad", "Min");
    d.add_person("cat@corp.example", SimUserType::User, PersonState::Active);
    let room = d.add_room("Open", seed::CUSTOM_ROOM);

    let env = Sims::start(a, d, (), Default::default(), Default::default()).await;
    env.write_config(&rules(&[
        (&open, Some(&room)),
        (&hidden, None),
        (missing, None),
        (&other, None),
    ]));

    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(1);
    let lines = run.json();
    let project_line = |gid: &str| -> Value {
        lines
            .iter()
            .find(|l| l["project"] == gid)
            .cloned()
            .unwrap_or_else(|| panic!("no line for project {gid}\n{run}"))
    };
    let h = project_line(&hidden);
    assert_eq!(h["outcome"], "failed");
    let err = h["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("cannot see project") && err.contains("403") && err.contains(&hidden),
        "{err}"
    );
    let m = project_line(missing);
    assert_eq!(m["outcome"], "failed");
    assert!(
        m["error"].as_str().unwrap_or_default().contains("404"),
        "{m}"
    );

    let s = run.summary();
    assert_eq!(s["projects"], 4);
    assert_eq!(s["projects_failed"], 2);
    assert_eq!(s["tasks"], 5);
    assert_eq!(run.outcomes().get("invited"), Some(&2), "{s}");
    assert_eq!(run.outcomes().get("already_member"), Some(&1), "{s}");
    assert_eq!(run.outcomes().get("no_assignee"), Some(&1), "{s}");
    assert_eq!(run.outcomes().get("failed"), None, "{s}");
    assert_each_once(
        &env.invitations_sent(),
        &["ann@corp.example".into(), "ben@corp.example".into()],
    );
    // Room of the visible project shared with its two assignees.
    assert_eq!(run.room_outcomes().get("shared"), Some(&2), "{s}");

    // Human output names the project and the fix; the rest of the run is unaffected.
    let human = env.run(&["sync"]).await;
    human.expect_code(1);
    assert!(
        human.stdout.contains(&format!("project {hidden}: FAILED"))
            && human
                .stdout
                .contains("share the project with the token's user"),
        "{human}"
    );
    assert_each_once(
        &env.invitations_sent(),
        &["ann@corp.example".into(), "ben@corp.example".into()],
    );
}

/// People are resolved with the fewest calls whatever the portal's size: with many
/// assignees the portal is listed once, page by page (read while Asana is still being
/// paged), with no lookups; with a few assignees on a big portal, one listing page and
/// then a lookup per email still unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_resolved_with_the_fewest_calls_for_the_portal_size() {
    // Many assignees: 150 people, 75 on a 376-person portal (4 pages).
    let (aw, mut dw, ids) = seed::bench(1_000, 150, 0.5);
    for i in 0..300 {
        dw.add_person(
            &format!("colleague{i:04}@elsewhere.example"),
            SimUserType::User,
            PersonState::Active,
        );
    }
    let env = Sims::start(aw, dw, (), Default::default(), Default::default()).await;
    env.write_config(&format!(
        "[asana]\nrequests_per_minute = 1500\n\n{}",
        rules(&[(&ids.project, None)])
    ));
    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(0);
    assert_eq!(run.outcomes().get("invited"), Some(&75));
    assert_eq!(run.outcomes().get("already_member"), Some(&75));
    assert_each_once(&env.invitations_sent(), &new_people(&ids));
    let log = env.docspace.requests();
    let mut starts: Vec<String> = log
        .iter()
        .filter(|r| r.path.ends_with("/people/filter"))
        .filter_map(|r| {
            r.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("startIndex=").map(str::to_string))
        })
        .collect();
    starts.sort();
    assert_eq!(starts, ["0", "100", "200", "300"], "{log:?}");
    assert!(
        !log.iter().any(|r| r.path.ends_with("/people/email")),
        "no lookups needed"
    );
    assert_eq!(
        log.iter().filter(|r| r.method == "POST").count(),
        2,
        "75 invitations in batches of 50"
    );

    // A few assignees on a 1,001-person portal: the first page, then 3 lookups.
    let mut a = AsanaWorld::with_me("Admin", "admin@corp.example");
    let ws = a.add_workspace("Corp");
    let project = a.add_project(&ws, "Small");
    for name in ["ann", "ben", "cat"] {
        let u = a.add_user(&ws, name, Some(&format!("{name}@corp.example")));
        a.add_task(&project, name, Some(&u));
    }
    let mut d = DocSpaceWorld::with_owner("admin@corp.example", "Ad", "Min");
    for i in 0..999 {
        d.add_person(
            &format!("p{i:04}@corp.example"),
            SimUserType::User,
            PersonState::Active,
        );
    }
    d.add_person("cat@corp.example", SimUserType::User, PersonState::Active);
    let env = Sims::start(a, d, (), Default::default(), Default::default()).await;
    env.write_config(&rules(&[(&project, None)]));
    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(0);
    assert_eq!(run.outcomes().get("invited"), Some(&2));
    assert_eq!(run.outcomes().get("already_member"), Some(&1));
    let log = env.docspace.requests();
    let pages = log
        .iter()
        .filter(|r| r.path.ends_with("/people/filter"))
        .count();
    let lookups = log
        .iter()
        .filter(|r| r.path.ends_with("/people/email"))
        .count();
    assert_eq!(pages, 1, "{log:?}");
    // One per email (none of them is on the first page); the invitations are confirmed
    // from the invite answer itself (new people show their email as display name).
    assert_eq!(lookups, 3, "{log:?}");
    assert_each_once(
        &env.invitations_sent(),
        &["ann@corp.example".into(), "ben@corp.example".into()],
    );
}

/// An assignee whose email is not on the task is looked up once; when that lookup keeps
/// failing (503 after the client's retries) the task is reported `failed` with the reason
/// and exit 1, not passed off as `email_hidden`; when Asana answers without an email, it is
/// `email_hidden` and exit 0. Everyone else is invited either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_email_lookup_is_a_failure_not_a_hidden_email() {
    let mut a = AsanaWorld::with_me("Admin", "admin@corp.example");
    let ws = a.add_workspace("Corp");
    let project = a.add_project(&ws, "P");
    let hidden = a.add_user(&ws, "Hidden", None);
    let ann = a.add_user(&ws, "Ann", Some("ann@corp.example"));
    let t_hidden = a.add_task(&project, "one", Some(&hidden));
    a.add_task(&project, "two", Some(&hidden));
    a.add_task(&project, "three", Some(&ann));
    let d = DocSpaceWorld::with_owner("admin@corp.example", "Ad", "Min");
    let env = Sims::start(a, d, (), Default::default(), Default::default()).await;
    env.write_config(&rules(&[(&project, None)]));

    env.asana
        .set_faults(vec![bridge_sim::Fault::status(503).on_path("/users/")]);
    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(1);
    let lines = run.json();
    let failed: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 2, "one line per task: {lines:?}");
    assert!(failed.iter().any(|l| l["task"] == t_hidden.as_str()));
    assert!(
        failed
            .iter()
            .all(|l| l["error"].as_str().unwrap_or_default().contains("503")),
        "{failed:?}"
    );
    assert_eq!(run.outcomes().get("email_hidden"), None);
    let lookups = env
        .asana
        .requests()
        .iter()
        .filter(|r| r.path.contains("/users/"))
        .count();
    assert_eq!(lookups, 6, "one lookup (1 + 5 retries) for two tasks");
    assert_each_once(&env.invitations_sent(), &["ann@corp.example".into()]);

    env.asana.set_faults(Vec::new());
    let run = env.run(&["--json", "sync"]).await;
    run.expect_code(0);
    assert_eq!(run.outcomes().get("email_hidden"), Some(&1), "{run}");
    assert_eq!(run.outcomes().get("failed"), None);
}
