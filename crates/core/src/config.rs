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
}

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
        Ok(Rule {
            project,
            room,
            user_type,
            include_completed: self.include_completed,
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
