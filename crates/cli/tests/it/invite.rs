//! `invite --task GID` against both simulators: every outcome and exit code, the
//! "never a second invitation" rule, integer `type` and room `access` on the wire, room
//! shares by resolved user id, and refusals that happen before any write.

use serde_json::{json, Value};

use crate::harness::{assert_contract_line, matching, Output, Sims};

/// Runs `invite --task TASK --json [extra…]` and returns the output.
async fn invite(s: &Sims, task: &str, extra: &[&str]) -> Output {
    s.cmd()
        .args(["invite", "--json", "--task", task])
        .args(extra.iter().copied())
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_assignee_is_invited_as_user_type_4_and_confirmed() {
    let s = Sims::demo().await;
    let out = invite(&s, &s.ids.task_new_assignee, &[]).await;
    out.expect_code(0);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["task"], s.ids.task_new_assignee.as_str());
    assert_eq!(line["email"], s.ids.email_new.as_str());
    assert_eq!(line["outcome"], "invited");
    assert_eq!(line["assignee"], s.ids.user_new.as_str());
    let new_id = s
        .docspace
        .world(|w| w.person_by_email(&s.ids.email_new).map(|p| p.id.clone()))
        .expect("the person exists in DocSpace after the invite");
    assert_eq!(line["person_id"], new_id.as_str(), "{out}");

    // The wire: look up (404), invite once with an integer type, confirm by lookup.
    let posts = s.invite_posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(
        posts[0].body,
        Some(json!({"invitations": [{"email": s.ids.email_new, "type": 4}]}))
    );
    assert!(posts[0].body.as_ref().unwrap()["invitations"][0]["type"].is_i64());
    let lookups = matching(&s.docspace_requests(), "GET", "/api/2.0/people/email");
    assert_eq!(lookups.len(), 2, "lookup before and after: {lookups:#?}");
    assert_eq!(lookups[0].status, 404);
    assert_eq!(lookups[1].status, 200);
    assert_eq!(s.invitations_sent(), vec![s.ids.email_new.clone()]);
    let sent_type = s.docspace.world(|w| w.invite_log[0].type_sent.clone());
    assert_eq!(sent_type, json!(4));

    // The task was read with only the fields needed.
    let task_reads = matching(
        &s.asana_requests(),
        "GET",
        &format!("/api/1.0/tasks/{}", s.ids.task_new_assignee),
    );
    assert_eq!(task_reads.len(), 1);
    assert!(
        task_reads[0].query.contains("opt_fields=")
            && task_reads[0].query.contains("assignee.email"),
        "{:?}",
        task_reads[0].query
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_invite_twice_never_sends_a_second_invitation() {
    let s = Sims::demo().await;
    invite(&s, &s.ids.task_new_assignee, &[])
        .await
        .expect_code(0);
    assert_eq!(s.invite_posts().len(), 1);

    // Same task again: the person is now pending, nothing is sent.
    let again = invite(&s, &s.ids.task_new_assignee, &[]).await;
    again.expect_code(0);
    let line = again.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "already_invited");
    // Another task with the same assignee: still nothing.
    let other = invite(&s, &s.ids.task_new_assignee_again, &[]).await;
    other.expect_code(0);
    assert_eq!(other.one()["outcome"], "already_invited");
    // And in human output too.
    let human = s
        .cmd()
        .args(["invite", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    human
        .expect_code(0)
        .stdout_has(&["already invited", "nothing sent"]);

    assert_eq!(
        s.invite_posts().len(),
        1,
        "a second POST /people/invite was sent"
    );
    assert_eq!(s.invitations_sent(), vec![s.ids.email_new.clone()]);

    // The audit log has the invitation and the skips, with their task.
    let history = s
        .cmd()
        .args(["history", "--json", "--email", &s.ids.email_new])
        .run()
        .await;
    history.expect_code(0);
    let rows = history.json();
    assert!(rows.len() >= 4, "{history}");
    let invites: Vec<&Value> = rows.iter().filter(|r| r["action"] == "invite").collect();
    assert_eq!(invites.len(), 1, "{history}");
    assert_eq!(invites[0]["outcome"], "invited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_member_and_pending_person_exit_0_without_writes() {
    let s = Sims::demo().await;
    let active = invite(&s, &s.ids.task_active_member, &[]).await;
    active.expect_code(0);
    let line = active.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "already_member");
    assert_eq!(line["email"], s.ids.email_active.as_str());
    assert_eq!(line["person_id"], s.ids.person_active.as_str());

    let pending = invite(&s, &s.ids.task_pending, &[]).await;
    pending.expect_code(0);
    let line = pending.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "already_invited");
    assert_eq!(line["person_id"], s.ids.person_pending.as_str());

    assert!(s.docspace_writes().is_empty(), "{:#?}", s.docspace_writes());
    assert!(s.invitations_sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_account_fails_with_exit_1_and_is_never_reinvited() {
    let s = Sims::demo().await;
    let out = invite(&s, &s.ids.task_disabled, &[]).await;
    out.expect_code(1);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "failed");
    assert_eq!(line["email"], s.ids.email_disabled.as_str());
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("disabled"), "{error}");
    assert!(s.docspace_writes().is_empty(), "{:#?}", s.docspace_writes());

    let human = s
        .cmd()
        .args(["invite", "--task", &s.ids.task_disabled])
        .run()
        .await;
    human.expect_code(1).stdout_has(&["FAILED", "disabled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_assignee_exits_3_without_touching_docspace() {
    let s = Sims::demo().await;
    let out = invite(&s, &s.ids.task_unassigned, &[]).await;
    out.expect_code(3);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "no_assignee");
    assert_eq!(line["email"], Value::Null);
    assert!(
        s.docspace_requests().is_empty(),
        "{:#?}",
        s.docspace_requests()
    );

    let human = s
        .cmd()
        .args(["invite", "--task", &s.ids.task_unassigned])
        .run()
        .await;
    human.expect_code(3).stdout_has(&["no assignee"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_email_is_looked_up_once_then_exits_3() {
    let s = Sims::demo().await;
    let out = invite(&s, &s.ids.task_hidden_email, &[]).await;
    out.expect_code(3);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "email_hidden");
    assert_eq!(line["assignee"], s.ids.user_hidden_email.as_str());
    // The fallback read of the user record, then nothing in DocSpace.
    let user_reads = matching(
        &s.asana_requests(),
        "GET",
        &format!("/api/1.0/users/{}", s.ids.user_hidden_email),
    );
    assert_eq!(user_reads.len(), 1, "{:#?}", s.asana_requests());
    assert!(s.docspace_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_no_write() {
    let s = Sims::demo().await;
    let out = invite(
        &s,
        &s.ids.task_new_assignee,
        &["--dry-run", "--room", &s.ids.room, "--access", "read"],
    )
    .await;
    out.expect_code(0);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "dry_run");
    assert_eq!(line["room"]["outcome"], "dry_run");
    assert!(s.docspace_writes().is_empty(), "{:#?}", s.docspace_writes());
    assert!(s.invitations_sent().is_empty());

    // A dry run for someone already there reports the room it would share.
    let out = invite(
        &s,
        &s.ids.task_pending,
        &["--dry-run", "--room", &s.ids.room],
    )
    .await;
    out.expect_code(0);
    let line = out.one();
    assert_eq!(line["outcome"], "already_invited");
    assert_eq!(line["room"]["outcome"], "dry_run");
    assert_eq!(line["room"]["access"], "editing");
    assert!(s.docspace_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_is_shared_by_resolved_user_id_with_integer_access() {
    let s = Sims::demo().await;
    // Carol is pending and not in the room yet.
    let out = invite(
        &s,
        &s.ids.task_pending,
        &["--room", &s.ids.room, "--access", "editing"],
    )
    .await;
    out.expect_code(0);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "already_invited");
    assert_eq!(
        line["room"],
        json!({"id": s.ids.room, "access": "editing", "outcome": "shared"})
    );
    let puts = s.share_puts();
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert_eq!(
        puts[0].path,
        format!("/api/2.0/files/rooms/{}/share", s.ids.room)
    );
    let body = puts[0].body.clone().unwrap_or_default();
    let invitations = body["invitations"].as_array().cloned().unwrap_or_default();
    assert_eq!(invitations.len(), 1, "{body}");
    assert_eq!(
        invitations[0]["id"],
        s.ids.person_pending.as_str(),
        "{body}"
    );
    assert!(
        invitations[0]["access"].is_i64(),
        "access must be an integer: {body}"
    );
    assert_eq!(invitations[0]["access"], 10);
    assert!(
        invitations[0].get("email").is_none(),
        "shared by email: {body}"
    );
    let applied = s.docspace.world(|w| {
        w.room(&s.ids.room)
            .and_then(|r| r.members.get(&s.ids.person_pending).copied())
    });
    assert_eq!(applied, Some(10));
    assert!(s.invite_posts().is_empty());

    // Again: already in the room at that level, nothing written.
    let again = invite(
        &s,
        &s.ids.task_pending,
        &["--room", &s.ids.room, "--access", "editing"],
    )
    .await;
    again.expect_code(0);
    assert_eq!(again.one()["room"]["outcome"], "already_shared");
    // A lower level never downgrades.
    let lower = invite(
        &s,
        &s.ids.task_pending,
        &["--room", &s.ids.room, "--access", "read"],
    )
    .await;
    lower.expect_code(0);
    assert_eq!(lower.one()["room"]["outcome"], "already_shared");
    assert_eq!(s.share_puts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_person_is_invited_then_shared_by_the_new_id() {
    let s = Sims::demo().await;
    let out = invite(
        &s,
        &s.ids.task_new_assignee,
        &["--room", &s.ids.room, "--access", "comment"],
    )
    .await;
    out.expect_code(0);
    let line = out.one();
    assert_eq!(line["outcome"], "invited");
    assert_eq!(line["room"]["outcome"], "shared");
    let new_id = s
        .docspace
        .world(|w| w.person_by_email(&s.ids.email_new).map(|p| p.id.clone()))
        .expect("invited person");
    let puts = s.share_puts();
    assert_eq!(puts.len(), 1);
    let inv = &puts[0].body.as_ref().unwrap()["invitations"][0];
    assert_eq!(inv["id"], new_id.as_str());
    assert_eq!(inv["access"], 6, "comment is FileShare 6");
    // The invite happened before the share.
    let writes = s.docspace_writes();
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[1].method, "PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_admin_type_is_sent_as_integer_1() {
    let s = Sims::demo().await;
    let out = invite(
        &s,
        &s.ids.task_new_assignee,
        &[
            "--type",
            "room-admin",
            "--room",
            &s.ids.room,
            "--access",
            "room-manager",
        ],
    )
    .await;
    out.expect_code(0);
    let line = out.one();
    assert_eq!(line["outcome"], "invited");
    assert_eq!(line["room"]["outcome"], "shared", "{out}");
    let posts = s.invite_posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body.as_ref().unwrap()["invitations"][0]["type"], 1);
    let put = &s.share_puts()[0];
    assert_eq!(put.body.as_ref().unwrap()["invitations"][0]["access"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_and_all_types_are_refused_with_the_reason_before_any_request() {
    let s = Sims::demo().await;
    let guest = invite(&s, &s.ids.task_new_assignee, &["--type", "guest"]).await;
    guest.expect_code(2).stderr_has(&[
        "--type",
        "guests cannot be invited",
        "user, room-admin, docspace-admin",
    ]);
    assert!(guest.stdout.is_empty(), "{guest}");

    let all = invite(&s, &s.ids.task_new_assignee, &["--type", "All"]).await;
    all.expect_code(2)
        .stderr_has(&["--type", "filter value", "paid room admin"]);

    let unknown = invite(&s, &s.ids.task_new_assignee, &["--type", "admin"]).await;
    unknown
        .expect_code(2)
        .stderr_has(&["unknown user type", "user, room-admin, docspace-admin"]);

    assert_eq!(s.request_count(), 0, "a refused type still reached an API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_unsafe_access_names_are_refused_before_any_request() {
    let s = Sims::demo().await;
    let room = s.ids.room.clone();
    let task = s.ids.task_active_member.clone();

    let typo = invite(&s, &task, &["--room", &room, "--access", "editor"]).await;
    typo.expect_code(2).stderr_has(&[
        "--access",
        "unknown access level `editor`",
        "remove the member",
        "read, review, comment, fill-forms, room-manager, editing, content-creator",
    ]);

    let none = invite(&s, &task, &["--room", &room, "--access", "none"]).await;
    none.expect_code(2).stderr_has(&["REMOVES the member"]);

    // RoomManager needs a paid type: refused for the default `user`.
    let manager = invite(&s, &task, &["--room", &room, "--access", "room-manager"]).await;
    manager
        .expect_code(2)
        .stderr_has(&["room-manager", "--type room-admin"]);

    // `--access` without `--room` is a usage error.
    let no_room = invite(&s, &task, &["--access", "read"]).await;
    no_room.expect_code(2).stderr_has(&["--room"]);

    // A room id that is not a number.
    let bad_room = invite(&s, &task, &["--room", "website", "--access", "read"]).await;
    bad_room
        .expect_code(2)
        .stderr_has(&["--room", "digits only"]);

    assert_eq!(
        s.request_count(),
        0,
        "a refused access level reached an API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_the_room_type_does_not_allow_is_refused_before_any_write() {
    let mut public_room = String::new();
    let s = Sims::demo_edited(|_, d, _| {
        public_room = d.add_room("Press kit", 6);
    })
    .await;
    // A Custom room does not offer fill-forms.
    let out = invite(
        &s,
        &s.ids.task_new_assignee,
        &["--room", &s.ids.room, "--access", "fill-forms"],
    )
    .await;
    out.expect_code(2)
        .stderr_has(&[&s.ids.room, "does not allow", "content-creator", "editing"]);
    // A Public room offers only room-manager and content-creator.
    let out = invite(
        &s,
        &s.ids.task_new_assignee,
        &["--room", &public_room, "--access", "editing"],
    )
    .await;
    out.expect_code(2)
        .stderr_has(&[&public_room, "does not allow", "content-creator"]);

    assert!(s.docspace_writes().is_empty(), "{:#?}", s.docspace_writes());
    assert!(s.invitations_sent().is_empty());
    // Nobody was even looked up: the room is checked first.
    assert!(matching(&s.docspace_requests(), "GET", "/people/email").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_room_exits_2_before_any_write() {
    let s = Sims::demo().await;
    let out = invite(
        &s,
        &s.ids.task_new_assignee,
        &["--room", "99999", "--access", "read"],
    )
    .await;
    out.expect_code(2).stderr_has(&["no room 99999"]);
    assert!(out.stdout.is_empty(), "{out}");
    assert!(s.docspace_writes().is_empty());
    assert!(s.invitations_sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_numeric_or_unknown_task_is_a_usage_error() {
    let s = Sims::demo().await;
    for bad in [
        "abc",
        "12o4",
        "",
        "1201 ",
        "-1",
        "123456789012345678901234567890123",
    ] {
        let out = s
            .cmd()
            .args(["invite", "--json", &format!("--task={bad}")])
            .run()
            .await;
        out.expect_code(2).stderr_has(&["--task", "gid"]);
        assert!(out.stdout.is_empty(), "{out}");
    }
    assert_eq!(s.request_count(), 0, "a bad gid reached an API");

    let unknown = invite(&s, "1999999999999999", &[]).await;
    unknown
        .expect_code(2)
        .stderr_has(&["no task 1999999999999999"]);
    assert_eq!(s.asana_requests().len(), 1);
    assert_eq!(s.asana_requests()[0].status, 404);
    assert!(s.docspace_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_email_from_asana_fails_without_reaching_docspace() {
    let bad = "dave at acme.example";
    let s = Sims::demo_edited(|a, _, ids| {
        if let Some(u) = a.users.get_mut(&ids.user_new) {
            u.email = Some(bad.to_string());
        }
    })
    .await;
    let out = invite(&s, &s.ids.task_new_assignee, &[]).await;
    out.expect_code(1);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "failed");
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains(bad) && error.contains("not an address"),
        "{error}"
    );
    assert!(
        s.docspace_requests().is_empty(),
        "{:#?}",
        s.docspace_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_402_seat_quota_is_reported_as_failed() {
    let (a, d, ids) = bridge_sim::seed::demo();
    let seats = d
        .people
        .iter()
        .filter(|p| p.state != bridge_sim::PersonState::Disabled)
        .count();
    let s = Sims::start(
        a,
        d,
        ids,
        bridge_sim::AsanaSimOptions::default(),
        bridge_sim::DocSpaceSimOptions {
            max_users: Some(seats),
            ..Default::default()
        },
    )
    .await;
    let out = invite(&s, &s.ids.task_new_assignee, &[]).await;
    out.expect_code(1);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "failed");
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("402"), "{error}");
    assert!(error.contains("should not exceed"), "{error}");
    // A refused write is not retried.
    assert_eq!(s.invite_posts().len(), 1);
    assert!(s.invitations_sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_403_on_invite_and_on_share_are_failures() {
    use bridge_sim::Fault;
    let s = Sims::demo().await;
    s.docspace
        .set_faults(vec![Fault::status(403).on_path("/people/invite")]);
    let out = invite(&s, &s.ids.task_new_assignee, &[]).await;
    out.expect_code(1);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "failed");
    assert!(line["error"].as_str().unwrap().contains("403"), "{out}");
    assert_eq!(s.invite_posts().len(), 1, "a 403 is not retried");

    // 403 on the share: the portal part stands, the room part failed, exit 1.
    s.docspace
        .set_faults(vec![Fault::status(403).on_method("PUT").on_path("/share")]);
    let out = invite(
        &s,
        &s.ids.task_pending,
        &["--room", &s.ids.room, "--access", "editing"],
    )
    .await;
    out.expect_code(1);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "already_invited");
    assert_eq!(line["room"]["outcome"], "failed");
    assert!(
        line["room"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("403"),
        "{out}"
    );
    let human = s
        .cmd()
        .args([
            "invite",
            "--task",
            &s.ids.task_pending,
            "--room",
            &s.ids.room,
        ])
        .run()
        .await;
    human.expect_code(1).stdout_has(&["FAILED", "403"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_is_one_readable_line() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .args(["invite", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "task {}: invited {} to DocSpace",
            s.ids.task_new_assignee, s.ids.email_new
        ),
        "{out}"
    );
    assert!(
        out.stderr.is_empty(),
        "stderr should be quiet by default\n{out}"
    );
}
