//! Webhooks (`/webhooks`), their deliveries, and the Events API (`/events`).
//!
//! Creation performs the real handshake while the request is in flight, so a receiver
//! that cannot answer concurrently fails here exactly as it would against Asana.
//! Deliveries run in the background: one job at a time per webhook (keeping its events in
//! order), signed with `X-Hook-Signature` = hex HMAC-SHA256 of the raw body, retried on a
//! non-2xx or a timeout following `delivery_retry_schedule`.
//!
//! Deliberate deviation: Asana refuses targets on invalid hosts such as `localhost` (403);
//! the simulator accepts loopback targets, because its whole purpose is local testing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::handlers::{check_gid, err, list_response, paginate, unknown, write_data, St};
use super::world::{rfc3339_millis, AsanaWorld, Webhook, WebhookFilter};
use super::{AsanaState, DeliveryAttempt};
use crate::server::{param, query_pairs};

/// The exact 412 text of the Events API.
const SYNC_INVALID: &str = "Sync token invalid or too old. If you are attempting to keep resources in sync, you must fetch the full dataset for this query now and use the new sync token for the next sync.";

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm cannot happen.
        Err(_) => String::new(),
    }
}

fn webhook_json(w: &AsanaWorld, h: &Webhook) -> Value {
    let (rtype, name, _) =
        w.describe(&h.resource)
            .unwrap_or(("task", String::new(), String::new()));
    json!({
        "gid": h.gid,
        "resource_type": "webhook",
        "active": h.active,
        "resource": { "gid": h.resource, "resource_type": rtype, "name": name },
        "target": h.target,
        "created_at": rfc3339_millis(&h.created_at),
        "last_success_at": h.last_success_at.as_ref().map(rfc3339_millis),
        "last_failure_at": h.last_failure_at.as_ref().map(rfc3339_millis),
        "last_failure_content": h.last_failure_content,
        "delivery_retry_count": h.delivery_retry_count,
        "next_attempt_after": null,
        "failure_deletion_timestamp": null,
        "filters": h.filters,
    })
}

/// `POST /webhooks`: validate, handshake with the target, then 201 with the secret.
pub(crate) async fn create(State(st): St, body: Bytes) -> Response {
    let data = match write_data(&body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(resource) = data
        .get("resource")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return err(StatusCode::BAD_REQUEST, "resource: Missing input");
    };
    let Some(target) = data
        .get("target")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return err(StatusCode::BAD_REQUEST, "target: Missing input");
    };
    if let Err(r) = check_gid("resource", &resource) {
        return r;
    }
    let filters: Vec<WebhookFilter> = match data.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(f) => f,
            Err(_) => return err(StatusCode::BAD_REQUEST, "filters: Invalid filter list"),
        },
    };
    if filters
        .iter()
        .any(|f| f.fields.is_some() && f.action.as_deref() != Some("changed"))
    {
        return err(
            StatusCode::BAD_REQUEST,
            "filters: fields may only be specified for action 'changed'",
        );
    }
    match url::Url::parse(&target) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => return err(StatusCode::BAD_REQUEST, "target: Not a valid URL"),
    }
    {
        let w = st.world();
        match w.describe(&resource) {
            None => return unknown(&resource),
            Some(("workspace", _, _)) if filters.is_empty() => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "filters: Webhooks on a workspace must specify filters",
                )
            }
            Some(("project", _, _)) if w.projects.get(&resource).is_some_and(|p| p.no_access) => {
                return super::handlers::forbidden()
            }
            Some(_) => {}
        }
    }

    let secret = st.random_hex();
    let handshake = st
        .http
        .post(&target)
        .header("X-Hook-Secret", &secret)
        .timeout(st.delivery.handshake_timeout)
        .send()
        .await;
    let ok = match &handshake {
        Ok(r) => {
            matches!(r.status().as_u16(), 200 | 204)
                && r.headers()
                    .get("x-hook-secret")
                    .and_then(|v| v.to_str().ok())
                    == Some(secret.as_str())
        }
        Err(_) => false,
    };
    if !ok {
        let detail = match handshake {
            Ok(r) => format!("the target answered {}", r.status().as_u16()),
            Err(e) if e.is_timeout() => "the target did not answer in time".to_string(),
            Err(_) => "the target could not be reached".to_string(),
        };
        return err(
            StatusCode::BAD_REQUEST,
            &format!("The remote server did not respond with the handshake secret ({detail})."),
        );
    }

    let (gid, body) = {
        let mut w = st.world();
        let gid = w.next_gid();
        let cursor = w.events.len();
        let hook = Webhook {
            gid: gid.clone(),
            resource,
            target,
            secret: secret.clone(),
            filters,
            active: true,
            created_at: Utc::now(),
            last_success_at: None,
            last_failure_at: None,
            last_failure_content: String::new(),
            delivery_retry_count: 0,
            cursor,
        };
        let v = webhook_json(&w, &hook);
        w.webhooks.insert(gid.clone(), hook);
        (gid, json!({ "data": v, "X-Hook-Secret": secret }))
    };
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/webhooks/{gid}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `GET /webhooks?workspace=&resource=` (workspace is required), paginated.
pub(crate) async fn list(State(st): St, uri: Uri, headers: HeaderMap) -> Response {
    let pairs = query_pairs(&uri);
    let Some(ws) = param(&pairs, "workspace").map(str::to_string) else {
        return err(StatusCode::BAD_REQUEST, "workspace: Missing input");
    };
    if let Err(r) = check_gid("workspace", &ws) {
        return r;
    }
    let resource = param(&pairs, "resource").map(str::to_string);
    let w = st.world();
    if !w.workspaces.contains_key(&ws) {
        return unknown(&ws);
    }
    let gids: Vec<String> = w
        .webhooks
        .values()
        .filter(|h| w.describe(&h.resource).is_some_and(|(_, _, hw)| hw == ws))
        .filter(|h| resource.as_deref().is_none_or(|r| r == h.resource))
        .map(|h| h.gid.clone())
        .collect();
    let page = match paginate(gids, &uri, &headers, "/webhooks") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = page
        .gids
        .iter()
        .filter_map(|g| w.webhooks.get(g))
        .map(|h| webhook_json(&w, h))
        .collect();
    list_response(items, page.next_page)
}

pub(crate) async fn get_one(State(st): St, Path(gid): Path<String>) -> Response {
    if let Err(r) = check_gid("webhook", &gid) {
        return r;
    }
    let w = st.world();
    match w.webhooks.get(&gid) {
        Some(h) => super::handlers::data(webhook_json(&w, h)),
        None => unknown(&gid),
    }
}

/// `DELETE /webhooks/{gid}` → `{"data":{}}`. A delivery already in flight may still land.
pub(crate) async fn delete(State(st): St, Path(gid): Path<String>) -> Response {
    if let Err(r) = check_gid("webhook", &gid) {
        return r;
    }
    let mut w = st.world();
    match w.webhooks.remove(&gid) {
        Some(_) => super::handlers::data(json!({})),
        None => unknown(&gid),
    }
}

fn precondition_failed(st: &AsanaState, resource: &str, position: usize) -> Response {
    let token = st.random_hex();
    st.sync_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), (resource.to_string(), position));
    (
        StatusCode::PRECONDITION_FAILED,
        axum::Json(json!({ "errors": [{ "message": SYNC_INVALID }], "sync": token })),
    )
        .into_response()
}

/// `GET /events?resource=&sync=`: 412 with a fresh token when `sync` is absent, unknown or
/// expired; otherwise up to 100 events after the token, a new token and `has_more`.
pub(crate) async fn events(State(st): St, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let Some(resource) = param(&pairs, "resource").map(str::to_string) else {
        return err(StatusCode::BAD_REQUEST, "resource: Missing input");
    };
    if let Err(r) = check_gid("resource", &resource) {
        return r;
    }
    let sync = param(&pairs, "sync").map(str::to_string);
    let w = st.world();
    match w.describe(&resource) {
        None => return unknown(&resource),
        Some(("project", _, _)) if w.projects.get(&resource).is_some_and(|p| p.no_access) => {
            return super::handlers::forbidden()
        }
        Some(_) => {}
    }
    let end = w.events.len();
    let known = sync.as_ref().and_then(|t| {
        st.sync_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(t)
            .cloned()
    });
    let Some((token_resource, position)) = known else {
        return precondition_failed(&st, &resource, end);
    };
    if token_resource != resource {
        return precondition_failed(&st, &resource, end);
    }
    let mut out = Vec::new();
    let mut next = end;
    let mut has_more = false;
    for (i, e) in w.events.iter().enumerate().skip(position) {
        if !e.scopes.contains(&resource) {
            continue;
        }
        if out.len() == 100 {
            has_more = true;
            next = i;
            break;
        }
        out.push(e.to_json());
    }
    drop(w);
    let token = st.random_hex();
    st.sync_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), (resource, next));
    (
        StatusCode::OK,
        axum::Json(json!({ "data": out, "sync": token, "has_more": has_more })),
    )
        .into_response()
}

/// A body to deliver to one webhook.
struct Job {
    webhook: String,
    target: String,
    secret: String,
    body: Vec<u8>,
    events: usize,
    heartbeat: bool,
}

/// The background loop: wakes on world changes (or heartbeats), hands each idle webhook
/// its pending events, and exits when the sim is cancelled.
pub(crate) async fn dispatcher(st: Arc<AsanaState>, cancel: CancellationToken) {
    let mut heartbeat = st.delivery.heartbeat_interval.map(|d| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let beat = async {
            match heartbeat.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let mut send_heartbeats = false;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = st.wake.notified() => {}
            _ = beat => send_heartbeats = true,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if send_heartbeats {
            let jobs: Vec<Job> = {
                let w = st.world();
                w.webhooks
                    .values()
                    .filter(|h| h.active)
                    .map(|h| Job {
                        webhook: h.gid.clone(),
                        target: h.target.clone(),
                        secret: h.secret.clone(),
                        body: br#"{"events":[]}"#.to_vec(),
                        events: 0,
                        heartbeat: true,
                    })
                    .collect()
            };
            for job in jobs {
                st.jobs.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(run_job(st.clone(), job, false));
            }
        }
        if !st.delivery.batch_window.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(st.delivery.batch_window) => {}
            }
        }
        schedule(&st);
    }
}

/// Takes the pending events of every idle webhook and starts one job per webhook.
fn schedule(st: &Arc<AsanaState>) {
    let mut jobs = Vec::new();
    {
        let mut w = st.world();
        let mut busy = st.busy.lock().unwrap_or_else(|e| e.into_inner());
        let AsanaWorld {
            webhooks, events, ..
        } = &mut *w;
        for h in webhooks.values_mut().filter(|h| h.active) {
            if busy.contains(&h.gid) || h.cursor >= events.len() {
                continue;
            }
            let mut batch = Vec::new();
            let mut cursor = h.cursor;
            while cursor < events.len() && batch.len() < st.delivery.max_events {
                if h.wants(&events[cursor]) {
                    batch.push(events[cursor].to_json());
                }
                cursor += 1;
            }
            h.cursor = cursor;
            if batch.is_empty() {
                continue;
            }
            let count = batch.len();
            let body = serde_json::to_vec(&json!({ "events": batch })).unwrap_or_default();
            busy.insert(h.gid.clone());
            jobs.push(Job {
                webhook: h.gid.clone(),
                target: h.target.clone(),
                secret: h.secret.clone(),
                body,
                events: count,
                heartbeat: false,
            });
        }
    }
    for job in jobs {
        st.jobs.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(run_job(st.clone(), job, true));
    }
}

/// Delivers one body with retries, records each attempt, maybe sends a duplicate, then
/// frees the webhook for its next batch.
async fn run_job(st: Arc<AsanaState>, job: Job, holds_busy: bool) {
    let signature = sign(&job.secret, &job.body);
    let waits = std::iter::once(Duration::ZERO).chain(st.delivery.retry_schedule.iter().copied());
    let mut delivered = false;
    for (i, wait) in waits.enumerate() {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        // A webhook deleted meanwhile gets no more retries.
        if i > 0 && !st.world().webhooks.contains_key(&job.webhook) {
            break;
        }
        let attempt = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if attempt_once(&st, &job, &signature, attempt, false).await {
            delivered = true;
            break;
        }
    }
    if delivered && st.delivery.redeliver_probability > 0.0 {
        let again = {
            let mut rng = st.rng.lock().unwrap_or_else(|e| e.into_inner());
            rng.random::<f64>() < st.delivery.redeliver_probability
        };
        if again {
            attempt_once(&st, &job, &signature, 1, true).await;
        }
    }
    if holds_busy {
        st.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.webhook);
    }
    st.jobs.fetch_sub(1, Ordering::SeqCst);
    st.wake.notify_one();
}

async fn attempt_once(
    st: &AsanaState,
    job: &Job,
    signature: &str,
    attempt: u32,
    redelivery: bool,
) -> bool {
    let result = st
        .http
        .post(&job.target)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Hook-Signature", signature)
        .timeout(st.delivery.timeout)
        .body(job.body.clone())
        .send()
        .await;
    let (status, error) = match &result {
        Ok(r) => (Some(r.status().as_u16()), None),
        Err(e) if e.is_timeout() => (None, Some("timed out".to_string())),
        Err(_) => (None, Some("connection failed".to_string())),
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let now = Utc::now();
    {
        let mut w = st.world();
        if let Some(h) = w.webhooks.get_mut(&job.webhook) {
            if ok {
                h.last_success_at = Some(now);
                h.delivery_retry_count = 0;
            } else {
                h.last_failure_at = Some(now);
                h.delivery_retry_count += 1;
                h.last_failure_content = match (status, &error) {
                    (Some(s), _) => format!("Received HTTP status {s}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => String::new(),
                };
            }
        }
    }
    st.deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(DeliveryAttempt {
            webhook: job.webhook.clone(),
            target: job.target.clone(),
            status,
            ok,
            events: job.events,
            attempt,
            heartbeat: job.heartbeat,
            redelivery,
            error,
            at: now,
        });
    ok
}
