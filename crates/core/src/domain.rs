//! The typed vocabulary that crosses crate boundaries: who asked ([`Source`]), what a
//! ledger row is about ([`Target`]), what was done ([`Action`]) and how it ended
//! ([`Recorded`]), what a queued job is ([`JobKind`], [`JobPayload`]), and DocSpace room
//! ids ([`RoomId`]).
//!
//! Each enum has exactly one mapping to the text stored in the state database and shown
//! by `history --json` (`as_str` / `FromStr`), so a renamed variant cannot silently make
//! old rows unreadable or new rows unmatchable by scripts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, RoomOutcome};

/// A stored word that is not one of an enum's spellings (a hand-edited or newer database).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownWord {
    /// Which vocabulary was being read.
    pub what: &'static str,
    /// The text found.
    pub value: String,
}

/// Defines a fieldless enum spelled as snake_case words, with `as_str`, `FromStr`,
/// `Display` and serde as those words.
macro_rules! words {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident => $word:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored and printed spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(UnknownWord { what: $what, value: other.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, so `{:<8}` in tables works.
                f.pad(self.as_str())
            }
        }

        /// Compares with the stored spelling, as scripts and tests read it.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

words! {
    /// Who asked for the work: the ledger's `source` and a job payload's origin.
    Source, "source" {
        /// `invite --task`.
        Invite => "invite",
        /// `sync`.
        Sync => "sync",
        /// A delivery to `/webhooks/asana/{id}`.
        Webhook => "webhook",
        /// The Events API poller.
        Watch => "watch",
        /// A dead letter queued again by `replay`.
        Replay => "replay",
        /// `state migrate` or another maintenance command.
        Admin => "admin",
    }
}

words! {
    /// What a ledger row records having done.
    Action, "ledger action" {
        /// An invitation was sent (or its sending failed).
        Invite => "invite",
        /// A room share was sent (or its sending failed).
        Share => "share",
        /// Nothing needed doing (already there, nobody to invite, a completed task).
        Skip => "skip",
        /// A dry run: what would have been sent.
        Plan => "plan",
        /// A whole-project resync job.
        Sync => "sync",
        /// Room access this tool granted was removed (or its removal decided, held back,
        /// cancelled or left alone): see the outcome.
        Revoke => "revoke",
    }
}

words! {
    /// How a ledger row ended: the `--json` [`Outcome`]s, the room outcomes, and the
    /// service's own (`completed`, `dead`).
    Recorded, "ledger outcome" {
        /// Invited to the portal.
        Invited => "invited",
        /// Already an active member.
        AlreadyMember => "already_member",
        /// Invited earlier, not yet accepted.
        AlreadyInvited => "already_invited",
        /// Room shared.
        Shared => "shared",
        /// Already in the room at that level or higher.
        AlreadyShared => "already_shared",
        /// A dry run's plan.
        DryRun => "dry_run",
        /// The task has nobody assigned.
        NoAssignee => "no_assignee",
        /// Asana does not show the assignee's email.
        EmailHidden => "email_hidden",
        /// The room step was not tried because the portal step failed.
        Skipped => "skipped",
        /// Failed (see the row's error).
        Failed => "failed",
        /// The task is completed and its rule leaves completed tasks alone.
        Completed => "completed",
        /// A job gave up: a dead letter until `replay`.
        Dead => "dead",
        /// A job was queued again by `replay`.
        Requeued => "requeued",
        /// Room access this tool granted was removed.
        Revoked => "revoked",
        /// A due removal was not made: the run would have removed more than
        /// `[deprovision] max_revocations` (exit 4; `sync --allow-revocations N`).
        HeldBack => "held_back",
        /// The person's last qualifying assignment for the room ended; removal after the grace.
        PendingRemoval => "pending_removal",
        /// A pending removal was cancelled: the person is assigned again.
        RemovalCancelled => "removal_cancelled",
        /// Left alone: access this tool did not grant (a member before our share, a level
        /// changed by hand, added by hand).
        Kept => "kept",
        /// The access this tool granted is already gone (removed by hand, or by an earlier
        /// run that stopped before recording it).
        AlreadyRemoved => "already_removed",
    }
}

impl From<Outcome> for Recorded {
    fn from(o: Outcome) -> Recorded {
        match o {
            Outcome::Invited => Recorded::Invited,
            Outcome::AlreadyMember => Recorded::AlreadyMember,
            Outcome::AlreadyInvited => Recorded::AlreadyInvited,
            Outcome::DryRun => Recorded::DryRun,
            Outcome::NoAssignee => Recorded::NoAssignee,
            Outcome::EmailHidden => Recorded::EmailHidden,
            Outcome::Failed => Recorded::Failed,
        }
    }
}

impl From<RoomOutcome> for Recorded {
    fn from(o: RoomOutcome) -> Recorded {
        match o {
            RoomOutcome::Shared => Recorded::Shared,
            RoomOutcome::AlreadyShared => Recorded::AlreadyShared,
            RoomOutcome::DryRun => Recorded::DryRun,
            RoomOutcome::Skipped => Recorded::Skipped,
            RoomOutcome::Failed => Recorded::Failed,
        }
    }
}

words! {
    /// What a queued job reconciles.
    JobKind, "job kind" {
        /// One task: reconcile its assignee under its project's rules.
        Task => "task",
        /// A whole project (after the Events API lost track): a full reconcile.
        Project => "project",
        /// A removal check for one room (resource = the room id): a full reconcile of every
        /// rule naming the room, due once a pending removal's grace has passed.
        Room => "room",
    }
}

/// What a job carries beside its kind and resource: where it came from, for the ledger
/// and for an admin reading the queue. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// Who enqueued it.
    pub source: Source,
    /// The event that caused it, e.g. `changed:assignee`, `added`, `resync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The registration id of the webhook that delivered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The event's `created_at` as Asana sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl JobPayload {
    /// A payload naming only its source.
    pub fn from_source(source: Source) -> JobPayload {
        JobPayload {
            source,
            event: None,
            webhook: None,
            at: None,
        }
    }
}

/// A DocSpace room id: digits only, checked once where it enters (config, flags).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomId(String);

impl RoomId {
    /// DocSpace room ids are integers; anything else would only fail later on the wire.
    pub fn parse(s: &str) -> Result<RoomId, String> {
        let t = s.trim();
        if !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(RoomId(t.to_string()))
        } else {
            Err(format!(
                "room {s:?} is not a DocSpace room id (digits only, e.g. \"123456\")"
            ))
        }
    }

    /// The id as sent to DocSpace.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a ledger row is about: portal access, one room, or a whole project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Membership of the DocSpace portal.
    Portal,
    /// Access to one room.
    Room(RoomId),
    /// A whole Asana project (a resync job).
    Project(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Target::Portal => "portal".to_string(),
            Target::Room(id) => format!("room:{id}"),
            Target::Project(gid) => format!("project:{gid}"),
        };
        f.pad(&text)
    }
}

impl FromStr for Target {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        let unknown = || UnknownWord {
            what: "ledger target",
            value: s.to_string(),
        };
        if s == "portal" {
            return Ok(Target::Portal);
        }
        if let Some(id) = s.strip_prefix("room:") {
            return RoomId::parse(id).map(Target::Room).map_err(|_| unknown());
        }
        if let Some(gid) = s.strip_prefix("project:") {
            return Ok(Target::Project(gid.to_string()));
        }
        Err(unknown())
    }
}

/// Compares with the stored spelling (`portal`, `room:5`).
impl PartialEq<&str> for Target {
    fn eq(&self, other: &&str) -> bool {
        other.parse::<Target>().is_ok_and(|t| &t == self)
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_through_its_stored_text() {
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>().unwrap(), *s);
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), *a);
        }
        for r in Recorded::ALL {
            assert_eq!(r.as_str().parse::<Recorded>().unwrap(), *r);
        }
        for o in Outcome::ALL {
            assert_eq!(Recorded::from(o).as_str(), o.as_str());
        }
        for t in [
            Target::Portal,
            Target::Room(RoomId::parse("42").unwrap()),
            Target::Project("1201".into()),
        ] {
            assert_eq!(t.to_string().parse::<Target>().unwrap(), t);
        }
        assert!("room:abc".parse::<Target>().is_err());
        assert!("invite ".parse::<Action>().is_err());
    }

    #[test]
    fn payloads_read_back_and_keep_old_rows_readable() {
        let p: JobPayload = serde_json::from_str(
            r#"{"source":"webhook","event":"changed:assignee","webhook":"h1"}"#,
        )
        .unwrap();
        assert_eq!(p.source, Source::Webhook);
        assert_eq!(p.webhook.as_deref(), Some("h1"));
        let back: JobPayload = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
