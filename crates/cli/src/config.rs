//! The TOML configuration file as a whole. Each section's schema, defaults and validation
//! live with the code it tunes — `[[rules]]` and `[sync]` in `bridge_core::config`,
//! `[serve]` in `bridge_service::config` — and the connection sections (`[asana]`,
//! `[docspace]`, `state`) here, beside the layering of flags and environment over them
//! (`settings`). Unknown keys are refused everywhere: a typo must not silently mean
//! "default".

use std::path::Path;

use bridge_core::config::{
    validate_rules, DeprovisionSection, RawRule, Revocation, Rule, SyncSection, SyncSettings,
};
use bridge_core::CoreError;
use bridge_service::config::{AdminSection, ServeSection};
use serde::Deserialize;

/// The file as written by the user. Every connection value is optional here because
/// flags and environment variables override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub asana: AsanaSection,
    #[serde(default)]
    pub docspace: DocSpaceSection,
    /// State database location (SQLite path).
    pub state: Option<String>,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub serve: ServeSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub deprovision: DeprovisionSection,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// `[asana]`: the connection to Asana.
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

/// `[docspace]`: the connection to DocSpace.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocSpaceSection {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub requests_per_minute: Option<u32>,
    pub max_concurrent_reads: Option<usize>,
    pub max_concurrent_writes: Option<usize>,
}

/// Largest config file read. Real ones are a few kilobytes; the cap makes a wrong path
/// (`/dev/zero`, a log file, a disk image) fail at once instead of filling memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl FileConfig {
    /// Reads (at most [`MAX_CONFIG_BYTES`]) and parses the file.
    pub fn load(path: &Path) -> Result<FileConfig, CoreError> {
        use std::io::Read;
        let cannot = |e: std::io::Error| {
            CoreError::Config(format!("cannot read config file {}: {e}", path.display()))
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(cannot)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(CoreError::Config(format!(
                "config file {} is larger than {} KiB: is it the right file?",
                path.display(),
                MAX_CONFIG_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            CoreError::Config(format!(
                "config file {} is not UTF-8 text: is it the right file?",
                path.display()
            ))
        })?;
        Self::parse(&text).map_err(|e| match e {
            CoreError::Config(m) => CoreError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses the file's text.
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

    /// Every rule, validated; all problems reported at once.
    pub fn rules(&self) -> Result<Vec<Rule>, CoreError> {
        validate_rules(&self.rules)
    }

    /// `[sync]` with its defaults.
    pub fn sync(&self) -> Result<SyncSettings, CoreError> {
        self.sync.settings()
    }

    /// The revocable rooms of every rule of the file, with `[deprovision]`'s threshold.
    pub fn revocation(&self, all_rules: &[Rule]) -> Result<Revocation, CoreError> {
        Ok(Revocation::from_rules(
            all_rules,
            self.deprovision.max_revocations()?,
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
            .all(|r| r.user_type == docspace_api::UserType::User || r.room.is_some()));
        cfg.sync().unwrap();
        bridge_service::ServeConfig::from_section(&cfg.serve, rules, cfg.sync().unwrap()).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_in_every_section() {
        for text in [
            "[asana]\ntokn = \"x\"\n",
            "[sync]\nbatch = 3\n",
            "[serve]\nlisen = \"x\"\n",
            "[admin]\npassword = \"x\"\n",
            "stat = \"x\"\n",
        ] {
            assert!(FileConfig::parse(text).is_err(), "accepted {text}");
        }
    }

    #[test]
    fn parse_errors_name_the_line_but_never_quote_it() {
        let err = FileConfig::parse("[asana]\ntoken = \"secret-token\"\ntoken = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("secret-token"), "{err}");
    }
}
