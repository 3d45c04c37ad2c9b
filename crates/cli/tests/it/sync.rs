//! `sync` / `sync --dry-run` with a rules file: the plan changes nothing, the real run
//! invites each person once (deduplicated across tasks and projects, in batches) and shares
//! rooms by id with integer access, a second run writes nothing, and project pages are
//! read 100 at a time with `opt_fields`.

use std::collections::BTreeMap;

use bridge_sim::{seed, AsanaSimOptions, DocSpaceSimOptions};
use serde_json::Value;

use crate::harness::{assert_contract_line, matching, Output, Sims};

async fn sync<I>(s: &Sims<I>, rules: &std::path::Path, extra: &[&str]) -> Output {
    s.cmd()
        .arg("--config")
        .arg(rules)
        .args(["sync", "--json"])
        .args(extra.iter().copied())
        .run()
        .await
}

/// Person lines keyed by email, task lines without an email listed apart, plus project
/// errors and the summary.
struct Parsed {
    people: BTreeMap<String, Value>,
    no_email: Vec<Value>,
    project_errors: Vec<Value>,
    summary: Value,
}

#[track_caller]
fn parse(out: &Output) -> Parsed {
    let mut lines = out.json();
    let summary = lines.pop().unwrap_or_default();
    assert_eq!(
        summary["summary"], true,
        "the last line is the summary\n{out}"
    );
    let mut p = Parsed {
        people: BTreeMap::new(),
        no_email: Vec::new(),
        project_errors: Vec::new(),
        summary,
    };
    for l in lines {
        if l.get("project").is_some() {
            assert_eq!(l["outcome"], "failed", "{l}");
            assert!(l["error"].is_string(), "{l}");
            p.project_errors.push(l);
            continue;
        }
        assert_contract_line(&l);
        match l["email"].as_str() {
            Some(e) => {
                let previous = p.people.insert(e.to_string(), l.clone());
                assert!(previous.is_none(), "{e} reported twice\n{out}");
            }
            None => p.no_email.push(l),
        }
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_writes_nothing() {
    let s = Sims::demo().await;
    let rules = s.write_file("rules.toml", &s.demo_rules());
    let out = sync(&s, &rules, &["--dry-run"]).await;
    // The restricted project and the disabled account are failures: exit 1.
    out.expect_code(1);
    let p = parse(&out);
    let outcome = |email: &str| {
        p.people[email]["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(outcome(&s.ids.email_new), "dry_run");
    assert_eq!(outcome(&s.ids.email_onboarding_new), "dry_run");
    assert_eq!(outcome(&s.ids.email_active), "already_member");
    assert_eq!(outcome(&s.ids.email_pending), "already_invited");
    assert_eq!(outcome(&s.ids.email_disabled), "failed");
    assert_eq!(p.people.len(), 5, "{out}");
    // Alice is assigned two tasks: one line, both tasks listed.
    let alice_tasks = p.people[&s.ids.email_new]["tasks"].clone();
    assert_eq!(
        alice_tasks,
        serde_json::json!([s.ids.task_new_assignee, s.ids.task_new_assignee_again])
    );
    assert_eq!(p.people[&s.ids.email_new]["rooms"][0]["outcome"], "dry_run");
    assert_eq!(
        p.people[&s.ids.email_active]["rooms"][0]["outcome"],
        "already_shared"
    );
    let hidden: Vec<&Value> = p
        .no_email
        .iter()
        .filter(|l| l["outcome"] == "email_hidden")
        .collect();
    assert_eq!(hidden.len(), 1, "{out}");
    assert_eq!(hidden[0]["task"], s.ids.task_hidden_email.as_str());
    assert_eq!(
        p.no_email
            .iter()
            .filter(|l| l["outcome"] == "no_assignee")
            .count(),
        2
    );
    assert_eq!(p.project_errors.len(), 1);
    assert_eq!(
        p.project_errors[0]["project"],
        s.ids.project_restricted.as_str()
    );
    assert!(p.project_errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("403"));
    assert_eq!(p.summary["dry_run"], true);
    assert_eq!(p.summary["projects"], 3);
    assert_eq!(p.summary["people"], 5);
    // The completed task's assignee is not part of the plan.
    assert!(!p.people.contains_key(&s.ids.email_completed_only));

    assert!(s.docspace_writes().is_empty(), "{:#?}", s.docspace_writes());
    assert!(s.invitations_sent().is_empty());

    // Project pages: 100 per page, only the fields needed, open tasks only.
    let pages = matching(&s.asana_requests(), "GET", "/tasks");
    assert_eq!(pages.len(), 3, "{pages:#?}");
    for r in &pages {
        assert!(r.path.starts_with("/api/1.0/projects/"), "{r:?}");
        assert!(r.query.contains("limit=100"), "{r:?}");
        assert!(r.query.contains("opt_fields="), "{r:?}");
        assert!(r.query.contains("completed_since=now"), "{r:?}");
    }

    // Humans get the same plan, clearly marked.
    let human = s
        .cmd()
        .arg("--config")
        .arg(&rules)
        .args(["sync", "--dry-run"])
        .run()
        .await;
    human.expect_code(1).stdout_has(&[
        "DRY RUN — nothing was sent",
        &format!("would invite {}", s.ids.email_new),
        &format!("would share room {} (editing)", s.ids.room),
    ]);
    assert!(s.docspace_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_invites_each_person_once_and_shares_by_id_with_integer_access() {
    let s = Sims::demo().await;
    let rules = s.write_file("rules.toml", &s.demo_rules());
    let out = sync(&s, &rules, &[]).await;
    out.expect_code(1);
    let p = parse(&out);
    assert_eq!(p.people[&s.ids.email_new]["outcome"], "invited");
    assert_eq!(p.people[&s.ids.email_onboarding_new]["outcome"], "invited");
    assert_eq!(p.people[&s.ids.email_new]["rooms"][0]["outcome"], "shared");
    assert_eq!(
        p.people[&s.ids.email_pending]["rooms"][0]["outcome"],
        "shared"
    );
    assert_eq!(
        p.people[&s.ids.email_disabled]["rooms"][0]["outcome"],
        "skipped"
    );
    assert_eq!(p.summary["dry_run"], false);
    assert_eq!(p.summary["outcomes"]["invited"], 2);

    let mut sent = s.invitations_sent();
    sent.sort();
    let mut want = vec![s.ids.email_new.clone(), s.ids.email_onboarding_new.clone()];
    want.sort();
    assert_eq!(sent, want);
    // Both in one batch, as integers.
    let posts = s.invite_posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let invitations = posts[0].body.as_ref().unwrap()["invitations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(invitations.len(), 2);
    assert!(invitations.iter().all(|i| i["type"] == 4));

    // One share call: by person id, access 10 as an integer, never by email.
    let puts = s.share_puts();
    assert_eq!(puts.len(), 1, "{puts:#?}");
    let alice_id = s
        .docspace
        .world(|w| w.person_by_email(&s.ids.email_new).map(|p| p.id.clone()))
        .unwrap_or_default();
    let mut ids: Vec<String> = puts[0].body.as_ref().unwrap()["invitations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            assert_eq!(i["access"], 10, "{i}");
            assert!(i["access"].is_i64());
            assert!(i.get("email").is_none(), "{i}");
            i["id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    ids.sort();
    let mut want_ids = vec![alice_id, s.ids.person_pending.clone()];
    want_ids.sort();
    assert_eq!(ids, want_ids);

    // Second run: nothing left to write.
    s.docspace.clear_requests();
    let again = sync(&s, &rules, &[]).await;
    again.expect_code(1);
    let p = parse(&again);
    assert_eq!(p.people[&s.ids.email_new]["outcome"], "already_invited");
    assert_eq!(
        p.people[&s.ids.email_new]["rooms"][0]["outcome"],
        "already_shared"
    );
    assert!(s.docspace_writes().is_empty(), "{:#?}", s.docspace_writes());
    assert_eq!(s.invitations_sent().len(), 2);

    // `invite` on one of the synced tasks agrees: nothing to send.
    let out = s
        .cmd()
        .args(["invite", "--json", "--task", &s.ids.task_onboarding_new])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "already_invited");
    assert_eq!(s.invitations_sent().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_sync_exits_0_and_include_completed_adds_finished_tasks() {
    let s = Sims::demo().await;
    let rules = s.write_file(
        "rules.toml",
        &format!("[[rules]]\nproject = \"{}\"\n", s.ids.project_onboarding),
    );
    let out = sync(&s, &rules, &[]).await;
    out.expect_code(0);
    let p = parse(&out);
    assert_eq!(p.people[&s.ids.email_onboarding_new]["outcome"], "invited");
    assert_eq!(p.people[&s.ids.email_active]["outcome"], "already_member");
    sync(&s, &rules, &[]).await.expect_code(0);
    assert_eq!(s.invitations_sent().len(), 1);

    let with_done = s.write_file(
        "done.toml",
        &format!(
            "[[rules]]\nproject = \"{}\"\ninclude_completed = true\n",
            s.ids.project_website
        ),
    );
    let out = sync(&s, &with_done, &["--dry-run"]).await;
    let p = parse(&out);
    assert_eq!(
        p.people[&s.ids.email_completed_only]["outcome"], "dry_run",
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_filter_and_bad_rooms_are_checked_before_any_write() {
    let s = Sims::demo().await;
    let rules = s.write_file("rules.toml", &s.demo_rules());
    let out = sync(&s, &rules, &["--project", "1999999999999999"]).await;
    out.expect_code(2)
        .stderr_has(&["--project 1999999999999999", "no [[rules]]"]);
    let out = sync(&s, &rules, &["--project", "website"]).await;
    out.expect_code(2).stderr_has(&["--project"]);
    assert_eq!(s.request_count(), 0);

    // Only the chosen project is read.
    let out = sync(
        &s,
        &rules,
        &["--dry-run", "--project", &s.ids.project_onboarding],
    )
    .await;
    out.expect_code(0);
    let pages = matching(&s.asana_requests(), "GET", "/tasks");
    assert_eq!(pages.len(), 1);
    assert!(pages[0].path.contains(&s.ids.project_onboarding));

    // A room that does not exist stops the run before anything is read or written.
    let bad_room = s.write_file(
        "bad-room.toml",
        &format!(
            "[[rules]]\nproject = \"{}\"\nroom = \"424242\"\n",
            s.ids.project_website
        ),
    );
    let out = sync(&s, &bad_room, &[]).await;
    out.expect_code(2).stderr_has(&["no room 424242"]);
    // A level the room type does not allow, likewise.
    let bad_level = s.write_file(
        "bad-level.toml",
        &format!(
            "[[rules]]\nproject = \"{}\"\nroom = \"{}\"\naccess = \"fill-forms\"\n",
            s.ids.project_website, s.ids.room
        ),
    );
    let out = sync(&s, &bad_level, &[]).await;
    out.expect_code(2).stderr_has(&["does not allow"]);
    assert!(s.docspace_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_100_and_invites_in_configured_batches() {
    let (a, d, ids) = seed::bench(250, 30, 0.5);
    let s = Sims::start(
        a,
        d,
        (),
        AsanaSimOptions::default(),
        DocSpaceSimOptions::default(),
    )
    .await;
    let rules = s.write_file(
        "rules.toml",
        &format!(
            "[sync]\ninvite_batch = 4\n\n[[rules]]\nproject = \"{}\"\nroom = \"{}\"\naccess = \"read\"\n",
            ids.project, ids.room
        ),
    );
    let out = sync(&s, &rules, &[]).await;
    out.expect_code(0);
    let p = parse(&out);
    assert_eq!(p.summary["tasks"], 250);
    assert_eq!(p.summary["people"], 30);
    assert_eq!(p.summary["outcomes"]["invited"], 15);
    assert_eq!(p.summary["outcomes"]["already_member"], 15);

    let pages = matching(
        &s.asana_requests(),
        "GET",
        &format!("/projects/{}/tasks", ids.project),
    );
    assert_eq!(pages.len(), 3, "250 tasks = 3 pages of 100");
    assert!(pages.iter().all(|r| r.query.contains("limit=100")));
    assert!(!pages[0].query.contains("offset="));
    assert!(pages[1..].iter().all(|r| r.query.contains("offset=")));

    // 15 new people in batches of 4: 4 calls, each person once.
    let posts = s.invite_posts();
    assert_eq!(posts.len(), 4, "{posts:#?}");
    let mut sent = s.invitations_sent();
    assert_eq!(sent.len(), 15);
    sent.dedup();
    assert_eq!(sent.len(), 15);
    // Portal lookups by listing, not one call per email.
    assert!(matching(&s.docspace_requests(), "GET", "/people/email").is_empty());
    let shared = s.docspace.world(|w| {
        w.room(&ids.room)
            .map(|r| r.members.values().filter(|a| **a == 2).count())
    });
    assert_eq!(shared, Some(30));
}
