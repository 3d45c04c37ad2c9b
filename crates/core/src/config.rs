//! The TOML configuration file: rules (project → room, access, user type) plus optional
//! connection settings. Keys are part of the user contract (see the brief), so unknown
//! keys are refused rather than silently ignored — a typo in `acess` must not mean
//! "no access level".

use std::path::Path;

use asana_api::Gid;
use docspace_api::{Access, UserType};
use serde::Deserialize;

use crate::CoreError;

/// The file as written by the user. Every connection value is optional here because
/// flags and environment variables override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub asana: AsanaSection,
    #[serde(default)]
    pub docspace: DocSpaceSection,
    /// State database location (SQLite path; `postgres://` later).
    pub state: Option<String>,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub serve: ServeSection,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsanaSection {
    pub base_url: Option<String>,
    /// Prefer the `ASANA_TOKEN` environment variable; accepted here for service files.
    pub token: Option<String>,
    /// 150 for free workspaces, 1500 for paid ones.
    pub requests_per_minute: Option<u32>,
    pub max_concurrent_reads: Option<usize>,
    pub max_concurrent_writes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocSpaceSection {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub requests_per_minute: Option<u32>,
    pub max_concurrent_reads: Option<usize>,
    pub max_concurrent_writes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Invitations per `POST /people/invite` call.
    pub invite_batch: Option<usize>,
}

/// `[serve]`: the always-on side (`serve`, `watch`). Every key is optional; the defaults
/// live in `bridge-service` (`ServeConfig::default`) next to the code they tune.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address `serve` listens on, e.g. `0.0.0.0:8080`.
    pub listen: Option<String>,
    /// Jobs worked at once.
    pub workers: Option<usize>,
    /// Attempts before a job becomes a dead letter.
    pub max_attempts: Option<u32>,
    /// Waits between attempts of a failing job, in seconds; the last one repeats.
    pub retry_schedule_secs: Option<Vec<u64>>,
    /// How long a claimed job is reserved for its worker; after a crash, the job is picked
    /// up again once this has passed.
    pub lease_secs: Option<u64>,
    /// Largest webhook delivery body accepted (413 above).
    pub max_body_bytes: Option<usize>,
    /// How long after `webhooks create` registered an id its handshake is accepted.
    pub handshake_window_secs: Option<u64>,
    /// How long in-flight jobs may finish after SIGTERM before they are released.
    pub shutdown_grace_secs: Option<u64>,
    /// Registrations made outside `webhooks create` (e.g. with curl): `serve` expects their
    /// handshake at `/webhooks/asana/{id}` until it has happened once.
    #[serde(default)]
    pub webhooks: Vec<ConfiguredWebhook>,
}

/// One `[[serve.webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredWebhook {
    /// The last path segment of the delivery URL: `/webhooks/asana/{id}`.
    pub id: String,
    /// The Asana project the webhook watches; its `[[rules]]` entry applies.
    pub project: String,
}

/// One `[[rules]]` table exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub project: String,
    pub room: Option<String>,
    pub access: Option<String>,
    pub user_type: Option<String>,
    #[serde(default)]
    pub include_completed: bool,
}

/// A rule after validation: typed ids and integer-backed enums only.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub project: Gid,
    pub room: Option<RoomTarget>,
    pub user_type: UserType,
    pub include_completed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomTarget {
    pub room_id: String,
    pub access: Access,
}

/// The level a rule gets when it names a room but no `access`: the collaborative default
/// that every room type but Public and Form-filling allows. Those are caught by the room
/// check before any write.
pub const DEFAULT_ACCESS: Access = Access::Editing;

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CoreError::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::parse(&text).map_err(|e| match e {
            CoreError::Config(m) => CoreError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<FileConfig, CoreError> {
        // Not `e.to_string()`: toml quotes the offending source line, which may be the
        // line holding a token. The message plus a line number is enough to find it.
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or(text).matches('\n').count() + 1);
            CoreError::Config(match line {
                Some(l) => format!("line {l}: {}", e.message()),
                None => e.message().to_string(),
            })
        })
    }

    /// Validate every rule, reporting all problems at once so a user fixes the file in
    /// one pass.
    pub fn rules(&self) -> Result<Vec<Rule>, CoreError> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (i, raw) in self.rules.iter().enumerate() {
            match raw.validate() {
                Ok(r) => {
                    if out
                        .iter()
                        .any(|o: &Rule| o.project == r.project && o.room == r.room)
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
}

impl RawRule {
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
                let room_id = parse_room_id(room)?;
                let access = match access {
                    Some(a) => a.parse::<Access>().map_err(|e| format!("access: {e}"))?,
                    None => DEFAULT_ACCESS,
                };
                if !access.allowed_for(user_type) {
                    return Err(format!(
                        "access {access:?} is not available to user_type {user_type:?} in DocSpace"
                    ));
                }
                Some(RoomTarget { room_id, access })
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

/// DocSpace room ids are integers; anything else would only fail later on the wire.
pub fn parse_room_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t.to_string())
    } else {
        Err(format!(
            "room {s:?} is not a DocSpace room id (digits only, e.g. \"123456\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let cfg = FileConfig::parse(include_str!("../../../docs/config.example.toml")).unwrap();
        let rules = cfg.rules().unwrap();
        assert!(!rules.is_empty());
        assert!(rules
            .iter()
            .all(|r| r.user_type == UserType::User || r.room.is_some()));
    }

    #[test]
    fn unknown_access_name_is_refused_with_the_valid_names() {
        let cfg =
            FileConfig::parse("[[rules]]\nproject = \"1201\"\nroom = \"5\"\naccess = \"editor\"\n")
                .unwrap();
        let err = cfg.rules().unwrap_err().to_string();
        assert!(err.contains("rules[0]"), "{err}");
        assert!(err.contains("editing"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = FileConfig::parse("[[rules]]\nproject = \"1\"\nacess = \"read\"\n").unwrap_err();
        assert!(err.to_string().contains("acess"), "{err}");
    }

    #[test]
    fn access_without_room_and_bad_ids_are_refused() {
        for text in [
            "[[rules]]\nproject = \"1\"\naccess = \"read\"\n",
            "[[rules]]\nproject = \"abc\"\n",
            "[[rules]]\nproject = \"1\"\nroom = \"my-room\"\n",
            "[[rules]]\nproject = \"1\"\nuser_type = \"guest\"\n",
            "[[rules]]\nproject = \"1\"\nroom = \"3\"\naccess = \"room-manager\"\n",
        ] {
            let cfg = FileConfig::parse(text).unwrap();
            assert!(cfg.rules().is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn serve_section_keys_parse_and_unknown_ones_are_refused() {
        let cfg = FileConfig::parse(
            "[serve]\nlisten = \"0.0.0.0:8080\"\nworkers = 2\nmax_attempts = 5\n\
             retry_schedule_secs = [1, 2]\nlease_secs = 30\nmax_body_bytes = 65536\n\
             handshake_window_secs = 60\nshutdown_grace_secs = 3\n\
             [[serve.webhooks]]\nid = \"hook-1\"\nproject = \"1201\"\n",
        )
        .unwrap();
        assert_eq!(cfg.serve.retry_schedule_secs, Some(vec![1, 2]));
        assert_eq!(cfg.serve.webhooks.len(), 1);
        assert_eq!(cfg.serve.webhooks[0].project, "1201");
        assert!(FileConfig::parse("[serve]\nlisen = \"x\"\n").is_err());
        assert!(FileConfig::parse("[[serve.webhooks]]\nid = \"a\"\n").is_err());
    }

    #[test]
    fn defaults_are_user_and_editing() {
        let cfg = FileConfig::parse("[[rules]]\nproject = \"12\"\nroom = \"7\"\n").unwrap();
        let r = &cfg.rules().unwrap()[0];
        assert_eq!(r.user_type, UserType::User);
        assert_eq!(r.room.as_ref().unwrap().access, Access::Editing);
        assert!(!r.include_completed);
    }
}
