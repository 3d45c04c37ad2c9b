//! The status page over plain HTTP (the browser tests are in `browser`): off without a
//! password, sign-in on every page, replay only for `admin` and only with the CSRF token
//! from the same origin, security headers, the store's numbers, and no secret rendered.

use bridge_core::domain::{Action, Recorded, Source, Target};
use bridge_core::record::NewLedgerEntry;
use bridge_sim::seed::{DEMO_ASANA_TOKEN, DEMO_DOCSPACE_KEY};

use crate::support::{assignee_delivery, sign, TestApp, ADMIN_PASSWORD, VIEWER_PASSWORD};

const PAGES: [&str; 5] = [
    "/admin",
    "/admin/dead",
    "/admin/person",
    "/admin/person?q=person0@acme.example",
    "/admin/assets/admin.css",
];

impl TestApp {
    async fn get_as(&self, user: Option<(&str, &str)>, path: &str) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        req.send().await.unwrap()
    }

    async fn page(&self, user: (&str, &str), path: &str) -> String {
        let r = self.get_as(Some(user), path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// A form post to `path` as `user` with the given extra headers and `csrf` field.
    async fn post_as(
        &self,
        user: (&str, &str),
        path: &str,
        csrf: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .basic_auth(user.0, Some(user.1));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let form: Vec<(&str, &str)> = csrf.map(|t| ("csrf", t)).into_iter().collect();
        req.form(&form).send().await.unwrap()
    }

    /// The origin a browser on the page would send.
    fn origin(&self) -> String {
        self.base.clone()
    }
}

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);
const VIEWER: (&str, &str) = ("viewer", VIEWER_PASSWORD);

/// The CSRF token in a page's first form.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in\n{html}"))
        + "name=\"csrf\" value=\"".len();
    html[start..start + 64].to_string()
}

/// The number in the element with this id (`<span … id="jobs-dead">3</span>`).
fn number(html: &str, id: &str) -> u64 {
    let at = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in\n{html}"));
    let rest = &html[at + id.len() + 6..];
    rest[..rest.find('<').unwrap()].trim().parse().unwrap()
}

#[tokio::test]
async fn the_status_page_is_off_without_a_password() {
    let app = TestApp::start().await;
    for path in PAGES {
        let r = app.get_as(Some(ADMIN), path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn every_page_needs_sign_in_and_a_wrong_password_is_401() {
    let app = TestApp::start_admin().await;
    let id = app.dead_letters(1).await[0];
    for path in PAGES {
        for who in [
            None,
            Some(("admin", "wrong-password-entirely")),
            Some(("viewer", ADMIN_PASSWORD)),
            Some(("root", ADMIN_PASSWORD)),
        ] {
            let r = app.get_as(who, path).await;
            assert_eq!(r.status(), 401, "{path} as {who:?}");
            let challenge = r.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic realm="), "{challenge}");
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
        assert_eq!(app.get_as(Some(VIEWER), path).await.status(), 200, "{path}");
        assert_eq!(app.get_as(Some(ADMIN), path).await.status(), 200, "{path}");
    }
    let r = app
        .http
        .post(app.url(&format!("/admin/dead/{id}/replay")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.depth().await.dead, 1, "nothing was replayed");
}

#[tokio::test]
async fn a_write_without_the_token_from_another_site_or_by_the_viewer_is_refused() {
    let app = TestApp::start_admin().await;
    let id = app.dead_letters(1).await[0];
    let path = format!("/admin/dead/{id}/replay");
    let token = csrf_of(&app.page(ADMIN, "/admin/dead").await);
    let origin = app.origin();
    let same_origin = [
        ("origin", origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];

    // No token, a wrong token, a token from another site, the viewer with the token.
    let wrong = "0".repeat(64);
    for (who, csrf, headers, says) in [
        (ADMIN, None, &same_origin[..], "CSRF token"),
        (ADMIN, Some(wrong.as_str()), &same_origin[..], "CSRF token"),
        (
            ADMIN,
            Some(token.as_str()),
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ][..],
            "another site",
        ),
        (
            ADMIN,
            Some(token.as_str()),
            &[("sec-fetch-site", "same-site")][..],
            "another site",
        ),
        (
            ADMIN,
            Some(token.as_str()),
            &[("origin", "http://127.0.0.1:1")][..],
            "another site",
        ),
        (VIEWER, Some(token.as_str()), &same_origin[..], "read only"),
    ] {
        let r = app.post_as(who, &path, csrf, headers).await;
        assert_eq!(r.status(), 403, "{who:?} {csrf:?} {headers:?}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{body}");
        assert_eq!(app.depth().await.dead, 1, "refused, yet replayed");
    }
    let r = app
        .post_as(ADMIN, "/admin/dead/replay", None, &same_origin)
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.depth().await.dead, 1);

    // The admin's own form, from the page: replayed, and back to the list.
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(app.url(&path))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/admin/dead?replayed={id}").as_str()
    );
    let d = app.depth().await;
    assert_eq!((d.dead, d.queued), (0, 1), "the job is queued again");
    let page = app.page(ADMIN, &format!("/admin/dead?replayed={id}")).await;
    assert!(
        page.contains(&format!("Job {id} is queued again.")),
        "{page}"
    );
    // Replaying it again finds nothing to replay.
    let r = app.post_as(ADMIN, &path, Some(&token), &same_origin).await;
    assert!(
        r.url().as_str().ends_with(&format!("missing={id}")),
        "{}",
        r.url()
    );
}

#[tokio::test]
async fn replay_all_queues_every_dead_letter() {
    let app = TestApp::start_admin().await;
    app.dead_letters(3).await;
    let token = csrf_of(&app.page(ADMIN, "/admin/dead").await);
    let origin = app.origin();
    let r = app
        .post_as(
            ADMIN,
            "/admin/dead/replay",
            Some(&token),
            &[
                ("origin", origin.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.url().as_str().ends_with("/admin/dead?all=3"),
        "{}",
        r.url()
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("3 dead letter(s) queued again."));
    let d = app.depth().await;
    assert_eq!((d.dead, d.queued), (0, 3));
}

#[tokio::test]
async fn the_viewer_sees_everything_but_no_form_and_no_token() {
    let app = TestApp::start_admin().await;
    let id = app.dead_letters(1).await[0];
    let page = app.page(VIEWER, "/admin/dead").await;
    assert!(page.contains(&format!("id=\"dead-{id}\"")), "{page}");
    assert!(!page.contains("name=\"csrf\""), "{page}");
    assert!(!page.contains("Replay all"), "{page}");
    assert!(page.contains("signed in as viewer (read only)"), "{page}");
    let admin = app.page(ADMIN, "/admin/dead").await;
    assert!(admin.contains(&format!("id=\"replay-{id}\"")), "{admin}");
}

#[tokio::test]
async fn pages_carry_strict_security_headers_and_never_a_secret() {
    let app = TestApp::start_admin().await;
    let hook = app.create_webhook().await;
    let secret = app.secret(&hook.id).await;
    let (task, _, _) = app.assign(0).await;
    app.dead_letters(1).await;
    for path in [
        "/admin".to_string(),
        "/admin/dead".to_string(),
        format!("/admin/person?q={task}"),
        format!("/admin/person?q={}", app.ids.emails[0]),
    ] {
        let r = app.get_as(Some(ADMIN), &path).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        // Not no-referrer: with it, browsers send `Origin: null` on same-origin form posts.
        assert_eq!(h["referrer-policy"], "same-origin");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = r.text().await.unwrap();
        for s in [
            ADMIN_PASSWORD,
            VIEWER_PASSWORD,
            DEMO_ASANA_TOKEN,
            DEMO_DOCSPACE_KEY,
            secret.as_str(),
        ] {
            assert!(!body.contains(s), "{path} shows a secret");
        }
        assert!(!body.contains("<script>"), "{path}: inline script");
    }
}

#[tokio::test]
async fn the_overview_shows_the_stores_counts_deliveries_and_webhook_health() {
    let app = TestApp::start_admin().await;
    let hook = app.create_webhook().await;
    let secret = app.secret(&hook.id).await;
    let (task, user) = (app.ids.tasks[0].clone(), app.ids.users[0].clone());
    let body = assignee_delivery(&task, &user, "2026-01-01T00:00:00.000Z");
    let r = app
        .post_delivery(&hook.id, body.clone(), Some(&sign(&secret, &body)))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_delivery(&hook.id, body, Some(&sign("not-the-secret", b"x")))
        .await;
    assert_eq!(r.status(), 401);
    app.settle().await;
    app.dead_letters(2).await;

    let depth = app.depth().await;
    let html = app.page(ADMIN, "/admin").await;
    assert_eq!(number(&html, "jobs-queued"), depth.queued);
    assert_eq!(number(&html, "jobs-running"), depth.running);
    assert_eq!(number(&html, "jobs-dead"), 2);
    // The handshake and one delivery accepted, one refused.
    assert_eq!(number(&html, "deliveries-received"), 2, "{html}");
    assert_eq!(number(&html, "deliveries-rejected"), 1, "{html}");
    assert!(html.contains(&hook.id), "the registration is listed");
    assert!(html.contains(">active<"), "Asana's view: active\n{html}");
    assert!(html.contains("href=\"/admin/dead\""));
    assert!(html.contains("href=\"/admin/person\""));
}

#[tokio::test]
async fn the_oldest_waiting_job_and_the_last_sync_runs_are_shown() {
    let app = TestApp::start_admin().await;
    let ids = app.dead_letters(1).await;
    let html = app.page(ADMIN, "/admin").await;
    assert!(html.contains("id=\"oldest-waiting\">—<"), "{html}");
    assert!(html.contains("No <code>sync</code> run"), "{html}");

    // A replayed job waits (the workers are idle for an hour): its age is shown.
    assert!(app.svc.store.replay_job(ids[0]).await.unwrap());
    let e = |outcome, email: &str| NewLedgerEntry {
        run_id: "20260101T000000.000Z-42".into(),
        source: Source::Sync,
        task_gid: Some(app.ids.tasks[1].clone()),
        assignee_gid: None,
        email: Some(email.into()),
        target: Target::Portal,
        action: Action::Invite,
        outcome,
        error: None,
        detail: None,
    };
    app.svc
        .store
        .record_many(&[
            e(Recorded::Invited, "a@acme.example"),
            e(Recorded::Invited, "b@acme.example"),
            e(Recorded::Failed, "c@acme.example"),
        ])
        .await
        .unwrap();
    let html = app.page(ADMIN, "/admin").await;
    assert!(html.contains(" ago</span>"), "{html}");
    assert!(html.contains("20260101T000000.000Z-42"), "{html}");
    assert!(html.contains("failed 1 · invited 2"), "{html}");
    assert!(html.contains("1 failed"), "{html}");
}

#[tokio::test]
async fn the_person_page_lists_every_row_with_its_why_and_what_to_do() {
    let app = TestApp::start_admin().await;
    app.create_webhook().await;
    let (task, user, email) = app.assign(0).await;
    app.svc
        .store
        .record(&NewLedgerEntry {
            run_id: "manual".into(),
            source: Source::Invite,
            task_gid: Some(task.clone()),
            assignee_gid: Some(user.clone()),
            email: Some(email.clone()),
            target: Target::Portal,
            action: Action::Invite,
            outcome: Recorded::Failed,
            error: Some("DocSpace answered 403: access denied".into()),
            detail: Some("rule for project 1".into()),
        })
        .await
        .unwrap();

    for q in [email.clone(), email.to_uppercase(), task.clone()] {
        let html = app.page(ADMIN, &format!("/admin/person?q={q}")).await;
        assert!(html.contains(">invited<"), "{q}: {html}");
        assert!(html.contains(">failed<"), "{q}");
        assert!(html.contains("DocSpace answered 403"), "{q}");
        assert!(html.contains("What to do:"), "{q}");
        assert!(html.contains("rule for project 1"), "{q}");
        assert!(
            html.contains(&format!("href=\"/admin/person?q={task}\"")),
            "links to the task"
        );
    }
    let by_task = app.page(ADMIN, &format!("/admin/person?q={task}")).await;
    assert!(by_task.contains("ledger row(s) for task"), "{by_task}");

    // Neither an email nor a gid: 400, and what was typed is escaped.
    let r = app
        .get_as(
            Some(ADMIN),
            "/admin/person?q=%3Cscript%3Ealert(1)%3C/script%3E",
        )
        .await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(
        body.contains("&#60;script&#62;") || body.contains("&lt;script&gt;"),
        "{body}"
    );
    // Nothing recorded for a stranger.
    let html = app.page(ADMIN, "/admin/person?q=nobody@acme.example").await;
    assert!(html.contains("Nothing recorded"), "{html}");
}
