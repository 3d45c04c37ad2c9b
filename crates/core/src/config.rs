//! The `[[rules]]` and `[sync]` sections of the TOML configuration file: their schema,
//! defaults and validation. Keys are part of the user contract (see the brief), so unknown
//! keys are refused rather than silently ignored — a typo in `acess` must not mean
//! "no access level". The file as a whole is put together by the binary, which also owns
//! the connection sections; `[serve]` belongs to `bridge-service`.

use std::time::Duration;

use asana_api::Gid;
use docspace_api::{Access, UserType};
use serde::Deserialize;

use crate::domain::RoomId;
use crate::CoreError;

/// `[sync]`: how `sync` (and every reconcile) batches its DocSpace writes and waits for
/// work another process holds. Schema, defaults and validation in one place.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Invitations per `POST /people/invite` call (default 50).
    pub invite_batch: Option<usize>,
    /// Longest a reconcile waits for people another run is inviting right now before it
    /// reports them as failed for now (default 600 s).
    pub claim_wait_secs: Option<u64>,
    /// `sync` reads only the tasks modified since its last run of a project unless the
    /// last full read of it is older than this (a duration: `"30m"`, `"24h"`, `"7d"`;
    /// default `"24h"`; `"0s"` makes every sync full).
    pub full_every: Option<String>,
}

/// The settings of `[sync]` with their defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// Invitations per call.
    pub invite_batch: usize,
    /// How long to wait for people another run holds.
    pub claim_wait: Duration,
    /// The longest an incremental `sync` may go on from the last full one.
    pub full_every: Duration,
}

/// Default `[sync] full_every`.
pub const DEFAULT_FULL_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Default invitations per `POST /people/invite`.
pub const DEFAULT_INVITE_BATCH: usize = 50;

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            invite_batch: DEFAULT_INVITE_BATCH,
            claim_wait: Duration::from_secs(600),
            full_every: DEFAULT_FULL_EVERY,
        }
    }
}

impl SyncSection {
    /// The section over the defaults; 0 for `invite_batch` is refused.
    pub fn settings(&self) -> Result<SyncSettings, CoreError> {
        let mut s = SyncSettings::default();
        if let Some(n) = self.invite_batch {
            if n == 0 {
                return Err(CoreError::Config(
                    "[sync] invite_batch must be at least 1".into(),
                ));
            }
            s.invite_batch = n;
        }
        if let Some(n) = self.claim_wait_secs {
            s.claim_wait = Duration::from_secs(n);
        }
        if let Some(text) = &self.full_every {
            s.full_every = humantime::parse_duration(text.trim()).map_err(|e| {
                CoreError::Config(format!(
                    "[sync] full_every = {text:?} is not a duration ({e}); write e.g. \"24h\", \"30m\" or \"0s\""
                ))
            })?;
        }
        Ok(s)
    }
}

/// `[deprovision]`: the safety brake on removals.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeprovisionSection {
    /// The most room removals one run may make (default 10), or a share of a room's
    /// members (`"10%"`). A run that would remove more removes nothing and exits 4.
    pub max_revocations: Option<RawMax>,
}

/// `max_revocations` as written: a number or a text such as `"10%"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawMax {
    /// A count per run.
    Count(i64),
    /// `"10%"` (or a count written as text).
    Text(String),
}

/// The threshold above which a run removes nothing (Entra's "accidental deletions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRevocations {
    /// At most this many removals in one run, over all rooms.
    PerRun(usize),
    /// In each room, at most this percentage of its members (rounded down, at least 1).
    ShareOfRoom(u8),
}

/// Default `[deprovision] max_revocations`.
pub const DEFAULT_MAX_REVOCATIONS: MaxRevocations = MaxRevocations::PerRun(10);

impl Default for MaxRevocations {
    fn default() -> Self {
        DEFAULT_MAX_REVOCATIONS
    }
}

impl MaxRevocations {
    /// How many removals a room of `members` members may see in this run under a share
    /// limit (`None` for a per-run limit, which is counted over the whole run).
    pub fn room_limit(self, members: usize) -> Option<usize> {
        match self {
            MaxRevocations::PerRun(_) => None,
            MaxRevocations::ShareOfRoom(p) => Some((members * usize::from(p) / 100).max(1)),
        }
    }
}

impl std::fmt::Display for MaxRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxRevocations::PerRun(n) => write!(f, "{n} per run"),
            MaxRevocations::ShareOfRoom(p) => write!(f, "{p}% of a room's members"),
        }
    }
}

impl DeprovisionSection {
    /// The threshold with its default; a negative count, a share above 100% or text that is
    /// neither is refused.
    pub fn max_revocations(&self) -> Result<MaxRevocations, CoreError> {
        let bad = |v: &dyn std::fmt::Display| {
            CoreError::Config(format!(
                "[deprovision] max_revocations = {v} is neither a count (e.g. 10) nor a share of a room's members (e.g. \"10%\")"
            ))
        };
        match &self.max_revocations {
            None => Ok(DEFAULT_MAX_REVOCATIONS),
            Some(RawMax::Count(n)) => usize::try_from(*n)
                .map(MaxRevocations::PerRun)
                .map_err(|_| bad(n)),
            Some(RawMax::Text(t)) => {
                let text = t.trim();
                if let Some(p) = text.strip_suffix('%') {
                    match p.trim().parse::<u8>() {
                        Ok(p) if p <= 100 => Ok(MaxRevocations::ShareOfRoom(p)),
                        _ => Err(bad(&format!("{t:?}"))),
                    }
                } else {
                    text.parse::<usize>()
                        .map(MaxRevocations::PerRun)
                        .map_err(|_| bad(&format!("{t:?}")))
                }
            }
        }
    }
}

/// What one room's rules say about removals: the room is revocable only when **every**
/// rule naming it says `on_unassign = "revoke"` (one `keep` keeps it, the safe reading of
/// a mixed file), after the longest `revoke_after` among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRevocation {
    /// The grace.
    pub grace: Duration,
    /// Every configured rule naming the room ([`crate::reconcile::rule_key`]): removals are
    /// computed only by a run that read all of them whole and successfully.
    pub rule_keys: std::collections::BTreeSet<String>,
    /// The projects of those rules, for the ledger's why.
    pub projects: std::collections::BTreeSet<String>,
}

/// Everything a reconcile needs to decide removals: the revocable rooms of the whole
/// configuration (not only the rules of this run), the threshold, and an admin's
/// `--allow-revocations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocation {
    /// Room → its grace and naming rules; rooms absent here are never touched.
    pub rooms: std::collections::BTreeMap<RoomId, RoomRevocation>,
    /// The threshold.
    pub max: MaxRevocations,
    /// `sync --allow-revocations N`: go ahead with up to N removals whatever the threshold.
    pub allow: Option<usize>,
}

impl Revocation {
    /// The revocable rooms of `all_rules` (every rule of the configuration).
    pub fn from_rules(all_rules: &[Rule], max: MaxRevocations) -> Revocation {
        let mut rooms: std::collections::BTreeMap<RoomId, (bool, RoomRevocation)> =
            std::collections::BTreeMap::new();
        for r in all_rules {
            let Some(t) = &r.room else { continue };
            let e = rooms.entry(t.room.clone()).or_insert_with(|| {
                (
                    true,
                    RoomRevocation {
                        grace: Duration::ZERO,
                        rule_keys: Default::default(),
                        projects: Default::default(),
                    },
                )
            });
            e.0 &= r.on_unassign == OnUnassign::Revoke;
            e.1.grace = e.1.grace.max(r.revoke_after);
            e.1.rule_keys.insert(crate::reconcile::rule_key(r));
            e.1.projects.insert(r.project.to_string());
        }
        Revocation {
            rooms: rooms
                .into_iter()
                .filter(|(_, (revoke, _))| *revoke)
                .map(|(id, (_, r))| (id, r))
                .collect(),
            max,
            allow: None,
        }
    }

    /// Whether any room may see removals.
    pub fn is_on(&self) -> bool {
        !self.rooms.is_empty()
    }
}

/// One `[[rules]]` table exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The Asana project gid.
    pub project: String,
    /// A DocSpace room id.
    pub room: Option<String>,
    /// A room access level name, with `room`.
    pub access: Option<String>,
    /// `user`, `room-admin` or `docspace-admin`.
    pub user_type: Option<String>,
    /// Whether assignees of completed tasks count.
    #[serde(default)]
    pub include_completed: bool,
    /// `keep` (the default) or `revoke`: what happens to the room access this tool granted
    /// once no open task under a rule naming the room assigns the person any more.
    pub on_unassign: Option<String>,
    /// How long after the last qualifying assignment ended the access is removed (a
    /// duration: `"0s"`, `"30m"`, `"24h"`; default `"24h"`). Only with `on_unassign`.
    pub revoke_after: Option<String>,
}

/// What a rule does with the room access this tool granted once the reason for it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnassign {
    /// Access only grows (the behaviour before `on_unassign` existed).
    #[default]
    Keep,
    /// Remove the access this tool granted, after `revoke_after`.
    Revoke,
}

impl OnUnassign {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnassign::Keep => "keep",
            OnUnassign::Revoke => "revoke",
        }
    }
}

impl std::str::FromStr for OnUnassign {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "keep" => Ok(OnUnassign::Keep),
            "revoke" => Ok(OnUnassign::Revoke),
            other => Err(format!(
                "on_unassign = {other:?}: write \"keep\" (access only grows, the default) or \"revoke\""
            )),
        }
    }
}

/// Default `revoke_after`: a day, so a quick reassignment never makes access flap.
pub const DEFAULT_REVOKE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A rule after validation: typed ids and integer-backed enums only.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The project whose assignees this rule is about.
    pub project: Gid,
    /// The room to share with them, and at which level.
    pub room: Option<RoomTarget>,
    /// The type to invite them as.
    pub user_type: UserType,
    /// Whether assignees of completed tasks count.
    pub include_completed: bool,
    /// What happens to the room access this tool granted once nobody's task asks for it.
    pub on_unassign: OnUnassign,
    /// The grace before a removal.
    pub revoke_after: Duration,
}

/// A room and the level a rule wants in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomTarget {
    /// The room.
    pub room: RoomId,
    /// The level to grant.
    pub access: Access,
}

/// The level a rule gets when it names a room but no `access`: the collaborative default
/// that every room type but Public and Form-filling allows. Those are caught by the room
/// check before any write.
pub const DEFAULT_ACCESS: Access = Access::Editing;

/// Validate every rule, reporting all problems at once so a user fixes the file in one
/// pass.
pub fn validate_rules(raw: &[RawRule]) -> Result<Vec<Rule>, CoreError> {
    let mut out: Vec<Rule> = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in raw.iter().enumerate() {
        match raw.validate() {
            Ok(r) => {
                if out
                    .iter()
                    .any(|o| o.project == r.project && o.room == r.room)
                {
                    problems.push(format!(
                        "rules[{i}]: duplicate rule for project {}",
                        r.project
                    ));
                } else {
                    out.push(r)
                }
            }
            Err(e) => problems.push(format!("rules[{i}] (project {:?}): {e}", raw.project)),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(CoreError::Config(problems.join("; ")))
    }
}

impl RawRule {
    /// Parses the rule's ids and names, or says what is wrong with it.
    pub fn validate(&self) -> Result<Rule, String> {
        let project = Gid::parse(&self.project).map_err(|e| e.to_string())?;
        let user_type = match &self.user_type {
            Some(t) => t
                .parse::<UserType>()
                .map_err(|e| format!("user_type: {e}"))?,
            None => UserType::User,
        };
        let room = match (&self.room, &self.access) {
            (None, None) => None,
            (None, Some(_)) => return Err("`access` needs a `room`".into()),
            (Some(room), access) => {
                let room = RoomId::parse(room)?;
                let access = match access {
                    Some(a) => a.parse::<Access>().map_err(|e| format!("access: {e}"))?,
                    None => DEFAULT_ACCESS,
                };
                if !access.allowed_for(user_type) {
                    return Err(format!(
                        "access {access:?} is not available to user_type {user_type:?} in DocSpace"
                    ));
                }
                Some(RoomTarget { room, access })
            }
        };
        let on_unassign = match &self.on_unassign {
            Some(text) => text.parse::<OnUnassign>()?,
            None => OnUnassign::Keep,
        };
        if on_unassign == OnUnassign::Revoke && room.is_none() {
            return Err(
                "on_unassign = \"revoke\" needs a `room`: only room access is ever removed (portal accounts never are)"
                    .into(),
            );
        }
        let revoke_after = match &self.revoke_after {
            Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                format!(
                    "revoke_after = {text:?} is not a duration ({e}); write e.g. \"24h\", \"30m\" or \"0s\""
                )
            })?,
            None => DEFAULT_REVOKE_AFTER,
        };
        Ok(Rule {
            project,
            room,
            user_type,
            include_completed: self.include_completed,
            on_unassign,
            revoke_after,
        })
    }
}

impl Rule {
    /// What this rule asks for one of its project's tasks.
    pub fn ask(&self) -> Ask {
        Ask {
            user_type: self.user_type,
            room: self.room.clone(),
            include_completed: self.include_completed,
        }
    }
}

/// What one rule asks for the assignee of one task, without the project it came from:
/// `invite --task` builds one from its flags, a webhook job takes its project's rules'.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The type to invite as.
    pub user_type: UserType,
    /// The room to share, if any.
    pub room: Option<RoomTarget>,
    /// Whether a completed task still counts.
    pub include_completed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Result<Vec<Rule>, String> {
        #[derive(Deserialize)]
        struct F {
            rules: Vec<RawRule>,
        }
        let f: F = toml::from_str(text).map_err(|e| e.to_string())?;
        validate_rules(&f.rules).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_access_name_is_refused_with_the_valid_names() {
        let err = rules("[[rules]]\nproject = \"1201\"\nroom = \"5\"\naccess = \"editor\"\n")
            .unwrap_err();
        assert!(err.contains("rules[0]"), "{err}");
        assert!(err.contains("editing"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = rules("[[rules]]\nproject = \"1\"\nacess = \"read\"\n").unwrap_err();
        assert!(err.contains("acess"), "{err}");
    }

    #[test]
    fn access_without_room_and_bad_ids_are_refused() {
        for text in [
            "[[rules]]\nproject = \"1\"\naccess = \"read\"\n",
            "[[rules]]\nproject = \"abc\"\n",
            "[[rules]]\nproject = \"1\"\nroom = \"my-room\"\n",
            "[[rules]]\nproject = \"1\"\nuser_type = \"guest\"\n",
            "[[rules]]\nproject = \"1\"\nroom = \"3\"\naccess = \"room-manager\"\n",
            "[[rules]]\nproject = \"1\"\n[[rules]]\nproject = \"1\"\n",
        ] {
            assert!(rules(text).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn on_unassign_defaults_to_keep_and_revoke_needs_a_room_and_a_duration() {
        let r = &rules("[[rules]]\nproject = \"12\"\nroom = \"7\"\n").unwrap()[0];
        assert_eq!(r.on_unassign, OnUnassign::Keep);
        assert_eq!(r.revoke_after, DEFAULT_REVOKE_AFTER);
        let r = &rules(
            "[[rules]]\nproject = \"12\"\nroom = \"7\"\non_unassign = \"revoke\"\nrevoke_after = \"0s\"\n",
        )
        .unwrap()[0];
        assert_eq!(r.on_unassign, OnUnassign::Revoke);
        assert_eq!(r.revoke_after, Duration::ZERO);
        for (text, word) in [
            (
                "[[rules]]\nproject = \"1\"\nroom = \"7\"\non_unassign = \"remove\"\n",
                "on_unassign",
            ),
            (
                "[[rules]]\nproject = \"1\"\non_unassign = \"revoke\"\n",
                "needs a `room`",
            ),
            (
                "[[rules]]\nproject = \"1\"\nroom = \"7\"\nrevoke_after = \"soon\"\n",
                "revoke_after",
            ),
        ] {
            let err = rules(text).unwrap_err();
            assert!(err.contains(word), "{text}: {err}");
        }
    }

    #[test]
    fn a_room_is_revocable_only_when_every_rule_naming_it_says_revoke() {
        let all = rules(
            "[[rules]]\nproject = \"1\"\nroom = \"7\"\non_unassign = \"revoke\"\nrevoke_after = \"1h\"\n\
             [[rules]]\nproject = \"2\"\nroom = \"7\"\non_unassign = \"revoke\"\nrevoke_after = \"2h\"\n\
             [[rules]]\nproject = \"1\"\nroom = \"8\"\non_unassign = \"revoke\"\n\
             [[rules]]\nproject = \"3\"\nroom = \"8\"\n",
        )
        .unwrap();
        let r = Revocation::from_rules(&all, DEFAULT_MAX_REVOCATIONS);
        let seven = RoomId::parse("7").unwrap();
        assert_eq!(r.rooms.len(), 1, "{r:?}");
        assert_eq!(r.rooms[&seven].grace, Duration::from_secs(7200));
        assert_eq!(r.rooms[&seven].rule_keys.len(), 2);
    }

    #[test]
    fn max_revocations_is_a_count_or_a_share() {
        let parse = |t: &str| {
            toml::from_str::<DeprovisionSection>(t)
                .map_err(|e| e.to_string())
                .and_then(|d| d.max_revocations().map_err(|e| e.to_string()))
        };
        assert_eq!(parse("").unwrap(), MaxRevocations::PerRun(10));
        assert_eq!(
            parse("max_revocations = 3").unwrap(),
            MaxRevocations::PerRun(3)
        );
        assert_eq!(
            parse("max_revocations = \"10%\"").unwrap(),
            MaxRevocations::ShareOfRoom(10)
        );
        assert_eq!(MaxRevocations::ShareOfRoom(10).room_limit(35), Some(3));
        assert_eq!(MaxRevocations::ShareOfRoom(10).room_limit(4), Some(1));
        for bad in [
            "max_revocations = -1",
            "max_revocations = \"150%\"",
            "max_revocations = \"lots\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("max_revocation = 3").is_err());
    }

    #[test]
    fn defaults_are_user_and_editing() {
        let r = &rules("[[rules]]\nproject = \"12\"\nroom = \"7\"\n").unwrap()[0];
        assert_eq!(r.user_type, UserType::User);
        assert_eq!(r.room.as_ref().unwrap().access, Access::Editing);
        assert!(!r.include_completed);
    }

    #[test]
    fn sync_section_defaults_and_refuses_a_zero_batch() {
        assert_eq!(
            SyncSection::default().settings().unwrap(),
            SyncSettings::default()
        );
        let s = SyncSection {
            invite_batch: Some(0),
            ..SyncSection::default()
        };
        assert!(s.settings().is_err());
    }

    #[test]
    fn full_every_is_a_duration_defaulting_to_a_day() {
        assert_eq!(
            SyncSection::default().settings().unwrap().full_every,
            Duration::from_secs(86_400)
        );
        let section = |v: &str| SyncSection {
            full_every: Some(v.into()),
            ..SyncSection::default()
        };
        assert_eq!(
            section("30m").settings().unwrap().full_every,
            Duration::from_secs(1800)
        );
        assert_eq!(section("0s").settings().unwrap().full_every, Duration::ZERO);
        let err = section("daily").settings().unwrap_err().to_string();
        assert!(err.contains("full_every"), "{err}");
        let f: SyncSection = toml::from_str("full_every = \"7d\"").unwrap();
        assert_eq!(
            f.settings().unwrap().full_every,
            Duration::from_secs(7 * 86_400)
        );
    }
}
