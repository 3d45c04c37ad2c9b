//! Fixtures shaped like the spec's examples decode into the models, served through the
//! real client so the envelope handling is covered too.

use asana_api::{ChangeValue, Error, EventAction, Gid, WebhookDelivery, WebhookFilter};
use secrecy::ExposeSecret;

use crate::{
    fixture,
    support::{Reply, Server},
};

fn gid(s: &str) -> Gid {
    Gid::parse(s).unwrap()
}

#[tokio::test]
async fn task_with_assignee_and_email() {
    let server = Server::start(vec![Reply::json(200, fixture!("task_assignee_email.json"))]).await;
    let task = server
        .client()
        .get_task(&gid("1201234567890123"), &["name", "assignee.email"])
        .await
        .unwrap();
    assert_eq!(task.gid, "1201234567890123");
    assert_eq!(task.name.as_deref(), Some("Draft the Q3 contract"));
    assert_eq!(task.completed, Some(false));
    assert_eq!(task.completed_at, None);
    assert_eq!(task.resource_type.as_deref(), Some("task"));
    let a = task.assignee.unwrap();
    assert_eq!(a.gid, "1100000000000001");
    assert_eq!(a.name.as_deref(), Some("Ann Example"));
    assert_eq!(a.email.as_deref(), Some("ann@example.com"));
    assert_eq!(a.resource_type.as_deref(), Some("user"));
    let projects = task.projects.unwrap();
    assert_eq!(projects[0].gid, "1200000000000001");
    let m = &task.memberships.unwrap()[0];
    assert_eq!(m.section.as_ref().unwrap().name.as_deref(), Some("Doing"));
}

#[tokio::test]
async fn task_with_assignee_without_email() {
    let server = Server::start(vec![Reply::json(
        200,
        fixture!("task_assignee_no_email.json"),
    )])
    .await;
    let task = server
        .client()
        .get_task(&gid("1201234567890124"), &["assignee.email"])
        .await
        .unwrap();
    let a = task.assignee.unwrap();
    assert_eq!(a.gid, "1100000000000002");
    assert_eq!(a.email, None);
    assert_eq!(task.projects, None);
    assert_eq!(task.completed, None);
}

#[tokio::test]
async fn task_with_null_assignee() {
    let server = Server::start(vec![Reply::json(200, fixture!("task_null_assignee.json"))]).await;
    let task = server
        .client()
        .get_task(&gid("1201234567890125"), &["assignee"])
        .await
        .unwrap();
    assert_eq!(task.assignee, None);
    assert_eq!(task.completed, Some(true));
    assert_eq!(
        task.completed_at
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "2012-02-22T02:06:58.147Z"
    );
}

#[tokio::test]
async fn user_record_from_add_user() {
    let server = Server::start(vec![Reply::json(200, fixture!("user_add_user.json"))]).await;
    let user = server
        .client()
        .add_user_to_workspace(&gid("1331"), "gsanchez@example.com")
        .await
        .unwrap();
    assert_eq!(user.gid, "12345");
    assert_eq!(user.name.as_deref(), Some("Greg Sanchez"));
    assert_eq!(user.email.as_deref(), Some("gsanchez@example.com"));
    assert_eq!(user.resource_type.as_deref(), Some("user"));
}

#[tokio::test]
async fn error_envelope_with_help() {
    let server = Server::start(vec![Reply::json(404, fixture!("error_with_help.json"))]).await;
    let err = server
        .client()
        .get_user("nobody@example", &["email"])
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    match err {
        Error::Api {
            status,
            message,
            help,
        } => {
            assert_eq!(status, 404);
            assert_eq!(message, "user: Not a recognized ID: nobody@example");
            assert!(help.unwrap().contains("developers.asana.com/docs/errors"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_error_with_phrase() {
    // A POST is not retried on 500, so one scripted reply is enough.
    let server = Server::start(vec![Reply::json(500, fixture!("error_500_phrase.json"))]).await;
    let err = server
        .client()
        .add_user_to_workspace(&gid("1331"), "me")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("6 sad squid snuggle softly"),
        "{err}"
    );
}

#[tokio::test]
async fn events_page() {
    let server = Server::start(vec![Reply::json(200, fixture!("events_page.json"))]).await;
    let page = server
        .client()
        .get_events(&gid("1200000000000001"), Some("old"))
        .await
        .unwrap();
    assert_eq!(page.sync, "de4774f6915eae04714ca93bb2f5ee81");
    assert!(page.has_more);
    assert_eq!(page.data.len(), 2);
    let e = &page.data[0];
    assert_eq!(e.action, EventAction::Changed);
    assert_eq!(e.resource.gid, "1201234567890123");
    assert_eq!(e.resource.resource_subtype.as_deref(), Some("default_task"));
    assert_eq!(e.user.as_ref().unwrap().gid, "1100000000000001");
    assert_eq!(e.parent, None);
    let c = e.change.as_ref().unwrap();
    assert_eq!(c.field.as_deref(), Some("assignee"));
    assert_eq!(c.action, Some(EventAction::Changed));
    assert_eq!(
        c.new_value.as_ref().and_then(ChangeValue::gid),
        Some("1100000000000002")
    );
    let e = &page.data[1];
    assert_eq!(e.action, "added");
    assert_eq!(e.user, None);
    assert_eq!(e.parent.as_ref().unwrap().gid, "1200000000000001");
    assert_eq!(e.change, None);
}

#[tokio::test]
async fn events_412_carries_the_new_sync_token() {
    let server = Server::start(vec![Reply::json(412, fixture!("events_412.json"))]).await;
    let err = server
        .client()
        .get_events(&gid("1200000000000001"), None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::SyncTokenExpired {
            sync: "fresh-token-123".into()
        }
    );
    assert_eq!(err.status(), Some(412));
    let req = &server.requests()[0];
    assert_eq!(req.param("resource").as_deref(), Some("1200000000000001"));
    assert_eq!(req.param("sync"), None);
}

#[tokio::test]
async fn webhook_create_response_keeps_the_secret() {
    let server = Server::start(vec![Reply::json(201, fixture!("webhook_created.json"))]).await;
    let hook = server
        .client()
        .create_webhook(
            &gid("8675309"),
            "https://example.com/receive-webhook/7654",
            &[WebhookFilter::changed("task", &["assignee"])],
        )
        .await
        .unwrap();
    assert_eq!(hook.gid, "43214");
    assert_eq!(hook.active, Some(false));
    assert_eq!(
        hook.resource.as_ref().unwrap().name.as_deref(),
        Some("Bugs")
    );
    assert_eq!(
        hook.target.as_deref(),
        Some("https://example.com/receive-webhook/7654")
    );
    assert_eq!(hook.last_success_at, None);
    assert_eq!(hook.delivery_retry_count, Some(0));
    assert_eq!(
        hook.filters.as_ref().unwrap()[0],
        WebhookFilter::changed("task", &["assignee"])
    );
    assert_eq!(
        hook.secret.as_ref().unwrap().expose_secret(),
        "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
    );
    // The secret never shows in Debug output.
    assert!(!format!("{hook:?}").contains("b537207f"));
}

#[test]
fn webhook_delivery_and_heartbeat() {
    let d = WebhookDelivery::from_slice(fixture!("webhook_delivery.json").as_bytes()).unwrap();
    assert_eq!(d.events.len(), 2);
    let c = d.events[1].change.as_ref().unwrap();
    assert_eq!(c.field.as_deref(), Some("assignee"));
    assert_eq!(c.new_value, None, "un-assignment carries no new_value");
    assert_eq!(
        d.events[0]
            .created_at
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "2024-05-01T10:00:00.123Z"
    );
    assert!(WebhookDelivery::from_slice(br#"{"events":[]}"#)
        .unwrap()
        .events
        .is_empty());
    assert!(WebhookDelivery::from_slice(b"{}")
        .unwrap()
        .events
        .is_empty());
}

#[test]
fn delivery_decode_error_names_the_path() {
    let body = br#"{"events":[{"action":"changed","resource":{"gid":"1"}},{"action":"changed","resource":{"gid":2}}]}"#;
    match WebhookDelivery::from_slice(body) {
        Err(Error::Decode { path, message }) => {
            assert_eq!(path, "events[1].resource.gid");
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn response_decode_error_names_the_path() {
    let server = Server::start(vec![Reply::json(
        200,
        r#"{"data":{"gid":"1","assignee":{"gid":1100}}}"#,
    )])
    .await;
    match server.client().get_task(&gid("1"), &[]).await {
        Err(Error::Decode { path, .. }) => assert_eq!(path, "data.assignee.gid"),
        other => panic!("{other:?}"),
    }
}
