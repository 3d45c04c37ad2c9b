//! Plan: given what DocSpace already knows about a person (and a room's members), decide
//! what to do. Pure functions, so every rule of "never twice" is testable without I/O.

use docspace_api::{Access, Person, PersonState};

use crate::Outcome;

/// What to do about portal access for one email.
#[derive(Debug, Clone, PartialEq)]
pub enum PortalDecision {
    Invite,
    AlreadyMember {
        person_id: String,
    },
    AlreadyInvited {
        person_id: String,
    },
    /// A terminated account: inviting again is a 400 in DocSpace. An admin must decide.
    Disabled {
        person_id: String,
    },
}

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
    pub fn outcome(&self, dry_run: bool) -> Outcome {
        match self {
            PortalDecision::Invite if dry_run => Outcome::DryRun,
            PortalDecision::Invite => Outcome::Invited,
            PortalDecision::AlreadyMember { .. } => Outcome::AlreadyMember,
            PortalDecision::AlreadyInvited { .. } => Outcome::AlreadyInvited,
            PortalDecision::Disabled { .. } => Outcome::Failed,
        }
    }

    pub fn person_id(&self) -> Option<&str> {
        match self {
            PortalDecision::Invite => None,
            PortalDecision::AlreadyMember { person_id }
            | PortalDecision::AlreadyInvited { person_id }
            | PortalDecision::Disabled { person_id } => Some(person_id),
        }
    }
}

pub fn disabled_message(email: &str) -> String {
    format!(
        "DocSpace account {email} is disabled; DocSpace refuses to re-invite it. \
         Re-enable the account in DocSpace (People → the user → Enable) if they should have access"
    )
}

/// What to do about a room for a person already known by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomDecision {
    Share,
    /// Already a member at this level or a stronger one: we never downgrade anybody.
    AlreadyShared,
}

/// How much a level lets someone do, to compare levels. Not DocSpace's numbering, whose
/// integers are not ordered by power.
pub fn access_rank(a: Access) -> u8 {
    match a {
        Access::RoomManager => 6,
        Access::ContentCreator => 5,
        Access::Editing => 4,
        Access::Review => 3,
        Access::Comment | Access::FillForms => 2,
        Access::Read => 1,
    }
}

pub fn decide_room(current: Option<Access>, wanted: Access) -> RoomDecision {
    match current {
        Some(c) if c == wanted || access_rank(c) > access_rank(wanted) => {
            RoomDecision::AlreadyShared
        }
        _ => RoomDecision::Share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
