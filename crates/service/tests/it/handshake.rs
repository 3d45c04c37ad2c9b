//! The handshake is answered only for a registration we expect, once.

use std::time::Duration;

use asana_api::Gid;
use bridge_service::config::ConfiguredHook;
use bridge_service::manage;

use crate::support::{eventually, Options, TestApp};

#[tokio::test]
async fn handshake_is_answered_only_for_an_expected_registration() {
    let app = TestApp::start().await;

    // Nobody registered this id: no echo.
    let r = app.handshake("0123456789abcdef", "attacker-secret").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("x-hook-secret").is_none());

    // Asana's own create call against an id we never expected fails its handshake.
    let project = Gid::parse(&app.ids.project).unwrap();
    let stray = format!("{}/webhooks/asana/feedfacefeedface", app.base);
    let err = app
        .svc
        .asana
        .create_webhook(&project, &stray, &manage::filters())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");

    // The real flow: expectation first, then Asana's handshake, then active.
    let created = app.create_webhook().await;
    let reg = app.svc.store.webhook(&created.id).await.unwrap().unwrap();
    assert_eq!(reg.state, "active");
    assert_eq!(reg.asana_gid.as_deref(), Some(created.gid.as_str()));
    let secret = reg.secret.clone().unwrap();
    assert!(
        !format!("{reg:?}").contains(&secret),
        "Debug must redact the secret"
    );

    // A second handshake on the same id must not replace the secret.
    let r = app.handshake(&created.id, "replacement-secret").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-hook-secret").is_none());
    assert_eq!(app.secret(&created.id).await, secret);

    // And deliveries signed with Asana's secret still work end to end.
    let (task, user, email) = (
        app.ids.tasks[0].clone(),
        app.ids.users[0].clone(),
        app.ids.emails[0].clone(),
    );
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    eventually("the invitation", Duration::from_secs(10), || async {
        app.invitations() == vec![email.clone()]
    })
    .await;
}

#[tokio::test]
async fn handshake_window_expires_and_configured_ids_are_expected() {
    let app = TestApp::start_with(Options {
        tweak: Some(Box::new(|c| {
            // Long enough for the first handshake on a loaded CI machine.
            c.handshake_window = Duration::from_millis(1500);
            c.configured_webhooks = vec![ConfiguredHook {
                id: "configured-hook".into(),
                project: "1".into(),
                handshake_until: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            }];
        })),
        ..Options::default()
    })
    .await;
    let store = &app.svc.store;

    // Within the window: echoed, and the secret is durable before the answer.
    store
        .expect_webhook("fresh01", &app.ids.project, "t")
        .await
        .unwrap();
    let r = app.handshake("fresh01", "s1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hook-secret"], "s1");
    assert_eq!(app.secret("fresh01").await, "s1");

    // Outside the window: refused, nothing stored.
    store
        .expect_webhook("stale01", &app.ids.project, "t")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let r = app.handshake("stale01", "s2").await;
    assert_eq!(r.status(), 403);
    assert!(store
        .webhook("stale01")
        .await
        .unwrap()
        .unwrap()
        .secret
        .is_none());

    // A registration from the config file is expected until its handshake_until, once.
    let r = app.handshake("configured-hook", "s3").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hook-secret"], "s3");
    let r = app.handshake("configured-hook", "s4").await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.secret("configured-hook").await, "s3");

    // Nonsense ids and secrets never reach the database.
    store
        .expect_webhook("fresh02", &app.ids.project, "t")
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url("/webhooks/asana/fresh02"))
        .header("X-Hook-Secret", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app.handshake("not.an.id", "s5").await;
    assert_eq!(r.status(), 404);

    let m = app.metrics().await;
    assert!(m.contains("reason=\"handshake_expired\"} 1"), "{m}");
    assert!(m.contains("kind=\"handshake\"} 2"), "{m}");
}

#[tokio::test]
async fn webhooks_list_shows_asanas_health_fields_and_delete_forgets_the_secret() {
    let app = TestApp::start().await;
    let created = app.create_webhook().await;
    let (task, user) = (app.ids.tasks[0].clone(), app.ids.users[0].clone());
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    app.settle().await;

    let project = Gid::parse(&app.ids.project).unwrap();
    let ws = manage::workspace_of(&app.svc.asana, &project)
        .await
        .unwrap();
    assert_eq!(ws.as_str(), app.ids.workspace);
    let listed = manage::list_webhooks(&app.svc.asana, app.svc.store.as_ref(), &ws, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let h = &listed[0];
    assert_eq!(h.gid, created.gid);
    assert_eq!(h.id.as_deref(), Some(created.id.as_str()));
    assert_eq!(h.active, Some(true));
    assert_eq!(h.target.as_deref(), Some(created.target.as_str()));
    assert!(h.last_success_at.is_some(), "{h:?}");
    assert!(h.last_failure_at.is_none(), "{h:?}");

    let gid = Gid::parse(&created.gid).unwrap();
    let d = manage::delete_webhook(&app.svc.asana, app.svc.store.as_ref(), &gid)
        .await
        .unwrap();
    assert!(d.asana && d.local);
    assert!(app.svc.store.webhook(&created.id).await.unwrap().is_none());
    // Deleting again: Asana no longer knows it, which is not an error.
    let d = manage::delete_webhook(&app.svc.asana, app.svc.store.as_ref(), &gid)
        .await
        .unwrap();
    assert!(!d.asana && !d.local);
}

#[tokio::test]
async fn a_hand_listed_id_takes_a_handshake_only_inside_the_window_its_admin_opened() {
    let hook = |id: &str, until: Option<chrono::DateTime<chrono::Utc>>| ConfiguredHook {
        id: id.into(),
        project: "1".into(),
        handshake_until: until,
    };
    let now = chrono::Utc::now();
    let app = TestApp::start_with(Options {
        tweak: Some(Box::new(move |c| {
            c.configured_webhooks = vec![
                hook("never-opened", None),
                hook("window-passed", Some(now - chrono::Duration::seconds(1))),
                hook("window-open", Some(now + chrono::Duration::hours(1))),
            ];
        })),
        ..Options::default()
    })
    .await;

    // A stranger who knows (or guesses) a hand-listed id cannot register a secret for it
    // while no window is open, whatever the registration's age.
    for id in ["never-opened", "window-passed"] {
        let r = app.handshake(id, "strangers-secret").await;
        assert_eq!(r.status(), 403, "{id}");
        assert!(r.headers().get("x-hook-secret").is_none(), "{id}");
        let reg = app.svc.store.webhook(id).await.unwrap().unwrap();
        assert!(reg.secret.is_none(), "{id}: a secret was stored");
    }
    // So a stranger's signed delivery has nothing to verify against.
    let body = crate::support::assignee_delivery("1", "2", "2024-05-01T10:00:00.000Z");
    let sig = crate::support::sign("strangers-secret", &body);
    let r = app.post_delivery("never-opened", body, Some(&sig)).await;
    assert_eq!(r.status(), 401);

    // The admin opened a window for this one: Asana's handshake inside it is answered.
    let r = app.handshake("window-open", "asanas-secret").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hook-secret"], "asanas-secret");
    assert_eq!(app.secret("window-open").await, "asanas-secret");
    let m = app.metrics().await;
    assert!(m.contains("reason=\"handshake_closed\"} 2"), "{m}");
}
