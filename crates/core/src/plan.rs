//! Plan: merge what Asana says into one plan per person, and decide — given what
//! DocSpace already knows about a person (and a room's members) — what to do. Pure
//! functions, so every rule of "never twice" and "strongest wins" is testable without I/O.

use std::collections::BTreeMap;

use asana_api::Gid;
use docspace_api::{Access, Person, PersonState, UserType};

use crate::config::Ask;
use crate::domain::RoomId;
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
    /// Every task that grants access, in the order met.
    pub tasks: Vec<TaskRef>,
    /// Room → strongest wanted level.
    pub rooms: BTreeMap<RoomId, Access>,
}

impl PersonPlan {
    /// The first task, which output and the ledger name.
    pub fn first_task(&self) -> &str {
        self.tasks.first().map_or("", |t| t.gid.as_str())
    }

    /// Why this person: the task that grants access, for `history`.
    pub fn because(&self) -> String {
        let Some(first) = self.tasks.first() else {
            return format!("type={}", self.user_type.as_i32());
        };
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
        let more = if self.tasks.len() > 1 {
            format!(" (+{} more)", self.tasks.len() - 1)
        } else {
            String::new()
        };
        format!(
            "assigned task {}{name}{project}{more}; type={}",
            first.gid,
            self.user_type.as_i32()
        )
    }
}

/// The one merge of several asks (rules) for one person: strongest user type, strongest
/// level per room, every task once.
pub fn merge(
    plans: &mut BTreeMap<String, PersonPlan>,
    email: &str,
    assignee: &str,
    task: TaskRef,
    ask: &Ask,
) {
    let p = plans
        .entry(email.to_string())
        .or_insert_with(|| PersonPlan {
            email: email.to_string(),
            assignee: assignee.to_string(),
            user_type: ask.user_type,
            tasks: Vec::new(),
            rooms: BTreeMap::new(),
        });
    p.user_type = p.user_type.strongest(ask.user_type);
    if !p.tasks.iter().any(|t| t.gid == task.gid) {
        p.tasks.push(task);
    }
    if let Some(t) = &ask.room {
        let e = p.rooms.entry(t.room.clone()).or_insert(t.access);
        *e = e.strongest(t.access);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoomTarget;

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
        assert_eq!(p.tasks.len(), 2);
        assert!(
            p.because()
                .starts_with("assigned task 10 (+1 more); type=1"),
            "{}",
            p.because()
        );
    }
}
