//! Plan: merge what Asana says into one plan per person, and decide — given what
//! DocSpace already knows about a person (and a room's members) — what to do. Pure
//! functions, so every rule of "never twice" and "strongest wins" is testable without I/O.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use asana_api::Gid;
use docspace_api::{Access, Person, PersonState, UserType};

use chrono::{DateTime, Utc};

use crate::config::{Ask, MaxRevocations};
use crate::domain::RoomId;
use crate::record::RoomGrant;
use crate::Outcome;

/// One task that gives a person access, for the ledger's why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    /// The task gid.
    pub gid: String,
    /// The task's name.
    pub name: Option<String>,
    /// The project whose rule applied, when known.
    pub project: Option<Gid>,
}

/// How many of a person's task gids a plan keeps: output shows this many. Only the first
/// task is kept whole (the ledger's why names it); a sync of 100,000 tasks would otherwise
/// hold every task's gid, name and project until the run ends. The rest are only counted.
pub const TASKS_KEPT: usize = 20;

/// Everything one reconcile will do for one email: the strongest user type any rule asks
/// for, and the strongest level per room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonPlan {
    /// The email, lower-cased: the person's key.
    pub email: String,
    /// The Asana user gid of the first task's assignee.
    pub assignee: String,
    /// The strongest type asked for.
    pub user_type: UserType,
    /// The first task that grants access: output and the ledger's why name it.
    pub first: TaskRef,
    /// The gids of the first [`TASKS_KEPT`] tasks that grant access (the first one's
    /// included), in the order met.
    pub task_gids: Vec<String>,
    /// How many distinct tasks grant access (all of them, kept or not).
    pub task_count: usize,
    /// Which tasks were counted, as 64-bit digests of their gids: a task merged again under
    /// another rule (or ask) is counted once, at 8 bytes a task instead of its gid's string.
    counted: HashSet<u64>,
    /// Room → strongest wanted level.
    pub rooms: BTreeMap<RoomId, Access>,
}

/// A task gid's digest for [`PersonPlan`]'s count. Asana gids are decimal numbers and map to
/// themselves; anything else is hashed (a fixed-key SipHash, the same in every run).
pub fn task_digest(gid: &str) -> u64 {
    gid.parse().unwrap_or_else(|_| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        gid.hash(&mut h);
        h.finish()
    })
}

impl PersonPlan {
    /// The first task's gid, which output and the ledger name.
    pub fn first_task(&self) -> &str {
        &self.first.gid
    }

    /// Why this person: the task that grants access, for `history`.
    pub fn because(&self) -> String {
        let first = &self.first;
        let name = first
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let project = first
            .project
            .as_ref()
            .map(|p| format!(" in project {p}"))
            .unwrap_or_default();
        let more = if self.task_count > 1 {
            format!(" (+{} more)", self.task_count - 1)
        } else {
            String::new()
        };
        format!(
            "assigned task {}{name}{project}{more}; type={}",
            first.gid,
            self.user_type.as_i32()
        )
    }

    /// Takes in what one more ask wants: the stronger type, the stronger level per room.
    fn want(&mut self, ask: &Ask) {
        self.user_type = self.user_type.strongest(ask.user_type);
        if let Some(t) = &ask.room {
            let e = self.rooms.entry(t.room.clone()).or_insert(t.access);
            *e = e.strongest(t.access);
        }
    }

    /// Counts a task (once), keeping its gid while fewer than [`TASKS_KEPT`] are kept.
    fn count(&mut self, gid: &str) -> bool {
        let new = self.counted.insert(task_digest(gid));
        if new {
            self.task_count += 1;
            if self.task_gids.len() < TASKS_KEPT {
                self.task_gids.push(gid.to_string());
            }
        }
        new
    }
}

/// The one merge of several asks (rules) for one person: strongest user type, strongest
/// level per room, every task counted once (and the first [`TASKS_KEPT`] kept).
pub fn merge(
    plans: &mut BTreeMap<String, PersonPlan>,
    email: &str,
    assignee: &str,
    task: TaskRef,
    ask: &Ask,
) {
    // Looked up before an owned key is made: a sync merges every task it reads, and most
    // of them belong to someone already planned.
    match plans.get_mut(email) {
        Some(p) => {
            p.count(&task.gid);
            p.want(ask);
        }
        None => {
            let gid = task.gid.clone();
            let mut p = PersonPlan {
                email: email.to_string(),
                assignee: assignee.to_string(),
                user_type: ask.user_type,
                first: task,
                task_gids: Vec::new(),
                task_count: 0,
                counted: HashSet::new(),
                rooms: BTreeMap::new(),
            };
            p.count(&gid);
            p.want(ask);
            plans.insert(email.to_string(), p);
        }
    }
}

/// Folds a whole plan (another project's merge) into `plans`: what merging its tasks one
/// by one would give, except that when a person has more than [`TASKS_KEPT`] tasks the ones
/// kept by name may differ (the count does not).
pub fn absorb(plans: &mut BTreeMap<String, PersonPlan>, other: PersonPlan) {
    let p = match plans.entry(other.email.clone()) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(other);
            return;
        }
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
    };
    p.user_type = p.user_type.strongest(other.user_type);
    // The kept gids first, in order, then the digests of the ones only counted.
    for gid in &other.task_gids {
        p.count(gid);
    }
    for d in other.counted {
        if p.counted.insert(d) {
            p.task_count += 1;
        }
    }
    for (room, access) in other.rooms {
        let e = p.rooms.entry(room).or_insert(access);
        *e = e.strongest(access);
    }
}

/// What to do about portal access for one email.
#[derive(Debug, Clone, PartialEq)]
pub enum PortalDecision {
    /// Not on the portal: invite.
    Invite,
    /// An active member.
    AlreadyMember {
        /// Their DocSpace id.
        person_id: String,
    },
    /// Invited before, not yet accepted.
    AlreadyInvited {
        /// Their DocSpace id.
        person_id: String,
    },
    /// A terminated account: inviting again is a 400 in DocSpace. An admin must decide.
    Disabled {
        /// Their DocSpace id.
        person_id: String,
    },
}

/// Decides portal access from what DocSpace knows about the email.
pub fn decide_portal(existing: Option<&Person>) -> PortalDecision {
    match existing {
        None => PortalDecision::Invite,
        Some(p) => match p.state() {
            PersonState::Active => PortalDecision::AlreadyMember {
                person_id: p.id.clone(),
            },
            PersonState::Pending => PortalDecision::AlreadyInvited {
                person_id: p.id.clone(),
            },
            PersonState::Disabled => PortalDecision::Disabled {
                person_id: p.id.clone(),
            },
        },
    }
}

impl PortalDecision {
    /// The `--json` outcome of this decision before anything is sent.
    pub fn outcome(&self, dry_run: bool) -> Outcome {
        match self {
            PortalDecision::Invite if dry_run => Outcome::DryRun,
            PortalDecision::Invite => Outcome::Invited,
            PortalDecision::AlreadyMember { .. } => Outcome::AlreadyMember,
            PortalDecision::AlreadyInvited { .. } => Outcome::AlreadyInvited,
            PortalDecision::Disabled { .. } => Outcome::Failed,
        }
    }

    /// The person's DocSpace id, when they are on the portal.
    pub fn person_id(&self) -> Option<&str> {
        match self {
            PortalDecision::Invite => None,
            PortalDecision::AlreadyMember { person_id }
            | PortalDecision::AlreadyInvited { person_id }
            | PortalDecision::Disabled { person_id } => Some(person_id),
        }
    }
}

/// What to tell an admin about a disabled account.
pub fn disabled_message(email: &str) -> String {
    format!(
        "DocSpace account {email} is disabled; DocSpace refuses to re-invite it. \
         Re-enable the account in DocSpace (People → the user → Enable) if they should have access"
    )
}

/// What to tell an admin about an address Asana returned that DocSpace would refuse.
pub fn invalid_email_message(raw: &str) -> String {
    format!(
        "Asana returned {raw:?} as the assignee's email, which is not an address DocSpace accepts; nothing was sent"
    )
}

/// What to do about a room for a person already known by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomDecision {
    /// Below the wanted level, or not a member: share.
    Share,
    /// Already a member at this level or a stronger one: we never downgrade anybody.
    AlreadyShared,
}

/// Decides a room share from the person's current level.
pub fn decide_room(current: Option<Access>, wanted: Access) -> RoomDecision {
    match current {
        Some(c) if c.covers(wanted) => RoomDecision::AlreadyShared,
        _ => RoomDecision::Share,
    }
}

/// What to do about room access this tool granted to someone no open task under any
/// rule naming the room assigns any more (a full read of every such rule said so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalDecision {
    /// Not a member any more: removed by hand, or by a run that stopped before recording
    /// it. Nothing to send; the grant is forgotten.
    Gone,
    /// Not this tool's to remove; the reason says why (shown by the dry run).
    NotOurs(String),
    /// Owned, in its grace: due at this time.
    Wait {
        /// When the grace ends.
        due: DateTime<Utc>,
    },
    /// Owned and past its grace: remove.
    Due,
}

/// The ownership and grace rules, in one place:
///
/// - only a grant this tool recorded counts (the caller has one), for someone who was not a
///   member before the first share (`prior_access`), who still has exactly the level sent
///   (`current`, the raw `FileShare` integer; another level means it was changed by hand);
/// - the removal is due `grace` after `since` (when the last qualifying assignment ended).
pub fn decide_removal(
    grant: &RoomGrant,
    current: Option<i32>,
    since: DateTime<Utc>,
    grace: std::time::Duration,
    now: DateTime<Utc>,
) -> RemovalDecision {
    let Some(current) = current else {
        return RemovalDecision::Gone;
    };
    if let Some(prior) = grant.prior_access {
        return RemovalDecision::NotOurs(format!(
            "was a member of the room (level {}) before this tool shared it at {}: left alone",
            level_name(prior),
            grant.access.as_str()
        ));
    }
    if current != grant.access.as_i32() {
        return RemovalDecision::NotOurs(format!(
            "this tool granted {} but the level is now {}: changed by hand, left alone",
            grant.access.as_str(),
            level_name(current)
        ));
    }
    let due = since + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    if due <= now {
        RemovalDecision::Due
    } else {
        RemovalDecision::Wait { due }
    }
}

/// A `FileShare` integer as its name where this tool knows it.
pub fn level_name(raw: i32) -> String {
    match Access::try_from(raw) {
        Ok(a) => a.as_str().to_string(),
        Err(_) => format!("FileShare {raw}"),
    }
}

/// The threshold: whether removing `per_room` (room → due removals, members) would exceed
/// `max` — then nothing is removed. `allow` (`sync --allow-revocations N`) replaces the
/// threshold with "at most N".
pub fn over_threshold(
    per_room: &BTreeMap<RoomId, (usize, usize)>,
    max: MaxRevocations,
    allow: Option<usize>,
) -> bool {
    let total: usize = per_room.values().map(|(n, _)| n).sum();
    if let Some(n) = allow {
        return total > n;
    }
    match max {
        MaxRevocations::PerRun(n) => total > n,
        MaxRevocations::ShareOfRoom(_) => per_room
            .values()
            .any(|(n, members)| max.room_limit(*members).is_some_and(|limit| *n > limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoomTarget;

    fn grant(prior: Option<i32>) -> RoomGrant {
        RoomGrant {
            room: RoomId::parse("5").unwrap(),
            email: "a@x.io".into(),
            person_id: "p".into(),
            assignee_gid: None,
            access: Access::Editing,
            prior_access: prior,
            task_gid: None,
            project_gid: None,
            granted_at: DateTime::UNIX_EPOCH,
            run_id: "r".into(),
        }
    }

    #[test]
    fn only_our_own_grant_at_our_level_is_removed_and_only_after_the_grace() {
        let t0 = DateTime::UNIX_EPOCH + chrono::Duration::days(1000);
        let hour = std::time::Duration::from_secs(3600);
        let editing = Some(Access::Editing.as_i32());
        assert_eq!(
            decide_removal(&grant(None), None, t0, hour, t0),
            RemovalDecision::Gone
        );
        assert!(matches!(
            decide_removal(&grant(Some(2)), editing, t0, hour, t0),
            RemovalDecision::NotOurs(why) if why.contains("before this tool")
        ));
        assert!(matches!(
            decide_removal(&grant(None), Some(Access::Read.as_i32()), t0, hour, t0),
            RemovalDecision::NotOurs(why) if why.contains("changed by hand")
        ));
        assert_eq!(
            decide_removal(&grant(None), editing, t0, hour, t0),
            RemovalDecision::Wait {
                due: t0 + chrono::Duration::hours(1)
            }
        );
        // The store's `since` and the caller's `now`, no clock: an hour later it is due.
        assert_eq!(
            decide_removal(
                &grant(None),
                editing,
                t0,
                hour,
                t0 + chrono::Duration::hours(1)
            ),
            RemovalDecision::Due
        );
        assert_eq!(
            decide_removal(&grant(None), editing, t0, std::time::Duration::ZERO, t0),
            RemovalDecision::Due
        );
    }

    #[test]
    fn the_threshold_counts_per_run_or_per_room_share_and_allow_replaces_it() {
        let room = |n: &str| RoomId::parse(n).unwrap();
        let mut per_room = BTreeMap::new();
        per_room.insert(room("1"), (3, 10));
        per_room.insert(room("2"), (1, 100));
        assert!(!over_threshold(&per_room, MaxRevocations::PerRun(4), None));
        assert!(over_threshold(&per_room, MaxRevocations::PerRun(3), None));
        // 3 of 10 members is over 20% (limit 2); 1 of 100 is not.
        assert!(over_threshold(
            &per_room,
            MaxRevocations::ShareOfRoom(20),
            None
        ));
        assert!(!over_threshold(
            &per_room,
            MaxRevocations::ShareOfRoom(30),
            None
        ));
        assert!(!over_threshold(
            &per_room,
            MaxRevocations::PerRun(0),
            Some(4)
        ));
        assert!(over_threshold(
            &per_room,
            MaxRevocations::PerRun(100),
            Some(3)
        ));
    }

    #[test]
    fn room_shares_never_downgrade() {
        assert_eq!(decide_room(None, Access::Editing), RoomDecision::Share);
        assert_eq!(
            decide_room(Some(Access::Read), Access::Editing),
            RoomDecision::Share
        );
        assert_eq!(
            decide_room(Some(Access::Editing), Access::Editing),
            RoomDecision::AlreadyShared
        );
        assert_eq!(
            decide_room(Some(Access::RoomManager), Access::Editing),
            RoomDecision::AlreadyShared
        );
    }

    #[test]
    fn merge_keeps_the_strongest_type_and_level_and_each_task_once() {
        let room = RoomId::parse("5").unwrap();
        let ask = |user_type, access| Ask {
            user_type,
            room: Some(RoomTarget {
                room: room.clone(),
                access,
            }),
            include_completed: false,
        };
        let task = |gid: &str| TaskRef {
            gid: gid.into(),
            name: None,
            project: None,
        };
        let mut plans = BTreeMap::new();
        // RoomAdmin's wire code (1) is below User's (4): a derived order would pick User.
        merge(
            &mut plans,
            "a@x.io",
            "1",
            task("10"),
            &ask(UserType::RoomAdmin, Access::Editing),
        );
        merge(
            &mut plans,
            "a@x.io",
            "1",
            task("10"),
            &ask(UserType::User, Access::RoomManager),
        );
        merge(
            &mut plans,
            "a@x.io",
            "1",
            task("11"),
            &ask(UserType::User, Access::Read),
        );
        let p = &plans["a@x.io"];
        assert_eq!(p.user_type, UserType::RoomAdmin);
        // RoomManager is 9 on the wire, Editing 10: the rank, not the code, decides.
        assert_eq!(p.rooms[&room], Access::RoomManager);
        assert_eq!(p.task_gids, ["10", "11"]);
        assert_eq!(p.task_count, 2);
        assert!(
            p.because()
                .starts_with("assigned task 10 (+1 more); type=1"),
            "{}",
            p.because()
        );
    }

    #[test]
    fn a_plan_counts_every_task_but_keeps_only_the_first_few() {
        let ask = Ask {
            user_type: UserType::User,
            room: None,
            include_completed: false,
        };
        let mut plans = BTreeMap::new();
        for round in 0..2 {
            for gid in 0..(TASKS_KEPT as u64 * 3) {
                let task = TaskRef {
                    gid: (1000 + gid).to_string(),
                    name: Some(format!("t{gid}")),
                    project: None,
                };
                merge(&mut plans, "a@x.io", "1", task, &ask);
            }
            let p = &plans["a@x.io"];
            assert_eq!(p.task_count, TASKS_KEPT * 3, "round {round}");
            assert_eq!(p.task_gids.len(), TASKS_KEPT);
            assert_eq!(p.task_gids[0], "1000");
            assert_eq!(p.first.name.as_deref(), Some("t0"));
        }
        assert!(plans["a@x.io"].because().starts_with(&format!(
            "assigned task 1000 \"t0\" (+{} more)",
            TASKS_KEPT * 3 - 1
        )));
    }

    #[test]
    fn absorbing_a_project_merge_equals_merging_its_tasks_one_by_one() {
        let room = |id: &str| RoomId::parse(id).unwrap();
        let ask = |user_type, id: &str, access| Ask {
            user_type,
            room: Some(RoomTarget {
                room: room(id),
                access,
            }),
            include_completed: false,
        };
        let task = |gid: &str, project: &str| TaskRef {
            gid: gid.into(),
            name: Some(format!("task {gid}")),
            project: Some(Gid::parse(project).unwrap()),
        };
        let first = [
            (
                "a@x.io",
                "1",
                task("10", "100"),
                ask(UserType::User, "5", Access::Read),
            ),
            (
                "b@x.io",
                "2",
                task("11", "100"),
                ask(UserType::User, "5", Access::Read),
            ),
        ];
        let second = [
            // The same task again under another rule: counted once, strongest level wins.
            (
                "a@x.io",
                "1",
                task("10", "200"),
                ask(UserType::RoomAdmin, "5", Access::Editing),
            ),
            (
                "a@x.io",
                "1",
                task("12", "200"),
                ask(UserType::User, "6", Access::Read),
            ),
            (
                "c@x.io",
                "3",
                task("13", "200"),
                ask(UserType::User, "6", Access::Read),
            ),
        ];
        let mut one_by_one = BTreeMap::new();
        for (email, assignee, t, a) in first.iter().chain(second.iter()) {
            merge(&mut one_by_one, email, assignee, t.clone(), a);
        }
        let mut absorbed = BTreeMap::new();
        for (email, assignee, t, a) in &first {
            merge(&mut absorbed, email, assignee, t.clone(), a);
        }
        let mut project = BTreeMap::new();
        for (email, assignee, t, a) in &second {
            merge(&mut project, email, assignee, t.clone(), a);
        }
        for p in project.into_values() {
            absorb(&mut absorbed, p);
        }
        assert_eq!(absorbed, one_by_one);
        assert_eq!(absorbed["a@x.io"].task_count, 2);
        assert_eq!(absorbed["a@x.io"].user_type, UserType::RoomAdmin);
        assert_eq!(absorbed["a@x.io"].rooms[&room("5")], Access::Editing);
    }
}
