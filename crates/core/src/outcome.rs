//! The outcome vocabulary of the brief's `--json` contract. Scripts match on these
//! strings, so they are spelled once, here.

use serde::{Deserialize, Serialize};

/// What happened to a person's portal access: the `outcome` of every `--json` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Invited to the portal.
    Invited,
    /// Already an active member.
    AlreadyMember,
    /// Invited earlier, not yet accepted.
    AlreadyInvited,
    /// A dry run: would invite.
    DryRun,
    /// The task has nobody assigned.
    NoAssignee,
    /// Asana does not show the assignee's email.
    EmailHidden,
    /// Failed (see `error`).
    Failed,
}

impl Outcome {
    /// The `--json` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Invited => "invited",
            Outcome::AlreadyMember => "already_member",
            Outcome::AlreadyInvited => "already_invited",
            Outcome::DryRun => "dry_run",
            Outcome::NoAssignee => "no_assignee",
            Outcome::EmailHidden => "email_hidden",
            Outcome::Failed => "failed",
        }
    }

    /// "Nothing to do" outcomes map to exit 3 when they are the whole answer.
    pub fn is_nothing_to_do(self) -> bool {
        matches!(self, Outcome::NoAssignee | Outcome::EmailHidden)
    }

    /// Every outcome.
    pub const ALL: [Outcome; 7] = [
        Outcome::Invited,
        Outcome::AlreadyMember,
        Outcome::AlreadyInvited,
        Outcome::DryRun,
        Outcome::NoAssignee,
        Outcome::EmailHidden,
        Outcome::Failed,
    ];
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a room share, reported beside the portal outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomOutcome {
    /// Shared at the wanted level.
    Shared,
    /// Already there at that level or higher.
    AlreadyShared,
    /// A dry run: would share.
    DryRun,
    /// Not tried: the portal step failed.
    Skipped,
    /// Failed (see `error`).
    Failed,
}

impl RoomOutcome {
    /// The `--json` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomOutcome::Shared => "shared",
            RoomOutcome::AlreadyShared => "already_shared",
            RoomOutcome::DryRun => "dry_run",
            RoomOutcome::Skipped => "skipped",
            RoomOutcome::Failed => "failed",
        }
    }
}
