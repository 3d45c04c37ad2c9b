//! `invite --task GID`: the seed script's flow, done right.
//!
//! Read the assignee → look the person up → invite only if absent → confirm by lookup →
//! optionally share a room by the resolved id → write every decision to the ledger.
//! Every step that can be checked before a write is checked first, so a bad room or
//! access level never leaves a half-done invitation behind.

use asana_api::Gid;
use docspace_api::UserType;
use serde::Serialize;

use crate::config::RoomTarget;
use crate::intake::{self, EmailCheck};
use crate::outcome::RoomOutcome;
use crate::plan::{self, PortalDecision, RoomDecision};
use crate::record::NewLedgerEntry;
use crate::{act, CoreError, Outcome, Services};

#[derive(Debug, Clone)]
pub struct InviteRequest {
    pub task: String,
    pub user_type: UserType,
    pub room: Option<RoomTarget>,
    pub dry_run: bool,
    /// Groups ledger rows of one command run.
    pub run_id: String,
    /// `invite`, `webhook`, `watch`…: who asked, for the ledger.
    pub source: String,
}

/// One line of output: the brief's JSON contract (`task`, `email`, `outcome`, `error`)
/// plus what happened to the room, if any.
#[derive(Debug, Clone, Serialize)]
pub struct InviteReport {
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
    pub room: Option<RoomReport>,
    /// The failure (portal or room) may go away by itself — a 429, a 5xx, a dropped
    /// connection or a rejected credential that outlived the client's retries — so a queue
    /// worker should try the task again later. A permanent failure (a disabled account, an
    /// address DocSpace refuses) is `false`: retrying would only repeat it. Not part of the
    /// JSON contract.
    #[serde(skip)]
    pub transient: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomReport {
    pub id: String,
    pub access: String,
    pub outcome: RoomOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// As [`InviteReport::transient`], for the room share. Not part of the JSON contract.
    #[serde(skip)]
    pub transient: bool,
}

impl InviteReport {
    fn new(task: &str, outcome: Outcome) -> Self {
        InviteReport {
            task: task.to_string(),
            email: None,
            outcome,
            error: None,
            assignee: None,
            person_id: None,
            room: None,
            transient: false,
        }
    }

    /// The documented exit code for this single-task answer.
    pub fn exit_code(&self) -> i32 {
        let room_failed = self
            .room
            .as_ref()
            .is_some_and(|r| r.outcome == RoomOutcome::Failed);
        match self.outcome {
            Outcome::Failed => 1,
            o if o.is_nothing_to_do() => 3,
            _ if room_failed => 1,
            _ => 0,
        }
    }
}

/// Check a room target before any write: the room exists and its type allows the level.
pub async fn check_room(svc: &Services, room: &RoomTarget) -> Result<(), CoreError> {
    let info = svc
        .docspace
        .get_room(&room.room_id)
        .await
        .map_err(|e| match e.status() {
            Some(404) => CoreError::Input(format!(
                "DocSpace has no room {} (or this key cannot see it)",
                room.room_id
            )),
            _ => CoreError::DocSpace(e),
        })?;
    if let Some(t) = info.room_type {
        if !t.allows(room.access) {
            return Err(CoreError::Input(format!(
                "room {} is a {t:?} room, which does not allow access {:?}; pick one of: {}",
                room.room_id,
                room.access,
                docspace_api::Access::ALL
                    .iter()
                    .filter(|a| t.allows(**a))
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// How a caller other than `invite --task` runs the same flow.
///
/// The webhook worker runs it once per event, so it checks each rule's room once (and
/// caches the answer) instead of once per task, and it honours the rule's
/// `include_completed = false`, which an explicit `invite --task` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteOptions {
    /// Check the room (exists, its type allows the level) before reading the task.
    pub check_room: bool,
    /// Leave a completed task alone: read `completed` with the task (same request) and
    /// stop with [`TaskRun::SkippedCompleted`] when it is set.
    pub skip_completed: bool,
}

impl Default for InviteOptions {
    /// What `invite --task` does: check the room, act on completed tasks too.
    fn default() -> Self {
        InviteOptions {
            check_room: true,
            skip_completed: false,
        }
    }
}

/// The answer of [`run_with`].
#[derive(Debug, Clone)]
pub enum TaskRun {
    /// The flow ran; the report says what happened.
    Report(Box<InviteReport>),
    /// The task is completed and [`InviteOptions::skip_completed`] was set: nothing was
    /// looked up or sent (a ledger row with action `skip`, outcome `completed` says so).
    SkippedCompleted,
}

/// Run the whole flow for one task. `Err` only for problems that stop before any
/// per-person answer exists (bad gid, unknown task, bad room); everything after is a report.
pub async fn run(svc: &Services, req: &InviteRequest) -> Result<InviteReport, CoreError> {
    match run_with(svc, req, InviteOptions::default()).await? {
        TaskRun::Report(report) => Ok(*report),
        // Only `skip_completed` leads here, and the default options do not set it.
        TaskRun::SkippedCompleted => Err(CoreError::Input(format!(
            "task {} is completed; nothing to do",
            req.task
        ))),
    }
}

/// [`run`] with [`InviteOptions`]: the same reads, decisions, writes and ledger rows.
pub async fn run_with(
    svc: &Services,
    req: &InviteRequest,
    opts: InviteOptions,
) -> Result<TaskRun, CoreError> {
    let gid = Gid::parse(&req.task).map_err(|e| CoreError::Input(e.to_string()))?;
    if let (true, Some(room)) = (opts.check_room, &req.room) {
        check_room(svc, room).await?;
    }
    let fields = if opts.skip_completed {
        intake::PROJECT_TASK_FIELDS
    } else {
        intake::TASK_FIELDS
    };
    let (assignment, task) = intake::read_task_fields(&svc.asana, &gid, fields)
        .await
        .map_err(|e| match e.status() {
            Some(404) => CoreError::Input(format!(
                "Asana has no task {gid} visible to this token (check the gid and that the token's user can see the project)"
            )),
            _ => CoreError::Asana(e),
        })?;
    if opts.skip_completed && task.completed == Some(true) {
        svc.store
            .record(&NewLedgerEntry {
                run_id: req.run_id.clone(),
                source: req.source.clone(),
                task_gid: Some(gid.to_string()),
                assignee_gid: assignment.assignee.as_ref().map(|a| a.gid.clone()),
                email: None,
                target: "portal".into(),
                action: "skip".into(),
                outcome: "completed".into(),
                error: None,
                detail: Some("task is completed and its rule has include_completed = false".into()),
            })
            .await?;
        return Ok(TaskRun::SkippedCompleted);
    }
    let report = run_assignment(svc, req, &gid, assignment).await?;
    Ok(TaskRun::Report(Box::new(report)))
}

/// Everything after the task was read: portal, then room.
async fn run_assignment(
    svc: &Services,
    req: &InviteRequest,
    gid: &Gid,
    assignment: intake::Assignment,
) -> Result<InviteReport, CoreError> {
    let mut report = InviteReport::new(gid.as_str(), Outcome::Failed);
    let Some(assignee) = assignment.assignee else {
        report.outcome = Outcome::NoAssignee;
        record(
            svc,
            req,
            &report,
            "skip",
            "portal",
            Some("task has no assignee"),
        )
        .await?;
        return Ok(report);
    };
    report.assignee = Some(assignee.gid.clone());
    let email = match assignee.email {
        EmailCheck::Valid(e) => e,
        EmailCheck::Hidden => {
            report.outcome = Outcome::EmailHidden;
            record(
                svc,
                req,
                &report,
                "skip",
                "portal",
                Some("Asana does not show this assignee's email to the token"),
            )
            .await?;
            return Ok(report);
        }
        EmailCheck::Invalid(raw) => {
            report.outcome = Outcome::Failed;
            report.error = Some(format!(
                "Asana returned {raw:?} as the assignee's email, which is not an address DocSpace accepts; nothing was sent"
            ));
            record(svc, req, &report, "skip", "portal", None).await?;
            return Ok(report);
        }
    };
    report.email = Some(email.clone());

    // Portal.
    let existing = match svc.docspace.find_person_by_email(&email).await {
        Ok(p) => p,
        Err(e) => return fail(svc, req, report, "invite", e).await,
    };
    let decision = plan::decide_portal(existing.as_ref());
    report.outcome = decision.outcome(req.dry_run);
    report.person_id = decision.person_id().map(str::to_string);
    match &decision {
        PortalDecision::Disabled { .. } => {
            report.error = Some(plan::disabled_message(&email));
            record(svc, req, &report, "skip", "portal", None).await?;
            return Ok(report);
        }
        PortalDecision::Invite if !req.dry_run => {
            match act::invite_one(&svc.docspace, &email, req.user_type).await {
                Ok(Some(id)) => report.person_id = Some(id),
                Ok(None) => {
                    report.outcome = Outcome::Failed;
                    // Possibly not visible yet: a later attempt looks the person up again
                    // (and re-inviting a pending address is a no-op in DocSpace).
                    report.transient = true;
                    report.error = Some(format!(
                        "DocSpace accepted the invitation for {email} but does not list the person afterwards"
                    ));
                }
                Err(e) => return fail(svc, req, report, "invite", e).await,
            }
            record(
                svc,
                req,
                &report,
                "invite",
                "portal",
                Some(&format!("type={}", req.user_type as i32)),
            )
            .await?;
        }
        _ => {
            let action = if matches!(decision, PortalDecision::Invite) {
                "plan"
            } else {
                "skip"
            };
            record(svc, req, &report, action, "portal", None).await?;
        }
    }
    if report.outcome == Outcome::Failed {
        return Ok(report);
    }

    // Room.
    if let Some(room) = &req.room {
        let rr = share_room(svc, req, &report, room).await?;
        report.transient |= rr.transient;
        report.room = Some(rr);
    }
    Ok(report)
}

async fn share_room(
    svc: &Services,
    req: &InviteRequest,
    report: &InviteReport,
    room: &RoomTarget,
) -> Result<RoomReport, CoreError> {
    let target = format!("room:{}", room.room_id);
    let mut rr = RoomReport {
        id: room.room_id.clone(),
        access: room.access.as_str().to_string(),
        outcome: RoomOutcome::DryRun,
        error: None,
        transient: false,
    };
    let Some(person_id) = report.person_id.clone() else {
        // Dry run of a person not yet on the portal: the share would follow the invite.
        record_room(svc, req, report, &rr, "plan", &target).await?;
        return Ok(rr);
    };
    let current = match act::room_access(&svc.docspace, &room.room_id).await {
        Ok(m) => m.get(&person_id).copied(),
        Err(e) => {
            rr.outcome = RoomOutcome::Failed;
            rr.transient = is_transient(&e);
            rr.error = Some(format!("DocSpace: {e}"));
            record_room(svc, req, report, &rr, "share", &target).await?;
            return Ok(rr);
        }
    };
    match plan::decide_room(current, room.access) {
        RoomDecision::AlreadyShared => rr.outcome = RoomOutcome::AlreadyShared,
        RoomDecision::Share if req.dry_run => rr.outcome = RoomOutcome::DryRun,
        RoomDecision::Share => {
            match act::share(&svc.docspace, &room.room_id, &[(person_id, room.access)]).await {
                Ok(()) => rr.outcome = RoomOutcome::Shared,
                Err(e) => {
                    rr.outcome = RoomOutcome::Failed;
                    rr.transient = is_transient(&e);
                    rr.error = Some(format!("DocSpace: {e}"));
                }
            }
        }
    }
    let action = if rr.outcome == RoomOutcome::AlreadyShared {
        "skip"
    } else {
        "share"
    };
    record_room(svc, req, report, &rr, action, &target).await?;
    Ok(rr)
}

async fn fail(
    svc: &Services,
    req: &InviteRequest,
    mut report: InviteReport,
    action: &str,
    e: docspace_api::Error,
) -> Result<InviteReport, CoreError> {
    report.outcome = Outcome::Failed;
    report.transient = is_transient(&e);
    report.error = Some(format!("DocSpace: {e}"));
    record(svc, req, &report, action, "portal", None).await?;
    // A rejected key is a configuration problem (exit 2), not a per-person outcome; the
    // queue worker retries it like any transient failure.
    if e.status() == Some(401) {
        return Err(CoreError::DocSpace(e));
    }
    Ok(report)
}

/// Worth another try later: what the client already retries (429, 5xx, transport) plus a
/// 401, which means the key was revoked or rotated: an operator fixes that, and the work
/// must still be there (in the queue, then as a dead letter) when they have.
pub fn is_transient(e: &docspace_api::Error) -> bool {
    e.is_retryable() || e.status() == Some(401)
}

async fn record(
    svc: &Services,
    req: &InviteRequest,
    report: &InviteReport,
    action: &str,
    target: &str,
    detail: Option<&str>,
) -> Result<(), CoreError> {
    svc.store
        .record(&NewLedgerEntry {
            run_id: req.run_id.clone(),
            source: req.source.clone(),
            task_gid: Some(report.task.clone()),
            assignee_gid: report.assignee.clone(),
            email: report.email.clone(),
            target: target.to_string(),
            action: action.to_string(),
            outcome: report.outcome.as_str().to_string(),
            error: report.error.clone(),
            detail: detail.map(str::to_string),
        })
        .await?;
    Ok(())
}

async fn record_room(
    svc: &Services,
    req: &InviteRequest,
    report: &InviteReport,
    rr: &RoomReport,
    action: &str,
    target: &str,
) -> Result<(), CoreError> {
    svc.store
        .record(&NewLedgerEntry {
            run_id: req.run_id.clone(),
            source: req.source.clone(),
            task_gid: Some(report.task.clone()),
            assignee_gid: report.assignee.clone(),
            email: report.email.clone(),
            target: target.to_string(),
            action: action.to_string(),
            outcome: rr.outcome.as_str().to_string(),
            error: rr.error.clone(),
            detail: Some(format!("access={} ({})", rr.access, access_int(&rr.access))),
        })
        .await?;
    Ok(())
}

fn access_int(name: &str) -> i32 {
    name.parse::<docspace_api::Access>()
        .map(|a| a as i32)
        .unwrap_or(-1)
}
