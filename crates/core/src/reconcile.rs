//! The one reconcile: `invite --task`, `sync`, the webhook task job, the watch event job
//! and the Events API resync all call [`run`], with a [`Scope`] of one task or of whole
//! projects.
//!
//! 1. **check** every room target (exists, type allows the level) — before any write;
//! 2. **intake** the scope's tasks from Asana ([`crate::intake`]); for projects, the
//!    portal's people and the rooms' members are read alongside the page chain;
//! 3. **merge** assignees into one plan per email ([`crate::plan::merge`]): strongest
//!    user type, strongest level per room; hidden emails looked up once per assignee;
//! 4. **claim** the people in the state store, so that however many workers and processes
//!    overlap, one of them acts for a person at a time; the others wait, then read
//!    DocSpace again instead of trusting what they read before;
//! 5. **act** ([`crate::act`]): resolve the people in the fewest calls, invite the absent
//!    in batches, share each room with those below their level; every outcome goes to the
//!    ledger ([`Ledger`]) as it happens.
//!
//! Re-running is always safe: DocSpace itself is the source of truth for "already there",
//! so a run killed at any point is finished by the next one, not repeated. The future is
//! `Send` and holds nothing that outlives it but claims, which a guard gives back when it
//! is dropped (a job timeout, a shutdown) and which expire if the process dies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asana_api::{Gid, TaskList};
use chrono::{DateTime, SecondsFormat, Utc};
use docspace_api::{Access, UserType};
use futures::{StreamExt, TryStreamExt};

use crate::act::{self, invite::BatchResult, resolve::Prefetched, share::Members};
use crate::config::{Ask, Revocation, RoomTarget, Rule, SyncSettings};
use crate::domain::{Recorded, RoomId, Source, Target};
use crate::intake::{self, Assignment, EmailCheck};
use crate::outcome::RoomOutcome;
use crate::plan::{self, PersonPlan, PortalDecision, RoomDecision, TaskRef};
use crate::record::{ClaimEpoch, Holder, ReplicaId, RoomGrant, Store};
use crate::report::{
    Ledger, Line, ProjectError, RemovalCheck, Report, RevocationLine, RoomLine, SkippedRoom,
    Summary,
};
use crate::{CoreError, Outcome, Services, Transience};

/// What to reconcile.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One task, under the asks that apply to it: `invite --task` passes one built from its
    /// flags; a webhook or watch job passes its project's rules'.
    Task {
        /// The task.
        task: Gid,
        /// The project the asks come from, for the ledger's why.
        project: Option<Gid>,
        /// What each applicable rule asks.
        asks: Vec<Ask>,
    },
    /// Whole projects under their rules (`sync`, a resync).
    Projects(Vec<Rule>),
}

impl Scope {
    /// Every distinct room target of the scope.
    fn room_targets(&self) -> Vec<RoomTarget> {
        let rooms: Vec<&RoomTarget> = match self {
            Scope::Task { asks, .. } => asks.iter().filter_map(|a| a.room.as_ref()).collect(),
            Scope::Projects(rules) => rules.iter().filter_map(|r| r.room.as_ref()).collect(),
        };
        let mut out: Vec<RoomTarget> = Vec::new();
        for t in rooms {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// Hooks for a progress display; the binary draws bars only on a terminal.
pub trait Progress: Send + Sync {
    /// A new phase started.
    fn phase(&self, _name: &str) {}
    /// `n` more tasks were read.
    fn tasks_read(&self, _n: u64) {}
    /// How many people there are to settle.
    fn people_total(&self, _n: u64) {}
    /// `n` more people were settled.
    fn people_done(&self, _n: u64) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// How to run.
#[derive(Clone)]
pub struct Options {
    /// Decide and report, send nothing.
    pub dry_run: bool,
    /// Groups the ledger rows of this run.
    pub run_id: String,
    /// Who asked, for the ledger.
    pub source: Source,
    /// Batching and claim waits.
    pub settings: SyncSettings,
    /// Progress display.
    pub progress: Arc<dyn Progress>,
    /// For [`Scope::Projects`]: read only the tasks modified since the last complete,
    /// successful sync of a rule, when that is allowed (same rule, last full read within
    /// `settings.full_every`). `false` (the default, `sync --full`, every service job):
    /// read every task.
    pub incremental: bool,
    /// The revocable rooms of the whole configuration, the threshold and an admin's
    /// `--allow-revocations` (default: no room, nothing is ever removed).
    pub revocation: Revocation,
    /// For a [`Scope::Task`] from a webhook or watch event: what happened and when, so a
    /// removal's grace runs from the event and its why names it.
    pub event: Option<TaskEvent>,
    /// The registered `serve`/`watch` process this run works for (`None`, the default: a
    /// CLI run). Its person claims are tied to that replica's registry row, so if the
    /// process dies they are free as soon as the row expires, together with its jobs,
    /// instead of after [`CLAIM_LEASE`].
    pub replica: Option<ReplicaId>,
}

/// The event a task job comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// Asana's `created_at` of the event.
    pub at: Option<DateTime<Utc>>,
    /// `changed:assignee`, `changed:completed`, `removed`, `deleted`, …
    pub what: String,
}

impl TaskEvent {
    /// The task is gone from the project (removed from it, or deleted): none of the
    /// project's rules apply to it any more, and there is nothing to read.
    pub fn task_left_project(&self) -> bool {
        self.what == "removed" || self.what == "deleted"
    }
}

impl Options {
    /// Real (not dry) run options with defaults and no progress display.
    pub fn new(run_id: impl Into<String>, source: Source) -> Options {
        Options {
            dry_run: false,
            run_id: run_id.into(),
            source,
            settings: SyncSettings::default(),
            progress: Arc::new(NoProgress),
            incremental: false,
            revocation: Revocation::default(),
            event: None,
            replica: None,
        }
    }

    /// A fresh claim holder for this run: tied to [`Options::replica`] when there is one.
    fn holder(&self) -> Holder {
        match &self.replica {
            Some(r) => Holder::for_replica(r),
            None => Holder::new(),
        }
    }
}

/// How one rule's project was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Every task (sections paged in parallel).
    Full,
    /// Only tasks modified since this instant (the last sync's start minus
    /// [`MODIFIED_SINCE_MARGIN`]).
    Since(DateTime<Utc>),
}

/// Taken off the last sync's start before asking Asana for modified tasks: our clock and
/// Asana's may disagree by this much without a change being missed.
pub const MODIFIED_SINCE_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Sections of one project paged at once (the client's read semaphore, 50, caps all
/// reads together).
const SECTION_CONCURRENCY: usize = 16;

/// The key a rule's sync mark is kept under: its project and room, which
/// [`crate::config::validate_rules`] keeps unique.
pub fn rule_key(rule: &Rule) -> String {
    match &rule.room {
        Some(t) => format!("{}:{}", rule.project, t.room),
        None => format!("{}:-", rule.project),
    }
}

/// Everything a rule asks, as text: another fingerprint means the rule changed, and the
/// next sync of its project is full.
pub fn rule_fingerprint(rule: &Rule) -> String {
    let room = rule
        .room
        .as_ref()
        .map(|t| format!("{}@{}", t.room, t.access as i32))
        .unwrap_or_else(|| "-".into());
    format!(
        "v1;project={};room={room};user_type={};include_completed={}",
        rule.project, rule.user_type as i32, rule.include_completed
    )
}

/// How long a person's claim holds without a heartbeat (renewed every third of it while
/// the run acts). A CLI run (`sync`, `invite`) that dies — SIGKILL, a lost machine — keeps
/// the people it was working on from others for at most this long. A run of `serve` or
/// `watch` ([`Options::replica`]) loses them sooner: its claims are free once its process's
/// registry row expires (`bridge_service::REPLICA_TTL`, 6 s), the moment its jobs are taken
/// over too, so a restarted or surviving replica acts at once instead of waiting out this
/// lease; the lease is then only the backstop for a replica without a registry row.
pub const CLAIM_LEASE: Duration = Duration::from_secs(10);

/// Invitation batches (and room share calls) in flight at once. The DocSpace client's
/// write semaphore (`max_concurrent_writes`, 15 by default) caps all writes together.
const WRITE_CONCURRENCY: usize = 8;

/// Projects read at once. Asana's 50 reads in flight per token (the client's read
/// semaphore) is the real bound; this one only caps how many projects' half-merged plans
/// are held at a time (40 projects × 2,500 tasks: 4 → 3.3 s, 16 → 2.7 s, peak RSS 49 →
/// 51 MiB).
const PROJECT_CONCURRENCY: usize = 16;

/// The claim key of a person.
fn person_key(email: &str) -> String {
    format!("person:{email}")
}

/// A task whose assignee's email the read did not show, kept until the intake is over:
/// then each such assignee is looked up once (the only merge step that calls Asana).
struct Hidden {
    assignment: Assignment,
    project: Option<Gid>,
    ask: Ask,
}

/// What the intake gathered.
#[derive(Default)]
struct Gathered {
    merged: Merger,
    /// How each rule's project was read, in rule order (projects scope only).
    reads: Vec<(Rule, ReadMode)>,
    project_errors: Vec<ProjectError>,
    completed: Vec<String>,
    prefetched: Option<Prefetched>,
    members: HashMap<RoomId, Result<Members, docspace_api::Error>>,
}

/// Everything a reconcile step needs.
struct Ctx<'a> {
    svc: &'a Services,
    opts: &'a Options,
    ledger: Ledger,
    /// Revocation lines written while acting for people (cancelled pending removals).
    revocations: Mutex<Vec<RevocationLine>>,
    /// For a projects scope with revocable rooms: the tasks their grants name, whose
    /// assignee now the why of a removal tells (`None`: keep every task's, one-task scopes).
    grant_tasks: Option<Arc<HashSet<String>>>,
}

/// Runs the reconcile for `scope`. `Err` only for problems that stop it before any
/// per-person answer exists (a bad room, an unknown task, the state database, a rejected
/// credential); everything after is in the [`Report`].
pub async fn run(svc: &Services, scope: &Scope, opts: &Options) -> Result<Report, CoreError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let a0 = svc.asana.metrics();
    let d0 = svc.docspace.metrics();
    let mut cx = Ctx {
        svc,
        opts,
        ledger: Ledger {
            run_id: opts.run_id.clone(),
            source: opts.source,
        },
        revocations: Mutex::new(Vec::new()),
        grant_tasks: None,
    };

    // 1. Rooms: a bad target stops the run before anything is written. A task scope checks
    //    them before it reads the task; a project sync checks them while its first pages
    //    are read (below), since the check is a round trip on the critical path of every
    //    sync and, if it fails, the reads cost at most a first page and a sections call per
    //    rule.
    opts.progress.phase("checking rooms");
    let targets = scope.room_targets();
    let check_rooms = futures::future::try_join_all(
        targets
            .iter()
            .map(|target| act::rooms::check(&svc.docspace, &svc.rooms, target)),
    );
    let check_rooms = async { check_rooms.await.map(|_| ()) };
    let check_rooms = match scope {
        Scope::Task { .. } => {
            check_rooms.await?;
            None
        }
        Scope::Projects(_) => Some(check_rooms),
    };

    // 2. The claim history's present, then the intake: whatever DocSpace says from here on
    //    is judged fresh or stale against it.
    //    A task scope reads nothing of DocSpace before its claims (no prefetch), so every
    //    reading is fresh and it skips the epoch read.
    let epoch = match scope {
        Scope::Projects(_) if !opts.dry_run => svc.store.claim_epoch().await?,
        _ => ClaimEpoch::default(),
    };
    // The tasks the grants of the revocable rooms name: the merge keeps who those tasks
    // assign now (for the why of a removal), not every task's assignee.
    if let Scope::Projects(rules) = scope {
        if opts.revocation.is_on() {
            let mut tasks = HashSet::new();
            for room in opts.revocation.rooms.keys() {
                if rules
                    .iter()
                    .any(|r| r.room.as_ref().is_some_and(|t| &t.room == room))
                {
                    tasks.extend(
                        svc.store
                            .room_grants(room)
                            .await?
                            .into_iter()
                            .filter_map(|g| g.task_gid),
                    );
                }
            }
            cx.grant_tasks = Some(Arc::new(tasks));
        }
    }
    let cx = cx;
    // Who the ledger says this task was for, read before this run writes its own rows: if
    // that changes, the previous person may have lost their last reason for a room.
    let previous = match scope {
        Scope::Task { task, .. } if opts.revocation.is_on() && !opts.dry_run => {
            previous_assignee(&cx, task).await?
        }
        _ => None,
    };
    let mut gathered = match check_rooms {
        Some(check_rooms) => {
            // Nothing is written until both are done; a failed check drops the reads.
            futures::try_join!(check_rooms, gather(&cx, scope, started_at))?.1
        }
        None => gather(&cx, scope, started_at).await?,
    };
    let reads = std::mem::take(&mut gathered.reads);
    for task in &gathered.completed {
        cx.ledger
            .write(svc.store.as_ref(), &[cx.ledger.completed(task)])
            .await?;
    }

    // 3. Merge into one plan per email; record the tasks with nobody to give access to.
    let tasks_read = gathered.merged.tasks;
    let watch = std::mem::take(&mut gathered.merged.watch);
    let (plans, mut lines) = std::mem::take(&mut gathered.merged).finish(&cx).await;
    let rows: Vec<_> = lines
        .iter()
        .map(|l| cx.ledger.task(l, task_line_detail(l.outcome)))
        .collect();
    cx.ledger.write(svc.store.as_ref(), &rows).await?;
    let watched = watch_rooms(watch, &plans);

    // 4 and 5. Claim, resolve, decide, act.
    opts.progress.phase("looking people up in DocSpace");
    opts.progress.people_total(plans.len() as u64);
    let people = plans.len();
    let mut person_lines =
        settle_people(&cx, plans, gathered.prefetched, gathered.members, epoch).await?;
    person_lines.sort_by(|a, b| a.email.cmp(&b.email));
    lines.extend(person_lines);

    // 6. Room access this tool granted whose reason went away: planned, then acted on, like
    //    every other access decision (plan::decide_removal, act::revoke, the ledger).
    let mut revoked = match scope {
        Scope::Projects(_) => {
            revoke_rooms(&cx, &reads, &gathered.project_errors, &watched, Utc::now()).await?
        }
        Scope::Task { task, asks, .. } => {
            after_task(&cx, task, asks, previous, &watched, Utc::now()).await?
        }
    };
    let cancelled = std::mem::take(&mut *cx.revocations.lock().unwrap_or_else(|e| e.into_inner()));
    revoked.lines.splice(0..0, cancelled);

    // 7. Remember what a complete, successful run read, for the next incremental one.
    if !opts.dry_run {
        record_marks(&cx, &reads, &lines, &gathered.project_errors, started_at).await;
    }

    let a1 = svc.asana.metrics();
    let d1 = svc.docspace.metrics();
    let mut summary = Summary {
        summary: true,
        dry_run: opts.dry_run,
        projects: match scope {
            Scope::Task { .. } => 0,
            Scope::Projects(rules) => rules.len(),
        },
        projects_failed: gathered.project_errors.len(),
        tasks: tasks_read,
        people,
        asana_calls: a1.requests - a0.requests,
        docspace_calls: d1.requests - d0.requests,
        asana_429: a1.rate_limited - a0.rate_limited,
        docspace_429: d1.rate_limited - d0.rate_limited,
        elapsed_ms: started.elapsed().as_millis(),
        mode: match scope {
            Scope::Task { .. } => None,
            Scope::Projects(_) if reads.iter().all(|(_, m)| *m != ReadMode::Full) => {
                Some("incremental")
            }
            Scope::Projects(_) => Some("full"),
        },
        projects_incremental: reads
            .iter()
            .filter(|(_, m)| matches!(m, ReadMode::Since(_)))
            .count(),
        ..Summary::default()
    };
    for r in &revoked.lines {
        *summary
            .revocations
            .entry(r.outcome.as_str().to_string())
            .or_default() += 1;
        match r.outcome {
            Recorded::Revoked => summary.revoked += 1,
            Recorded::HeldBack => summary.revocations_held_back += 1,
            _ => {}
        }
    }
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
    Ok(Report {
        lines,
        project_errors: gathered.project_errors,
        completed: gathered.completed,
        revocations: revoked.lines,
        revocations_skipped: revoked.skipped,
        checks: revoked.checks,
        summary,
    })
}

fn task_line_detail(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::NoAssignee => Some("task has no assignee"),
        Outcome::EmailHidden => Some("Asana does not show this assignee's email to the token"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Intake

/// After the run: each rule whose project was read completely and whose people all came
/// out done (no failed line anywhere in the run, conservatively) gets its mark; a rule
/// whose project failed keeps its old one. A store error here is logged, not fatal: the
/// next run is then full, which is always correct.
async fn record_marks(
    cx: &Ctx<'_>,
    reads: &[(Rule, ReadMode)],
    lines: &[Line],
    project_errors: &[ProjectError],
    started_at: DateTime<Utc>,
) {
    if lines.iter().any(Line::failed) {
        return;
    }
    for (rule, mode) in reads {
        if project_errors
            .iter()
            .any(|e| e.project == rule.project.as_str())
        {
            continue;
        }
        let (key, fp) = (rule_key(rule), rule_fingerprint(rule));
        let store = cx.svc.store.as_ref();
        let res = match mode {
            ReadMode::Full => store
                .record_full_sync(&key, rule.project.as_str(), &fp, started_at)
                .await
                .map(|_| true),
            ReadMode::Since(_) => store.record_incremental_sync(&key, &fp, started_at).await,
        };
        if let Err(e) = res {
            tracing::warn!(rule = %key, error = %e, "could not record the sync mark; the next sync of this project will be full");
        }
    }
}

/// Full, unless incremental reads are asked for and the rule's mark allows one.
async fn read_mode(cx: &Ctx<'_>, rule: &Rule, now: DateTime<Utc>) -> ReadMode {
    if !cx.opts.incremental {
        return ReadMode::Full;
    }
    let mark = match cx.svc.store.sync_mark(&rule_key(rule)).await {
        Ok(Some(m)) => m,
        Ok(None) => return ReadMode::Full,
        Err(e) => {
            tracing::warn!(project = %rule.project, error = %e, "cannot read the sync mark; reading the whole project");
            return ReadMode::Full;
        }
    };
    let full_every =
        chrono::Duration::from_std(cx.opts.settings.full_every).unwrap_or(chrono::Duration::MAX);
    let margin = chrono::Duration::from_std(MODIFIED_SINCE_MARGIN).unwrap_or_default();
    if mark.fingerprint != rule_fingerprint(rule)
        || now.signed_duration_since(mark.full_started_at) >= full_every
        || mark.since > now
    {
        return ReadMode::Full;
    }
    ReadMode::Since(mark.since - margin)
}

/// Every task of one rule's project, deduplicated by gid, as assignments.
///
/// Full: the first page of `GET /projects/{gid}/tasks` and the sections
/// (`GET /projects/{gid}/sections`) at once; when there is more than one page: one section
/// → the rest of the same page chain, as before; several → each section's chain
/// (`GET /tasks?section=`) at once, within the read limit. A project of one page costs two
/// calls (its page and its sections).
/// Incremental: `GET /tasks?project=…&modified_since=…` (one call when nothing changed).
async fn read_project(
    asana: &asana_api::Client,
    rule: &Rule,
    mode: ReadMode,
    progress: &dyn Progress,
    seen: &act::resolve::Seen,
    sink: &mut (dyn FnMut(Assignment) + Send),
) -> Result<(), asana_api::Error> {
    let since = if rule.include_completed {
        None
    } else {
        Some("now")
    };
    // `GET /tasks` documents `completed_since` as a date-time only (`now` is
    // `getTasksForProject`'s): this instant means the same, incomplete tasks only.
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let since_dt = since.map(|_| now.as_str());
    let fields = intake::TASK_FIELDS;
    // The first page and the section pages overlap: each task once. Digests, not gids, so
    // 100,000 tasks cost a megabyte here rather than several.
    let mut gids: HashSet<u64> = HashSet::new();
    let mut take = |t: asana_api::Task| {
        if !gids.insert(plan::task_digest(&t.gid)) {
            return;
        }
        progress.tasks_read(1);
        let a = Assignment::from_task(t);
        if let Some(EmailCheck::Valid(email)) = a.assignee.as_ref().map(|x| &x.email) {
            seen.add(email);
        }
        sink(a);
    };
    match mode {
        ReadMode::Since(t) => {
            let modified = t.to_rfc3339_opts(SecondsFormat::Millis, true);
            let list = TaskList::Project(rule.project.clone());
            let tasks = asana.tasks(list, fields, since_dt, Some(&modified));
            futures::pin_mut!(tasks);
            while let Some(t) = tasks.try_next().await? {
                take(t);
            }
        }
        ReadMode::Full => {
            // The first page and the sections at once: waiting for the page before asking
            // for the sections put one more round trip on every large project's critical
            // path; the price is a sections call that a project of one page did not need.
            let (first, sections) = futures::join!(
                asana.project_tasks_page(&rule.project, fields, since, None),
                asana
                    .project_sections(&rule.project)
                    .try_collect::<Vec<asana_api::Compact>>()
            );
            let first = first?;
            first.tasks.into_iter().for_each(&mut take);
            let Some(next) = first.next_offset else {
                return Ok(());
            };
            let sections = sections?;
            if sections.len() <= 1 {
                let rest = asana.project_tasks_from(&rule.project, fields, since, next);
                futures::pin_mut!(rest);
                while let Some(t) = rest.try_next().await? {
                    take(t);
                }
            } else {
                let sections = sections
                    .iter()
                    .map(|s| Gid::parse(&s.gid))
                    .collect::<Result<Vec<_>, _>>()?;
                let pages = futures::stream::iter(sections)
                    .map(|s| {
                        asana
                            .tasks(TaskList::Section(s), fields, since_dt, None)
                            .boxed()
                    })
                    .flatten_unordered(SECTION_CONCURRENCY);
                futures::pin_mut!(pages);
                while let Some(t) = pages.try_next().await? {
                    take(t);
                }
            }
        }
    }
    Ok(())
}

async fn gather(
    cx: &Ctx<'_>,
    scope: &Scope,
    started_at: DateTime<Utc>,
) -> Result<Gathered, CoreError> {
    match scope {
        Scope::Task {
            task,
            project,
            asks,
        } => {
            // A task removed from the project or deleted asks nothing any more; only the
            // removals its previous assignee may be due matter (see `after_task`).
            if cx
                .opts
                .event
                .as_ref()
                .is_some_and(TaskEvent::task_left_project)
            {
                return Ok(Gathered::default());
            }
            cx.opts.progress.phase("reading the Asana task");
            let a = match intake::read_task(&cx.svc.asana, task).await {
                Ok(a) => a,
                // Deleted since the event: nothing to give, as for a `deleted` event — when
                // removals are on; otherwise the job reports the task as gone, as before.
                Err(e)
                    if e.status() == Some(404)
                        && cx.opts.event.is_some()
                        && cx.opts.revocation.is_on() =>
                {
                    return Ok(Gathered::default())
                }
                Err(e) => {
                    return Err(match e.status() {
                        Some(404) => CoreError::Input(format!(
                            "Asana has no task {task} visible to this token (check the gid and that the token's user can see the project)"
                        )),
                        _ => CoreError::Asana(e),
                    })
                }
            };
            cx.opts.progress.tasks_read(1);
            let completed = a.completed == Some(true);
            let mut g = Gathered {
                merged: Merger::watching(cx),
                ..Gathered::default()
            };
            let applicable: Vec<&Ask> = asks
                .iter()
                .filter(|ask| ask.include_completed || !completed)
                .collect();
            if applicable.is_empty() && !asks.is_empty() {
                g.completed.push(a.task_gid.clone());
            }
            for ask in applicable {
                g.merged.add(a.clone(), project.as_ref(), ask);
            }
            Ok(g)
        }
        Scope::Projects(rules) => Ok(gather_projects(cx, rules, started_at).await),
    }
}

/// Pages every project (a few at a time; each project's pages are a sequential chain)
/// while the DocSpace reads that do not depend on it run alongside: each target room's
/// members, and the portal's people (see [`act::resolve::prefetch`]).
async fn gather_projects(cx: &Ctx<'_>, rules: &[Rule], started_at: DateTime<Utc>) -> Gathered {
    cx.opts.progress.phase("reading Asana tasks");
    let seen = Arc::new(act::resolve::Seen::default());
    let room_ids: BTreeSet<RoomId> = rules
        .iter()
        .filter_map(|r| r.room.as_ref().map(|t| t.room.clone()))
        .collect();
    let docspace = cx.svc.docspace.clone();
    // How each project will be read, before anything is: when every one is incremental the
    // intake is a handful of changed tasks, and listing the whole portal and every room's
    // members alongside would cost more than looking those few people up.
    let modes: Vec<ReadMode> =
        futures::future::join_all(rules.iter().map(|r| read_mode(cx, r, started_at))).await;
    let any_full = modes.contains(&ReadMode::Full);
    let prefetch = {
        let seen = seen.clone();
        async move {
            if !any_full {
                return (None, HashMap::new());
            }
            let members = futures::future::join_all(room_ids.into_iter().map(|id| {
                let ds = docspace.clone();
                async move {
                    let m = act::share::members(&ds, &id).await;
                    (id, m)
                }
            }));
            let (people, members) =
                futures::join!(act::resolve::prefetch(docspace.clone(), &seen), members);
            (people, members.into_iter().collect::<HashMap<_, _>>())
        }
    };
    let intake = futures::stream::iter(rules.iter().cloned().zip(modes).enumerate())
        .map(|(i, (rule, mode))| {
            let asana = cx.svc.asana.clone();
            let progress = cx.opts.progress.clone();
            let seen = seen.clone();
            async move {
                // Each project merges on its own, so a project whose read fails midway
                // gives nothing half-read to the run (its error is reported instead).
                let mut merged = Merger::watching(cx);
                let ask = rule.ask();
                let mut add = |a: Assignment| {
                    // `completed_since=now` already drops completed tasks; this guards
                    // against a server that ignores it.
                    if rule.include_completed || a.completed != Some(true) {
                        merged.add(a, Some(&rule.project), &ask);
                    }
                };
                let res =
                    read_project(&asana, &rule, mode, progress.as_ref(), &seen, &mut add).await;
                let res = res.map(|()| merged);
                (i, rule, mode, res)
            }
        })
        .buffer_unordered(PROJECT_CONCURRENCY)
        .collect::<Vec<_>>();
    let intake = async {
        let results = intake.await;
        seen.finish();
        results
    };
    let (mut results, (prefetched, members)) = futures::join!(intake, prefetch);
    results.sort_by_key(|(i, _, _, _)| *i);
    let mut g = Gathered {
        prefetched,
        members,
        ..Gathered::default()
    };
    for (_, rule, mode, res) in results {
        g.reads.push((rule.clone(), mode));
        match res {
            // In rule order, so "the first task" means what one merge over all would.
            Ok(merged) => g.merged.absorb(merged),
            Err(e) => g.project_errors.push(ProjectError {
                project: rule.project.to_string(),
                error: describe_project_error(rule.project.as_str(), &e),
                transience: (&e).into(),
            }),
        }
    }
    g
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

// ---------------------------------------------------------------------------------------------
// Merge

/// One plan per email, and one line per task with nobody to give access to. Hidden
/// emails are looked up once per assignee, not once per task; a lookup that fails after
/// the client's retries is a failure to report (and retry), not a hidden email.
/// The merge, fed task by task as pages arrive, so a run holds one plan per person — not
/// every task it read — until it acts.
#[derive(Default)]
struct Merger {
    plans: BTreeMap<String, PersonPlan>,
    /// Tasks with nobody to give access to (no assignee, an address DocSpace would refuse).
    lines: Vec<Line>,
    lined: HashSet<String>,
    hidden: Vec<Hidden>,
    /// Tasks merged, one per task and ask.
    tasks: u64,
    /// Revocable rooms ([`Options::revocation`]): who their tasks assign is kept, for the
    /// removal step (nothing is kept for other rooms).
    watched: BTreeSet<RoomId>,
    watch: BTreeMap<RoomId, RoomWatch>,
    /// Only these tasks' assignees are kept in [`RoomWatch::tasks`] (`None`: all).
    grant_tasks: Option<Arc<HashSet<String>>>,
}

impl Merger {
    /// A merge that also notes who the tasks of these rooms assign.
    fn watching(cx: &Ctx<'_>) -> Merger {
        Merger {
            watched: cx.opts.revocation.rooms.keys().cloned().collect(),
            grant_tasks: cx.grant_tasks.clone(),
            ..Merger::default()
        }
    }

    /// One task under one ask.
    fn add(&mut self, a: Assignment, project: Option<&Gid>, ask: &Ask) {
        self.tasks += 1;
        if let Some(t) = ask.room.as_ref().filter(|t| self.watched.contains(&t.room)) {
            let w = self.watch.entry(t.room.clone()).or_default();
            let now = a.assignee.as_ref().map(|x| {
                w.gids.insert(x.gid.clone());
                match &x.email {
                    EmailCheck::Valid(e) => {
                        w.emails.insert(e.clone());
                        e.clone()
                    }
                    _ => format!("Asana user {}", x.gid),
                }
            });
            if self
                .grant_tasks
                .as_ref()
                .is_none_or(|t| t.contains(&a.task_gid))
            {
                w.tasks.insert(a.task_gid.clone(), now);
            }
        }
        let Some(assignee) = &a.assignee else {
            self.task_line(Line::for_task(&a.task_gid, None, Outcome::NoAssignee));
            return;
        };
        match &assignee.email {
            EmailCheck::Valid(email) => {
                let task = TaskRef {
                    gid: a.task_gid,
                    name: a.task_name,
                    project: project.cloned(),
                };
                plan::merge(&mut self.plans, email, &assignee.gid, task, ask);
            }
            EmailCheck::Invalid(raw) => {
                let mut l = Line::for_task(&a.task_gid, Some(&assignee.gid), Outcome::Failed);
                l.error = Some(plan::invalid_email_message(raw));
                self.task_line(l);
            }
            EmailCheck::Hidden => self.hidden.push(Hidden {
                assignment: a,
                project: project.cloned(),
                ask: ask.clone(),
            }),
        }
    }

    /// A task's line, once per task whatever number of rules named it.
    fn task_line(&mut self, line: Line) {
        if self.lined.insert(line.task.clone()) {
            self.lines.push(line);
        }
    }

    /// Folds another merge (one project's) into this one.
    fn absorb(&mut self, other: Merger) {
        self.tasks += other.tasks;
        for (room, w) in other.watch {
            let mine = self.watch.entry(room).or_default();
            mine.emails.extend(w.emails);
            mine.gids.extend(w.gids);
            mine.tasks.extend(w.tasks);
        }
        for p in other.plans.into_values() {
            plan::absorb(&mut self.plans, p);
        }
        for l in other.lines {
            self.task_line(l);
        }
        self.hidden.extend(other.hidden);
    }

    /// Looks up the hidden emails (once per assignee) and hands over the plans and the
    /// lines of tasks with nobody to give access to.
    async fn finish(mut self, cx: &Ctx<'_>) -> (BTreeMap<String, PersonPlan>, Vec<Line>) {
        let mut looked_up: HashMap<String, Result<EmailCheck, (String, Transience)>> =
            HashMap::new();
        let mut still_hidden: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in std::mem::take(&mut self.hidden) {
            let a = &n.assignment;
            let Some(assignee) = &a.assignee else {
                continue;
            };
            if !looked_up.contains_key(&assignee.gid) {
                let c = intake::lookup_email(&cx.svc.asana, &assignee.gid)
                    .await
                    .map_err(|e| {
                        (
                            format!("Asana: reading the assignee's email failed: {e}"),
                            Transience::from(&e),
                        )
                    });
                looked_up.insert(assignee.gid.clone(), c);
            }
            match &looked_up[&assignee.gid] {
                Ok(EmailCheck::Valid(email)) => {
                    let task = TaskRef {
                        gid: a.task_gid.clone(),
                        name: a.task_name.clone(),
                        project: n.project.clone(),
                    };
                    plan::merge(&mut self.plans, email, &assignee.gid, task, &n.ask)
                }
                Ok(EmailCheck::Invalid(raw)) => {
                    let mut l = Line::for_task(&a.task_gid, Some(&assignee.gid), Outcome::Failed);
                    l.error = Some(plan::invalid_email_message(raw));
                    self.task_line(l);
                }
                Ok(EmailCheck::Hidden) => {
                    let tasks = still_hidden.entry(assignee.gid.clone()).or_default();
                    if !tasks.contains(&a.task_gid) {
                        tasks.push(a.task_gid.clone());
                    }
                }
                Err((error, transience)) => {
                    let mut l = Line::for_task(&a.task_gid, Some(&assignee.gid), Outcome::Failed);
                    l.fail(error.clone(), *transience);
                    self.task_line(l);
                }
            }
        }
        for (gid, tasks) in still_hidden {
            let mut l = Line::for_task(&tasks[0], Some(&gid), Outcome::EmailHidden);
            l.tasks = tasks.into_iter().take(plan::TASKS_KEPT).collect();
            self.task_line(l);
        }
        (self.plans, self.lines)
    }
}

// ---------------------------------------------------------------------------------------------
// Claims

/// Gives back the claims it holds when dropped — a reconcile cancelled by a job timeout
/// or a shutdown, or stopped by an error — so nobody waits for their lease to run out.
struct ClaimGuard {
    store: Arc<dyn Store>,
    holder: Holder,
    held: Mutex<Vec<String>>,
}

impl ClaimGuard {
    fn hold(&self, keys: &[String]) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(keys);
    }

    async fn release(&self, keys: &[String]) -> Result<(), CoreError> {
        self.store.release_claims(keys, &self.holder).await?;
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| !keys.contains(k));
        Ok(())
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        if keys.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let holder = self.holder.clone();
            rt.spawn(async move {
                if let Err(e) = store.release_claims(&keys, &holder).await {
                    tracing::warn!(error = %e, "giving back claims failed; they expire with their lease");
                }
            });
        }
    }
}

/// Runs `work` while renewing `holder`'s claims every third of [`CLAIM_LEASE`].
async fn with_heartbeat<T>(
    store: &dyn Store,
    holder: &Holder,
    work: impl std::future::Future<Output = T>,
) -> T {
    let beat = async {
        loop {
            tokio::time::sleep(CLAIM_LEASE / 3).await;
            if let Err(e) = store.extend_claims(holder, CLAIM_LEASE).await {
                tracing::warn!(error = %e, "renewing claims failed; retrying");
            }
        }
    };
    tokio::select! {
        out = work => out,
        _ = beat => unreachable!("the heartbeat loop never ends"),
    }
}

/// Claims the people, acts for those granted, waits for the others and acts for them
/// once their holder is done (reading DocSpace again), until all are settled or
/// [`SyncSettings::claim_wait`] has passed.
async fn settle_people(
    cx: &Ctx<'_>,
    plans: BTreeMap<String, PersonPlan>,
    prefetched: Option<Prefetched>,
    members: HashMap<RoomId, Result<Members, docspace_api::Error>>,
    epoch: ClaimEpoch,
) -> Result<Vec<Line>, CoreError> {
    if cx.opts.dry_run {
        return act_round(cx, plans.into_values().collect(), prefetched, members).await;
    }
    let store = cx.svc.store.clone();
    let guard = ClaimGuard {
        store: store.clone(),
        holder: cx.opts.holder(),
        held: Mutex::new(Vec::new()),
    };
    let mut pending = plans;
    let mut prefetched = Some((prefetched, members));
    let mut lines = Vec::new();
    let deadline = Instant::now() + cx.opts.settings.claim_wait;
    let mut wait = Duration::from_millis(20);
    while !pending.is_empty() {
        let keys: Vec<String> = pending.keys().map(|e| person_key(e)).collect();
        let granted = store
            .claim_keys(&keys, &guard.holder, epoch, CLAIM_LEASE)
            .await?;
        // What was read before the first claim is good only for people nobody acted on
        // since the epoch, and only in this first attempt.
        let (first_people, first_members) = prefetched.take().unwrap_or_default();
        if !granted.is_empty() {
            let granted_keys: Vec<String> = granted.iter().map(|g| g.key.clone()).collect();
            guard.hold(&granted_keys);
            let mut fresh = Vec::new();
            let mut stale = Vec::new();
            for g in &granted {
                let email = g.key.trim_start_matches("person:");
                if let Some(p) = pending.remove(email) {
                    if g.stale {
                        stale.push(p);
                    } else {
                        fresh.push(p);
                    }
                }
            }
            let work = async {
                let mut out = act_round(cx, fresh, first_people, first_members).await?;
                out.extend(act_round(cx, stale, None, HashMap::new()).await?);
                Ok::<_, CoreError>(out)
            };
            // Given back whether the work succeeded or not: an error must not leave others
            // waiting for the lease (the guard covers only cancellation).
            let out = with_heartbeat(store.as_ref(), &guard.holder, work).await;
            guard.release(&granted_keys).await?;
            lines.extend(out?);
            continue;
        }
        if Instant::now() >= deadline {
            let mut rows = Vec::new();
            for p in pending.values() {
                let mut l = Line::for_person(p, Outcome::Failed);
                l.fail(
                    format!(
                        "another run has been acting for {} for longer than [sync] claim_wait_secs ({} s); nothing was sent, try again later",
                        p.email,
                        cx.opts.settings.claim_wait.as_secs()
                    ),
                    Transience::Transient,
                );
                rows.push(cx.ledger.portal(p, &l, false));
                lines.push(l);
            }
            cx.ledger.write(store.as_ref(), &rows).await?;
            break;
        }
        tracing::debug!(
            waiting = pending.len(),
            "people are being acted for by another run; waiting"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
    Ok(lines)
}

// ---------------------------------------------------------------------------------------------
// Act

/// Resolves, decides and acts for people this run holds (or, in a dry run, all of them).
async fn act_round(
    cx: &Ctx<'_>,
    plans: Vec<PersonPlan>,
    prefetched: Option<Prefetched>,
    mut members: HashMap<RoomId, Result<Members, docspace_api::Error>>,
) -> Result<Vec<Line>, CoreError> {
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let svc = cx.svc;
    let dry_run = cx.opts.dry_run;
    let store = svc.store.as_ref();
    let emails: Vec<String> = plans.iter().map(|p| p.email.clone()).collect();
    let plans: BTreeMap<String, PersonPlan> =
        plans.into_iter().map(|p| (p.email.clone(), p)).collect();

    // Resolve.
    let known = match act::resolve::resolve(&svc.docspace, &emails, prefetched).await {
        Ok(k) => k,
        Err(e) => {
            let mut lines = Vec::new();
            let mut rows = Vec::new();
            for p in plans.values() {
                let mut l = Line::for_person(p, Outcome::Failed);
                l.fail(format!("DocSpace: {e}"), (&e).into());
                rows.push(cx.ledger.portal(p, &l, false));
                lines.push(l);
            }
            cx.ledger.write(store, &rows).await?;
            // A rejected key is a configuration problem (exit 2), not a per-person outcome.
            if e.status() == Some(401) {
                return Err(CoreError::DocSpace(e));
            }
            return Ok(lines);
        }
    };

    // Decide.
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    let mut to_invite: BTreeMap<u8, (UserType, Vec<String>)> = BTreeMap::new();
    let mut rows = Vec::new();
    for p in plans.values() {
        let decision = plan::decide_portal(known.get(&p.email));
        let mut line = Line::for_person(p, decision.outcome(dry_run));
        line.person_id = decision.person_id().map(str::to_string);
        match &decision {
            PortalDecision::Disabled { .. } => {
                line.error = Some(plan::disabled_message(&p.email));
                rows.push(cx.ledger.portal(p, &line, false));
            }
            PortalDecision::Invite if !dry_run => {
                to_invite
                    .entry(p.user_type.rank())
                    .or_insert_with(|| (p.user_type, Vec::new()))
                    .1
                    .push(p.email.clone());
            }
            _ => rows.push(cx.ledger.portal(p, &line, false)),
        }
        lines.insert(p.email.clone(), line);
    }
    cx.ledger.write(store, &rows).await?;
    let inviting: usize = to_invite.values().map(|(_, v)| v.len()).sum();
    cx.opts
        .progress
        .people_done((plans.len() - inviting) as u64);

    // Invite, each batch recorded as soon as it is answered, so a run killed midway leaves
    // a record of every invitation it saw land.
    if !to_invite.is_empty() {
        cx.opts.progress.phase("inviting");
    }
    let batch_size = cx.opts.settings.invite_batch.max(1);
    let batches: Vec<(UserType, Vec<String>)> = to_invite
        .into_values()
        .flat_map(|(t, emails)| {
            emails
                .chunks(batch_size)
                .map(|c| (t, c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut results = std::pin::pin!(futures::stream::iter(batches)
        .map(|(user_type, batch)| {
            let ds = svc.docspace.clone();
            async move {
                let r = act::invite::invite_resilient(ds, batch.clone(), user_type).await;
                (batch, r)
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY));
    while let Some((batch, result)) = results.next().await {
        let rows = settle_batch(cx, &plans, &mut lines, &batch, &result);
        cx.ledger.write(store, &rows).await?;
        cx.opts.progress.people_done(batch.len() as u64);
    }

    // Rooms: one membership read per room, then shares in batches.
    let mut rooms_wanted: BTreeMap<RoomId, Vec<(String, Access)>> = BTreeMap::new();
    for p in plans.values() {
        for (room, access) in &p.rooms {
            rooms_wanted
                .entry(room.clone())
                .or_default()
                .push((p.email.clone(), *access));
        }
    }
    if !rooms_wanted.is_empty() {
        cx.opts.progress.phase("sharing rooms");
    }
    for (room, wanted) in rooms_wanted {
        let current = match members.remove(&room) {
            Some(m) => m,
            None => act::share::members(&svc.docspace, &room).await,
        };
        share_room(cx, &plans, &mut lines, &room, &wanted, current).await?;
    }
    cancel_for_assigned(cx, &plans).await?;
    Ok(lines.into_values().collect())
}

/// Turns one invitation batch's answer into outcomes and ledger rows.
fn settle_batch(
    cx: &Ctx<'_>,
    plans: &BTreeMap<String, PersonPlan>,
    lines: &mut BTreeMap<String, Line>,
    batch: &[String],
    result: &BatchResult,
) -> Vec<crate::record::NewLedgerEntry> {
    let mut rows = Vec::with_capacity(batch.len());
    for email in batch {
        let (Some(line), Some(p)) = (lines.get_mut(email), plans.get(email)) else {
            continue;
        };
        match result.ids.get(email) {
            Some(id) => {
                line.outcome = Outcome::Invited;
                line.person_id = Some(id.clone());
            }
            None => match (result.refused.get(email), &result.error) {
                (Some(refused), _) => line.fail(refused.clone(), Transience::Permanent),
                (None, Some((error, transience))) => line.fail(error.clone(), *transience),
                // Possibly not visible yet: a later attempt looks the person up again (and
                // re-inviting a pending address is a no-op in DocSpace).
                (None, None) => line.fail(
                    format!(
                        "DocSpace accepted the invitation for {email} but does not list the person afterwards"
                    ),
                    Transience::Transient,
                ),
            },
        }
        rows.push(cx.ledger.portal(p, line, true));
    }
    rows
}

/// Shares one room with the people who want it and are below their level.
async fn share_room(
    cx: &Ctx<'_>,
    plans: &BTreeMap<String, PersonPlan>,
    lines: &mut BTreeMap<String, Line>,
    room: &RoomId,
    wanted: &[(String, Access)],
    current: Result<Members, docspace_api::Error>,
) -> Result<(), CoreError> {
    let room_line = |access: Access, outcome: RoomOutcome| RoomLine {
        id: room.clone(),
        access: access.as_str().to_string(),
        outcome,
        error: None,
        transience: Transience::Permanent,
    };
    let mut grants: Vec<(String, Access, String)> = Vec::new(); // (person id, access, email)
                                                                // What each person had before this share (`None`: not a member), for the ownership
                                                                // record: someone who was a member before is never removed.
    let mut prior: HashMap<String, Option<i32>> = HashMap::new();
    match &current {
        Err(e) => {
            for (email, access) in wanted {
                if let Some(line) = lines.get_mut(email) {
                    let mut r = room_line(*access, RoomOutcome::Failed);
                    r.error = Some(format!("DocSpace: {e}"));
                    r.transience = e.into();
                    line.rooms.push(r);
                }
            }
        }
        Ok(members) => {
            for (email, access) in wanted {
                let Some(line) = lines.get_mut(email) else {
                    continue;
                };
                if line.outcome == Outcome::Failed {
                    line.rooms.push(room_line(*access, RoomOutcome::Skipped));
                    continue;
                }
                let Some(id) = line.person_id.clone() else {
                    // A dry run of a person not yet on the portal: the share would follow.
                    line.rooms.push(room_line(*access, RoomOutcome::DryRun));
                    continue;
                };
                match plan::decide_room(members.get(&id).copied(), *access) {
                    RoomDecision::AlreadyShared => line
                        .rooms
                        .push(room_line(*access, RoomOutcome::AlreadyShared)),
                    RoomDecision::Share if cx.opts.dry_run => {
                        line.rooms.push(room_line(*access, RoomOutcome::DryRun))
                    }
                    RoomDecision::Share => {
                        prior.insert(email.clone(), members.get(&id).map(|a| a.as_i32()));
                        grants.push((id, *access, email.clone()))
                    }
                }
            }
        }
    }
    // One call per SHARE_BATCH people, a few at a time; a failed call fails only its own
    // people.
    let chunks: Vec<Vec<(String, Access, String)>> = grants
        .chunks(act::share::SHARE_BATCH)
        .map(<[_]>::to_vec)
        .collect();
    let shared: Vec<_> = futures::stream::iter(chunks)
        .map(|chunk| {
            let ds = cx.svc.docspace.clone();
            let room = room.clone();
            async move {
                let grants = chunk.iter().map(|(id, a, _)| (id.clone(), *a)).collect();
                let res = act::share::share(ds, room, grants).await;
                (chunk, res)
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut recorded = Vec::new();
    for (chunk, res) in shared {
        for (id, access, email) in chunk {
            if let (Ok(()), Some(p)) = (&res, plans.get(&email)) {
                recorded.push(RoomGrant {
                    room: room.clone(),
                    email: email.clone(),
                    person_id: id,
                    assignee_gid: Some(p.assignee.clone()),
                    access,
                    prior_access: prior.get(&email).copied().flatten(),
                    task_gid: Some(p.first_task().to_string()).filter(|t| !t.is_empty()),
                    project_gid: p.first.project.as_ref().map(|g| g.to_string()),
                    granted_at: Utc::now(),
                    run_id: cx.opts.run_id.clone(),
                });
            }
            if let Some(line) = lines.get_mut(&email) {
                line.rooms.push(match &res {
                    Ok(()) => room_line(access, RoomOutcome::Shared),
                    Err(e) => {
                        let mut r = room_line(access, RoomOutcome::Failed);
                        r.error = Some(format!("DocSpace: {e}"));
                        r.transience = e.into();
                        r
                    }
                });
            }
        }
    }
    let rows: Vec<_> = wanted
        .iter()
        .filter_map(|(email, _)| {
            let line = lines.get(email)?;
            let r = line.rooms.iter().find(|r| &r.id == room)?;
            Some(cx.ledger.room(plans.get(email)?, line, r))
        })
        .collect();
    cx.ledger.write(cx.svc.store.as_ref(), &rows).await?;
    // The ownership record, right after the ledger rows of the same shares.
    cx.svc.store.record_grants(&recorded).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Revoke: room access this tool granted, once no qualifying task asks for it

/// Who the tasks this run read still assign, per revocable room: by email, by Asana user
/// gid (so an assignee whose email is hidden still counts), and each task's assignee now,
/// for the why of a removal.
#[derive(Debug, Default)]
struct RoomWatch {
    emails: BTreeSet<String>,
    gids: BTreeSet<String>,
    /// Task gid → its assignee now (email, or `user <gid>`), `None` when unassigned.
    tasks: HashMap<String, Option<String>>,
}

/// What the revocation step decided.
#[derive(Default)]
struct Revoked {
    lines: Vec<RevocationLine>,
    skipped: Vec<SkippedRoom>,
    checks: Vec<RemovalCheck>,
}

/// A removal past its grace, waiting for the threshold and a claim.
struct DueRemoval {
    grant: RoomGrant,
    why: String,
}

fn watch_rooms(
    mut watch: BTreeMap<RoomId, RoomWatch>,
    plans: &BTreeMap<String, PersonPlan>,
) -> BTreeMap<RoomId, RoomWatch> {
    // Hidden emails looked up during the merge.
    for p in plans.values() {
        for room in p.rooms.keys() {
            if let Some(w) = watch.get_mut(room) {
                w.emails.insert(p.email.clone());
            }
        }
    }
    watch
}

/// The person the ledger last recorded for a task (its previous assignee, as far as this
/// tool acted for them).
async fn previous_assignee(
    cx: &Ctx<'_>,
    task: &Gid,
) -> Result<Option<(String, Option<String>)>, CoreError> {
    let rows = cx
        .svc
        .store
        .history(&crate::record::HistoryFilter {
            task_gid: Some(task.to_string()),
            limit: Some(50),
            ..Default::default()
        })
        .await?;
    Ok(rows
        .into_iter()
        .rev()
        // Rows about giving access only: a removal's own rows name the person it removes.
        .filter(|r| {
            matches!(r.target, Target::Portal | Target::Room(_))
                && r.action != crate::domain::Action::Revoke
        })
        .find_map(|r| r.email.map(|e| (e, r.assignee_gid))))
}

fn is_assigned(w: Option<&RoomWatch>, email: &str, gid: Option<&str>) -> bool {
    w.is_some_and(|w| w.emails.contains(email) || gid.is_some_and(|g| w.gids.contains(g)))
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Why a grant's reason went away, as a full read shows it.
fn describe_end(
    g: &RoomGrant,
    w: Option<&RoomWatch>,
    rc: &crate::config::RoomRevocation,
    now: DateTime<Utc>,
) -> String {
    let task = match (&g.task_gid, w) {
        (Some(t), Some(w)) => match w.tasks.get(t) {
            Some(Some(who)) => format!("task {t} is now assigned to {who}"),
            Some(None) => format!("task {t} has no assignee now"),
            None => format!(
                "task {t}{} is no longer an open task there (completed, deleted or removed from the project)",
                g.project_gid.as_deref().map(|p| format!(" of project {p}")).unwrap_or_default()
            ),
        },
        (Some(t), None) => format!(
            "task {t} is no longer an open task (completed, deleted or removed from the project)"
        ),
        (None, _) => "the task that gave access is not known".to_string(),
    };
    let projects: Vec<&str> = rc.projects.iter().map(String::as_str).collect();
    format!(
        "{task}; no open task under a rule naming room {} (projects {}) assigns {} any more; noticed {}",
        g.room,
        projects.join(", "),
        g.email,
        stamp(now)
    )
}

/// Full reads only: for each revocable room all of whose naming rules this run read whole
/// and successfully, decide each grant of this tool whose person no task assigns any more:
/// already gone, not ours, in its grace, or due. Then the threshold, then the removals.
async fn revoke_rooms(
    cx: &Ctx<'_>,
    reads: &[(Rule, ReadMode)],
    project_errors: &[ProjectError],
    watched: &BTreeMap<RoomId, RoomWatch>,
    now: DateTime<Utc>,
) -> Result<Revoked, CoreError> {
    let mut out = Revoked::default();
    let rev = &cx.opts.revocation;
    let store = cx.svc.store.as_ref();
    let dry_run = cx.opts.dry_run;
    let failed = |r: &Rule| {
        project_errors
            .iter()
            .any(|e| e.project == r.project.as_str())
    };
    let in_run: BTreeMap<String, (&Rule, ReadMode)> =
        reads.iter().map(|(r, m)| (rule_key(r), (r, *m))).collect();
    let mut due: Vec<DueRemoval> = Vec::new();
    let mut per_room: BTreeMap<RoomId, (usize, usize)> = BTreeMap::new();
    for (room, rc) in &rev.rooms {
        if !rc.rule_keys.iter().any(|k| in_run.contains_key(k)) {
            continue;
        }
        let incomplete = rc.rule_keys.iter().find_map(|k| match in_run.get(k) {
            None => Some(format!(
                "rule {k} also names this room and was not part of this run; removals are computed only when every rule naming the room is read (a sync without --project)"
            )),
            Some((r, _)) if failed(r) => Some(format!(
                "project {} (rule {k}) could not be read completely",
                r.project
            )),
            Some((_, ReadMode::Since(_))) => Some(format!(
                "rule {k} was read incrementally; removals are computed by a full sync (`sync --full`, or once [sync] full_every has passed)"
            )),
            Some(_) => None,
        });
        if let Some(reason) = incomplete {
            out.skipped.push(SkippedRoom {
                room: room.clone(),
                reason,
            });
            continue;
        }
        let w = watched.get(room);
        let grants = store.room_grants(room).await?;
        if grants.is_empty() && !dry_run {
            continue;
        }
        let members = match act::revoke::members(&cx.svc.docspace, room).await {
            Ok(m) => m,
            Err(e) => {
                let mut l = RevocationLine::new(
                    room,
                    None,
                    Recorded::Failed,
                    "reading the room's members before deciding removals".into(),
                );
                l.fail(format!("DocSpace: {e}"), (&e).into());
                out.lines.push(l);
                continue;
            }
        };
        let pending: HashMap<String, crate::record::PendingRemoval> = store
            .pending_removals(room)
            .await?
            .into_iter()
            .map(|p| (p.email.clone(), p))
            .collect();
        let mut lines = Vec::new();
        let mut cancel = Vec::new();
        let mut room_due = 0;
        for g in &grants {
            let line = |outcome, reason: String| RevocationLine::for_grant(g, outcome, reason);
            if is_assigned(w, &g.email, g.assignee_gid.as_deref()) {
                if let Some(p) = pending.get(&g.email) {
                    if dry_run {
                        lines.push(line(
                            Recorded::DryRun,
                            format!(
                                "would cancel the pending removal (assigned again): {}",
                                p.why
                            ),
                        ));
                    } else {
                        cancel.push((room.clone(), g.email.clone()));
                    }
                }
                continue;
            }
            let current = members
                .get(&g.person_id.to_ascii_lowercase())
                .and_then(|m| m.access_raw);
            let mut since = pending.get(&g.email).map_or(now, |p| p.since);
            let mut why = pending
                .get(&g.email)
                .map_or_else(|| describe_end(g, w, rc, now), |p| p.why.clone());
            let mut decision = plan::decide_removal(g, current, since, rc.grace, now);
            let owned = matches!(
                decision,
                plan::RemovalDecision::Wait { .. } | plan::RemovalDecision::Due
            );
            if owned && !dry_run && !pending.contains_key(&g.email) {
                let stored = store
                    .note_removal(&crate::record::PendingRemoval {
                        room: room.clone(),
                        email: g.email.clone(),
                        since,
                        why: why.clone(),
                    })
                    .await?;
                (since, why) = (stored.since, stored.why);
                decision = plan::decide_removal(g, current, since, rc.grace, now);
                if let plan::RemovalDecision::Wait { due } = decision {
                    lines.push(line(Recorded::PendingRemoval, why.clone()).due(due));
                    out.checks.push(RemovalCheck {
                        room: room.clone(),
                        due,
                        pending: format!("{}:{}", g.email, since.timestamp_millis()),
                    });
                    continue;
                }
            }
            match decision {
                plan::RemovalDecision::Gone => {
                    if !dry_run {
                        store.finish_removal(room, &g.email).await?;
                    }
                    lines.push(line(
                        Recorded::AlreadyRemoved,
                        format!(
                            "the {} access this tool granted at {} is already gone (removed by hand, or by an earlier run); nothing to send",
                            g.access.as_str(),
                            stamp(g.granted_at)
                        ),
                    ));
                }
                plan::RemovalDecision::NotOurs(reason) => {
                    lines.push(line(Recorded::Kept, reason));
                }
                plan::RemovalDecision::Wait { due } => {
                    // Already pending from an earlier run: no new ledger row, a line only.
                    let mut l = line(Recorded::PendingRemoval, why).due(due);
                    if dry_run {
                        l.reason = format!("would remove after the grace: {}", l.reason);
                    }
                    out.checks.push(RemovalCheck {
                        room: room.clone(),
                        due,
                        pending: format!("{}:{}", g.email, since.timestamp_millis()),
                    });
                    out.lines.push(l);
                }
                plan::RemovalDecision::Due => {
                    room_due += 1;
                    due.push(DueRemoval {
                        grant: g.clone(),
                        why,
                    });
                }
            }
        }
        for p in store.cancel_removals(&cancel).await? {
            let g = grants.iter().find(|g| g.email == p.email);
            let mut l = RevocationLine::new(
                room,
                Some(&p.email),
                Recorded::RemovalCancelled,
                format!(
                    "assigned again within the grace; was pending since {}: {}",
                    stamp(p.since),
                    p.why
                ),
            );
            l.assignee = g.and_then(|g| g.assignee_gid.clone());
            lines.push(l);
        }
        if dry_run {
            // The dry run also says why members this tool did not grant stay.
            let granted: BTreeSet<String> = grants
                .iter()
                .map(|g| g.person_id.to_ascii_lowercase())
                .collect();
            for (id, m) in &members {
                if granted.contains(id) || m.is_owner || m.subject_type.is_some_and(|t| t != 0) {
                    continue;
                }
                let email = m.email.as_deref().map(str::to_ascii_lowercase);
                if email.as_deref().is_some_and(|e| is_assigned(w, e, None)) {
                    continue;
                }
                let mut l = RevocationLine::new(
                    room,
                    email.as_deref(),
                    Recorded::Kept,
                    "this tool has no record of granting this access (added by hand, or before this tool recorded its grants): never removed".into(),
                );
                l.person_id = Some(id.clone());
                lines.push(l);
            }
        }
        let rows: Vec<_> = lines
            .iter()
            .filter(|l| l.outcome != Recorded::Kept || l.task.is_some())
            .map(|l| cx.ledger.revocation(l))
            .collect();
        cx.ledger.write(store, &rows).await?;
        out.lines.extend(lines);
        per_room.insert(room.clone(), (room_due, members.len()));
    }
    if due.is_empty() {
        return Ok(out);
    }

    let held = plan::over_threshold(&per_room, rev.max, rev.allow);
    let n = due.len();
    let brake = match rev.allow {
        Some(a) => format!("--allow-revocations {a}"),
        None => format!("[deprovision] max_revocations ({})", rev.max),
    };
    if dry_run || held {
        let mut lines = Vec::new();
        for d in &due {
            let g = &d.grant;
            let (outcome, reason) = match (dry_run, held) {
                (true, false) => (Recorded::DryRun, format!("would remove {} access: {}", g.access.as_str(), d.why)),
                (true, true) => (Recorded::DryRun, format!(
                    "would remove {} access: {}; a real run would hold back all {n} removals (over {brake}) and exit 4",
                    g.access.as_str(), d.why
                )),
                _ => (Recorded::HeldBack, format!(
                    "held back: this run would remove {n} room accesses, over {brake}; nothing was removed — check the list, then run `asana-docspace sync --full --allow-revocations {n}`; {}",
                    d.why
                )),
            };
            lines.push(RevocationLine::for_grant(g, outcome, reason));
        }
        let rows: Vec<_> = lines.iter().map(|l| cx.ledger.revocation(l)).collect();
        cx.ledger.write(store, &rows).await?;
        out.lines.extend(lines);
        return Ok(out);
    }
    out.lines.extend(remove_due(cx, due).await?);
    Ok(out)
}

/// Removes what is due, under the people's claims (the same `person:<email>` keys an
/// invitation takes, so a removal and an invitation of one person never overlap): under the
/// claim the pending removal must still exist (an assignment in between cancels it) and a
/// fresh read of the room must still show exactly the level this tool granted.
async fn remove_due(cx: &Ctx<'_>, due: Vec<DueRemoval>) -> Result<Vec<RevocationLine>, CoreError> {
    let store = cx.svc.store.clone();
    let guard = ClaimGuard {
        store: store.clone(),
        holder: cx.opts.holder(),
        held: Mutex::new(Vec::new()),
    };
    let keys: Vec<String> = due
        .iter()
        .map(|d| person_key(&d.grant.email))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let work = async {
        // Claim everyone, waiting (as `settle_people` does) for people another run holds —
        // a run killed midway holds its people until their lease runs out (or, for a
        // service run, until its replica's registry row expires).
        let mut granted: BTreeSet<String> = BTreeSet::new();
        let deadline = Instant::now() + cx.opts.settings.claim_wait;
        let mut wait = Duration::from_millis(20);
        loop {
            let want: Vec<String> = keys
                .iter()
                .filter(|k| !granted.contains(*k))
                .cloned()
                .collect();
            let got: Vec<String> = store
                .claim_keys(&want, &guard.holder, ClaimEpoch::default(), CLAIM_LEASE)
                .await?
                .into_iter()
                .map(|g| g.key)
                .collect();
            guard.hold(&got);
            granted.extend(got);
            if granted.len() == keys.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
        let mut lines = Vec::new();
        let mut by_room: BTreeMap<RoomId, Vec<DueRemoval>> = BTreeMap::new();
        for d in due {
            by_room.entry(d.grant.room.clone()).or_default().push(d);
        }
        for (room, items) in by_room {
            let mut room_lines = Vec::new();
            let line = |d: &DueRemoval, outcome, reason: String| {
                RevocationLine::for_grant(&d.grant, outcome, reason)
            };
            let pending: BTreeSet<String> = store
                .pending_removals(&room)
                .await?
                .into_iter()
                .map(|p| p.email)
                .collect();
            let fresh = act::revoke::members(&cx.svc.docspace, &room).await;
            let mut to_remove: Vec<&DueRemoval> = Vec::new();
            for d in &items {
                let g = &d.grant;
                if !granted.contains(&person_key(&g.email)) {
                    room_lines.push(line(d, Recorded::PendingRemoval, format!(
                        "another run is acting for {} right now; the removal stays due for the next run: {}",
                        g.email, d.why
                    )));
                    continue;
                }
                if !pending.contains(&g.email) {
                    // Cancelled by an assignment since this run read Asana.
                    continue;
                }
                let members = match &fresh {
                    Ok(m) => m,
                    Err(e) => {
                        let mut l = line(d, Recorded::Failed, d.why.clone());
                        l.fail(
                            format!("DocSpace: reading the room's members: {e}"),
                            e.into(),
                        );
                        room_lines.push(l);
                        continue;
                    }
                };
                let current = members
                    .get(&g.person_id.to_ascii_lowercase())
                    .and_then(|m| m.access_raw);
                match plan::decide_removal(
                    g,
                    current,
                    DateTime::UNIX_EPOCH,
                    Duration::ZERO,
                    Utc::now(),
                ) {
                    plan::RemovalDecision::Gone => {
                        store.finish_removal(&room, &g.email).await?;
                        room_lines.push(line(
                            d,
                            Recorded::AlreadyRemoved,
                            format!("already gone when this run came to remove it: {}", d.why),
                        ));
                    }
                    plan::RemovalDecision::NotOurs(reason) => {
                        room_lines.push(line(d, Recorded::Kept, reason));
                    }
                    _ => to_remove.push(d),
                }
            }
            for chunk in to_remove.chunks(act::share::SHARE_BATCH) {
                let ids: Vec<String> = chunk.iter().map(|d| d.grant.person_id.clone()).collect();
                match act::revoke::remove(cx.svc.docspace.clone(), room.clone(), ids).await {
                    Ok(res) => {
                        for d in chunk {
                            let g = &d.grant;
                            let id = g.person_id.to_ascii_lowercase();
                            if res.removed.contains(&id) {
                                store.finish_removal(&room, &g.email).await?;
                                room_lines.push(line(
                                    d,
                                    Recorded::Revoked,
                                    format!(
                                    "removed the {} access this tool granted at {} (run {}): {}",
                                    g.access.as_str(), stamp(g.granted_at), g.run_id, d.why
                                ),
                                ));
                            } else {
                                let mut l = line(d, Recorded::Failed, d.why.clone());
                                let why = res.refused.get(&id).cloned().unwrap_or_else(|| {
                                    "DocSpace did not confirm the removal".into()
                                });
                                l.fail(why, Transience::Permanent);
                                room_lines.push(l);
                            }
                        }
                    }
                    Err(e) => {
                        let msg = match e.status() {
                            Some(403) => format!(
                                "DocSpace refused (403: {e}): the API key's user must be a room manager of room {room} to remove members"
                            ),
                            _ => format!("DocSpace: {e}"),
                        };
                        for d in chunk {
                            let mut l = line(d, Recorded::Failed, d.why.clone());
                            l.fail(msg.clone(), (&e).into());
                            room_lines.push(l);
                        }
                    }
                }
            }
            let rows: Vec<_> = room_lines.iter().map(|l| cx.ledger.revocation(l)).collect();
            cx.ledger.write(store.as_ref(), &rows).await?;
            lines.extend(room_lines);
        }
        Ok::<_, CoreError>(lines)
    };
    let out = with_heartbeat(store.as_ref(), &guard.holder, work).await;
    let held = std::mem::take(&mut *guard.held.lock().unwrap_or_else(|e| e.into_inner()));
    store.release_claims(&held, &guard.holder).await?;
    out
}

/// After a task job (webhook, watch): if the person the ledger last recorded for this task
/// is no longer its qualifying assignee — reassigned, unassigned, completed under a rule
/// without `include_completed`, removed from the project, deleted — and this tool granted
/// them a revocable room, note the pending removal (from the event's time) and ask for a
/// removal check when its grace ends. The check is a full reconcile of every rule naming
/// the room, which removes only if no other task assigns them.
async fn after_task(
    cx: &Ctx<'_>,
    task: &Gid,
    asks: &[Ask],
    previous: Option<(String, Option<String>)>,
    watched: &BTreeMap<RoomId, RoomWatch>,
    now: DateTime<Utc>,
) -> Result<Revoked, CoreError> {
    let mut out = Revoked::default();
    let Some((email, gid)) = previous else {
        return Ok(out);
    };
    let rev = &cx.opts.revocation;
    let store = cx.svc.store.as_ref();
    let rooms: BTreeSet<&RoomId> = asks
        .iter()
        .filter_map(|a| a.room.as_ref().map(|t| &t.room))
        .filter(|r| rev.rooms.contains_key(*r))
        .collect();
    let event = cx.opts.event.as_ref();
    let since = event.and_then(|e| e.at).map_or(now, |at| at.min(now));
    for room in rooms {
        let w = watched.get(room);
        if is_assigned(w, &email, gid.as_deref()) {
            continue;
        }
        let grants = store.room_grants(room).await?;
        let Some(g) = grants.iter().find(|g| g.email == email) else {
            continue;
        };
        let now_what = match w.and_then(|w| w.tasks.get(task.as_str())) {
            Some(Some(who)) => format!("is now assigned to {who}"),
            Some(None) => "has no assignee now".to_string(),
            None => match event.map(|e| e.what.as_str()) {
                Some("removed") => "was removed from the project".to_string(),
                Some("deleted") => "was deleted".to_string(),
                _ => "is completed or no longer in the project".to_string(),
            },
        };
        let why = format!(
            "task {task} {now_what} ({} at {}); {email} may have no other open task under a rule naming room {room}",
            event.map_or("noticed", |e| e.what.as_str()),
            stamp(since)
        );
        let p = store
            .note_removal(&crate::record::PendingRemoval {
                room: room.clone(),
                email: email.clone(),
                since,
                why,
            })
            .await?;
        let grace = rev.rooms[room].grace;
        let due = p.since + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut l = RevocationLine::for_grant(g, Recorded::PendingRemoval, p.why).due(due);
        l.task = Some(task.to_string());
        cx.ledger.write(store, &[cx.ledger.revocation(&l)]).await?;
        out.lines.push(l);
        out.checks.push(RemovalCheck {
            room: room.clone(),
            due,
            pending: format!("{}:{}", p.email, p.since.timestamp_millis()),
        });
    }
    Ok(out)
}

/// Under the people's claims: whoever this run gives a revocable room to is assigned, so
/// a pending removal of theirs is cancelled — before the claim is released, so a removal
/// check that claims them next sees it gone.
async fn cancel_for_assigned(
    cx: &Ctx<'_>,
    plans: &BTreeMap<String, PersonPlan>,
) -> Result<(), CoreError> {
    let rooms = &cx.opts.revocation.rooms;
    if cx.opts.dry_run || rooms.is_empty() {
        return Ok(());
    }
    let keys: Vec<(RoomId, String)> = plans
        .values()
        .flat_map(|p| {
            p.rooms
                .keys()
                .filter(|r| rooms.contains_key(*r))
                .map(|r| (r.clone(), p.email.clone()))
        })
        .collect();
    let store = cx.svc.store.as_ref();
    let mut lines = Vec::new();
    for c in store.cancel_removals(&keys).await? {
        let p = plans.get(&c.email);
        let mut l = RevocationLine::new(
            &c.room,
            Some(&c.email),
            Recorded::RemovalCancelled,
            format!(
                "assigned again within the grace ({}); was pending since {}: {}",
                p.map(|p| p.because()).unwrap_or_default(),
                stamp(c.since),
                c.why
            ),
        );
        l.task = p.map(|p| p.first_task().to_string());
        l.assignee = p.map(|p| p.assignee.clone());
        lines.push(l);
    }
    let rows: Vec<_> = lines.iter().map(|l| cx.ledger.revocation(l)).collect();
    cx.ledger.write(store, &rows).await?;
    cx.revocations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(lines);
    Ok(())
}
