//! What a reconcile reports — one [`Line`] per person (or per task with nobody to give
//! access to), project errors and a [`Summary`] — and the only place ledger rows are
//! built ([`Ledger`]), so every path records the same actions with the same words.

use std::collections::BTreeMap;

use serde::Serialize;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{Action, Recorded, RoomId, Source, Target};
use crate::outcome::RoomOutcome;
use crate::plan::PersonPlan;
use crate::record::{NewLedgerEntry, Store, StoreError};
use crate::{Outcome, Transience};

/// One output line: the brief's JSON contract (`task`, `email`, `outcome`, `error`) plus
/// the person's id, type, tasks and rooms.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The first task (in intake order) that gives this person access.
    pub task: String,
    /// The assignee's email, when visible.
    pub email: Option<String>,
    /// What happened to portal access.
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The Asana user gid of the assignee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The person's DocSpace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The type they were (or would be) invited as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Every task that grants this person access (at most 20 in output).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// What happened in each room.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<RoomLine>,
    /// Whether the portal failure may pass by itself. Not part of the JSON contract.
    #[serde(skip)]
    pub transience: Transience,
}

/// What happened in one room for one person.
#[derive(Debug, Clone, Serialize)]
pub struct RoomLine {
    /// The room.
    pub id: RoomId,
    /// The level wanted.
    pub access: String,
    /// What happened.
    pub outcome: RoomOutcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the failure may pass by itself. Not part of the JSON contract.
    #[serde(skip)]
    pub transience: Transience,
}

/// Output shows at most this many of a person's tasks (all a plan keeps).
const TASKS_SHOWN: usize = crate::plan::TASKS_KEPT;

impl Line {
    /// A line for a task with nobody to give access to (or whose email is unusable).
    pub fn for_task(task: &str, assignee: Option<&str>, outcome: Outcome) -> Line {
        Line {
            task: task.to_string(),
            email: None,
            outcome,
            error: None,
            assignee: assignee.map(str::to_string),
            person_id: None,
            user_type: None,
            tasks: Vec::new(),
            rooms: Vec::new(),
            transience: Transience::Permanent,
        }
    }

    /// A line for a person about to be decided.
    pub fn for_person(p: &PersonPlan, outcome: Outcome) -> Line {
        Line {
            task: p.first_task().to_string(),
            email: Some(p.email.clone()),
            outcome,
            error: None,
            assignee: Some(p.assignee.clone()),
            person_id: None,
            user_type: Some(p.user_type.as_str().to_string()),
            tasks: p.task_gids.iter().take(TASKS_SHOWN).cloned().collect(),
            rooms: Vec::new(),
            transience: Transience::Permanent,
        }
    }

    /// Marks the portal step failed.
    pub fn fail(&mut self, error: String, transience: Transience) {
        self.outcome = Outcome::Failed;
        self.error = Some(error);
        self.transience = transience;
    }

    /// Whether anything on this line failed.
    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Failed
            || self.rooms.iter().any(|r| r.outcome == RoomOutcome::Failed)
    }

    /// The worst transience of the portal step and the rooms.
    pub fn transience(&self) -> Transience {
        self.rooms
            .iter()
            .fold(self.transience, |t, r| t.worst(r.transience))
    }
}

/// A project whose tasks could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectError {
    /// The project gid.
    pub project: String,
    /// What went wrong, with what to do about it.
    pub error: String,
    /// Whether reading it again later may work. Not part of the JSON contract.
    #[serde(skip)]
    pub transience: Transience,
}

/// The last `--json` object of `sync` (`"summary": true`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Always `true`: tells the summary from person lines.
    pub summary: bool,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Projects in scope.
    pub projects: usize,
    /// Projects that could not be read.
    pub projects_failed: usize,
    /// Tasks read.
    pub tasks: u64,
    /// Distinct people.
    pub people: usize,
    /// Lines per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Room lines per outcome.
    pub rooms: BTreeMap<String, u64>,
    /// Asana requests made.
    pub asana_calls: u64,
    /// DocSpace requests made.
    pub docspace_calls: u64,
    /// Asana 429s met.
    pub asana_429: u64,
    /// DocSpace 429s met.
    pub docspace_429: u64,
    /// Wall time.
    pub elapsed_ms: u128,
    /// For projects: `full` when any project was read whole, `incremental` when every
    /// one was read from its last sync on (`GET /tasks?modified_since=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Projects read incrementally.
    pub projects_incremental: usize,
    /// Revocation lines per outcome (`revoked`, `dry_run`, `pending_removal`, `held_back`,
    /// `removal_cancelled`, `kept`, `already_removed`, `failed`).
    pub revocations: BTreeMap<String, u64>,
    /// Room accesses removed by this run.
    pub revoked: u64,
    /// Due removals held back by `[deprovision] max_revocations` (exit 4).
    pub revocations_held_back: u64,
}

/// One decision about room access this tool granted, once the reason for it went away
/// (or about a member it leaves alone). A `--json` line of its own (`"revocation": true`).
#[derive(Debug, Clone, Serialize)]
pub struct RevocationLine {
    /// Always `true`: tells these lines from person lines.
    pub revocation: bool,
    /// The room.
    pub room: RoomId,
    /// The person's email, when known.
    pub email: Option<String>,
    /// The task whose assignment ended, when known.
    pub task: Option<String>,
    /// What was (or would be) done.
    pub outcome: Recorded,
    /// Why: which task was unassigned, completed or removed and when; or why the access is
    /// left alone.
    pub reason: String,
    /// For a pending removal: when it becomes due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The person's DocSpace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The person's Asana user gid. Not part of the JSON contract.
    #[serde(skip)]
    pub assignee: Option<String>,
    /// Whether a failure may pass by itself. Not part of the JSON contract.
    #[serde(skip)]
    pub transience: Transience,
}

impl RevocationLine {
    /// A line for `email` in `room`.
    pub fn new(room: &RoomId, email: Option<&str>, outcome: Recorded, reason: String) -> Self {
        RevocationLine {
            revocation: true,
            room: room.clone(),
            email: email.map(str::to_string),
            task: None,
            outcome,
            reason,
            due_at: None,
            error: None,
            person_id: None,
            assignee: None,
            transience: Transience::Permanent,
        }
    }

    /// A line about a grant this tool recorded: its person, task and ids.
    pub fn for_grant(g: &crate::record::RoomGrant, outcome: Recorded, reason: String) -> Self {
        let mut l = RevocationLine::new(&g.room, Some(&g.email), outcome, reason);
        l.task = g.task_gid.clone();
        l.person_id = Some(g.person_id.clone());
        l.assignee = g.assignee_gid.clone();
        l
    }

    /// Sets the due time.
    pub fn due(mut self, at: DateTime<Utc>) -> Self {
        self.due_at = Some(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        self
    }

    /// Marks it failed.
    pub fn fail(&mut self, error: String, transience: Transience) {
        self.outcome = Recorded::Failed;
        self.error = Some(error);
        self.transience = transience;
    }
}

/// A room whose removals this run did not compute, and why (an incremental read, a
/// project that failed, a rule of the room outside the run).
#[derive(Debug, Clone, Serialize)]
pub struct SkippedRoom {
    /// The room.
    pub room: RoomId,
    /// Why nothing was computed for it.
    pub reason: String,
}

/// A removal check the service should run at `due` (a pending removal's grace ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalCheck {
    /// The room.
    pub room: RoomId,
    /// When the pending removal is due.
    pub due: DateTime<Utc>,
    /// Which pending removal (`email:since`, in milliseconds): one check per pending
    /// removal, however many runs ask for it (the job's dedupe key), and a new one when it
    /// is noted again after a cancellation.
    pub pending: String,
}

/// Everything one reconcile did.
#[derive(Debug, Clone)]
pub struct Report {
    /// One per person, then one per task with nobody to give access to.
    pub lines: Vec<Line>,
    /// Projects that could not be read.
    pub project_errors: Vec<ProjectError>,
    /// Tasks left alone because they are completed and no rule includes completed tasks.
    pub completed: Vec<String>,
    /// Removals made, due, pending, held back, cancelled, and access left alone.
    pub revocations: Vec<RevocationLine>,
    /// Rooms with `on_unassign = "revoke"` whose removals this run did not compute.
    pub revocations_skipped: Vec<SkippedRoom>,
    /// Removal checks to schedule (the service enqueues them; `sync` leaves them to the
    /// next full sync).
    pub checks: Vec<RemovalCheck>,
    /// Counts and costs.
    pub summary: Summary,
}

/// The exit code of a run held back by `[deprovision] max_revocations`: it removed
/// nothing, finished its other work, and names the people held back.
pub const EXIT_REVOCATIONS_HELD: i32 = 4;

impl Report {
    /// 0 when everything is done or already there; 1 when anything failed; else 4
    /// ([`EXIT_REVOCATIONS_HELD`]) when removals were held back by the threshold.
    pub fn exit_code(&self) -> i32 {
        if self.lines.iter().any(Line::failed)
            || !self.project_errors.is_empty()
            || self
                .revocations
                .iter()
                .any(|r| r.outcome == Recorded::Failed)
        {
            1
        } else if self
            .revocations
            .iter()
            .any(|r| r.outcome == Recorded::HeldBack)
        {
            EXIT_REVOCATIONS_HELD
        } else {
            0
        }
    }

    /// Whether a queue worker should run the same work again later, and why: the worst
    /// transience among the failed lines and project errors, with their first error.
    pub fn retry(&self) -> Option<(Transience, String)> {
        let mut worst = Transience::Permanent;
        let mut first: Option<String> = None;
        for l in self.lines.iter().filter(|l| l.failed()) {
            let t = l.transience();
            if t.is_retryable() {
                worst = worst.worst(t);
                first.get_or_insert_with(|| {
                    l.error
                        .clone()
                        .or_else(|| l.rooms.iter().find_map(|r| r.error.clone()))
                        .unwrap_or_else(|| "temporary failure".into())
                });
            }
        }
        for e in &self.project_errors {
            if e.transience.is_retryable() {
                worst = worst.worst(e.transience);
                first.get_or_insert_with(|| e.error.clone());
            }
        }
        for r in &self.revocations {
            if r.outcome == Recorded::Failed && r.transience.is_retryable() {
                worst = worst.worst(r.transience);
                first.get_or_insert_with(|| r.error.clone().unwrap_or_else(|| r.reason.clone()));
            }
        }
        first.map(|e| (worst, e))
    }
}

/// Builds and writes the ledger rows of one run: the only place a [`NewLedgerEntry`] for
/// a person or task is made.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Groups the rows of one run.
    pub run_id: String,
    /// Who asked.
    pub source: Source,
}

impl Ledger {
    fn row(
        &self,
        line: &Line,
        target: Target,
        action: Action,
        outcome: Recorded,
        error: Option<String>,
        detail: Option<String>,
    ) -> NewLedgerEntry {
        NewLedgerEntry {
            run_id: self.run_id.clone(),
            source: self.source,
            task_gid: Some(line.task.clone()).filter(|t| !t.is_empty()),
            assignee_gid: line.assignee.clone(),
            email: line.email.clone(),
            target,
            action,
            outcome,
            error,
            detail,
        }
    }

    /// The portal row of a person. `sent` says whether an invitation was sent (or tried).
    pub fn portal(&self, plan: &PersonPlan, line: &Line, sent: bool) -> NewLedgerEntry {
        let action = match line.outcome {
            Outcome::DryRun => Action::Plan,
            _ if sent => Action::Invite,
            _ => Action::Skip,
        };
        self.row(
            line,
            Target::Portal,
            action,
            line.outcome.into(),
            line.error.clone(),
            Some(plan.because()),
        )
    }

    /// The row of one room for one person.
    pub fn room(&self, plan: &PersonPlan, line: &Line, room: &RoomLine) -> NewLedgerEntry {
        let action = match room.outcome {
            RoomOutcome::Shared | RoomOutcome::Failed => Action::Share,
            RoomOutcome::DryRun => Action::Plan,
            RoomOutcome::AlreadyShared | RoomOutcome::Skipped => Action::Skip,
        };
        let level = room
            .access
            .parse::<docspace_api::Access>()
            .map_or(-1, |a| a.as_i32());
        self.row(
            line,
            Target::Room(room.id.clone()),
            action,
            room.outcome.into(),
            room.error.clone(),
            Some(format!(
                "access={} ({level}); {}",
                room.access,
                plan.because()
            )),
        )
    }

    /// The row of a task with nobody to give access to.
    pub fn task(&self, line: &Line, detail: Option<&str>) -> NewLedgerEntry {
        self.row(
            line,
            Target::Portal,
            Action::Skip,
            line.outcome.into(),
            line.error.clone(),
            detail.map(str::to_string),
        )
    }

    /// The row of a task left alone because it is completed.
    pub fn completed(&self, task: &str) -> NewLedgerEntry {
        let line = Line::for_task(task, None, Outcome::NoAssignee);
        self.row(
            &line,
            Target::Portal,
            Action::Skip,
            Recorded::Completed,
            None,
            Some("task is completed and its rule has include_completed = false".into()),
        )
    }

    /// The row of one revocation decision: target the room, action `revoke` (`plan` in a
    /// dry run), the outcome, and the why.
    pub fn revocation(&self, r: &RevocationLine) -> NewLedgerEntry {
        let action = match r.outcome {
            Recorded::DryRun => Action::Plan,
            _ => Action::Revoke,
        };
        let mut detail = r.reason.clone();
        if let Some(due) = &r.due_at {
            detail.push_str(&format!("; due {due}"));
        }
        NewLedgerEntry {
            run_id: self.run_id.clone(),
            source: self.source,
            task_gid: r.task.clone(),
            assignee_gid: r.assignee.clone(),
            email: r.email.clone(),
            target: Target::Room(r.room.clone()),
            action,
            outcome: r.outcome,
            error: r.error.clone(),
            detail: Some(detail),
        }
    }

    /// Writes rows in one transaction (one row needs none: a single insert is atomic).
    pub async fn write(
        &self,
        store: &dyn Store,
        rows: &[NewLedgerEntry],
    ) -> Result<(), StoreError> {
        match rows {
            [] => Ok(()),
            [row] => store.record(row).await.map(|_| ()),
            rows => store.record_many(rows).await,
        }
    }
}
