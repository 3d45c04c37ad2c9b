//! Webhook registrations (handshake secrets) and Events API sync tokens.

use bridge_core::record::StoreError;

use super::Backend;

const URL: &str = "https://bridge.example.com/webhooks/asana/h1";

async fn secret_is_stored_only_while_expecting_and_only_once(backend: &Backend) {
    let s = backend.open().await;
    // Unknown id: a handshake for a registration we never asked for is refused.
    assert!(!s.store_webhook_secret("h1", "forged").await.unwrap());

    s.expect_webhook("h1", "p1", URL).await.unwrap();
    let w = s.webhook("h1").await.unwrap().unwrap();
    assert_eq!(w.state, "expecting");
    assert_eq!(w.secret, None);
    assert_eq!(w.asana_gid, None);
    assert_eq!(w.project_gid, "p1");
    assert_eq!(w.target, URL);

    assert!(s.store_webhook_secret("h1", "first-secret").await.unwrap());
    // A second handshake must not replace the secret.
    assert!(!s.store_webhook_secret("h1", "second").await.unwrap());
    s.activate_webhook("h1", "1209999").await.unwrap();
    assert!(!s.store_webhook_secret("h1", "third").await.unwrap());

    let w = s.webhook("h1").await.unwrap().unwrap();
    assert_eq!(w.state, "active");
    assert_eq!(w.asana_gid.as_deref(), Some("1209999"));
    assert_eq!(w.secret.as_deref(), Some("first-secret"));
}

async fn secret_never_shows_in_debug_or_json(backend: &Backend) {
    let s = backend.open().await;
    s.expect_webhook("h1", "p1", URL).await.unwrap();
    s.store_webhook_secret("h1", "top-secret-value")
        .await
        .unwrap();
    let w = s.webhook("h1").await.unwrap().unwrap();
    let dbg = format!("{w:?} {:?}", s.webhooks().await.unwrap());
    assert!(!dbg.contains("top-secret-value"), "{dbg}");
    assert!(dbg.contains("redacted"));
    let json = serde_json::to_string(&w).unwrap();
    assert!(!json.contains("top-secret-value"), "{json}");
    assert!(!json.contains("secret"), "{json}");
}

async fn registrations_list_activate_and_delete(backend: &Backend) {
    let s = backend.open().await;
    s.expect_webhook("h1", "p1", URL).await.unwrap();
    s.expect_webhook("h2", "p2", "https://b/webhooks/asana/h2")
        .await
        .unwrap();
    assert!(matches!(
        s.expect_webhook("h1", "p9", URL).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.activate_webhook("nope", "1").await,
        Err(StoreError::NotFound(_))
    ));
    s.activate_webhook("h1", "111").await.unwrap();
    assert!(matches!(
        s.activate_webhook("h2", "111").await,
        Err(StoreError::Conflict(_))
    ));
    s.activate_webhook("h2", "222").await.unwrap();

    let all = s.webhooks().await.unwrap();
    assert_eq!(
        all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["h1", "h2"]
    );
    assert!(s.webhook("missing").await.unwrap().is_none());

    assert!(s.delete_webhook_by_asana_gid("111").await.unwrap());
    assert!(!s.delete_webhook_by_asana_gid("111").await.unwrap());
    assert!(s.webhook("h1").await.unwrap().is_none());
    assert!(s.delete_webhook("h2").await.unwrap());
    assert!(!s.delete_webhook("h2").await.unwrap());
    assert!(s.webhooks().await.unwrap().is_empty());
}

async fn sync_tokens_are_upserted_per_resource(backend: &Backend) {
    let s = backend.open().await;
    assert_eq!(s.sync_token("p1").await.unwrap(), None);
    s.set_sync_token("p1", "t1").await.unwrap();
    s.set_sync_token("p2", "u1").await.unwrap();
    assert_eq!(s.sync_token("p1").await.unwrap().as_deref(), Some("t1"));
    s.set_sync_token("p1", "t2").await.unwrap();
    assert_eq!(s.sync_token("p1").await.unwrap().as_deref(), Some("t2"));
    assert_eq!(s.sync_token("p2").await.unwrap().as_deref(), Some("u1"));
}

super::conformance!(
    secret_is_stored_only_while_expecting_and_only_once,
    secret_never_shows_in_debug_or_json,
    registrations_list_activate_and_delete,
    sync_tokens_are_upserted_per_resource,
);
