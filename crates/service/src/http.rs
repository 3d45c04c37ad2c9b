//! The HTTP side: Asana deliveries and handshakes, `/healthz`, `/metrics` and (when
//! configured) the status page under `/admin` ([`crate::admin`]).
//!
//! `POST /webhooks/asana/{id}`, in this order:
//!
//! 1. `X-Hook-Secret` present → handshake: echoed (200) only if registration `id` expects
//!    one ([`crate::registrations`]); 404 for an unknown id, 403 otherwise;
//! 2. unknown `id` → 404; known but without a secret yet → 401;
//! 3. body larger than `max_body_bytes` → 413 (checked on `Content-Length` first, then
//!    while reading, so a lying client cannot make us buffer more); body not complete
//!    within `body_timeout` → 408;
//! 4. `X-Hook-Signature` missing, malformed or wrong → 401, nothing stored;
//! 5. signed but not a delivery (not JSON, or `events` not an array) → 400, logged; more
//!    than `max_events_per_delivery` events → 413;
//! 6. an event that does not have Asana's shape is logged and counted
//!    (`events_malformed_total`) and skipped; the events beside it go on (a redelivery
//!    would carry the same bad event, so refusing the delivery would lose the good ones);
//! 7. heartbeat (no events) → 200; otherwise the relevant events become jobs, which go to
//!    the group-commit writer; 200 only after they are committed, 503 if that fails or
//!    takes longer than `intake_timeout` (Asana retries; the retry is deduped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bridge_core::Services;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::json;

use crate::config::ServeConfig;
use crate::intake::webhook::{
    jobs_for_events, Origin, Unverified, SECRET_HEADER, SIGNATURE_HEADER,
};
use crate::metrics::Metrics;
use crate::registrations::{HandshakeRefused, Lookup, Registrations};
use crate::writer::Intake;

/// Shared state of the router.
pub struct App {
    pub(crate) regs: Registrations,
    pub(crate) intake: Intake,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) svc: Services,
    pub(crate) cfg: Arc<ServeConfig>,
    pub(crate) admin: crate::admin::AdminState,
    health: tokio::sync::Mutex<Option<(Instant, ApiHealth)>>,
}

impl App {
    pub(crate) fn new(
        regs: Registrations,
        intake: Intake,
        metrics: Arc<Metrics>,
        svc: Services,
        cfg: Arc<ServeConfig>,
    ) -> App {
        App {
            regs,
            intake,
            metrics,
            svc,
            cfg,
            admin: crate::admin::AdminState::default(),
            health: tokio::sync::Mutex::new(None),
        }
    }
}

/// The router over `app`: deliveries, `/healthz`, `/metrics`, and the status page under
/// `/admin` when a password is configured ([`crate::admin`]).
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/webhooks/asana/{id}", post(delivery))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    if let Some(admin) = crate::admin::router(&app) {
        router = router.merge(admin);
    }
    router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(app)
}

/// Our ids are what `webhooks create` makes (hex) or what an operator configured; anything
/// else cannot be a registration and is refused before touching the database.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn delivery(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let resp = handle_delivery(&app, &id, &headers, body).await;
    Metrics::observe(&app.metrics.delivery_seconds, started.elapsed());
    resp
}

async fn handle_delivery(app: &App, id: &str, headers: &HeaderMap, body: Body) -> Response {
    let m = &app.metrics;
    if !plausible_id(id) {
        m.rejected("unknown_webhook");
        return StatusCode::NOT_FOUND.into_response();
    }

    if let Some(secret) = headers.get(SECRET_HEADER) {
        return handshake(app, id, secret).await;
    }

    let limit = app.cfg.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        m.rejected("too_large");
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }

    let reg = match app.regs.lookup(id).await {
        Ok(Lookup::Ready(reg)) => reg,
        Ok(Lookup::Unknown) => {
            m.rejected("unknown_webhook");
            return StatusCode::NOT_FOUND.into_response();
        }
        Ok(Lookup::NoSecret) => {
            m.rejected("no_secret");
            tracing::warn!(
                webhook = id,
                "delivery for a registration whose handshake has not happened"
            );
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Err(e) => {
            m.rejected("store_error");
            tracing::error!(webhook = id, error = %e, "reading the webhook registration failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };

    // A deadline for the whole body, not per chunk (tower-http's `TimeoutBody` restarts its
    // clock on every frame, so a client trickling a byte at a time would never hit it).
    let read = tokio::time::timeout(app.cfg.body_timeout, Limited::new(body, limit).collect());
    let bytes = match read.await {
        Err(_) => {
            m.rejected("body_timeout");
            tracing::warn!(
                webhook = id,
                "delivery body not complete within the body timeout"
            );
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            m.rejected("too_large");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
        Ok(Err(e)) => {
            m.rejected("read_error");
            tracing::debug!(webhook = id, error = %e, "reading a delivery body failed");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };

    let signature = headers.get(SIGNATURE_HEADER).map(HeaderValue::as_bytes);
    let verified = match Unverified::new(bytes, signature).verify(&reg.secret) {
        Ok(v) => v,
        Err(e) => {
            m.rejected(e.reason());
            tracing::warn!(webhook = id, reason = e.reason(), "delivery refused: {e}");
            return StatusCode::UNAUTHORIZED.into_response();
        }
    };
    let parsed = match verified.parse_lenient() {
        Ok(d) => d,
        Err(e) => {
            m.rejected("malformed");
            tracing::warn!(webhook = id, error = %e, bytes = verified.bytes().len(), "signed delivery is not a valid Asana delivery");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let total = parsed.delivery.events.len() + parsed.malformed.len();
    if total > app.cfg.max_events_per_delivery {
        m.rejected("too_many_events");
        tracing::warn!(
            webhook = id,
            events = total,
            limit = app.cfg.max_events_per_delivery,
            "delivery carries more events than max_events_per_delivery"
        );
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    for bad in &parsed.malformed {
        m.events_malformed.inc();
        tracing::warn!(webhook = id, event = bad.index, path = %bad.path, error = %bad.message, "skipping an event that does not have Asana's shape");
    }
    let delivery = parsed.delivery;
    if total == 0 {
        m.received("heartbeat");
        return StatusCode::OK.into_response();
    }
    m.events_received
        .get_or_create(&[("source", "webhook")])
        .inc_by(delivery.events.len() as u64);
    let jobs = jobs_for_events(
        &delivery.events,
        &reg.project_gid,
        &Origin::Webhook { id: reg.id.clone() },
    );
    if jobs.is_empty() {
        m.received("events");
        return StatusCode::OK.into_response();
    }
    match tokio::time::timeout(app.cfg.intake_timeout, app.intake.submit(jobs)).await {
        Ok(Ok(_)) => {
            m.received("events");
            StatusCode::OK.into_response()
        }
        Ok(Err(e)) => {
            m.rejected("store_error");
            tracing::error!(webhook = id, error = %e, "could not store a delivery; Asana will retry");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Err(_) => {
            m.rejected("timeout");
            tracing::error!(
                webhook = id,
                "storing a delivery took too long; Asana will retry"
            );
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn handshake(app: &App, id: &str, secret: &HeaderValue) -> Response {
    let m = &app.metrics;
    let result = match secret.to_str() {
        Ok(s) => app.regs.handshake(id, s).await,
        Err(_) => Err(HandshakeRefused::InvalidSecret),
    };
    match result {
        Ok(()) => {
            m.received("handshake");
            tracing::info!(webhook = id, "webhook handshake accepted; secret stored");
            let mut resp = StatusCode::OK.into_response();
            resp.headers_mut().insert(SECRET_HEADER, secret.clone());
            resp
        }
        Err(e) => {
            m.rejected(e.reason());
            tracing::warn!(
                webhook = id,
                reason = e.reason(),
                "webhook handshake refused: {e}"
            );
            match e {
                HandshakeRefused::Unknown => StatusCode::NOT_FOUND,
                HandshakeRefused::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            }
            .into_response()
        }
    }
}

/// One dependency's state in `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Reachable and answering.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn from<E: std::fmt::Display>(r: Result<(), E>) -> Check {
        match r {
            Ok(()) => Check {
                ok: true,
                error: None,
            },
            Err(e) => Check {
                ok: false,
                error: Some(e.to_string()),
            },
        }
    }
}

#[derive(Debug, Clone)]
struct ApiHealth {
    asana: Check,
    docspace: Check,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

async fn probe_apis(svc: &Services) -> ApiHealth {
    let asana = async {
        match tokio::time::timeout(PROBE_TIMEOUT, svc.asana.get_user("me", &["gid"])).await {
            Ok(r) => Check::from(r.map(|_| ())),
            Err(_) => Check::from::<&str>(Err("no answer within 5 s")),
        }
    };
    let docspace = async {
        match tokio::time::timeout(PROBE_TIMEOUT, svc.docspace.me()).await {
            Ok(r) => Check::from(r.map(|_| ())),
            Err(_) => Check::from::<&str>(Err("no answer within 5 s")),
        }
    };
    let (asana, docspace) = tokio::join!(asana, docspace);
    ApiHealth { asana, docspace }
}

/// How long a failed group commit keeps `/healthz` unhealthy when nothing has been
/// stored since, even if the write probe passes (a one-row probe may fit where a batch of
/// deliveries did not). Bounded, so a load balancer that stops sending traffic on a 503
/// does not keep the service out for good.
const RECENT_WRITE_FAILURE: Duration = Duration::from_secs(30);

/// The database's part of `/healthz`: it answers a read, it commits a write (a read ping
/// answers fine on a full disk), and the last group commit did not fail recently.
async fn database_check(app: &App) -> Check {
    let store = &app.svc.store;
    let timed =
        |what: &'static str, r: Result<Result<(), bridge_core::record::StoreError>, _>| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer within 5 s")),
        };
    let checked = async {
        timed(
            "read",
            tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await,
        )?;
        timed(
            "write",
            tokio::time::timeout(PROBE_TIMEOUT, store.probe_write()).await,
        )?;
        if let Some((ago, e)) = app.intake.last_failure() {
            if ago < RECENT_WRITE_FAILURE {
                return Err(format!(
                    "storing deliveries failed {} s ago and nothing was stored since: {e}",
                    ago.as_secs()
                ));
            }
        }
        Ok(())
    };
    Check::from(checked.await)
}

/// `200 {"status":"ok",…}` when the database reads and writes and both APIs were
/// reachable at the last probe (probes are reused for `health_ttl`, since they spend the
/// same rate budget as real work); `503 {"status":"unhealthy",…}` naming what is not.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    let db = database_check(&app).await;
    let apis = {
        let mut cached = app.health.lock().await;
        match cached.as_ref() {
            Some((at, h)) if at.elapsed() < app.cfg.health_ttl => h.clone(),
            _ => {
                let h = probe_apis(&app.svc).await;
                *cached = Some((Instant::now(), h.clone()));
                h
            }
        }
    };
    let queue = app.svc.store.queue_depth().await.ok();
    let ok = db.ok && apis.asana.ok && apis.docspace.ok;
    let body = json!({
        "status": if ok { "ok" } else { "unhealthy" },
        "database": db,
        "asana": apis.asana,
        "docspace": apis.docspace,
        "queue": queue,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.svc.store.queue_depth().await {
        Ok(d) => app.metrics.set_queue_depth(d),
        Err(e) => tracing::warn!(error = %e, "reading the queue depth for /metrics failed"),
    }
    app.metrics
        .sync_api(app.svc.asana.metrics(), app.svc.docspace.metrics());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}
