//! Each endpoint sends what the spec describes: method, path (with the base URL's prefix),
//! query parameters, body, and the fixed headers.

use asana_api::{Error, Gid, WebhookFilter};
use serde_json::json;

use crate::{
    fixture,
    support::{Reply, Server, TOKEN},
};

fn gid(s: &str) -> Gid {
    Gid::parse(s).unwrap()
}

#[tokio::test]
async fn get_task_sends_headers_path_and_fields() {
    let server = Server::start(vec![Reply::json(200, fixture!("task_assignee_email.json"))]).await;
    server
        .client()
        .get_task(&gid("1201234567890123"), &["name", "assignee.email"])
        .await
        .unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/api/1.0/tasks/1201234567890123");
    assert_eq!(req.query.as_deref(), Some("opt_fields=name,assignee.email"));
    assert_eq!(
        req.headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert_eq!(req.headers["accept"], "application/json");
    assert_eq!(
        req.headers["user-agent"],
        format!("asana-docspace/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    assert_eq!(req.body, None);
}

#[tokio::test]
async fn get_user_accepts_gid_email_and_me() {
    let ok = || Reply::json(200, r#"{"data":{"gid":"1","email":"a@example.com"}}"#);
    let server = Server::start(vec![ok(), ok(), ok()]).await;
    let c = server.client();
    for user in ["1100", "a.b+c@example.com", "me"] {
        let u = c.get_user(user, &["email"]).await.unwrap();
        assert_eq!(u.email.as_deref(), Some("a@example.com"));
    }
    let paths: Vec<_> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/1.0/users/1100",
            "/api/1.0/users/a.b+c@example.com",
            "/api/1.0/users/me"
        ]
    );
    assert_eq!(
        server.requests()[0].param("opt_fields").as_deref(),
        Some("email")
    );
    for bad in ["", "  ", "a/b", "a b"] {
        assert!(
            matches!(c.get_user(bad, &[]).await, Err(Error::InvalidInput(_))),
            "{bad:?}"
        );
    }
    assert_eq!(server.requests().len(), 3, "invalid input sends nothing");
}

#[tokio::test]
async fn add_user_posts_the_user_with_email_and_name_fields() {
    let server = Server::start(vec![Reply::json(200, fixture!("user_add_user.json"))]).await;
    server
        .client()
        .add_user_to_workspace(&gid("1331"), "gsanchez@example.com")
        .await
        .unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/api/1.0/workspaces/1331/addUser");
    assert_eq!(req.query.as_deref(), Some("opt_fields=email,name"));
    assert_eq!(req.headers["content-type"], "application/json");
    assert_eq!(
        req.body,
        Some(json!({"data": {"user": "gsanchez@example.com"}}))
    );
}

#[tokio::test]
async fn get_project() {
    let server = Server::start(vec![Reply::json(
        200,
        r#"{"data":{"gid":"1200","name":"Contracts","workspace":{"gid":"1331","resource_type":"workspace","name":"Acme"}}}"#,
    )])
    .await;
    let p = server
        .client()
        .get_project(&gid("1200"), &["name", "workspace"])
        .await
        .unwrap();
    assert_eq!(p.name.as_deref(), Some("Contracts"));
    assert_eq!(p.workspace.unwrap().gid, "1331");
    let req = &server.requests()[0];
    assert_eq!(req.path, "/api/1.0/projects/1200");
    assert_eq!(req.query.as_deref(), Some("opt_fields=name,workspace"));
}

#[tokio::test]
async fn create_webhook_sends_resource_target_and_filters() {
    let server = Server::start(vec![
        Reply::json(201, fixture!("webhook_created.json")),
        Reply::json(201, r#"{"data":{"gid":"43215"}}"#),
    ])
    .await;
    let c = server.client();
    let target = "https://bridge.example.com/webhooks/asana/abc?state=1";
    c.create_webhook(
        &gid("8675309"),
        target,
        &[WebhookFilter::changed("task", &["assignee"])],
    )
    .await
    .unwrap();
    let hook = c
        .create_webhook(&gid("8675309"), target, &[])
        .await
        .unwrap();
    assert!(hook.secret.is_none());
    let reqs = server.requests();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/api/1.0/webhooks");
    assert_eq!(reqs[0].query, None);
    assert_eq!(
        reqs[0].body,
        Some(json!({"data": {
            "resource": "8675309",
            "target": target,
            "filters": [{"resource_type": "task", "action": "changed", "fields": ["assignee"]}]
        }}))
    );
    assert_eq!(
        reqs[1].body,
        Some(json!({"data": {"resource": "8675309", "target": target}}))
    );
    assert!(matches!(
        c.create_webhook(&gid("1"), "not a url", &[]).await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn list_webhooks_pages_with_workspace_and_resource() {
    let server = Server::start(vec![
        Reply::json(
            200,
            r#"{"data":[{"gid":"1","active":true}],"next_page":{"offset":"tok/2","path":"/webhooks?offset=tok/2","uri":"x"}}"#,
        ),
        Reply::json(200, r#"{"data":[{"gid":"2","active":false}],"next_page":null}"#),
    ])
    .await;
    let hooks = server
        .client()
        .list_webhooks(&gid("1331"), Some(&gid("1200")))
        .await
        .unwrap();
    assert_eq!(
        hooks.iter().map(|h| h.gid.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    let reqs = server.requests();
    for r in &reqs {
        assert_eq!(r.path, "/api/1.0/webhooks");
        assert_eq!(r.param("workspace").as_deref(), Some("1331"));
        assert_eq!(r.param("resource").as_deref(), Some("1200"));
        assert_eq!(r.param("limit").as_deref(), Some("100"));
    }
    assert_eq!(reqs[0].param("offset"), None);
    assert_eq!(reqs[1].param("offset").as_deref(), Some("tok/2"));
}

#[tokio::test]
async fn delete_webhook() {
    let server = Server::start(vec![
        Reply::json(200, r#"{"data":{}}"#),
        Reply::json(
            404,
            r#"{"errors":[{"message":"webhook: Unknown object: 43214"}]}"#,
        ),
    ])
    .await;
    let c = server.client();
    c.delete_webhook(&gid("43214")).await.unwrap();
    let err = c.delete_webhook(&gid("43214")).await.unwrap_err();
    assert!(err.is_not_found());
    let req = &server.requests()[0];
    assert_eq!(req.method, "DELETE");
    assert_eq!(req.path, "/api/1.0/webhooks/43214");
    assert_eq!(req.query, None);
    assert_eq!(req.body, None);
}

#[tokio::test]
async fn get_events_sends_resource_and_sync() {
    let server = Server::start(vec![Reply::json(200, r#"{"data":[],"sync":"next"}"#)]).await;
    let page = server
        .client()
        .get_events(&gid("1200"), Some("abc+/="))
        .await
        .unwrap();
    assert_eq!(page.sync, "next");
    assert!(!page.has_more);
    let req = &server.requests()[0];
    assert_eq!(req.path, "/api/1.0/events");
    assert_eq!(req.param("resource").as_deref(), Some("1200"));
    assert_eq!(req.param("sync").as_deref(), Some("abc+/="));
}

#[tokio::test]
async fn a_412_without_a_token_is_an_api_error() {
    let server = Server::start(vec![Reply::json(
        412,
        r#"{"errors":[{"message":"Precondition"}]}"#,
    )])
    .await;
    let err = server
        .client()
        .get_events(&gid("1200"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 412, .. }), "{err:?}");
}
