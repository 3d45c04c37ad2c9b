//! The status page under `/admin`: server-rendered HTML (askama templates compiled into
//! the binary, one stylesheet and one small script embedded beside them), off unless a
//! password is configured ([`crate::config::AdminAuth`]).
//!
//! | page | shows |
//! |---|---|
//! | `GET /admin` | jobs by state, age of the oldest waiting job, dead letters, deliveries received and rejected in the last hour, each webhook's health as Asana reports it, the last `sync` runs |
//! | `GET /admin/dead` | dead letters with their error and what to do, Replay per job and for all |
//! | `GET /admin/person?q=EMAIL\|TASK` | every ledger row for a person or task, with its why and, for a failure, what to do |
//! | `POST /admin/dead/{id}/replay`, `POST /admin/dead/replay` | replay one or all (admin, CSRF-checked), then back to the list |
//!
//! Access rules and headers are in [`guard`]; the numbers come from the state database
//! (`Store`) and [`recent`], Asana's webhook health from its API, cached for a minute.

mod guard;
pub mod recent;
mod views;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Form, Router};
use bridge_core::record::{HistoryFilter, QueueDepth, StoreError};
use chrono::Utc;
use serde::Deserialize;

use crate::config::Role;
use crate::http::App;
use crate::manage;
use views::{Dead, Row, Run};

/// How long Asana's view of the webhooks is reused: it costs API calls from the same
/// budget as real work.
const WEBHOOK_TTL: Duration = Duration::from_secs(60);
/// Longest the overview waits for Asana.
const ASANA_TIMEOUT: Duration = Duration::from_secs(5);
/// Ledger rows scanned for the last sync runs.
const RUN_SCAN_ROWS: u32 = 2000;
/// Rows shown on a person page.
const PERSON_ROWS: u32 = 500;
/// Dead letters listed.
const DEAD_ROWS: u32 = 500;

/// The status page's per-process state.
pub struct AdminState {
    /// The CSRF token every form carries (random per process).
    csrf: String,
    hooks: tokio::sync::Mutex<Option<(Instant, Hooks)>>,
}

impl Default for AdminState {
    fn default() -> Self {
        AdminState {
            csrf: guard::new_token(),
            hooks: tokio::sync::Mutex::new(None),
        }
    }
}

/// The `/admin` routes, behind sign-in and with the security headers; `None` when no
/// password is configured (the paths are then 404 like any unknown path).
pub fn router(app: &Arc<App>) -> Option<Router<Arc<App>>> {
    if !app.cfg.admin.enabled() {
        return None;
    }
    Some(
        Router::new()
            .route("/admin", get(overview))
            .route("/admin/", get(|| async { Redirect::to("/admin") }))
            .route("/admin/dead", get(dead))
            .route("/admin/dead/replay", post(replay_all))
            .route("/admin/dead/{id}/replay", post(replay_one))
            .route("/admin/person", get(person))
            .route("/admin/assets/{file}", get(asset))
            .layer(middleware::from_fn_with_state(
                app.clone(),
                guard::require_sign_in,
            ))
            .layer(middleware::from_fn(guard::security_headers)),
    )
}

/// What every page's frame needs.
struct Frame {
    title: &'static str,
    nav: &'static str,
    user: &'static str,
    is_admin: bool,
    csrf: String,
}

impl Frame {
    fn new(app: &App, role: Role, title: &'static str, nav: &'static str) -> Frame {
        Frame {
            title,
            nav,
            user: role.user(),
            is_admin: role == Role::Admin,
            // Only the admin's pages carry the token: a viewer has no form to submit.
            csrf: if role == Role::Admin {
                app.admin.csrf.clone()
            } else {
                String::new()
            },
        }
    }
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status page: rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "admin/problem.html")]
struct Problem {
    frame: Frame,
    message: String,
}

fn store_failed(app: &App, role: Role, e: StoreError) -> Response {
    tracing::error!(error = %e, "status page: reading the state database failed");
    let mut resp = render(&Problem {
        frame: Frame::new(app, role, "State database unavailable", ""),
        message: format!("The state database did not answer: {e}"),
    });
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp
}

// ---------------------------------------------------------------------------------------
// Overview

/// One webhook registration, with Asana's view of it when Asana answered.
struct Hook {
    id: String,
    project: String,
    local_state: String,
    active: &'static str,
    tone: &'static str,
    last_success: String,
    last_failure: String,
    failure: Option<String>,
    retries: String,
}

#[derive(Clone)]
struct Hooks {
    rows: Arc<Vec<Hook>>,
    error: Option<String>,
    checked: String,
}

async fn asana_webhooks(app: &App) -> Result<Vec<manage::Listed>, String> {
    let regs = app.svc.store.webhooks().await.map_err(|e| e.to_string())?;
    let projects: BTreeSet<&str> = regs.iter().map(|r| r.project_gid.as_str()).collect();
    let mut workspaces = BTreeSet::new();
    for p in projects {
        let gid = asana_api::Gid::parse(p).map_err(|e| e.to_string())?;
        let ws = manage::workspace_of(&app.svc.asana, &gid)
            .await
            .map_err(|e| e.to_string())?;
        workspaces.insert(ws);
    }
    let mut listed = Vec::new();
    for ws in workspaces {
        listed.extend(
            manage::list_webhooks(&app.svc.asana, app.svc.store.as_ref(), &ws, None)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(listed)
}

async fn load_hooks(app: &App) -> Hooks {
    let regs = app.svc.store.webhooks().await.unwrap_or_default();
    let (listed, error) = if regs.is_empty() {
        (Vec::new(), None)
    } else {
        match tokio::time::timeout(ASANA_TIMEOUT, asana_webhooks(app)).await {
            Ok(Ok(l)) => (l, None),
            Ok(Err(e)) => (Vec::new(), Some(format!("Asana could not be asked: {e}"))),
            Err(_) => (
                Vec::new(),
                Some("Asana did not answer within 5 s".to_string()),
            ),
        }
    };
    let rows = regs
        .iter()
        .map(|r| {
            let at_asana = listed.iter().find(|l| {
                r.asana_gid.is_some()
                    && l.gid.as_str() == r.asana_gid.as_deref().unwrap_or_default()
            });
            let (active, tone) = match at_asana.and_then(|l| l.active) {
                Some(true) => ("active", "ok"),
                Some(false) => ("inactive", "bad"),
                None if at_asana.is_none() && error.is_none() && r.asana_gid.is_some() => {
                    ("unknown to Asana", "bad")
                }
                None => ("unknown", "warn"),
            };
            let fmt =
                |t: Option<chrono::DateTime<Utc>>| t.map(views::when).unwrap_or_else(|| "—".into());
            Hook {
                id: r.id.clone(),
                project: r.project_gid.clone(),
                local_state: r.state.clone(),
                active,
                tone,
                last_success: fmt(at_asana.and_then(|l| l.last_success_at)),
                last_failure: fmt(at_asana.and_then(|l| l.last_failure_at)),
                failure: at_asana.and_then(|l| l.last_failure_content.clone()),
                retries: at_asana
                    .and_then(|l| l.delivery_retry_count)
                    .map_or_else(|| "—".into(), |n| n.to_string()),
            }
        })
        .collect();
    Hooks {
        rows: Arc::new(rows),
        error,
        checked: views::when(Utc::now()),
    }
}

async fn cached_hooks(app: &App) -> Hooks {
    let mut cache = app.admin.hooks.lock().await;
    if let Some((at, h)) = cache.as_ref() {
        if at.elapsed() < WEBHOOK_TTL {
            return h.clone();
        }
    }
    let h = load_hooks(app).await;
    *cache = Some((Instant::now(), h.clone()));
    h
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct Overview {
    frame: Frame,
    depth: QueueDepth,
    oldest: Option<String>,
    received: u64,
    rejected: u64,
    hooks: Hooks,
    runs: Vec<Run>,
    scanned: u32,
}

async fn overview(State(app): State<Arc<App>>, Extension(role): Extension<Role>) -> Response {
    let store = &app.svc.store;
    let depth = match store.queue_depth().await {
        Ok(d) => d,
        Err(e) => return store_failed(&app, role, e),
    };
    let now = Utc::now();
    let oldest = match store.oldest_queued_at().await {
        Ok(o) => o.map(|at| views::ago(at, now)),
        Err(e) => return store_failed(&app, role, e),
    };
    let recent = store
        .history(&HistoryFilter {
            limit: Some(RUN_SCAN_ROWS),
            ..HistoryFilter::default()
        })
        .await;
    let runs = match recent {
        Ok(rows) => views::sync_runs(&rows, 10),
        Err(e) => return store_failed(&app, role, e),
    };
    let totals = app.metrics.last_hour.totals();
    render(&Overview {
        frame: Frame::new(&app, role, "Overview", "overview"),
        depth,
        oldest,
        received: totals.received,
        rejected: totals.rejected,
        hooks: cached_hooks(&app).await,
        runs,
        scanned: RUN_SCAN_ROWS,
    })
}

// ---------------------------------------------------------------------------------------
// Dead letters

#[derive(Template)]
#[template(path = "admin/dead.html")]
struct DeadPage {
    frame: Frame,
    notice: Option<String>,
    dead: Vec<Dead>,
    total: u64,
}

#[derive(Debug, Deserialize)]
struct DeadQuery {
    replayed: Option<i64>,
    missing: Option<i64>,
    all: Option<u64>,
}

async fn dead(
    State(app): State<Arc<App>>,
    Extension(role): Extension<Role>,
    Query(q): Query<DeadQuery>,
) -> Response {
    let (jobs, depth) = match (
        app.svc.store.dead_jobs(DEAD_ROWS).await,
        app.svc.store.queue_depth().await,
    ) {
        (Ok(j), Ok(d)) => (j, d),
        (Err(e), _) | (_, Err(e)) => return store_failed(&app, role, e),
    };
    let notice = match (q.replayed, q.missing, q.all) {
        (Some(id), _, _) => Some(format!("Job {id} is queued again.")),
        (_, Some(id), _) => Some(format!(
            "Job {id} is not a dead letter (any more): nothing was replayed."
        )),
        (_, _, Some(n)) => Some(format!("{n} dead letter(s) queued again.")),
        _ => None,
    };
    render(&DeadPage {
        frame: Frame::new(&app, role, "Dead letters", "dead"),
        notice,
        dead: jobs.iter().map(Dead::from).collect(),
        total: depth.dead,
    })
}

/// The hidden field every write carries.
#[derive(Debug, Deserialize)]
struct WriteForm {
    csrf: Option<String>,
}

fn refused(app: &App, role: Role, why: guard::Refused) -> Response {
    tracing::warn!(user = role.user(), reason = ?why, "status page: write refused");
    let mut resp = render(&Problem {
        frame: Frame::new(app, role, "Refused", ""),
        message: why.message().to_string(),
    });
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp
}

async fn replay_one(
    State(app): State<Arc<App>>,
    Extension(role): Extension<Role>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<WriteForm>,
) -> Response {
    if let Err(why) = guard::check_write(role, &headers, form.csrf.as_deref(), &app.admin.csrf) {
        return refused(&app, role, why);
    }
    match app.svc.store.replay_job(id).await {
        Ok(true) => {
            tracing::info!(
                job = id,
                user = role.user(),
                "status page: dead letter replayed"
            );
            Redirect::to(&format!("/admin/dead?replayed={id}")).into_response()
        }
        Ok(false) => Redirect::to(&format!("/admin/dead?missing={id}")).into_response(),
        Err(e) => store_failed(&app, role, e),
    }
}

async fn replay_all(
    State(app): State<Arc<App>>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    Form(form): Form<WriteForm>,
) -> Response {
    if let Err(why) = guard::check_write(role, &headers, form.csrf.as_deref(), &app.admin.csrf) {
        return refused(&app, role, why);
    }
    match app.svc.store.replay_dead().await {
        Ok(n) => {
            tracing::info!(
                jobs = n,
                user = role.user(),
                "status page: all dead letters replayed"
            );
            Redirect::to(&format!("/admin/dead?all={n}")).into_response()
        }
        Err(e) => store_failed(&app, role, e),
    }
}

// ---------------------------------------------------------------------------------------
// Person

#[derive(Template)]
#[template(path = "admin/person.html")]
struct PersonPage {
    frame: Frame,
    q: String,
    /// `email` or `task`, once `q` was understood.
    by: Option<&'static str>,
    problem: Option<String>,
    rows: Vec<Row>,
    dead: Vec<Dead>,
    limit: u32,
    truncated: bool,
}

#[derive(Debug, Deserialize)]
struct PersonQuery {
    q: Option<String>,
}

async fn person(
    State(app): State<Arc<App>>,
    Extension(role): Extension<Role>,
    Query(pq): Query<PersonQuery>,
) -> Response {
    let q = pq.q.unwrap_or_default().trim().to_string();
    let mut page = PersonPage {
        frame: Frame::new(&app, role, "Person", "person"),
        q: q.clone(),
        by: None,
        problem: None,
        rows: Vec::new(),
        dead: Vec::new(),
        limit: PERSON_ROWS,
        truncated: false,
    };
    let mut filter = HistoryFilter {
        limit: Some(PERSON_ROWS),
        ..HistoryFilter::default()
    };
    if q.is_empty() {
        return render(&page);
    } else if q.contains('@') {
        page.by = Some("email");
        filter.email = Some(q.clone());
    } else if asana_api::Gid::parse(&q).is_ok() {
        page.by = Some("task");
        filter.task_gid = Some(q.clone());
    } else {
        page.problem =
            Some("Give an email address (ann@example.com) or an Asana task gid (digits).".into());
        let mut resp = render(&page);
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    }
    match app.svc.store.history(&filter).await {
        // Newest first: the question is usually "what happened last".
        Ok(rows) => {
            page.truncated = rows.len() >= PERSON_ROWS as usize;
            page.rows = rows.iter().rev().map(Row::from).collect();
        }
        Err(e) => return store_failed(&app, role, e),
    }
    if page.by == Some("task") {
        match app.svc.store.dead_jobs(DEAD_ROWS).await {
            Ok(jobs) => {
                page.dead = jobs
                    .iter()
                    .filter(|j| j.resource_gid == q)
                    .map(Dead::from)
                    .collect()
            }
            Err(e) => return store_failed(&app, role, e),
        }
    }
    render(&page)
}

// ---------------------------------------------------------------------------------------
// Assets

const CSS: &str = include_str!("../../assets/admin.css");
const JS: &str = include_str!("../../assets/admin.js");

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "admin.css" => (CSS, "text/css; charset=utf-8"),
        "admin.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}
