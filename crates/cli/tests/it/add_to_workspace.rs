//! `add-to-workspace --workspace GID --user EMAIL|GID|me`: Asana's addUser, the printed
//! user record, and clear answers for 403 (not an admin) and 404 (unknown workspace).

use bridge_sim::{seed, AsanaSimOptions, DocSpaceSimOptions};
use serde_json::json;

use crate::harness::{matching, Sims};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_a_new_email_and_prints_the_user_record_as_json() {
    let s = Sims::demo().await;
    let email = "grace.contractor@partner.example";
    let out = s
        .cmd()
        .args([
            "add-to-workspace",
            "--json",
            "--workspace",
            &s.ids.workspace,
            "--user",
            email,
        ])
        .run()
        .await;
    out.expect_code(0);
    let line = out.one();
    let gid = s
        .asana
        .world(|w| w.user_by_email(email).map(|u| u.gid.clone()))
        .expect("the sim created the user");
    assert_eq!(line["workspace"], s.ids.workspace.as_str());
    assert_eq!(line["gid"], gid.as_str());
    assert_eq!(line["email"], email);
    assert!(line["name"].is_string(), "{line}");
    assert_eq!(line["outcome"], "added");
    let in_ws = s
        .asana
        .world(|w| w.users[&gid].workspaces.contains(&s.ids.workspace));
    assert!(in_ws);

    // One POST, the body in Asana's {"data": …} envelope.
    let posts = matching(
        &s.asana_requests(),
        "POST",
        &format!("/api/1.0/workspaces/{}/addUser", s.ids.workspace),
    );
    assert_eq!(posts.len(), 1, "{:#?}", s.asana_requests());
    assert_eq!(posts[0].body, Some(json!({"data": {"user": email}})));
    assert!(s.docspace_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_me_and_a_gid_and_prints_a_human_line() {
    let s = Sims::demo().await;
    let me = s
        .cmd()
        .args([
            "add-to-workspace",
            "--workspace",
            &s.ids.workspace,
            "--user",
            "me",
        ])
        .run()
        .await;
    me.expect_code(0).stdout_has(&[
        &format!("added to workspace {}", s.ids.workspace),
        "Dana Admin",
        "<dana.admin@acme.example>",
        &format!("gid {}", s.ids.me),
    ]);

    let by_gid = s
        .cmd()
        .args([
            "add-to-workspace",
            "--json",
            "--workspace",
            &s.ids.workspace,
            "--user",
            &s.ids.user_active,
        ])
        .run()
        .await;
    by_gid.expect_code(0);
    let line = by_gid.one();
    assert_eq!(line["gid"], s.ids.user_active.as_str());
    assert_eq!(line["email"], s.ids.email_active.as_str());
    assert_eq!(line["name"], "Bob Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_no_docspace_settings() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .env_remove("DOCSPACE_URL")
        .env_remove("DOCSPACE_API_KEY")
        .args([
            "add-to-workspace",
            "--workspace",
            &s.ids.workspace,
            "--user",
            "me",
        ])
        .run()
        .await;
    out.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_an_admin_403_is_reported_clearly_with_exit_1() {
    let s = Sims::demo_with(
        AsanaSimOptions {
            tokens: Vec::new(),
            non_admin_tokens: vec![seed::DEMO_ASANA_TOKEN.to_string()],
            ..Default::default()
        },
        DocSpaceSimOptions::default(),
    )
    .await;
    let out = s
        .cmd()
        .args([
            "add-to-workspace",
            "--json",
            "--workspace",
            &s.ids.workspace,
            "--user",
            "new.person@acme.example",
        ])
        .run()
        .await;
    out.expect_code(1).stderr_has(&[
        "Asana refused (403)",
        "admin",
        &s.ids.workspace,
        "only workspace admins can add users",
    ]);
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(s.asana_requests().len(), 1, "a 403 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workspace_404_is_reported_clearly_with_exit_2() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .args([
            "add-to-workspace",
            "--workspace",
            "1999999999999999",
            "--user",
            "me",
        ])
        .run()
        .await;
    out.expect_code(2)
        .stderr_has(&["no workspace 1999999999999999", "visible to this token"]);
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(s.asana_requests().len(), 1);
    assert_eq!(s.asana_requests()[0].status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_workspace_gid_or_user_is_refused_before_any_request() {
    let s = Sims::demo().await;
    let bad_ws = s
        .cmd()
        .args(["add-to-workspace", "--workspace", "acme", "--user", "me"])
        .run()
        .await;
    bad_ws.expect_code(2).stderr_has(&["--workspace", "gid"]);

    for user in ["ann", "ann@", "two words@acme.example", ""] {
        let out = s
            .cmd()
            .args(["add-to-workspace", "--workspace", &s.ids.workspace])
            .arg(format!("--user={user}"))
            .run()
            .await;
        out.expect_code(2)
            .stderr_has(&["--user", "an email address, a user gid"]);
    }
    assert!(s.asana_requests().is_empty(), "{:#?}", s.asana_requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_gid_is_reported() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .args([
            "add-to-workspace",
            "--workspace",
            &s.ids.workspace,
            "--user",
            "1999999999999998",
        ])
        .run()
        .await;
    // Asana answers 404 for an unknown user too: the message names both candidates and
    // what Asana said, instead of only blaming the (existing) workspace.
    out.expect_code(2).stderr_has(&[
        "no user \"1999999999999998\"",
        "Unknown object: 1999999999999998",
    ]);
}
