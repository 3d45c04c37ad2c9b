//! Webhooks against a real receiver: the X-Hook-Secret handshake, HMAC-signed deliveries,
//! filters, retries, redelivery, heartbeats, batching, management endpoints; and the Events
//! API's sync-token flow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bridge_sim::seed::DEMO_ASANA_TOKEN;
use bridge_sim::{AsanaSim, AsanaSimOptions};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{asana_demo, asana_demo_with, client, get, get_json, send};

#[derive(Default)]
struct Inbox {
    handshake_secrets: Vec<String>,
    deliveries: Vec<(Option<String>, Bytes)>,
    /// Answer this many deliveries with 500 before accepting.
    fail_next: u32,
    /// Answer the handshake without echoing the secret.
    refuse_handshake: bool,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Inbox>>);

impl Receiver {
    fn inbox<R>(&self, f: impl FnOnce(&mut Inbox) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inbox = r.0.lock().unwrap();
    if let Some(secret) = headers.get("x-hook-secret") {
        let secret = secret.to_str().unwrap().to_string();
        inbox.handshake_secrets.push(secret.clone());
        if inbox.refuse_handshake {
            return StatusCode::OK.into_response();
        }
        return (StatusCode::OK, [("X-Hook-Secret", secret)]).into_response();
    }
    let sig = headers
        .get("x-hook-signature")
        .map(|v| v.to_str().unwrap().to_string());
    inbox.deliveries.push((sig, body));
    if inbox.fail_next > 0 {
        inbox.fail_next -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Starts a receiver and returns it with its URL.
async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (r, format!("http://{addr}/hook"))
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn create_webhook(
    sim: &AsanaSim,
    resource: &str,
    target: &str,
    filters: Value,
) -> (u16, Value) {
    send(
        client()
            .post(format!("{}/webhooks", sim.base_url()))
            .bearer_auth(DEMO_ASANA_TOKEN)
            .json(&json!({"data": {"resource": resource, "target": target, "filters": filters}})),
    )
    .await
}

fn assignee_filter() -> Value {
    json!([{"resource_type": "task", "action": "changed", "fields": ["assignee"]}])
}

#[tokio::test]
async fn handshake_then_signed_filtered_deliveries() {
    let (sim, ids) = asana_demo().await;
    let (rx, target) = receiver().await;

    let (s, b) = create_webhook(&sim, &ids.project_website, &target, assignee_filter()).await;
    assert_eq!(s, 201, "{b}");
    let secret = b["X-Hook-Secret"].as_str().unwrap().to_string();
    assert_eq!(
        rx.inbox(|i| i.handshake_secrets.clone()),
        vec![secret.clone()]
    );
    let hook = &b["data"];
    assert_eq!(hook["active"], true);
    assert_eq!(
        hook["resource"],
        json!({"gid": ids.project_website, "resource_type": "project", "name": "Website relaunch"})
    );
    assert_eq!(hook["target"], target.as_str());
    assert_eq!(hook["filters"], assignee_filter());
    assert_eq!(hook["delivery_retry_count"], 0);
    assert!(hook["last_success_at"].is_null());

    // A change in the world, one through HTTP, and events the filter drops.
    sim.world(|w| w.assign_task(&ids.task_unassigned, Some(&ids.user_new)))
        .unwrap();
    sim.flush_deliveries().await;
    let r = client()
        .put(format!("{}/tasks/{}", sim.base_url(), ids.task_pending))
        .bearer_auth(DEMO_ASANA_TOKEN)
        .json(&json!({"data": {"assignee": ids.user_active}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.world(|w| {
        w.add_task(&ids.project_website, "Filtered out: added", None);
        w.complete_task(&ids.task_active_member).unwrap();
        // Another project's change is not this webhook's business.
        w.assign_task(&ids.task_onboarding_new, Some(&ids.user_active))
            .unwrap();
    });
    sim.flush_deliveries().await;

    let deliveries = rx.inbox(|i| i.deliveries.clone());
    assert_eq!(deliveries.len(), 2);
    for (sig, body) in &deliveries {
        assert_eq!(sig.as_deref(), Some(hmac_hex(&secret, body).as_str()));
        assert_eq!(
            sig.as_deref(),
            Some(bridge_sim::sign_webhook_body(&secret, body).as_str())
        );
    }
    let first: Value = serde_json::from_slice(&deliveries[0].1).unwrap();
    let ev = &first["events"][0];
    assert_eq!(first["events"].as_array().unwrap().len(), 1);
    assert_eq!(ev["action"], "changed");
    assert_eq!(
        ev["resource"],
        json!({"gid": ids.task_unassigned, "resource_type": "task", "resource_subtype": "default_task"})
    );
    assert_eq!(ev["parent"], Value::Null);
    assert_eq!(ev["user"], json!({"gid": ids.me, "resource_type": "user"}));
    assert_eq!(
        ev["change"],
        json!({"field": "assignee", "action": "changed", "new_value": {"gid": ids.user_new, "resource_type": "user"}})
    );
    let created = ev["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let second: Value = serde_json::from_slice(&deliveries[1].1).unwrap();
    assert_eq!(
        second["events"][0]["resource"]["gid"],
        ids.task_pending.as_str()
    );

    let log = sim.deliveries();
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|d| d.ok && d.status == Some(204) && d.events == 1 && d.attempt == 1));
    let gid = hook["gid"].as_str().unwrap();
    assert!(sim.world(|w| w.webhooks[gid].last_success_at.is_some()));
}

#[tokio::test]
async fn added_events_carry_the_project_as_parent() {
    let (sim, ids) = asana_demo().await;
    let (rx, target) = receiver().await;
    let (s, _) = create_webhook(
        &sim,
        &ids.project_onboarding,
        &target,
        json!([{"resource_type": "task", "action": "added"}]),
    )
    .await;
    assert_eq!(s, 201);
    let task = sim.world(|w| w.add_task(&ids.project_onboarding, "New one", None));
    sim.flush_deliveries().await;
    let d = rx.inbox(|i| i.deliveries.clone());
    assert_eq!(d.len(), 1);
    let body: Value = serde_json::from_slice(&d[0].1).unwrap();
    let ev = &body["events"][0];
    assert_eq!(ev["action"], "added");
    assert_eq!(ev["resource"]["gid"], task.as_str());
    assert_eq!(
        ev["parent"],
        json!({"gid": ids.project_onboarding, "resource_type": "project"})
    );
    assert!(ev.get("change").is_none());
}

#[tokio::test]
async fn handshake_failures_are_400() {
    let (sim, ids) = asana_demo().await;
    let (rx, target) = receiver().await;
    rx.inbox(|i| i.refuse_handshake = true);
    let (s, b) = create_webhook(&sim, &ids.project_website, &target, assignee_filter()).await;
    assert_eq!(s, 400);
    assert!(b["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("handshake"));
    // Nothing listens on port 9 of loopback.
    let (s, _) = create_webhook(
        &sim,
        &ids.project_website,
        "http://127.0.0.1:9/hook",
        assignee_filter(),
    )
    .await;
    assert_eq!(s, 400);
    let (s, b) = create_webhook(&sim, "1", &target, assignee_filter()).await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = create_webhook(&sim, &ids.workspace, &target, json!([])).await;
    assert_eq!(s, 400, "workspace webhooks need filters");
    let (s, b) = send(
        client()
            .post(format!("{}/webhooks", sim.base_url()))
            .bearer_auth(DEMO_ASANA_TOKEN)
            .json(&json!({"data": {"target": target}})),
    )
    .await;
    assert_eq!(
        (s, b["errors"][0]["message"].as_str()),
        (400, Some("resource: Missing input"))
    );
    assert!(sim.world(|w| w.webhooks.is_empty()));
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff() {
    let opts = AsanaSimOptions {
        delivery_retry_schedule: vec![
            Duration::from_millis(20),
            Duration::from_millis(40),
            Duration::from_millis(80),
        ],
        ..Default::default()
    };
    let (sim, ids) = asana_demo_with(opts).await;
    let (rx, target) = receiver().await;
    let (_, b) = create_webhook(&sim, &ids.project_website, &target, assignee_filter()).await;
    let gid = b["data"]["gid"].as_str().unwrap().to_string();
    rx.inbox(|i| i.fail_next = 2);
    sim.world(|w| w.assign_task(&ids.task_unassigned, Some(&ids.user_new)))
        .unwrap();
    sim.flush_deliveries().await;

    let attempts: Vec<(u32, Option<u16>, bool)> = sim
        .deliveries()
        .iter()
        .map(|d| (d.attempt, d.status, d.ok))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, Some(500), false),
            (2, Some(500), false),
            (3, Some(204), true)
        ]
    );
    let bodies = rx.inbox(|i| i.deliveries.clone());
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies.iter().all(|(_, b)| *b == bodies[0].1),
        "a retry resends the same body"
    );
    sim.world(|w| {
        let h = &w.webhooks[&gid];
        assert!(h.last_failure_at.is_some() && h.last_success_at.is_some());
        assert_eq!(h.last_failure_content, "Received HTTP status 500");
    });

    // Every attempt fails: the events are given up after the schedule.
    rx.inbox(|i| i.fail_next = 10);
    sim.world(|w| w.assign_task(&ids.task_unassigned, Some(&ids.user_active)))
        .unwrap();
    sim.flush_deliveries().await;
    assert_eq!(sim.deliveries().len(), 3 + 4);
    assert_eq!(sim.world(|w| w.webhooks[&gid].delivery_retry_count), 4);
    let (_, b) = get_json(
        &format!("{}/webhooks/{gid}", sim.base_url()),
        DEMO_ASANA_TOKEN,
    )
    .await;
    assert_eq!(b["data"]["delivery_retry_count"], 4);
    assert!(b["data"]["last_failure_at"].is_string());
}

#[tokio::test]
async fn redelivery_heartbeats_and_batching() {
    let opts = AsanaSimOptions {
        redeliver_probability: 1.0,
        heartbeat_interval: Some(Duration::from_millis(150)),
        max_events_per_delivery: 2,
        ..Default::default()
    };
    let (sim, ids) = asana_demo_with(opts).await;
    let (rx, target) = receiver().await;
    let (_, b) = create_webhook(&sim, &ids.project_website, &target, json!(null)).await;
    let secret = b["X-Hook-Secret"].as_str().unwrap().to_string();
    sim.world(|w| {
        for user in [&ids.user_new, &ids.user_active, &ids.user_pending] {
            w.assign_task(&ids.task_unassigned, Some(user)).unwrap();
        }
    });
    sim.flush_deliveries().await;
    let bodies: Vec<Value> = rx.inbox(|i| {
        i.deliveries
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    });
    let non_empty: Vec<&Value> = bodies
        .iter()
        .filter(|b| !b["events"].as_array().unwrap().is_empty())
        .collect();
    // Three events in batches of at most two, each body sent twice.
    assert_eq!(non_empty.len(), 4, "{bodies:?}");
    assert_eq!(non_empty[0], non_empty[1]);
    assert_eq!(non_empty[0]["events"].as_array().unwrap().len(), 2);
    assert_eq!(non_empty[2]["events"].as_array().unwrap().len(), 1);
    assert!(sim.deliveries().iter().any(|d| d.redelivery));

    tokio::time::sleep(Duration::from_millis(400)).await;
    sim.flush_deliveries().await;
    let beats: Vec<(Option<String>, Bytes)> = rx.inbox(|i| {
        i.deliveries
            .iter()
            .filter(|(_, b)| b.as_ref() == br#"{"events":[]}"#)
            .cloned()
            .collect()
    });
    assert!(!beats.is_empty(), "heartbeats were sent");
    assert_eq!(
        beats[0].0.as_deref(),
        Some(hmac_hex(&secret, &beats[0].1).as_str())
    );
    assert!(sim
        .deliveries()
        .iter()
        .any(|d| d.heartbeat && d.events == 0));
}

#[tokio::test]
async fn list_get_and_delete_webhooks() {
    let (sim, ids) = asana_demo().await;
    let (_rx, target) = receiver().await;
    let mut gids = Vec::new();
    for project in [
        &ids.project_website,
        &ids.project_onboarding,
        &ids.project_website,
    ] {
        let (s, b) = create_webhook(&sim, project, &target, assignee_filter()).await;
        assert_eq!(s, 201);
        gids.push(b["data"]["gid"].as_str().unwrap().to_string());
    }
    let base = sim.base_url();
    let (s, b) = get_json(
        &format!("{base}/webhooks?workspace={}&limit=2", ids.workspace),
        DEMO_ASANA_TOKEN,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    let next = b["next_page"]["uri"].as_str().unwrap().to_string();
    let (_, b) = get_json(&next, DEMO_ASANA_TOKEN).await;
    assert_eq!(b["data"][0]["gid"], gids[2].as_str());
    assert!(b["next_page"].is_null());
    let (_, b) = get_json(
        &format!(
            "{base}/webhooks?workspace={}&resource={}",
            ids.workspace, ids.project_onboarding
        ),
        DEMO_ASANA_TOKEN,
    )
    .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (s, _) = get_json(&format!("{base}/webhooks"), DEMO_ASANA_TOKEN).await;
    assert_eq!(s, 400, "workspace is required");

    let (s, b) = get_json(&format!("{base}/webhooks/{}", gids[1]), DEMO_ASANA_TOKEN).await;
    assert_eq!(
        (s, b["data"]["resource"]["gid"].as_str()),
        (200, Some(ids.project_onboarding.as_str()))
    );
    let (s, b) = send(
        client()
            .delete(format!("{base}/webhooks/{}", gids[1]))
            .bearer_auth(DEMO_ASANA_TOKEN),
    )
    .await;
    assert_eq!((s, b), (200, json!({"data": {}})));
    let (s, _) = get_json(&format!("{base}/webhooks/{}", gids[1]), DEMO_ASANA_TOKEN).await;
    assert_eq!(s, 404);
    let (s, _) = send(
        client()
            .delete(format!("{base}/webhooks/{}", gids[1]))
            .bearer_auth(DEMO_ASANA_TOKEN),
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn events_api_sync_tokens() {
    let (sim, ids) = asana_demo().await;
    let events = |sync: Option<&str>| {
        let mut url = format!("{}/events?resource={}", sim.base_url(), ids.project_website);
        if let Some(s) = sync {
            url.push_str(&format!("&sync={s}"));
        }
        get(&url, DEMO_ASANA_TOKEN)
    };
    let (s, b) = send(events(None)).await;
    assert_eq!(s, 412);
    assert_eq!(
        b["errors"][0]["message"],
        "Sync token invalid or too old. If you are attempting to keep resources in sync, you must fetch the full dataset for this query now and use the new sync token for the next sync."
    );
    let token = b["sync"].as_str().unwrap().to_string();

    let (s, b) = send(events(Some(&token))).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"], json!([]));
    assert_eq!(b["has_more"], false);
    let token = b["sync"].as_str().unwrap().to_string();

    sim.world(|w| {
        w.assign_task(&ids.task_unassigned, Some(&ids.user_new))
            .unwrap();
        w.assign_task(&ids.task_onboarding_new, Some(&ids.user_new))
            .unwrap();
    });
    let (_, b) = send(events(Some(&token))).await;
    assert_eq!(
        b["data"].as_array().unwrap().len(),
        1,
        "only this project's events"
    );
    assert_eq!(b["data"][0]["change"]["field"], "assignee");
    // Re-reading the same token is safe and gives the same events.
    let (_, again) = send(events(Some(&token))).await;
    assert_eq!(again["data"], b["data"]);
    let token = b["sync"].as_str().unwrap().to_string();

    sim.world(|w| {
        for i in 0..150 {
            w.add_task(&ids.project_website, &format!("bulk {i}"), None);
        }
    });
    let (_, b) = send(events(Some(&token))).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 100);
    assert_eq!(b["has_more"], true);
    let (_, b) = send(events(Some(b["sync"].as_str().unwrap()))).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 50);
    assert_eq!(b["has_more"], false);
    let token = b["sync"].as_str().unwrap().to_string();

    sim.expire_sync_tokens();
    let (s, b) = send(events(Some(&token))).await;
    assert_eq!(s, 412);
    let fresh = b["sync"].as_str().unwrap();
    assert_ne!(fresh, token);
    let (s, _) = send(events(Some(fresh))).await;
    assert_eq!(s, 200);

    // A token for another resource is not valid here.
    let (_, b) = get_json(
        &format!("{}/events?resource={}", sim.base_url(), ids.task_pending),
        DEMO_ASANA_TOKEN,
    )
    .await;
    let (s, _) = send(events(Some(b["sync"].as_str().unwrap()))).await;
    assert_eq!(s, 412);
    let (s, _) = get_json(&format!("{}/events", sim.base_url()), DEMO_ASANA_TOKEN).await;
    assert_eq!(s, 400);
}
