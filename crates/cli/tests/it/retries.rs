//! Retries against real sockets: 429 with and without `Retry-After`, 5xx, and connections
//! closed without an answer, on both APIs. Reads are retried; writes only on 429 (a write
//! that failed with a 5xx or a dropped connection may have happened), and re-running
//! afterwards never invites twice.
//!
//! The binary runs with `ASANA_DOCSPACE_BACKOFF_MS=5`, so backoff costs milliseconds;
//! `Retry-After` (1 s here, in few tests) is still honoured.

use std::time::Duration;

use bridge_sim::Fault;

use crate::harness::{assert_contract_line, dead_url, matching, Output, Sims};

/// `GET /api/1.0/tasks/{gid}` requests received, in order.
fn task_reads(s: &Sims, task: &str) -> Vec<bridge_sim::LoggedRequest> {
    matching(
        &s.asana_requests(),
        "GET",
        &format!("/api/1.0/tasks/{task}"),
    )
}

fn statuses(reqs: &[bridge_sim::LoggedRequest]) -> Vec<u16> {
    reqs.iter().map(|r| r.status).collect()
}

async fn invite(s: &Sims, task: &str) -> Output {
    s.cmd()
        .args(["invite", "--json", "--task", task])
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_429_with_retry_after_waits_then_succeeds() {
    let s = Sims::demo().await;
    s.asana.set_faults(vec![Fault::rate_limited(Some(1))
        .on_path("/tasks/")
        .times(1)]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert_eq!(
        statuses(&task_reads(&s, &s.ids.task_new_assignee)),
        vec![429, 200]
    );
    // The test backoff is 5 ms: only the header explains a wait of about a second.
    assert!(
        out.elapsed >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured\n{out}"
    );
    assert_eq!(s.invitations_sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_429_without_retry_after_backs_off_and_succeeds() {
    let s = Sims::demo().await;
    s.asana
        .set_faults(vec![Fault::rate_limited(None).on_path("/tasks/").times(3)]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert_eq!(
        statuses(&task_reads(&s, &s.ids.task_new_assignee)),
        vec![429, 429, 429, 200]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_429_on_the_invite_write_is_retried_and_invites_once() {
    let s = Sims::demo().await;
    s.docspace.set_faults(vec![Fault::rate_limited(None)
        .on_path("/people/invite")
        .times(2)]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert_eq!(statuses(&s.invite_posts()), vec![429, 429, 200]);
    assert_eq!(s.invitations_sent(), vec![s.ids.email_new.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_429_with_retry_after_is_honoured() {
    let s = Sims::demo().await;
    s.docspace.set_faults(vec![Fault::rate_limited(Some(1))
        .on_path("/people/email")
        .times(1)]);
    let out = invite(&s, &s.ids.task_active_member).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "already_member");
    let lookups = matching(&s.docspace_requests(), "GET", "/people/email");
    assert_eq!(statuses(&lookups), vec![429, 200]);
    assert!(
        out.elapsed >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_500_on_a_read_is_retried() {
    let s = Sims::demo().await;
    s.asana
        .set_faults(vec![Fault::status(500).on_path("/tasks/").times(2)]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert_eq!(
        statuses(&task_reads(&s, &s.ids.task_new_assignee)),
        vec![500, 500, 200]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_500_that_outlives_the_retries_exits_1_with_the_reason() {
    let s = Sims::demo().await;
    s.asana
        .set_faults(vec![Fault::status(500).on_path("/tasks/")]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(1)
        .stderr_has(&["500", "Server Error", "6 sad squid snuggle softly"]);
    // One try and five retries, then give up.
    assert_eq!(task_reads(&s, &s.ids.task_new_assignee).len(), 6);
    assert!(s.docspace_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_5xx_on_a_read_is_retried_and_reported_when_it_persists() {
    let s = Sims::demo().await;
    s.docspace
        .set_faults(vec![Fault::status(502).on_path("/people/email").times(2)]);
    let out = invite(&s, &s.ids.task_active_member).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "already_member");

    s.docspace
        .set_faults(vec![Fault::status(503).on_path("/people/email")]);
    s.docspace.clear_requests();
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(1);
    let line = out.one();
    assert_contract_line(&line);
    assert_eq!(line["outcome"], "failed");
    assert!(line["error"].as_str().unwrap().contains("503"), "{out}");
    assert_eq!(
        matching(&s.docspace_requests(), "GET", "/people/email").len(),
        6
    );
    assert!(s.invite_posts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_500_on_the_invite_write_is_not_repeated_and_a_rerun_invites_once() {
    let s = Sims::demo().await;
    s.docspace
        .set_faults(vec![Fault::status(500).on_path("/people/invite")]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(1);
    let line = out.one();
    assert_eq!(line["outcome"], "failed");
    assert!(line["error"].as_str().unwrap().contains("500"), "{out}");
    // A 500 leaves the outcome unknown: the write is repeated only after DocSpace said
    // the person is still absent, never blindly (the one resilient invite path).
    assert_each_repeat_was_checked_first(&s.docspace_requests());
    assert!(s.invitations_sent().is_empty());

    s.docspace.set_faults(Vec::new());
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "already_invited");
    assert_eq!(s.invitations_sent(), vec![s.ids.email_new.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_reset_connection_is_retried_then_reported() {
    let s = Sims::demo().await;
    s.asana
        .set_faults(vec![Fault::drop_connection().on_path("/tasks/").times(2)]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert_eq!(
        statuses(&task_reads(&s, &s.ids.task_new_assignee)),
        vec![0, 0, 200],
        "status 0 = closed without an answer"
    );

    s.asana
        .set_faults(vec![Fault::drop_connection().on_path("/tasks/")]);
    let out = invite(&s, &s.ids.task_active_member).await;
    out.expect_code(1).stderr_has(&["could not reach Asana"]);
    assert_eq!(task_reads(&s, &s.ids.task_active_member).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_reset_connection_on_a_read_is_retried() {
    let s = Sims::demo().await;
    s.docspace.set_faults(vec![Fault::drop_connection()
        .on_path("/people/email")
        .times(1)]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    let lookups = matching(&s.docspace_requests(), "GET", "/people/email");
    assert_eq!(statuses(&lookups), vec![0, 404, 200]);
    assert_eq!(s.invitations_sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_reset_connection_on_the_invite_write_fails_and_a_rerun_invites_once() {
    let s = Sims::demo().await;
    s.docspace
        .set_faults(vec![Fault::drop_connection().on_path("/people/invite")]);
    let out = invite(&s, &s.ids.task_new_assignee).await;
    out.expect_code(1);
    let line = out.one();
    assert_eq!(line["outcome"], "failed");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("could not reach DocSpace"),
        "{out}"
    );
    // The answer never came, so the write may have happened: not repeated blindly.
    assert_each_repeat_was_checked_first(&s.docspace_requests());

    s.docspace.set_faults(Vec::new());
    invite(&s, &s.ids.task_new_assignee).await.expect_code(0);
    invite(&s, &s.ids.task_new_assignee_again)
        .await
        .expect_code(0);
    assert_eq!(s.invitations_sent(), vec![s.ids.email_new.clone()]);
    assert_eq!(
        statuses(&s.invite_posts())
            .iter()
            .filter(|s| **s == 200)
            .count(),
        1,
        "exactly one successful POST /people/invite"
    );
    assert_each_repeat_was_checked_first(&s.docspace_requests());
}

/// Between two invitation POSTs there is a lookup that answered 404: a write whose
/// outcome was unknown is sent again only once DocSpace shows it did not land.
fn assert_each_repeat_was_checked_first(log: &[bridge_sim::LoggedRequest]) {
    let mut checked = true;
    let mut posts = 0;
    for r in log {
        if r.method == "POST" && r.path.ends_with("/people/invite") {
            assert!(
                checked,
                "an invitation was sent again without a lookup first: {log:#?}"
            );
            checked = false;
            posts += 1;
        } else if r.method == "GET" && r.path.ends_with("/people/email") && r.status == 404 {
            checked = true;
        }
    }
    assert!(posts >= 1, "no invitation was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_docspace_exits_1_and_says_so() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .env("DOCSPACE_URL", &dead_url())
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(1);
    let line = out.one();
    assert_eq!(line["outcome"], "failed");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("could not reach DocSpace"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_rides_out_rate_limits_on_project_pages() {
    let s = Sims::demo().await;
    let rules = s.write_file(
        "rules.toml",
        &format!("[[rules]]\nproject = \"{}\"\n", s.ids.project_onboarding),
    );
    s.asana.set_faults(vec![Fault::rate_limited(None)
        .on_path("/projects/")
        .times(2)]);
    s.docspace
        .set_faults(vec![Fault::rate_limited(None).on_method("POST").times(1)]);
    let out = s
        .cmd()
        .arg("--config")
        .arg(&rules)
        .args(["sync", "--json"])
        .run()
        .await;
    out.expect_code(0);
    let lines = out.json();
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["summary"], true, "{out}");
    assert_eq!(summary["asana_429"], 2, "{out}");
    assert_eq!(summary["docspace_429"], 1, "{out}");
    assert_eq!(summary["outcomes"]["invited"], 1, "{out}");
    assert_eq!(
        s.invitations_sent(),
        vec![s.ids.email_onboarding_new.clone()]
    );
}
