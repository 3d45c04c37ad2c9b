//! `sync`: reconcile whole Asana projects against DocSpace.
//!
//! 1. **check** every room target (exists, type allows the level) — before any write;
//! 2. **intake** each project's tasks, 100 per page, only the fields we need;
//! 3. **merge** assignees into one plan per email (strongest user type, rooms per rule);
//! 4. **resolve** the emails in DocSpace with the fewest calls: page the portal's people
//!    or look each email up, whichever is cheaper for the numbers at hand;
//! 5. **act**: invite the absent in batches, then share each room with those not yet at
//!    their level; every outcome goes to the ledger as it happens.
//!
//! Re-running is always safe: DocSpace itself is the source of truth for "already
//! there", so a run killed at any point is finished by the next one, not repeated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use docspace_api::{Access, PeopleFilter, Person, UserType};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::{RoomTarget, Rule};
use crate::intake::{self, Assignment, EmailCheck};
use crate::invite::check_room;
use crate::outcome::RoomOutcome;
use crate::plan::{self, PortalDecision, RoomDecision};
use crate::record::NewLedgerEntry;
use crate::{act, CoreError, Outcome, Services};

/// DocSpace's page size for people listings (`count` is capped at 100).
pub const PEOPLE_PAGE: u64 = 100;

/// Default invitations per `POST /people/invite`.
pub const DEFAULT_INVITE_BATCH: usize = 50;

/// Invitation batches (and room share calls) in flight at once. The DocSpace client's
/// write semaphore (`max_concurrent_writes`, 15 by default) caps all writes together.
const WRITE_CONCURRENCY: usize = 8;

/// Hooks for a progress display; the binary draws bars only on a terminal.
pub trait Progress: Send + Sync {
    fn phase(&self, _name: &str) {}
    fn tasks_read(&self, _n: u64) {}
    fn people_total(&self, _n: u64) {}
    fn people_done(&self, _n: u64) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

pub struct SyncRequest {
    pub rules: Vec<Rule>,
    pub dry_run: bool,
    pub run_id: String,
    pub source: String,
    pub invite_batch: usize,
    pub progress: Arc<dyn Progress>,
}

/// One output line: a person (deduplicated across tasks and projects) or a task that
/// has nobody to invite.
#[derive(Debug, Clone, Serialize)]
pub struct SyncLine {
    /// The first task (in project order) that gives this person access.
    pub task: String,
    pub email: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Every task that grants this person access (capped in output at 20).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<RoomLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomLine {
    pub id: String,
    pub access: String,
    pub outcome: RoomOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectError {
    pub project: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub summary: bool,
    pub dry_run: bool,
    pub projects: usize,
    pub projects_failed: usize,
    pub tasks: u64,
    pub people: usize,
    pub outcomes: BTreeMap<String, u64>,
    pub rooms: BTreeMap<String, u64>,
    pub asana_calls: u64,
    pub docspace_calls: u64,
    pub asana_429: u64,
    pub docspace_429: u64,
    pub elapsed_ms: u128,
}

pub struct SyncReport {
    pub lines: Vec<SyncLine>,
    pub project_errors: Vec<ProjectError>,
    pub summary: Summary,
}

impl SyncReport {
    /// 0 when everything is done or already there; 1 when anything failed.
    pub fn exit_code(&self) -> i32 {
        let failed = self.lines.iter().any(|l| {
            l.outcome == Outcome::Failed || l.rooms.iter().any(|r| r.outcome == RoomOutcome::Failed)
        });
        if failed || !self.project_errors.is_empty() {
            1
        } else {
            0
        }
    }
}

/// Everything we will do for one email.
#[derive(Debug, Clone)]
struct PersonPlan {
    email: String,
    assignee: String,
    user_type: UserType,
    /// (task gid, task name, project gid) in the order seen.
    tasks: Vec<(String, Option<String>, String)>,
    /// room id → strongest wanted level.
    rooms: BTreeMap<String, Access>,
}

fn type_rank(t: UserType) -> u8 {
    match t {
        UserType::User => 1,
        UserType::RoomAdmin => 2,
        UserType::DocSpaceAdmin => 3,
    }
}

pub async fn run(svc: &Services, req: &SyncRequest) -> Result<SyncReport, CoreError> {
    let started = Instant::now();
    let a0 = svc.asana.metrics();
    let d0 = svc.docspace.metrics();

    // 1. Rooms first: a bad target stops the run before anything is written.
    req.progress.phase("checking rooms");
    let targets: BTreeSet<(String, Access)> = req
        .rules
        .iter()
        .filter_map(|r| r.room.as_ref().map(|t| (t.room_id.clone(), t.access)))
        .collect();
    for (room_id, access) in &targets {
        check_room(
            svc,
            &RoomTarget {
                room_id: room_id.clone(),
                access: *access,
            },
        )
        .await?;
    }

    // 2. Intake, a few projects at a time; each project's pages are a sequential chain.
    //    Meanwhile, the DocSpace reads that do not depend on it: each target room's
    //    members, and the portal's people — the first page (it tells how big the portal
    //    is), then the other pages as soon as the intake has met enough distinct emails for
    //    the listing to be sure to beat lookups. They ride along the page chain, which
    //    sets the pace of a sync, instead of adding to it.
    req.progress.phase("reading Asana tasks");
    let room_ids: BTreeSet<String> = targets.iter().map(|(id, _)| id.clone()).collect();
    let seen = Seen::default();
    let prefetch = async {
        let members = futures::future::join_all(
            room_ids
                .iter()
                .map(|id| async move { (id.clone(), act::room_access(&svc.docspace, id).await) }),
        );
        let (people, members) = futures::join!(prefetch_people(&svc.docspace, &seen), members);
        (people, members.into_iter().collect::<HashMap<_, _>>())
    };
    let intake = futures::stream::iter(req.rules.iter().cloned())
        .map(|rule| {
            let asana = svc.asana.clone();
            let progress = req.progress.clone();
            let seen = &seen;
            async move {
                let since = if rule.include_completed {
                    None
                } else {
                    Some("now")
                };
                let res = asana
                    .project_tasks(&rule.project, intake::PROJECT_TASK_FIELDS, since)
                    .map_ok(|t| {
                        progress.tasks_read(1);
                        t
                    })
                    .try_filter(|t| {
                        // `completed_since=now` already drops completed tasks; this
                        // guards against a server that ignores it.
                        let keep = rule.include_completed || t.completed != Some(true);
                        async move { keep }
                    })
                    .map_ok(|t| {
                        let a = Assignment::from_task(&t);
                        if let Some(EmailCheck::Valid(email)) =
                            a.assignee.as_ref().map(|x| &x.email)
                        {
                            seen.add(email);
                        }
                        a
                    })
                    .try_collect::<Vec<_>>()
                    .await;
                (rule, res)
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<(Rule, Result<Vec<Assignment>, asana_api::Error>)>>();
    let intake = async {
        let results = intake.await;
        seen.finish();
        results
    };
    let (results, (people, mut room_members)) = futures::join!(intake, prefetch);

    // 3. Merge into one plan per email.
    let mut lines = Vec::new();
    let mut project_errors = Vec::new();
    let mut tasks_seen = 0u64;
    let mut plans: BTreeMap<String, PersonPlan> = BTreeMap::new();
    let mut hidden: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new(); // assignee gid → (first task, tasks)
    let mut order: Vec<(usize, Rule, Vec<Assignment>)> = Vec::new();
    for (rule, res) in results {
        match res {
            Ok(assignments) => {
                let idx = req
                    .rules
                    .iter()
                    .position(|r| r == &rule)
                    .unwrap_or(usize::MAX);
                order.push((idx, rule, assignments));
            }
            Err(e) => project_errors.push(ProjectError {
                project: rule.project.to_string(),
                error: describe_project_error(rule.project.as_str(), &e),
            }),
        }
    }
    order.sort_by_key(|(i, _, _)| *i);
    let mut pending_hidden: Vec<(Rule, Assignment)> = Vec::new();
    for (_, rule, assignments) in &order {
        for a in assignments {
            tasks_seen += 1;
            let Some(assignee) = &a.assignee else {
                lines.push(task_line(a, Outcome::NoAssignee, None, None));
                continue;
            };
            match &assignee.email {
                EmailCheck::Valid(email) => add_to_plan(&mut plans, email, &assignee.gid, rule, a),
                EmailCheck::Hidden => pending_hidden.push((rule.clone(), a.clone())),
                EmailCheck::Invalid(raw) => lines.push(task_line(
                    a,
                    Outcome::Failed,
                    Some(format!("Asana returned {raw:?} as the assignee's email; not an address DocSpace accepts")),
                    None,
                )),
            }
        }
    }
    // Hidden emails: one user lookup per distinct assignee, not per task.
    // A lookup that fails after the client's retries is a failure to report, not a
    // hidden email: the person may well be visible on the next run.
    let mut looked_up: HashMap<String, Result<EmailCheck, String>> = HashMap::new();
    for (rule, a) in pending_hidden {
        let Some(assignee) = &a.assignee else {
            continue;
        };
        let check = match looked_up.get(&assignee.gid) {
            Some(c) => c.clone(),
            None => {
                let c = intake::lookup_email(&svc.asana, &assignee.gid)
                    .await
                    .map_err(|e| format!("Asana: reading the assignee's email failed: {e}"));
                looked_up.insert(assignee.gid.clone(), c.clone());
                c
            }
        };
        match check {
            Ok(EmailCheck::Valid(email)) => {
                add_to_plan(&mut plans, &email, &assignee.gid, &rule, &a)
            }
            Err(error) => lines.push(task_line(&a, Outcome::Failed, Some(error), None)),
            Ok(EmailCheck::Invalid(raw)) => lines.push(task_line(
                &a,
                Outcome::Failed,
                Some(format!("Asana returned {raw:?} as the assignee's email; not an address DocSpace accepts")),
                None,
            )),
            Ok(EmailCheck::Hidden) => {
                let entry = hidden
                    .entry(assignee.gid.clone())
                    .or_insert_with(|| (a.task_gid.clone(), Vec::new()));
                entry.1.push(a.task_gid.clone());
            }
        }
    }
    for (gid, (first, tasks)) in hidden {
        lines.push(SyncLine {
            task: first,
            email: None,
            outcome: Outcome::EmailHidden,
            error: None,
            assignee: Some(gid),
            person_id: None,
            user_type: None,
            tasks: cap(tasks),
            rooms: Vec::new(),
        });
    }

    // 4. Resolve people in DocSpace.
    req.progress.phase("looking people up in DocSpace");
    req.progress.people_total(plans.len() as u64);
    let emails: Vec<String> = plans.keys().cloned().collect();
    let known = resolve_people_from(&svc.docspace, &emails, people).await?;

    // 5. Decide and act.
    let mut person_lines: BTreeMap<String, SyncLine> = BTreeMap::new();
    let mut to_invite: BTreeMap<u8, Vec<String>> = BTreeMap::new();
    let mut ledger = Vec::new();
    for p in plans.values() {
        let decision = plan::decide_portal(known.get(&p.email));
        let mut line = person_line(p, decision.outcome(req.dry_run));
        line.person_id = decision.person_id().map(str::to_string);
        match &decision {
            PortalDecision::Disabled { .. } => line.error = Some(plan::disabled_message(&p.email)),
            PortalDecision::Invite if !req.dry_run => to_invite
                .entry(type_rank(p.user_type))
                .or_default()
                .push(p.email.clone()),
            _ => {}
        }
        if !matches!(decision, PortalDecision::Invite) || req.dry_run {
            ledger.push(ledger_portal(
                req,
                p,
                &line,
                if req.dry_run { "plan" } else { "skip" },
            ));
        }
        person_lines.insert(p.email.clone(), line);
    }
    svc.store.record_many(&ledger).await?;
    req.progress
        .people_done((plans.len() - to_invite.values().map(Vec::len).sum::<usize>()) as u64);

    if !to_invite.is_empty() {
        req.progress.phase("inviting");
    }
    for (rank, emails) in &to_invite {
        let user_type =
            [UserType::User, UserType::RoomAdmin, UserType::DocSpaceAdmin][(*rank - 1) as usize];
        let batches: Vec<Vec<String>> = emails
            .chunks(req.invite_batch.max(1))
            .map(<[String]>::to_vec)
            .collect();
        // Each batch goes to the ledger as soon as it is answered, so a run killed
        // midway leaves a record of every invitation it saw land.
        let mut results = std::pin::pin!(futures::stream::iter(batches)
            .map(|batch| {
                let ds = svc.docspace.clone();
                async move {
                    let r = invite_resilient(&ds, &batch, user_type).await;
                    (batch, r)
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY));
        while let Some((batch, result)) = results.next().await {
            let mut entries = Vec::with_capacity(batch.len());
            for email in &batch {
                let Some(line) = person_lines.get_mut(email) else {
                    continue;
                };
                match result.ids.get(email) {
                    Some(id) => {
                        line.outcome = Outcome::Invited;
                        line.person_id = Some(id.clone());
                    }
                    None => {
                        line.outcome = Outcome::Failed;
                        line.error = Some(
                            result
                                .refused
                                .get(email)
                                .or(result.error.as_ref())
                                .cloned()
                                .unwrap_or_else(|| {
                                    format!("DocSpace accepted the invitation for {email} but does not list the person afterwards")
                                }),
                        );
                    }
                }
                if let Some(p) = plans.get(email) {
                    entries.push(ledger_portal(req, p, line, "invite"));
                }
            }
            svc.store.record_many(&entries).await?;
            req.progress.people_done(batch.len() as u64);
        }
    }

    // Rooms: one membership read per room, then shares in batches.
    let mut rooms_wanted: BTreeMap<String, Vec<(String, Access)>> = BTreeMap::new(); // room → (email, access)
    for p in plans.values() {
        for (room, access) in &p.rooms {
            rooms_wanted
                .entry(room.clone())
                .or_default()
                .push((p.email.clone(), *access));
        }
    }
    if !rooms_wanted.is_empty() {
        req.progress.phase("sharing rooms");
    }
    for (room_id, wanted) in rooms_wanted {
        let members = match room_members.remove(&room_id) {
            Some(m) => m,
            None => act::room_access(&svc.docspace, &room_id).await,
        };
        let members = match members {
            Ok(m) => m,
            Err(e) => {
                for (email, access) in &wanted {
                    if let Some(line) = person_lines.get_mut(email) {
                        line.rooms.push(room_line(
                            &room_id,
                            *access,
                            RoomOutcome::Failed,
                            Some(format!("DocSpace: {e}")),
                        ));
                    }
                }
                continue;
            }
        };
        let mut grants = Vec::new();
        let mut granted_emails = Vec::new();
        for (email, access) in &wanted {
            let Some(line) = person_lines.get_mut(email) else {
                continue;
            };
            if line.outcome == Outcome::Failed {
                line.rooms
                    .push(room_line(&room_id, *access, RoomOutcome::Skipped, None));
                continue;
            }
            let Some(id) = line.person_id.clone() else {
                line.rooms
                    .push(room_line(&room_id, *access, RoomOutcome::DryRun, None));
                continue;
            };
            match plan::decide_room(members.get(&id).copied(), *access) {
                RoomDecision::AlreadyShared => line.rooms.push(room_line(
                    &room_id,
                    *access,
                    RoomOutcome::AlreadyShared,
                    None,
                )),
                RoomDecision::Share if req.dry_run => {
                    line.rooms
                        .push(room_line(&room_id, *access, RoomOutcome::DryRun, None))
                }
                RoomDecision::Share => {
                    grants.push((id, *access));
                    granted_emails.push((email.clone(), *access));
                }
            }
        }
        // One call per SHARE_BATCH people, a few at a time; a failed call fails only its
        // own people.
        let shared: Vec<_> = futures::stream::iter(
            grants
                .chunks(act::SHARE_BATCH)
                .zip(granted_emails.chunks(act::SHARE_BATCH)),
        )
        .map(|(grants, emails)| {
            let room_id = &room_id;
            async move { (emails, act::share(&svc.docspace, room_id, grants).await) }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
        for (emails, res) in shared {
            for (email, access) in emails {
                let access = *access;
                if let Some(line) = person_lines.get_mut(email) {
                    line.rooms.push(match &res {
                        Ok(()) => room_line(&room_id, access, RoomOutcome::Shared, None),
                        Err(e) => room_line(
                            &room_id,
                            access,
                            RoomOutcome::Failed,
                            Some(format!("DocSpace: {e}")),
                        ),
                    });
                }
            }
        }
        let entries: Vec<NewLedgerEntry> = wanted
            .iter()
            .filter_map(|(email, _)| {
                let line = person_lines.get(email)?;
                let r = line.rooms.iter().find(|r| r.id == room_id)?;
                let p = plans.get(email)?;
                Some(ledger_room(req, p, line, r))
            })
            .collect();
        svc.store.record_many(&entries).await?;
    }

    // Task lines for tasks without anybody to invite go to the ledger too.
    let skipped: Vec<NewLedgerEntry> = lines
        .iter()
        .map(|l| NewLedgerEntry {
            run_id: req.run_id.clone(),
            source: req.source.clone(),
            task_gid: Some(l.task.clone()),
            assignee_gid: l.assignee.clone(),
            email: l.email.clone(),
            target: "portal".into(),
            action: "skip".into(),
            outcome: l.outcome.as_str().into(),
            error: l.error.clone(),
            detail: None,
        })
        .collect();
    svc.store.record_many(&skipped).await?;

    lines.extend(person_lines.into_values());
    let a1 = svc.asana.metrics();
    let d1 = svc.docspace.metrics();
    let mut summary = Summary {
        summary: true,
        dry_run: req.dry_run,
        projects: req.rules.len(),
        projects_failed: project_errors.len(),
        tasks: tasks_seen,
        people: plans.len(),
        asana_calls: a1.requests - a0.requests,
        docspace_calls: d1.requests - d0.requests,
        asana_429: a1.rate_limited - a0.rate_limited,
        docspace_429: d1.rate_limited - d0.rate_limited,
        elapsed_ms: started.elapsed().as_millis(),
        ..Summary::default()
    };
    for l in &lines {
        *summary
            .outcomes
            .entry(l.outcome.as_str().to_string())
            .or_default() += 1;
        for r in &l.rooms {
            *summary
                .rooms
                .entry(r.outcome.as_str().to_string())
                .or_default() += 1;
        }
    }
    Ok(SyncReport {
        lines,
        project_errors,
        summary,
    })
}

fn describe_project_error(project: &str, e: &asana_api::Error) -> String {
    match e.status() {
        Some(403) => format!(
            "the token cannot see project {project} (403): share the project with the token's user"
        ),
        Some(404) => format!("Asana has no project {project} visible to this token (404)"),
        _ => format!("Asana: {e}"),
    }
}

fn add_to_plan(
    plans: &mut BTreeMap<String, PersonPlan>,
    email: &str,
    assignee: &str,
    rule: &Rule,
    a: &Assignment,
) {
    let p = plans
        .entry(email.to_string())
        .or_insert_with(|| PersonPlan {
            email: email.to_string(),
            assignee: assignee.to_string(),
            user_type: rule.user_type,
            tasks: Vec::new(),
            rooms: BTreeMap::new(),
        });
    if type_rank(rule.user_type) > type_rank(p.user_type) {
        p.user_type = rule.user_type;
    }
    p.tasks.push((
        a.task_gid.clone(),
        a.task_name.clone(),
        rule.project.to_string(),
    ));
    if let Some(t) = &rule.room {
        let e = p.rooms.entry(t.room_id.clone()).or_insert(t.access);
        if plan::access_rank(t.access) > plan::access_rank(*e) {
            *e = t.access;
        }
    }
}

fn cap(mut v: Vec<String>) -> Vec<String> {
    v.truncate(20);
    v
}

fn task_line(
    a: &Assignment,
    outcome: Outcome,
    error: Option<String>,
    email: Option<String>,
) -> SyncLine {
    SyncLine {
        task: a.task_gid.clone(),
        email,
        outcome,
        error,
        assignee: a.assignee.as_ref().map(|x| x.gid.clone()),
        person_id: None,
        user_type: None,
        tasks: Vec::new(),
        rooms: Vec::new(),
    }
}

fn person_line(p: &PersonPlan, outcome: Outcome) -> SyncLine {
    SyncLine {
        task: p.tasks.first().map(|t| t.0.clone()).unwrap_or_default(),
        email: Some(p.email.clone()),
        outcome,
        error: None,
        assignee: Some(p.assignee.clone()),
        person_id: None,
        user_type: Some(p.user_type.as_str().to_string()),
        tasks: cap(p.tasks.iter().map(|t| t.0.clone()).collect()),
        rooms: Vec::new(),
    }
}

fn room_line(room: &str, access: Access, outcome: RoomOutcome, error: Option<String>) -> RoomLine {
    RoomLine {
        id: room.to_string(),
        access: access.as_str().to_string(),
        outcome,
        error,
    }
}

/// Why this person: the task that grants access, for `history`.
fn because(p: &PersonPlan) -> String {
    let (task, name, project) = &p.tasks[0];
    let name = name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    let more = if p.tasks.len() > 1 {
        format!(" (+{} more)", p.tasks.len() - 1)
    } else {
        String::new()
    };
    format!(
        "assigned task {task}{name} in project {project}{more}; type={}",
        p.user_type as i32
    )
}

fn ledger_portal(
    req: &SyncRequest,
    p: &PersonPlan,
    line: &SyncLine,
    action: &str,
) -> NewLedgerEntry {
    NewLedgerEntry {
        run_id: req.run_id.clone(),
        source: req.source.clone(),
        task_gid: Some(line.task.clone()),
        assignee_gid: Some(p.assignee.clone()),
        email: Some(p.email.clone()),
        target: "portal".into(),
        action: action.into(),
        outcome: line.outcome.as_str().into(),
        error: line.error.clone(),
        detail: Some(because(p)),
    }
}

fn ledger_room(req: &SyncRequest, p: &PersonPlan, line: &SyncLine, r: &RoomLine) -> NewLedgerEntry {
    let action = match r.outcome {
        RoomOutcome::Shared | RoomOutcome::Failed => "share",
        RoomOutcome::DryRun => "plan",
        _ => "skip",
    };
    NewLedgerEntry {
        run_id: req.run_id.clone(),
        source: req.source.clone(),
        task_gid: Some(line.task.clone()),
        assignee_gid: Some(p.assignee.clone()),
        email: Some(p.email.clone()),
        target: format!("room:{}", r.id),
        action: action.into(),
        outcome: r.outcome.as_str().into(),
        error: r.error.clone(),
        detail: Some(format!("access={}; {}", r.access, because(p))),
    }
}

/// What one invitation batch produced: ids of people now on the portal, the addresses
/// DocSpace refused individually, and the error that stopped the rest (if any).
struct BatchResult {
    ids: HashMap<String, String>,
    refused: HashMap<String, String>,
    /// Why the emails neither in `ids` nor in `refused` were not invited.
    error: Option<String>,
}

/// How many times an invitation whose outcome is unknown (a 5xx, a dropped connection,
/// 429s beyond the client's retries) is checked and sent again.
const UNKNOWN_OUTCOME_ROUNDS: usize = 3;

/// Invite a batch; when DocSpace rejects the whole call because of one address (a
/// disabled account, an address it considers invalid), drop that address, remember why,
/// and retry the rest — one bad person must not block forty-nine good ones.
///
/// A write that got no answer (a 5xx from a proxy, a dropped connection) may or may not
/// have landed, and the client does not repeat writes. So we ask DocSpace who is on the
/// portal now and invite again only those still absent: nobody is invited twice, and a
/// flaky network does not leave people out.
async fn invite_resilient(
    ds: &docspace_api::Client,
    batch: &[String],
    user_type: UserType,
) -> BatchResult {
    let mut rest: Vec<String> = batch.to_vec();
    let mut result = BatchResult {
        ids: HashMap::new(),
        refused: HashMap::new(),
        error: None,
    };
    let mut unknown_rounds = 0;
    loop {
        match act::invite_batch(ds, &rest, user_type).await {
            Ok(ids) => {
                result.ids.extend(ids);
                return result;
            }
            Err(e) if e.status() == Some(400) => {
                let msg = e.to_string().to_ascii_lowercase();
                match rest.iter().position(|x| msg.contains(x.as_str())) {
                    Some(i) => {
                        let bad = rest.remove(i);
                        result.refused.insert(bad, format!("DocSpace: {e}"));
                        if rest.is_empty() {
                            return result;
                        }
                    }
                    None => {
                        result.error = Some(format!("DocSpace: {e}"));
                        return result;
                    }
                }
            }
            Err(e) if e.is_retryable() && unknown_rounds < UNKNOWN_OUTCOME_ROUNDS => {
                unknown_rounds += 1;
                tracing::info!(error = %e, batch = rest.len(), round = unknown_rounds,
                    "invitation outcome unknown; looking the batch up before sending again");
                let looked: Result<Vec<(String, Option<Person>)>, docspace_api::Error> =
                    futures::stream::iter(rest.clone())
                        .map(|email| async move {
                            ds.find_person_by_email(&email).await.map(|p| (email, p))
                        })
                        .buffer_unordered(8)
                        .try_collect()
                        .await;
                match looked {
                    Ok(looked) => {
                        for (email, person) in looked {
                            if let Some(p) = person {
                                rest.retain(|x| x != &email);
                                result.ids.insert(email, p.id);
                            }
                        }
                        if rest.is_empty() {
                            return result;
                        }
                    }
                    Err(le) => {
                        result.error = Some(format!(
                            "DocSpace: {e}; checking whether the invitation landed failed too: {le}"
                        ));
                        return result;
                    }
                }
            }
            Err(e) => {
                result.error = Some(format!("DocSpace: {e}"));
                return result;
            }
        }
    }
}

/// Look `emails` up in DocSpace with the fewest calls.
///
/// One lookup costs one call per email; a listing costs one call per 100 people on the
/// portal (all statuses, so pending and disabled people are found too). We read the
/// first listing page to learn the portal's size, then finish whichever way is cheaper
/// for the emails still unknown.
pub async fn resolve_people(
    ds: &docspace_api::Client,
    emails: &[String],
) -> Result<HashMap<String, Person>, CoreError> {
    resolve_people_from(ds, emails, None).await
}

/// What the intake's companion read of the portal's people: the first page with the
/// portal's size, and the other pages when it was sure they would be needed.
struct PeoplePrefetch {
    first: Vec<Person>,
    total: u64,
    rest: Option<Vec<Person>>,
}

/// Distinct valid emails the intake has met so far, shared with [`prefetch_people`].
#[derive(Default)]
struct Seen {
    emails: std::sync::Mutex<std::collections::HashSet<String>>,
    done: std::sync::atomic::AtomicBool,
    changed: tokio::sync::Notify,
}

impl Seen {
    fn add(&self, email: &str) {
        let mut emails = self.emails.lock().unwrap_or_else(|e| e.into_inner());
        if !emails.contains(email) {
            emails.insert(email.to_string());
            drop(emails);
            self.changed.notify_one();
        }
    }

    fn count(&self) -> u64 {
        self.emails.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    fn finish(&self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_one();
    }
}

/// Reads the portal's people while the intake runs: the first page at once; the others
/// once the intake has met more distinct emails than there are remaining pages plus one
/// page's worth (at most that many can be on the first page). Past that point
/// [`resolve_people_from`] is sure to choose the listing, so reading early costs no call
/// it would not make anyway — unless a project fails later in its page chain and its
/// emails drop out. Errors are left for the resolve step to meet again.
async fn prefetch_people(ds: &docspace_api::Client, seen: &Seen) -> Option<PeoplePrefetch> {
    let all = PeopleFilter::default();
    let (first, total) = ds.people_page(&all, 0, PEOPLE_PAGE).await.ok()?;
    let pages = total.div_ceil(PEOPLE_PAGE);
    let remaining = pages.saturating_sub(1);
    let mut out = PeoplePrefetch {
        first,
        total,
        rest: None,
    };
    if remaining == 0 {
        return Some(out);
    }
    loop {
        let changed = seen.changed.notified();
        if seen.count() >= remaining + PEOPLE_PAGE {
            break;
        }
        if seen.done.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(out);
        }
        changed.await;
    }
    let rest: Result<Vec<(Vec<Person>, u64)>, _> = futures::stream::iter(1..pages)
        .map(|i| ds.people_page(&all, i * PEOPLE_PAGE, PEOPLE_PAGE))
        .buffered(4)
        .try_collect()
        .await;
    out.rest = rest
        .ok()
        .map(|pages| pages.into_iter().flat_map(|(p, _)| p).collect());
    Some(out)
}

/// [`resolve_people`], given what [`prefetch_people`] already read.
async fn resolve_people_from(
    ds: &docspace_api::Client,
    emails: &[String],
    prefetched: Option<PeoplePrefetch>,
) -> Result<HashMap<String, Person>, CoreError> {
    let mut found: HashMap<String, Person> = HashMap::new();
    if emails.is_empty() {
        return Ok(found);
    }
    let wanted: BTreeSet<&str> = emails.iter().map(String::as_str).collect();
    let first_page = match prefetched {
        Some(PeoplePrefetch {
            first,
            rest: Some(rest),
            ..
        }) => {
            // The whole portal is already here.
            keep_wanted(&mut found, &wanted, first);
            keep_wanted(&mut found, &wanted, rest);
            return Ok(found);
        }
        Some(PeoplePrefetch { first, total, .. }) => Some((first, total)),
        None => None,
    };
    // No status filter: active, pending and disabled people all count.
    let all = PeopleFilter::default();
    let all = &all;
    // A handful of emails: lookups are cheaper than even one listing page plus lookups,
    // unless that page is already here.
    let first_page = match first_page {
        Some(p) => Some(p),
        None if emails.len() > 2 => Some(ds.people_page(all, 0, PEOPLE_PAGE).await?),
        None => None,
    };
    if let Some((first, total)) = first_page {
        keep_wanted(&mut found, &wanted, first);
        let pages = total.div_ceil(PEOPLE_PAGE);
        let remaining_pages = pages.saturating_sub(1);
        if remaining_pages == 0 {
            // The whole portal was on that page: whoever is not there is absent.
            return Ok(found);
        }
        let unknown = (wanted.len() - found.len()) as u64;
        if remaining_pages <= unknown {
            let pages: Vec<(Vec<Person>, u64)> = futures::stream::iter(1..pages)
                .map(|i| ds.people_page(all, i * PEOPLE_PAGE, PEOPLE_PAGE))
                .buffered(4)
                .try_collect()
                .await?;
            for (page, _) in pages {
                keep_wanted(&mut found, &wanted, page);
            }
            return Ok(found);
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|e| !found.contains_key(*e))
        .collect();
    let looked: Vec<(String, Option<Person>)> = futures::stream::iter(missing)
        .map(|e| async move { ds.find_person_by_email(e).await.map(|p| (e.to_string(), p)) })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    for (e, p) in looked {
        if let Some(p) = p {
            found.insert(e, p);
        }
    }
    Ok(found)
}

fn keep_wanted(found: &mut HashMap<String, Person>, wanted: &BTreeSet<&str>, page: Vec<Person>) {
    for p in page {
        if let Some(e) = p.email.as_deref().map(|e| e.trim().to_ascii_lowercase()) {
            if wanted.contains(e.as_str()) {
                found.insert(e, p);
            }
        }
    }
}
