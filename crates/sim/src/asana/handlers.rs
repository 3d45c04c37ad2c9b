//! Asana `/api/1.0` routes answering in `{"data":…}` / `{"errors":[…]}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::select::{parse as parse_opt_fields, select};
use super::world::{rfc3339_millis, AsanaUser, AsanaWorld, Project, Section, Task};
use super::{webhooks, AsanaState};
use crate::server::{asana_error, param, query_pairs, request_url, Caller};

pub(crate) type St = State<Arc<AsanaState>>;

pub(crate) fn router(state: Arc<AsanaState>) -> Router {
    let api = Router::new()
        .route("/tasks/{task_gid}", get(get_task).put(update_task))
        .route("/users/{user_gid}", get(get_user))
        .route("/workspaces", get(list_workspaces))
        .route("/workspaces/{workspace_gid}", get(get_workspace))
        .route("/workspaces/{workspace_gid}/addUser", post(add_user))
        .route("/projects/{project_gid}", get(get_project))
        .route("/projects/{project_gid}/tasks", get(project_tasks))
        .route("/projects/{project_gid}/sections", get(project_sections))
        .route("/tasks", get(list_tasks))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{webhook_gid}",
            get(webhooks::get_one).delete(webhooks::delete),
        )
        .route("/events", get(webhooks::events))
        .with_state(state);
    Router::new()
        .nest("/api/1.0", api)
        .fallback(|| async { asana_error(StatusCode::NOT_FOUND, "No matching route for request") })
}

/// `{"data": v}` with 200.
pub(crate) fn data(v: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({ "data": v }))).into_response()
}

pub(crate) fn err(status: StatusCode, message: &str) -> Response {
    asana_error(status, message)
}

/// Gids are numeric; anything else is a 400 before any lookup, as on Asana.
pub(crate) fn check_gid(kind: &str, gid: &str) -> Result<(), Response> {
    if !gid.is_empty() && gid.len() <= 32 && gid.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            &format!("{kind}: Not a Long: {gid}"),
        ))
    }
}

pub(crate) fn unknown(gid: &str) -> Response {
    err(StatusCode::NOT_FOUND, &format!("Unknown object: {gid}"))
}

pub(crate) fn forbidden() -> Response {
    err(
        StatusCode::FORBIDDEN,
        "Forbidden: you do not have access to this resource",
    )
}

/// The `opt_fields` of a request, if any.
pub(crate) fn opt_fields(uri: &Uri) -> Option<Vec<Vec<String>>> {
    let pairs = query_pairs(uri);
    parse_opt_fields(param(&pairs, "opt_fields"))
}

/// Parses a write body `{"data": {...}}`.
pub(crate) fn write_data(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            "Could not parse request data, invalid JSON",
        )
    })?;
    match v.get("data") {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(err(StatusCode::BAD_REQUEST, "data: Missing input")),
    }
}

pub(crate) fn ws_compact(w: &AsanaWorld, gid: &str) -> Value {
    let name = w.workspaces.get(gid).map(|x| x.name.clone());
    json!({ "gid": gid, "resource_type": "workspace", "name": name })
}

fn user_compact(u: &AsanaUser) -> Value {
    json!({ "gid": u.gid, "resource_type": "user", "name": u.name })
}

/// The full user record; `email` is absent (not null) when hidden.
fn user_rich(w: &AsanaWorld, u: &AsanaUser) -> Value {
    let mut v = json!({
        "gid": u.gid,
        "resource_type": "user",
        "name": u.name,
        "photo": null,
        "workspaces": u.workspaces.iter().map(|g| ws_compact(w, g)).collect::<Vec<_>>(),
    });
    if let Some(email) = &u.email {
        v["email"] = json!(email);
    }
    v
}

fn project_compact(p: &Project) -> Value {
    json!({ "gid": p.gid, "resource_type": "project", "name": p.name })
}

fn section_compact(s: &Section) -> Value {
    json!({ "gid": s.gid, "resource_type": "section", "name": s.name })
}

fn project_rich(w: &AsanaWorld, p: &Project) -> Value {
    json!({
        "gid": p.gid,
        "resource_type": "project",
        "name": p.name,
        "archived": false,
        "color": null,
        "notes": "",
        "public": true,
        "workspace": ws_compact(w, &p.workspace),
    })
}

fn task_workspace(w: &AsanaWorld, t: &Task) -> Option<String> {
    t.projects
        .first()
        .and_then(|p| w.projects.get(p))
        .map(|p| p.workspace.clone())
}

/// Every field, nested objects expanded: the source for `opt_fields` projection.
fn task_rich(w: &AsanaWorld, t: &Task) -> Value {
    task_rich_for(w, t, None)
}

/// [`task_rich`] cut to the top-level fields `fields` names (all of them for `None`).
///
/// Why: a list page of 100 tasks asking for `assignee.email` would otherwise build each
/// task's projects, workspace and memberships only for [`select`] to throw them away; on a
/// benchmark that work, done under the world lock, was most of what the simulator spent
/// per page. [`select`] still makes the answer, so what comes back is the same.
fn task_rich_for(w: &AsanaWorld, t: &Task, fields: Option<&[Vec<String>]>) -> Value {
    let want =
        |key: &str| fields.is_none_or(|f| f.iter().any(|p| p.first().is_some_and(|h| h == key)));
    // `select` always keeps the gid.
    let mut v = serde_json::Map::new();
    v.insert("gid".into(), json!(t.gid));
    let mut put = |key: &str, make: &dyn Fn() -> Value| {
        if want(key) {
            v.insert(key.to_string(), make());
        }
    };
    put("resource_type", &|| json!("task"));
    put("resource_subtype", &|| json!("default_task"));
    put("name", &|| json!(t.name));
    put("notes", &|| json!(""));
    put("completed", &|| json!(t.completed));
    put("completed_at", &|| {
        json!(t.completed_at.as_ref().map(rfc3339_millis))
    });
    put("created_at", &|| json!(rfc3339_millis(&t.created_at)));
    put("modified_at", &|| json!(rfc3339_millis(&t.modified_at)));
    put("assignee", &|| {
        t.assignee
            .as_ref()
            .and_then(|g| w.users.get(g))
            .map(|u| user_rich(w, u))
            .unwrap_or(Value::Null)
    });
    put("projects", &|| {
        t.projects
            .iter()
            .filter_map(|g| w.projects.get(g))
            .map(|p| project_rich(w, p))
            .collect()
    });
    put("workspace", &|| {
        json!(task_workspace(w, t).map(|g| ws_compact(w, &g)))
    });
    put("memberships", &|| {
        t.projects
            .iter()
            .zip(&t.sections)
            .filter_map(|(g, s)| Some((w.projects.get(g)?, w.sections.get(s)?)))
            .map(|(p, s)| json!({ "project": project_compact(p), "section": section_compact(s) }))
            .collect()
    });
    Value::Object(v)
}

/// `TaskResponse` without `opt_fields`: nested resources compact.
fn task_default(w: &AsanaWorld, t: &Task) -> Value {
    let mut v = task_rich(w, t);
    v["assignee"] = t
        .assignee
        .as_ref()
        .and_then(|g| w.users.get(g))
        .map(user_compact)
        .unwrap_or(Value::Null);
    v["projects"] = Value::Array(
        t.projects
            .iter()
            .filter_map(|g| w.projects.get(g))
            .map(project_compact)
            .collect(),
    );
    v
}

/// `TaskCompact`, what task lists return without `opt_fields`.
fn task_compact(t: &Task) -> Value {
    json!({ "gid": t.gid, "resource_type": "task", "name": t.name, "resource_subtype": "default_task" })
}

fn render_task(w: &AsanaWorld, t: &Task, fields: &Option<Vec<Vec<String>>>) -> Value {
    match fields {
        Some(f) => select(&task_rich_for(w, t, Some(f)), f),
        None => task_default(w, t),
    }
}

/// A task the caller cannot see because all its projects are `no_access`.
fn task_hidden(w: &AsanaWorld, t: &Task) -> bool {
    !t.projects.is_empty()
        && t.projects
            .iter()
            .all(|p| w.projects.get(p).is_some_and(|p| p.no_access))
}

async fn get_task(State(st): St, Path(gid): Path<String>, uri: Uri) -> Response {
    if let Err(r) = check_gid("task", &gid) {
        return r;
    }
    let fields = opt_fields(&uri);
    let w = st.world();
    match w.tasks.get(&gid) {
        None => unknown(&gid),
        Some(t) if task_hidden(&w, t) => forbidden(),
        Some(t) => data(render_task(&w, t, &fields)),
    }
}

/// `PUT /tasks/{gid}` (updateTask): `assignee` (gid, email, `me` or null), `completed`,
/// `name`. Assignee and completion changes go through the world helpers so they produce
/// the same events as test-side changes.
async fn update_task(State(st): St, Path(gid): Path<String>, uri: Uri, body: Bytes) -> Response {
    if let Err(r) = check_gid("task", &gid) {
        return r;
    }
    let data_obj = match write_data(&body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let fields = opt_fields(&uri);
    let resp = {
        let mut w = st.world();
        if !w.tasks.contains_key(&gid) {
            return unknown(&gid);
        }
        if let Some(a) = data_obj.get("assignee") {
            let target = match a {
                Value::Null => None,
                Value::String(s) => match w.resolve_user(s) {
                    Some(u) => Some(u.gid.clone()),
                    None => {
                        return err(
                            StatusCode::BAD_REQUEST,
                            &format!("assignee: Not a recognized ID: {s}"),
                        )
                    }
                },
                _ => {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "assignee: Value is not a string or null",
                    )
                }
            };
            if let Err(e) = w.assign_task(&gid, target.as_deref()) {
                return err(StatusCode::BAD_REQUEST, &e.to_string());
            }
        }
        if let Some(c) = data_obj.get("completed") {
            let Some(c) = c.as_bool() else {
                return err(StatusCode::BAD_REQUEST, "completed: Not a boolean");
            };
            if let Err(e) = w.set_completed(&gid, c) {
                return err(StatusCode::BAD_REQUEST, &e.to_string());
            }
        }
        if let Some(name) = data_obj.get("name").and_then(Value::as_str) {
            if let Some(t) = w.tasks.get_mut(&gid) {
                t.name = name.to_string();
                t.modified_at = chrono::Utc::now();
            }
        }
        match w.tasks.get(&gid) {
            Some(t) => data(render_task(&w, t, &fields)),
            None => unknown(&gid),
        }
    };
    st.wake.notify_one();
    resp
}

fn render_user(w: &AsanaWorld, u: &AsanaUser, fields: &Option<Vec<Vec<String>>>) -> Value {
    let rich = user_rich(w, u);
    match fields {
        Some(f) => select(&rich, f),
        None => rich,
    }
}

/// `GET /users/{gid|email|me}`.
async fn get_user(State(st): St, Path(ident): Path<String>, uri: Uri) -> Response {
    let fields = opt_fields(&uri);
    if ident != "me" && !ident.contains('@') {
        if let Err(r) = check_gid("user", &ident) {
            return r;
        }
    }
    let w = st.world();
    match w.resolve_user(&ident) {
        Some(u) => data(render_user(&w, u, &fields)),
        None => unknown(&ident),
    }
}

async fn list_workspaces(State(st): St) -> Response {
    let w = st.world();
    let me = w.users.get(&w.me);
    let list: Vec<Value> = me
        .map(|u| u.workspaces.iter().map(|g| ws_compact(&w, g)).collect())
        .unwrap_or_default();
    (
        StatusCode::OK,
        axum::Json(json!({ "data": list, "next_page": null })),
    )
        .into_response()
}

async fn get_workspace(State(st): St, Path(gid): Path<String>) -> Response {
    if let Err(r) = check_gid("workspace", &gid) {
        return r;
    }
    let w = st.world();
    match w.workspaces.get(&gid) {
        Some(ws) => data(json!({
            "gid": ws.gid, "resource_type": "workspace", "name": ws.name,
            "is_organization": ws.is_organization, "email_domains": [],
        })),
        None => unknown(&gid),
    }
}

/// `POST /workspaces/{gid}/addUser`: resolves `me`, a gid or an email; an unknown email
/// becomes a new (invited) user named after the address, as Asana shows pending invitees.
/// Answers 200 with `UserBaseResponse` (not 201).
async fn add_user(
    State(st): St,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = check_gid("workspace", &ws) {
        return r;
    }
    let fields = opt_fields(&uri);
    let mut w = st.world();
    if !w.workspaces.contains_key(&ws) {
        return unknown(&ws);
    }
    if !caller.admin {
        return err(
            StatusCode::FORBIDDEN,
            "Forbidden: only workspace admins can add users to this workspace",
        );
    }
    let data_obj = match write_data(&body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let ident = match data_obj.get("user") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Null) | None => return err(StatusCode::BAD_REQUEST, "user: Missing input"),
        Some(_) => return err(StatusCode::BAD_REQUEST, "user: Not a valid user identifier"),
    };
    let gid = match w.resolve_user(&ident) {
        Some(u) => u.gid.clone(),
        None if ident.contains('@') => {
            if !plausible_email(&ident) {
                return err(
                    StatusCode::BAD_REQUEST,
                    &format!("user: Not a valid email address: {ident}"),
                );
            }
            let gid = w.next_gid();
            w.users.insert(
                gid.clone(),
                AsanaUser {
                    gid: gid.clone(),
                    name: ident.clone(),
                    email: Some(ident.clone()),
                    workspaces: Vec::new(),
                },
            );
            gid
        }
        None if ident.bytes().all(|b| b.is_ascii_digit()) => return unknown(&ident),
        None => {
            return err(
                StatusCode::BAD_REQUEST,
                &format!("user: Not a Long or email: {ident}"),
            )
        }
    };
    let Some(user) = w.users.get_mut(&gid) else {
        return unknown(&gid);
    };
    if !user.workspaces.contains(&ws) {
        user.workspaces.push(ws.clone());
    }
    let user = user.clone();
    let mut base = json!({
        "gid": user.gid, "resource_type": "user", "name": user.name, "photo": null,
    });
    if let Some(email) = &user.email {
        base["email"] = json!(email);
    }
    data(match fields {
        Some(f) => select(&base, &f),
        None => base,
    })
}

fn plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

async fn get_project(State(st): St, Path(gid): Path<String>, uri: Uri) -> Response {
    if let Err(r) = check_gid("project", &gid) {
        return r;
    }
    let fields = opt_fields(&uri);
    let w = st.world();
    match w.projects.get(&gid) {
        None => unknown(&gid),
        Some(p) if p.no_access => forbidden(),
        Some(p) => {
            let rich = project_rich(&w, p);
            data(match fields {
                Some(f) => select(&rich, &f),
                None => rich,
            })
        }
    }
}

/// Opaque `offset` tokens: the last gid of the previous page, hex-encoded with a prefix.
pub(crate) fn encode_offset(last_gid: &str) -> String {
    format!("eyJ{}", hex::encode(format!("after:{last_gid}")))
}

pub(crate) fn decode_offset(token: &str) -> Option<String> {
    let raw = hex::decode(token.strip_prefix("eyJ")?).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let gid = s.strip_prefix("after:")?;
    gid.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| gid.to_string())
}

/// Above this many results, an unpaginated list is refused, as Asana does.
const UNPAGINATED_MAX: usize = 1000;

/// One page of an ordered gid list, with the `next_page` object Asana returns.
pub(crate) struct PageOut {
    pub gids: Vec<String>,
    /// `Some(None)` = paginated and this is the last page (`next_page: null`);
    /// `None` = unpaginated (no `next_page` key at all).
    pub next_page: Option<Option<Value>>,
}

/// `limit` (1–100, or absent) and the gid after which a page starts (from `offset`).
fn page_params(pairs: &[(String, String)]) -> Result<(Option<usize>, Option<String>), Response> {
    let limit = match param(pairs, "limit") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => Some(n as usize),
            _ => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    &format!("limit: Must be between 1 and 100, got: {v}"),
                ))
            }
        },
    };
    let after = match param(pairs, "offset") {
        None | Some("") => None,
        Some(tok) => match decode_offset(tok) {
            Some(g) => Some(g),
            None => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "offset: Your pagination token is invalid or has expired",
                ))
            }
        },
    };
    Ok((limit, after))
}

/// The `next_page` object after a page whose last gid is `last`.
fn next_page(pairs: &[(String, String)], headers: &HeaderMap, path: &str, last: &str) -> Value {
    let offset = encode_offset(last);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "offset") {
        q.append_pair(k, v);
    }
    q.append_pair("offset", &offset);
    let rel = format!("{path}?{}", q.finish());
    let api_base = request_url(headers, &Uri::from_static("/api/1.0"));
    json!({ "offset": offset, "path": rel, "uri": format!("{api_base}{rel}") })
}

/// Applies `limit` / `offset` to gids sorted ascending. `path` is the API-relative path
/// (`/projects/1/tasks`) used to build `next_page.path` and `.uri`.
pub(crate) fn paginate(
    gids: Vec<String>,
    uri: &Uri,
    headers: &HeaderMap,
    path: &str,
) -> Result<PageOut, Response> {
    let pairs = query_pairs(uri);
    let (limit, after) = page_params(&pairs)?;
    let start = match &after {
        Some(a) => gids.partition_point(|g| (g.len(), g.as_str()) <= (a.len(), a.as_str())),
        None => 0,
    };
    let Some(limit) = limit else {
        let rest: Vec<String> = gids.into_iter().skip(start).collect();
        if rest.len() > UNPAGINATED_MAX {
            return Err(too_large());
        }
        return Ok(PageOut {
            gids: rest,
            next_page: None,
        });
    };
    let total = gids.len();
    let page: Vec<String> = gids.into_iter().skip(start).take(limit).collect();
    let next = if start + page.len() < total {
        page.last()
            .map(|last| next_page(&pairs, headers, path, last))
    } else {
        None
    };
    Ok(PageOut {
        gids: page,
        next_page: Some(next),
    })
}

fn too_large() -> Response {
    err(
        StatusCode::BAD_REQUEST,
        "The result is too large. You should use pagination (may require specifying a workspace)!",
    )
}

/// [`paginate`] over the world's tasks that pass `keep`, reading only from the page's
/// start on (task gids are the map's order), so a page of a 100,000-task project costs a
/// page, not the project.
fn paginate_tasks<'w>(
    w: &'w AsanaWorld,
    keep: impl Fn(&Task) -> bool,
    uri: &Uri,
    headers: &HeaderMap,
    path: &str,
) -> Result<(Vec<&'w Task>, Option<Option<Value>>), Response> {
    let pairs = query_pairs(uri);
    let (limit, after) = page_params(&pairs)?;
    let from = match &after {
        Some(a) => std::ops::Bound::Excluded(a.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let mut it = w
        .tasks
        .range((from, std::ops::Bound::Unbounded))
        .map(|(_, t)| t)
        .filter(|t| keep(t));
    let Some(limit) = limit else {
        let all: Vec<&Task> = it.by_ref().take(UNPAGINATED_MAX + 1).collect();
        if all.len() > UNPAGINATED_MAX {
            return Err(too_large());
        }
        return Ok((all, None));
    };
    let page: Vec<&Task> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    let next = match page.last() {
        Some(last) if more => Some(next_page(&pairs, headers, path, &last.gid)),
        _ => None,
    };
    Ok((page, Some(next)))
}

/// Wraps a list page in `{"data": [...], "next_page": ...}`.
pub(crate) fn list_response(items: Vec<Value>, next_page: Option<Option<Value>>) -> Response {
    let mut body = json!({ "data": items });
    if let Some(next) = next_page {
        body["next_page"] = next.unwrap_or(Value::Null);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `completed_since`: absent = every task; `now` = incomplete only; a date-time = also
/// those completed since then.
type CompletedSince = Option<Option<chrono::DateTime<chrono::Utc>>>;

fn parse_time(name: &str, v: &str) -> Result<chrono::DateTime<chrono::Utc>, Response> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                &format!("{name}: Not a valid date: {v}"),
            )
        })
}

fn completed_since(pairs: &[(String, String)]) -> Result<CompletedSince, Response> {
    Ok(match param(pairs, "completed_since") {
        None => None,
        Some("now") => Some(None),
        Some(v) => Some(Some(parse_time("completed_since", v)?)),
    })
}

fn passes_completed(t: &Task, since: &CompletedSince) -> bool {
    match since {
        None => true,
        Some(None) => !t.completed,
        Some(Some(since)) => !t.completed || t.completed_at.is_some_and(|c| c >= *since),
    }
}

/// A task list page's items in Asana's shape: `TaskCompact`s, or the `opt_fields` asked
/// for. The caller serialises them after letting go of the world lock, so that concurrent
/// page reads (a sync pages ten sections at once) do not queue behind each other's JSON.
fn task_items(w: &AsanaWorld, tasks: &[&Task], fields: &Option<Vec<Vec<String>>>) -> Vec<Value> {
    tasks
        .iter()
        .map(|t| match fields {
            Some(f) => select(&task_rich_for(w, t, Some(f)), f),
            None => task_compact(t),
        })
        .collect()
}

/// The project's visibility, as every read of it answers.
fn check_project(w: &AsanaWorld, gid: &str) -> Result<(), Response> {
    match w.projects.get(gid) {
        None => Err(unknown(gid)),
        Some(p) if p.no_access => Err(forbidden()),
        Some(_) => Ok(()),
    }
}

/// `GET /projects/{gid}/tasks` with `limit`/`offset`/`opt_fields`/`completed_since`.
async fn project_tasks(
    State(st): St,
    Path(gid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_gid("project", &gid) {
        return r;
    }
    let pairs = query_pairs(&uri);
    let fields = parse_opt_fields(param(&pairs, "opt_fields"));
    let since = match completed_since(&pairs) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let w = st.world();
    if let Err(r) = check_project(&w, &gid) {
        return r;
    }
    let keep = |t: &Task| t.projects.contains(&gid) && passes_completed(t, &since);
    let (items, next) =
        match paginate_tasks(&w, keep, &uri, &headers, &format!("/projects/{gid}/tasks")) {
            Ok((page, next)) => (task_items(&w, &page, &fields), next),
            Err(r) => return r,
        };
    drop(w);
    list_response(items, next)
}

/// `GET /projects/{gid}/sections` (`getSectionsForProject`): `SectionCompact`s in
/// project order, paginated like every list.
async fn project_sections(
    State(st): St,
    Path(gid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_gid("project", &gid) {
        return r;
    }
    let fields = opt_fields(&uri);
    let w = st.world();
    if let Err(r) = check_project(&w, &gid) {
        return r;
    }
    let gids = w
        .project_sections(&gid)
        .iter()
        .map(|s| s.gid.clone())
        .collect();
    let page = match paginate(gids, &uri, &headers, &format!("/projects/{gid}/sections")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = page
        .gids
        .iter()
        .filter_map(|g| w.sections.get(g))
        .map(|s| {
            let mut rich = section_compact(s);
            rich["created_at"] = json!(null);
            rich["project"] = w
                .projects
                .get(&s.project)
                .map(project_compact)
                .unwrap_or(Value::Null);
            match &fields {
                Some(f) => select(&rich, f),
                None => section_compact(s),
            }
        })
        .collect();
    list_response(items, page.next_page)
}

/// `GET /tasks` (`getTasks`) with exactly one of `project` or `section` (the sim has no
/// tags or assignee+workspace lists), `modified_since` (tasks whose `modified_at` is at or
/// after it), `completed_since`, `limit`/`offset`, `opt_fields`.
async fn list_tasks(State(st): St, uri: Uri, headers: HeaderMap) -> Response {
    let pairs = query_pairs(&uri);
    let fields = parse_opt_fields(param(&pairs, "opt_fields"));
    let since = match completed_since(&pairs) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let modified_since = match param(&pairs, "modified_since") {
        None => None,
        Some(v) => match parse_time("modified_since", v) {
            Ok(t) => Some(t),
            Err(r) => return r,
        },
    };
    let project = param(&pairs, "project").map(str::to_string);
    let section = param(&pairs, "section").map(str::to_string);
    let w = st.world();
    let scope = match (&project, &section) {
        (Some(p), None) => {
            if let Err(r) = check_gid("project", p).and_then(|_| check_project(&w, p)) {
                return r;
            }
            (p.clone(), None)
        }
        (None, Some(s)) => {
            if let Err(r) = check_gid("section", s) {
                return r;
            }
            let Some(sec) = w.sections.get(s) else {
                return unknown(s);
            };
            if let Err(r) = check_project(&w, &sec.project) {
                return r;
            }
            (sec.project.clone(), Some(s.clone()))
        }
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "Must specify exactly one of project, tag, section, user task list, or assignee + workspace",
            )
        }
    };
    let (in_project, in_section) = scope;
    let keep = |t: &Task| {
        let member = match &in_section {
            Some(s) => t.section_in(&in_project) == Some(s.as_str()),
            None => t.projects.contains(&in_project),
        };
        member && passes_completed(t, &since) && modified_since.is_none_or(|m| t.modified_at >= m)
    };
    let (items, next) = match paginate_tasks(&w, keep, &uri, &headers, "/tasks") {
        Ok((page, next)) => (task_items(&w, &page, &fields), next),
        Err(r) => return r,
    };
    drop(w);
    list_response(items, next)
}
