//! DocSpace `api/2.0` routes, answering in the envelopes of `CustomResponseFilterAttribute`
//! (success) and `CustomExceptionHandler` / `[ApiController]` (errors), see
//! `shared/notes/docspace-api.md` §0.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::world::{
    dotnet_email_attribute_ok, strict_email_ok, DocSpaceWorld, InviteOutcome, InviteRecord, Person,
    PersonState, ShareRecord, SimUserType,
};
use super::DsState;
use crate::server::{docspace_error, param, query_pairs, request_url};

type St = State<Arc<DsState>>;

pub(crate) fn router(state: Arc<DsState>) -> Router {
    let api = Router::new()
        .route("/people", get(all_profiles))
        .route("/people/email", get(profile_by_email))
        .route("/people/filter", get(people_filter))
        .route("/people/@self", get(self_profile))
        .route("/people/invite", axum::routing::post(invite))
        .route("/people/{userid}", get(profile_by_id))
        .route("/files/rooms/{id}", get(room_info))
        .route("/files/rooms/{id}/share", get(room_members).put(share_room))
        .with_state(state);
    Router::new().nest("/api/2.0", api).fallback(|| async {
        docspace_error(StatusCode::NOT_FOUND, "No route matches the request")
    })
}

/// What every answer needs to echo `links[0]`.
struct Ctx {
    href: String,
    method: String,
    origin: String,
}

impl Ctx {
    fn new(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let href = request_url(headers, uri);
        let origin = request_url(headers, &Uri::from_static("/"))
            .trim_end_matches('/')
            .to_string();
        Self {
            href,
            method: method.as_str().to_string(),
            origin,
        }
    }

    fn links(&self) -> Value {
        json!([{ "href": self.href, "action": self.method }])
    }

    /// Success envelope; `count` follows the server's rule (items on this page, 1 for an
    /// object, 0 for null) and `total` is only written for paged lists.
    fn ok(&self, payload: Value, total: Option<usize>) -> Response {
        let count = match &payload {
            Value::Array(a) => a.len(),
            Value::Null => 0,
            _ => 1,
        };
        let mut body = json!({
            "response": payload,
            "count": count,
            "links": self.links(),
            "status": 0,
            "statusCode": 200,
        });
        if let Some(total) = total {
            body["total"] = json!(total);
        }
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    /// `[ApiController]` model-validation failure: RFC 7807 details inside `response`.
    fn validation(&self, errors: BTreeMap<String, Vec<String>>) -> Response {
        let body = json!({
            "response": {
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                "title": "One or more validation errors occurred.",
                "status": 400,
                "errors": errors,
            },
            "count": 1,
            "links": self.links(),
            "status": 1,
            "statusCode": 400,
        });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }

    fn validation_one(&self, key: &str, message: &str) -> Response {
        self.validation(BTreeMap::from([(
            key.to_string(),
            vec![message.to_string()],
        )]))
    }
}

fn lock(st: &DsState) -> std::sync::MutexGuard<'_, DocSpaceWorld> {
    st.world.lock().unwrap_or_else(|e| e.into_inner())
}

fn api_date(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// `EmployeeDto`: the short form, which has no email (invite answers use it).
fn employee_short(p: &Person, origin: &str) -> Value {
    json!({
        "id": p.id,
        "displayName": p.display_name(),
        "avatar": "/static/images/default_user_photo_size_82-82.png",
        "avatarOriginal": "/static/images/default_user_photo_size_200-200.png",
        "avatarMax": "/static/images/default_user_photo_size_200-200.png",
        "avatarMedium": "/static/images/default_user_photo_size_48-48.png",
        "avatarSmall": "/static/images/default_user_photo_size_32-32.png",
        "profileUrl": format!("{origin}/accounts/people/{}", p.id),
        "hasAvatar": false,
        "isAnonim": false,
    })
}

/// `EmployeeFullDto`, with the type flags the server derives (`isAdmin` is false for the owner).
fn employee_full(p: &Person, origin: &str) -> Value {
    let (status, activation) = match p.state {
        PersonState::Active => (1, 1),
        PersonState::Pending => (4, 2),
        PersonState::Disabled => (2, 1),
    };
    let mut v = employee_short(p, origin);
    let extra = json!({
        "firstName": p.first_name,
        "lastName": p.last_name,
        "userName": p.email.split('@').next().unwrap_or(""),
        "email": p.email,
        "status": status,
        "activationStatus": activation,
        "department": "",
        "groups": [],
        "isAdmin": p.user_type == SimUserType::DocSpaceAdmin && !p.is_owner,
        "isRoomAdmin": p.user_type == SimUserType::RoomAdmin,
        "isLDAP": false,
        "listAdminModules": [],
        "isOwner": p.is_owner,
        "isVisitor": p.user_type == SimUserType::Guest,
        "isCollaborator": p.user_type == SimUserType::User,
        "cultureName": p.culture.clone().unwrap_or_else(|| "en-US".into()),
        "mobilePhoneActivationStatus": 0,
        "isSSO": false,
        "registrationDate": api_date(&p.registered_at),
        "hasPersonalFolder": false,
        "tfaAppEnabled": false,
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut v, extra) {
        base.extend(extra);
    }
    if p.state == PersonState::Disabled {
        v["terminated"] = json!(api_date(&p.registered_at));
    }
    v
}

/// `count`/`startIndex` with `[Range(1, 100)]` on count, as `GetAllProfiles` declares.
fn paging(ctx: &Ctx, pairs: &[(String, String)]) -> Result<(usize, usize), Response> {
    let count = match param(pairs, "count") {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n as usize,
            Ok(_) => {
                return Err(
                    ctx.validation_one("count", "The field count must be between 1 and 100.")
                )
            }
            Err(_) => {
                return Err(ctx.validation_one("count", &format!("The value '{v}' is not valid.")))
            }
        },
    };
    let start = match param(pairs, "startIndex") {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            _ => {
                return Err(
                    ctx.validation_one("startIndex", &format!("The value '{v}' is not valid."))
                )
            }
        },
    };
    Ok((count, start))
}

fn page(ctx: &Ctx, people: Vec<&Person>, count: usize, start: usize) -> Response {
    let total = people.len();
    let items: Vec<Value> = people
        .into_iter()
        .skip(start)
        .take(count)
        .map(|p| employee_full(p, &ctx.origin))
        .collect();
    ctx.ok(Value::Array(items), Some(total))
}

/// `GET /people`: active users only, so pending invitees never show up here.
async fn all_profiles(
    State(st): St,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    let pairs = query_pairs(&uri);
    let (count, start) = match paging(&ctx, &pairs) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let world = lock(&st);
    let people = world
        .people
        .iter()
        .filter(|p| p.state == PersonState::Active)
        .collect();
    page(&ctx, people, count, start)
}

fn parse_employee_type(v: &str) -> Option<SimUserType> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "roomadmin" => Some(SimUserType::RoomAdmin),
        "2" | "guest" => Some(SimUserType::Guest),
        "3" | "docspaceadmin" => Some(SimUserType::DocSpaceAdmin),
        "4" | "user" => Some(SimUserType::User),
        _ => None,
    }
}

/// `GET /people/filter`: the extended search, here with the filters a reconciler needs.
async fn people_filter(
    State(st): St,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    let pairs = query_pairs(&uri);
    let (count, start) = match paging(&ctx, &pairs) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let int_param = |name: &str| -> Result<Option<i64>, Response> {
        match param(&pairs, name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ctx.validation_one(name, &format!("The value '{v}' is not valid."))),
        }
    };
    let employee_status = match int_param("employeeStatus") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let activation_status = match int_param("activationStatus") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let employee_type = match param(&pairs, "employeeType") {
        None | Some("") | Some("0") | Some("All") => None,
        Some(v) => match parse_employee_type(v) {
            Some(t) => Some(t),
            None => {
                return ctx
                    .validation_one("employeeType", &format!("The value '{v}' is not valid."))
            }
        },
    };
    let world = lock(&st);
    let people = world
        .people
        .iter()
        .filter(|p| {
            let (status, activation) = match p.state {
                PersonState::Active => (1, 1),
                PersonState::Pending => (4, 2),
                PersonState::Disabled => (2, 1),
            };
            employee_status.is_none_or(|s| s == status || s == 7 || s == 5 && status != 2)
                && activation_status.is_none_or(|a| a == activation)
                && employee_type.is_none_or(|t| t == p.user_type)
        })
        .collect();
    page(&ctx, people, count, start)
}

async fn self_profile(
    State(st): St,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    let world = lock(&st);
    match world.owner() {
        Some(owner) => ctx.ok(employee_full(owner, &ctx.origin), None),
        None => docspace_error(StatusCode::NOT_FOUND, "The user could not be found"),
    }
}

async fn profile_by_id(
    State(st): St,
    Path(userid): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    if uuid::Uuid::parse_str(&userid).is_err() {
        return ctx.validation_one("userid", &format!("The value '{userid}' is not valid."));
    }
    let world = lock(&st);
    match world.person(&userid) {
        Some(p) => ctx.ok(employee_full(p, &ctx.origin), None),
        None => docspace_error(StatusCode::NOT_FOUND, "The user could not be found"),
    }
}

/// `GET /people/email?email=`: finds active, pending and terminated users alike.
async fn profile_by_email(
    State(st): St,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    let pairs = query_pairs(&uri);
    let email = param(&pairs, "email").unwrap_or("").trim().to_string();
    if email.is_empty() {
        return docspace_error(
            StatusCode::BAD_REQUEST,
            "The value cannot be an empty string or composed entirely of whitespace. (Parameter 'email')",
        );
    }
    if email.len() > 255 {
        return ctx.validation_one(
            "email",
            "The field email must be a string with a maximum length of 255.",
        );
    }
    if !dotnet_email_attribute_ok(&email) {
        return ctx.validation_one("email", "The email field is not a valid e-mail address.");
    }
    let world = lock(&st);
    match world.person_by_email(&email) {
        Some(p) => ctx.ok(employee_full(p, &ctx.origin), None),
        None => docspace_error(StatusCode::NOT_FOUND, "The user could not be found"),
    }
}

/// An `EmployeeType` as `JsonStringEnumConverter` reads it: an integer or a name
/// (case-insensitive). `Ok(None)` is `All` (0). Integers outside 0..=4 are refused here;
/// the server's `[Flags]` enum would take them (a deliberate simplification).
fn read_employee_type(v: &Value) -> Result<Option<SimUserType>, ()> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(None),
            Some(i @ 1..=4) => parse_employee_type(&i.to_string()).map(Some).ok_or(()),
            _ => Err(()),
        },
        Value::String(s) if s.eq_ignore_ascii_case("all") || s == "0" => Ok(None),
        Value::String(s) => parse_employee_type(s).map(Some).ok_or(()),
        _ => Err(()),
    }
}

fn bad_json(ctx: &Ctx, path: &str) -> Response {
    ctx.validation(BTreeMap::from([
        (
            "inDto".to_string(),
            vec!["The inDto field is required.".to_string()],
        ),
        (
            path.to_string(),
            vec![format!(
                "The JSON value could not be converted to the expected type. Path: {path}"
            )],
        ),
    ]))
}

/// `POST /people/invite`, following `UserController.InviteUsers` step by step (notes §1):
/// model validation first (nothing applied), then each invitation in order, where a failure
/// aborts the request but leaves the earlier invitations applied.
async fn invite(
    State(st): St,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_json(&ctx, "$");
    };
    let Some(obj) = body.as_object() else {
        return bad_json(&ctx, "$");
    };
    let culture = obj
        .get("culture")
        .and_then(Value::as_str)
        .map(str::to_string);
    let invitations = match obj.get("invitations") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => {
            return ctx.validation_one("Invitations", "The Invitations field is required.")
        }
        Some(_) => return bad_json(&ctx, "$.invitations"),
    };
    // Model binding and validation: all-or-nothing.
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut parsed = Vec::new();
    for (i, inv) in invitations.iter().enumerate() {
        let email = inv
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let type_sent = inv.get("type").cloned().unwrap_or(Value::Null);
        let key = format!("Invitations[{i}].Email");
        if email.len() > 255 {
            errors.entry(key).or_default().push(
                "The field Email must be a string or array type with a maximum length of '255'."
                    .into(),
            );
        } else if !email.is_empty() && !dotnet_email_attribute_ok(&email) {
            errors
                .entry(key)
                .or_default()
                .push("The Email field is not a valid e-mail address.".into());
        }
        let ty = match read_employee_type(&type_sent) {
            Ok(t) => t,
            Err(()) => {
                errors.entry(format!("$.invitations[{i}].type")).or_default().push(format!(
                    "The JSON value could not be converted to ASC.Core.Users.EmployeeType. Path: $.invitations[{i}].type"
                ));
                None
            }
        };
        parsed.push((email, type_sent, ty));
    }
    if !errors.is_empty() {
        return ctx.validation(errors);
    }

    let mut world = lock(&st);
    for (email, type_sent, ty) in parsed {
        let outcome = invite_one(&mut world, st.max_users, &email, ty, culture.as_deref());
        let failure = match &outcome {
            InviteOutcome::Rejected { status, message } => Some((*status, message.clone())),
            _ => None,
        };
        world.invite_log.push(InviteRecord {
            email,
            type_sent,
            outcome,
        });
        if let Some((status, message)) = failure {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return docspace_error(status, &message);
        }
    }
    let pending: Vec<Value> = world
        .people
        .iter()
        .filter(|p| p.state == PersonState::Pending)
        .map(|p| employee_short(p, &ctx.origin))
        .collect();
    ctx.ok(Value::Array(pending), None)
}

fn invite_one(
    world: &mut DocSpaceWorld,
    max_users: Option<usize>,
    email: &str,
    ty: Option<SimUserType>,
    culture: Option<&str>,
) -> InviteOutcome {
    let reject = |status: u16, message: String| InviteOutcome::Rejected { status, message };
    if !strict_email_ok(email) {
        return reject(400, "Incorrect email".into());
    }
    // `All` (0) passes the checks and ends up a paid room admin: the seed script's trap.
    let ty = ty.unwrap_or(SimUserType::RoomAdmin);
    if ty == SimUserType::Guest {
        return reject(403, "Access denied".into());
    }
    if let Some(existing) = world
        .people
        .iter_mut()
        .find(|p| p.email.eq_ignore_ascii_case(email))
    {
        if existing.state == PersonState::Disabled {
            return reject(400, format!("User disabled: {email}"));
        }
        if ty.rank() > existing.user_type.rank() {
            existing.user_type = ty;
            return InviteOutcome::Upgraded;
        }
        return InviteOutcome::Unchanged;
    }
    if let Some(max) = max_users {
        if world.seats_used() >= max {
            return reject(402, format!("The number of users should not exceed {max}"));
        }
    }
    let id = world.add_person(email, ty, PersonState::Pending);
    if let Some(p) = world.person_mut(&id) {
        p.culture = culture.map(str::to_string);
    }
    InviteOutcome::Invited
}

fn room_dto(world: &DocSpaceWorld, room: &super::world::Room, origin: &str) -> Value {
    let id: Value = room
        .id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(room.id.clone()));
    let created_by = world
        .owner()
        .map(|o| employee_short(o, origin))
        .unwrap_or(Value::Null);
    json!({
        "id": id,
        "title": room.title,
        "roomType": room.room_type,
        "rootRoomType": room.room_type,
        "parentId": 2,
        "rootFolderId": 2,
        "rootFolderType": 14,
        "filesCount": 0,
        "foldersCount": 0,
        "isShareable": true,
        "new": 0,
        "mute": false,
        "tags": [],
        "pinned": false,
        "private": false,
        "indexing": false,
        "denyDownload": false,
        "inRoom": true,
        "canShare": true,
        "created": api_date(&room.created_at),
        "updated": api_date(&room.created_at),
        "createdBy": created_by,
        "fileEntryType": 1,
    })
}

/// Room ids are `int` route values: anything else fails model binding.
fn room_id(ctx: &Ctx, id: &str) -> Result<(), Response> {
    if id.parse::<i64>().is_ok() {
        Ok(())
    } else {
        Err(ctx.validation_one("id", &format!("The value '{id}' is not valid.")))
    }
}

fn room_not_found() -> Response {
    docspace_error(StatusCode::NOT_FOUND, "The required folder was not found")
}

async fn room_info(
    State(st): St,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    if let Err(r) = room_id(&ctx, &id) {
        return r;
    }
    let world = lock(&st);
    match world.room(&id) {
        Some(room) => ctx.ok(room_dto(&world, room, &ctx.origin), None),
        None => room_not_found(),
    }
}

fn file_share_dto(person: &Person, access: u8, origin: &str) -> Value {
    let is_owner = person.is_owner;
    json!({
        "access": access,
        "sharedToUser": employee_full(person, origin),
        "isLocked": is_owner,
        "isOwner": is_owner,
        "canEditAccess": !is_owner,
        "canEditInternal": false,
        "canEditDenyDownload": false,
        "canEditExpirationDate": false,
        "canRevoke": !is_owner,
        "subjectType": 0,
    })
}

/// Members in listing order: the owner first, then by person id.
fn members_of(world: &DocSpaceWorld, room: &super::world::Room) -> Vec<(Person, u8)> {
    let mut out: Vec<(Person, u8)> = room
        .members
        .iter()
        .filter_map(|(id, access)| world.person(id).map(|p| (p.clone(), *access)))
        .collect();
    out.sort_by_key(|(p, _)| !p.is_owner);
    out
}

/// `GET /files/rooms/{id}/share`: the members as `FileShareDto`, paged, with `total`.
async fn room_members(
    State(st): St,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    if let Err(r) = room_id(&ctx, &id) {
        return r;
    }
    let pairs = query_pairs(&uri);
    let count = param(&pairs, "count")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100);
    let start = param(&pairs, "startIndex")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let world = lock(&st);
    let Some(room) = world.room(&id) else {
        return room_not_found();
    };
    let members = members_of(&world, room);
    let total = members.len();
    let items: Vec<Value> = members
        .iter()
        .skip(start)
        .take(count)
        .map(|(p, a)| file_share_dto(p, *a, &ctx.origin))
        .collect();
    ctx.ok(Value::Array(items), Some(total))
}

/// `FileShareConverter`: an integer, or a name; any unrecognised name reads as None (0),
/// which removes the member. Kept faithfully, since that is the trap clients must avoid.
fn read_access(v: Option<&Value>) -> u8 {
    const NAMES: [&str; 12] = [
        "None",
        "ReadWrite",
        "Read",
        "Restrict",
        "Varies",
        "Review",
        "Comment",
        "FillForms",
        "CustomFilter",
        "RoomManager",
        "Editing",
        "ContentCreator",
    ];
    match v {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()).unwrap_or(255),
        Some(Value::String(s)) => {
            if let Ok(n) = s.parse::<u8>() {
                return n;
            }
            NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(s))
                .and_then(|i| u8::try_from(i).ok())
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// `FileSecurity.AvailableRoomAccesses` for a user subject, by room type (notes §3).
fn allowed_accesses(room_type: u8) -> &'static [u8] {
    match room_type {
        1 => &[9, 11, 7, 0],
        2 => &[9, 11, 10, 2, 0],
        5 => &[9, 11, 10, 5, 6, 2, 0],
        6 => &[9, 11, 0],
        8 => &[9, 11, 10, 2, 7, 0],
        9 => &[9, 11, 2, 0],
        _ => &[0],
    }
}

enum Subject {
    Existing(String),
    NewGuest(String),
    Dropped,
}

/// `PUT /files/rooms/{id}/share` (`SetRoomSecurity`). Every entry is checked before any is
/// applied (the server's order is not documented; all-or-nothing is the safer reading).
///
/// As on the server (notes §3): the key's user must manage the room (403 otherwise);
/// access 0 (`None`) removes the member; a subject the key cannot see is dropped without
/// an error; a member holding a form role is not removed unless `force` is set, and the
/// answer says `error: 1` (`FormRoleBlockingDeletion`) — the other entries still apply
/// (the per-entry reading of the server's `FileSharing`; the spec says only that `force`
/// "forcibly deletes a user with form roles").
async fn share_room(
    State(st): St,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&method, &uri, &headers);
    if let Err(r) = room_id(&ctx, &id) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_json(&ctx, "$");
    };
    let invitations = match body.get("invitations") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return bad_json(&ctx, "$.invitations"),
    };
    let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
    let mut world = lock(&st);
    let Some(room) = world.room(&id).cloned() else {
        return room_not_found();
    };
    // `CanSetAccessAsync`: the key's user (the portal owner here) must manage the room.
    let caller_manages = world
        .owner()
        .and_then(|o| room.members.get(&o.id))
        .is_some_and(|a| *a == 9);
    if !caller_manages {
        return docspace_error(
            StatusCode::FORBIDDEN,
            "You don't have enough permission to perform the operation",
        );
    }
    let allowed = allowed_accesses(room.room_type);
    let mut plan = Vec::new();
    let mut requested_ids = Vec::new();
    for inv in &invitations {
        let access = read_access(inv.get("access"));
        let id_field = inv
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| uuid::Uuid::parse_str(s).is_ok_and(|u| !u.is_nil()));
        let email = inv
            .get("email")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let (subject, label) = match (id_field, email) {
            (Some(pid), _) => {
                requested_ids.push(pid.to_string());
                match world.person(pid) {
                    Some(p)
                        if p.state != PersonState::Disabled
                            && !world.unseen.contains(&p.id.to_ascii_lowercase()) =>
                    {
                        (Subject::Existing(p.id.clone()), pid.to_string())
                    }
                    _ => (Subject::Dropped, pid.to_string()),
                }
            }
            (None, Some(email)) => match world.person_by_email(email) {
                Some(p) if p.state != PersonState::Disabled => {
                    (Subject::Existing(p.id.clone()), email.to_string())
                }
                Some(_) => (Subject::Dropped, email.to_string()),
                None if strict_email_ok(email) => {
                    (Subject::NewGuest(email.to_string()), email.to_string())
                }
                None => (Subject::Dropped, email.to_string()),
            },
            (None, None) => (Subject::Dropped, String::new()),
        };
        // The role check runs against the invitee's type; an email-only entry counts as a
        // guest, so RoomManager by email alone is refused.
        let invitee_type = match &subject {
            Subject::Existing(pid) => world.person(pid).map(|p| p.user_type),
            Subject::NewGuest(_) => Some(SimUserType::Guest),
            Subject::Dropped => None,
        };
        if let Some(ty) = invitee_type {
            let manager_ok = access != 9 || (ty.can_manage_rooms() && id_field.is_some());
            if !allowed.contains(&access) || !manager_ok {
                world.share_log.push(ShareRecord {
                    room: id.clone(),
                    subject: label,
                    access_sent: inv.get("access").cloned().unwrap_or(Value::Null),
                    access_applied: None,
                });
                return docspace_error(
                    StatusCode::FORBIDDEN,
                    "The role is not available for this user type",
                );
            }
        }
        plan.push((
            subject,
            access,
            label,
            inv.get("access").cloned().unwrap_or(Value::Null),
        ));
    }
    let mut warning: Option<String> = None;
    let mut form_role_blocking = false;
    for (subject, access, label, access_sent) in plan {
        let pid = match subject {
            Subject::Existing(pid) => Some(pid),
            Subject::NewGuest(email) => {
                if access == 0 {
                    None
                } else {
                    Some(world.add_person(&email, SimUserType::Guest, PersonState::Pending))
                }
            }
            Subject::Dropped => None,
        };
        let applied = match &pid {
            Some(pid) if world.person(pid).is_some_and(|p| p.is_owner) => {
                warning.get_or_insert_with(|| "The owner's access cannot be changed".into());
                None
            }
            Some(pid)
                if access == 0
                    && !force
                    && world
                        .form_roles
                        .contains(&(id.clone(), pid.to_ascii_lowercase())) =>
            {
                form_role_blocking = true;
                None
            }
            Some(pid) => {
                if access == 0 {
                    world
                        .form_roles
                        .remove(&(id.clone(), pid.to_ascii_lowercase()));
                }
                if let Some(r) = world.room_mut(&id) {
                    if access == 0 {
                        r.members.remove(pid);
                    } else {
                        r.members.insert(pid.clone(), access);
                    }
                }
                Some(access)
            }
            None => None,
        };
        world.share_log.push(ShareRecord {
            room: id.clone(),
            subject: label,
            access_sent,
            access_applied: applied,
        });
    }
    // Re-read for the request's ids only: email-only entries are absent, as on the server.
    let mut members = Vec::new();
    if let Some(room) = world.room(&id) {
        for rid in &requested_ids {
            if let Some(p) = world.person(rid) {
                if let Some(access) = room.members.get(&p.id) {
                    members.push(file_share_dto(p, *access, &ctx.origin));
                }
            }
        }
    }
    let mut resp = Map::new();
    resp.insert("members".into(), Value::Array(members));
    if let Some(w) = warning {
        resp.insert("warning".into(), Value::String(w));
    }
    resp.insert("error".into(), json!(i32::from(form_role_blocking)));
    ctx.ok(Value::Object(resp), None)
}
