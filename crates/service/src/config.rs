//! The `[serve]` section of the config file ([`ServeSection`]: schema) and
//! [`ServeConfig`] (everything `serve` and `watch` can be tuned with, with the defaults and
//! the validation that turns one into the other), in one place; likewise `[admin]`
//! ([`AdminSection`]) and the status page's credentials ([`AdminAuth`]). The binary only parses
//! the file and layers flags over it; tests build a `ServeConfig` directly with short
//! timings.

use std::time::Duration;

use bridge_core::config::{Ask, Revocation, Rule, SyncSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `[serve]`: the always-on side (`serve`, `watch`). Every key is optional; the defaults
/// are [`ServeConfig::default`].
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
    /// How long a claimed job is reserved for its worker without a heartbeat; after a
    /// crash, the job is picked up again once this has passed.
    pub lease_secs: Option<u64>,
    /// Largest webhook delivery body accepted (413 above).
    pub max_body_bytes: Option<usize>,
    /// How long after `webhooks create` registered an id its handshake is accepted.
    pub handshake_window_secs: Option<u64>,
    /// How long in-flight jobs and open connections may finish after SIGTERM before they
    /// are released or closed.
    pub shutdown_grace_secs: Option<u64>,
    /// How long a client may take to send a request's head (line and headers), counted
    /// from when the connection opened or the previous answer was sent.
    pub header_read_timeout_secs: Option<u64>,
    /// How long a client may take to send a delivery's whole body.
    pub body_timeout_secs: Option<u64>,
    /// How long a kept-alive connection may sit idle between requests.
    pub keep_alive_timeout_secs: Option<u64>,
    /// Most connections open at once; further clients wait in the kernel's accept queue.
    pub max_connections: Option<usize>,
    /// Most events one delivery may carry (413 above).
    pub max_events_per_delivery: Option<usize>,
    /// Registrations made outside `webhooks create` (e.g. with curl): `serve` answers their
    /// handshake at `/webhooks/asana/{id}` once, and only before their `handshake_until`.
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
    /// RFC 3339 time until which the handshake is accepted (at most
    /// [`MAX_HANDSHAKE_OPENING`] after `serve` starts). Without it the handshake is refused:
    /// an id listed by hand must never go to whoever handshakes first.
    pub handshake_until: Option<String>,
}

/// How far ahead a `[[serve.webhooks]] handshake_until` may lie: the window is meant to be
/// opened just before creating the webhook, not left open.
pub const MAX_HANDSHAKE_OPENING: Duration = Duration::from_secs(24 * 3600);

/// A registration listed in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredHook {
    /// The path segment.
    pub id: String,
    /// The project gid.
    pub project: String,
    /// Until when its handshake is accepted; `None`: never.
    pub handshake_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// `[admin]`: the status page under `/admin`. It is off unless at least one password is
/// set (here or in `ASANA_DOCSPACE_ADMIN_PASSWORD` / `ASANA_DOCSPACE_VIEWER_PASSWORD`,
/// which win). `Debug` redacts both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Password of the user `admin` (may replay dead letters).
    pub admin_password: Option<SecretString>,
    /// Password of the user `viewer` (read only).
    pub viewer_password: Option<SecretString>,
}

/// Shortest password accepted for the status page: it guards people's emails and a
/// button that re-runs invitations.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 12;

/// A `[admin]` value (or its environment variable) that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("[admin] {0}")]
pub struct AdminConfigError(String);

/// Who signed in to the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `viewer`: reads every page, changes nothing.
    Viewer,
    /// `admin`: also replays dead letters.
    Admin,
}

impl Role {
    /// The basic-auth user name.
    pub fn user(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

/// The status page's credentials: none (the page is off), or a password per user. Only
/// SHA-256 digests are kept for comparison, in constant time; the passwords themselves
/// are never printed (`Debug` says only whether each is set).
#[derive(Clone, Default)]
pub struct AdminAuth {
    admin: Option<[u8; 32]>,
    viewer: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<[u8; 32]>| if o.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("AdminAuth")
            .field("admin", &set(&self.admin))
            .field("viewer", &set(&self.viewer))
            .finish()
    }
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

impl AdminAuth {
    /// The credentials from `[admin]`, each overridden by its environment variable's value
    /// when given (`env_admin`, `env_viewer`; the binary treats an empty variable as
    /// unset). Passwords shorter than [`MIN_ADMIN_PASSWORD_CHARS`] are refused, as is
    /// using the same one for both users (a viewer could then replay).
    pub fn from_section(
        s: &AdminSection,
        env_admin: Option<SecretString>,
        env_viewer: Option<SecretString>,
    ) -> Result<AdminAuth, AdminConfigError> {
        let pick = |env: Option<SecretString>,
                    file: &Option<SecretString>,
                    var: &str,
                    key: &str|
         -> Result<Option<SecretString>, AdminConfigError> {
            let Some(p) = env.or_else(|| file.clone()) else {
                return Ok(None);
            };
            if p.expose_secret().chars().count() < MIN_ADMIN_PASSWORD_CHARS {
                return Err(AdminConfigError(format!(
                    "{key} (or {var}) must be at least {MIN_ADMIN_PASSWORD_CHARS} characters"
                )));
            }
            Ok(Some(p))
        };
        let admin = pick(
            env_admin,
            &s.admin_password,
            "ASANA_DOCSPACE_ADMIN_PASSWORD",
            "admin_password",
        )?;
        let viewer = pick(
            env_viewer,
            &s.viewer_password,
            "ASANA_DOCSPACE_VIEWER_PASSWORD",
            "viewer_password",
        )?;
        if let (Some(a), Some(v)) = (&admin, &viewer) {
            if a.expose_secret() == v.expose_secret() {
                return Err(AdminConfigError(
                    "admin_password and viewer_password must differ".into(),
                ));
            }
        }
        Ok(AdminAuth {
            admin: admin.map(|p| digest(p.expose_secret().as_bytes())),
            viewer: viewer.map(|p| digest(p.expose_secret().as_bytes())),
        })
    }

    /// Whether the status page is served at all.
    pub fn enabled(&self) -> bool {
        self.admin.is_some() || self.viewer.is_some()
    }

    /// Whether the `admin` user can sign in.
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether the `viewer` user can sign in.
    pub fn has_viewer(&self) -> bool {
        self.viewer.is_some()
    }

    /// The role `user`/`password` sign in as, if any. The password is compared by digest
    /// in constant time, and both users' digests are always compared, so the answer's
    /// timing says nothing about which part was wrong.
    pub fn check(&self, user: &str, password: &[u8]) -> Option<Role> {
        let given = digest(password);
        let matches = |want: &Option<[u8; 32]>| -> bool {
            match want {
                Some(w) => bool::from(w.ct_eq(&given)),
                None => false,
            }
        };
        let admin = matches(&self.admin);
        let viewer = matches(&self.viewer);
        match user {
            "admin" if admin => Some(Role::Admin),
            "viewer" if viewer => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Where `serve` listens when neither `--listen` nor `[serve] listen` says: loopback, so a
/// fresh install is not reachable from outside until someone decides it should be.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A `[serve]` value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("[serve] {0}")]
pub struct ConfigError(String);

/// Default waits between attempts of a failing job: quick at first (a blip), then
/// stretching to hours so that an outage of a day still ends in a retry rather than a
/// dead letter. With the default cap of 10 attempts, a job keeps trying for about 16 h.
pub const DEFAULT_RETRY_SCHEDULE_SECS: [u64; 9] = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800];

/// Settings of the always-on side.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The rules (project → room, access, user type) jobs are worked under.
    pub rules: Vec<Rule>,
    /// Jobs worked at once. Jobs wait on the APIs far more than they compute, so this is
    /// about latency: with `L` seconds per job, `workers / L` jobs per second at most.
    /// The default (16) keeps up with Asana's paid-plan budget (1,500 requests per minute,
    /// one task read per job) at real-world API latencies (~0.6 s per job), and with
    /// 100 new assignments per second at 20 ms per call (docs/benchmarks.md).
    pub workers: usize,
    /// Attempts (claims) before a failing job becomes a dead letter.
    pub max_attempts: u32,
    /// Wait after the n-th failed attempt is `retry_schedule[n-1]` (the last one repeats),
    /// with ±20 % jitter so that jobs failed by one outage do not all return at once.
    pub retry_schedule: Vec<Duration>,
    /// Least wait after a 429 that outlived the client's own retries: the budget is spent,
    /// coming back sooner only burns more of it.
    pub rate_limit_floor: Duration,
    /// How long a claimed job is reserved without a heartbeat. A running job renews it
    /// every third of it; after a crash the job is claimed again once it has passed.
    pub lease: Duration,
    /// Longest one attempt of a `task` job may run before it is stopped and retried.
    pub job_timeout: Duration,
    /// Longest one attempt of a `project` job (a whole-project resync, which can take
    /// minutes on a big project under Asana's rate limit) may run.
    pub resync_timeout: Duration,
    /// How often idle workers look for due jobs (retries coming due, jobs enqueued by
    /// another process). New jobs from this process wake them at once.
    pub poll_interval: Duration,
    /// Largest webhook body accepted; larger is 413.
    pub max_body_bytes: usize,
    /// How long after `webhooks create` registered an id its handshake is accepted.
    pub handshake_window: Duration,
    /// Registrations from the config file. Their handshake is accepted once, and only
    /// before their `handshake_until`.
    pub configured_webhooks: Vec<ConfiguredHook>,
    /// After SIGTERM, how long in-flight jobs may finish before they are released, and
    /// open connections before they are closed.
    pub shutdown_grace: Duration,
    /// Longest a client may take to send a request head; also bounds how long a fresh
    /// connection may stay silent. Asana sends its request at once.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a delivery body (408 after).
    pub body_timeout: Duration,
    /// Longest a kept-alive connection may sit idle between requests.
    pub keep_alive_timeout: Duration,
    /// Most connections served at once. Each costs a file descriptor; beyond the cap new
    /// clients wait in the kernel's accept queue instead of exhausting the process's
    /// descriptor limit (which would fail the database and API connections too).
    pub max_connections: usize,
    /// Most events one delivery may carry; more is 413.
    pub max_events_per_delivery: usize,
    /// Most jobs per group-commit transaction.
    pub max_batch: usize,
    /// How long a delivery may wait for its jobs to be committed before we answer 503
    /// (Asana then retries). Well inside Asana's 10 s.
    pub intake_timeout: Duration,
    /// How long a `/healthz` probe of the two APIs is reused: probes spend the same rate
    /// budget as real work.
    pub health_ttl: Duration,
    /// Done jobs (and with them their dedupe keys) are deleted after this long. Asana
    /// retries a delivery for up to 24 h, so keys must outlive that.
    pub keep_done: Duration,
    /// Batching and claim waits of every reconcile the workers run (`[sync]`).
    pub sync: SyncSettings,
    /// Who may open the status page under `/admin` (off when neither password is set).
    pub admin: AdminAuth,
    /// The revocable rooms and `[deprovision]`'s threshold every reconcile works under.
    pub revocation: Revocation,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            rules: Vec::new(),
            workers: 16,
            max_attempts: 10,
            retry_schedule: DEFAULT_RETRY_SCHEDULE_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            rate_limit_floor: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            job_timeout: Duration::from_secs(300),
            resync_timeout: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(1),
            max_body_bytes: 1024 * 1024,
            handshake_window: Duration::from_secs(600),
            configured_webhooks: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(5),
            max_connections: 512,
            max_events_per_delivery: 1000,
            max_batch: 512,
            intake_timeout: Duration::from_secs(8),
            health_ttl: Duration::from_secs(30),
            keep_done: Duration::from_secs(48 * 3600),
            sync: SyncSettings::default(),
            admin: AdminAuth::default(),
            revocation: Revocation::default(),
        }
    }
}

impl ServeConfig {
    /// `[serve]` over the defaults, with the rules and `[sync]` settings every job runs
    /// under. Zero where at least one is needed, an empty retry schedule, a tiny body limit
    /// or a hand-listed webhook with a bad project gid are refused.
    pub fn from_section(
        s: &ServeSection,
        rules: Vec<Rule>,
        sync: SyncSettings,
    ) -> Result<ServeConfig, ConfigError> {
        let mut cfg = ServeConfig {
            rules,
            sync,
            ..ServeConfig::default()
        };
        let positive = |name: &str, v: u64| -> Result<u64, ConfigError> {
            if v == 0 {
                Err(ConfigError(format!("{name} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        if let Some(n) = s.workers {
            cfg.workers = positive("workers", n as u64)? as usize;
        }
        if let Some(n) = s.max_attempts {
            cfg.max_attempts = positive("max_attempts", u64::from(n))? as u32;
        }
        if let Some(v) = &s.retry_schedule_secs {
            if v.is_empty() {
                return Err(ConfigError(
                    "retry_schedule_secs needs at least one value".into(),
                ));
            }
            cfg.retry_schedule = v.iter().map(|s| Duration::from_secs(*s)).collect();
        }
        if let Some(n) = s.lease_secs {
            cfg.lease = Duration::from_secs(positive("lease_secs", n)?);
        }
        if let Some(n) = s.max_body_bytes {
            if n < 1024 {
                return Err(ConfigError("max_body_bytes must be at least 1024".into()));
            }
            cfg.max_body_bytes = n;
        }
        if let Some(n) = s.handshake_window_secs {
            cfg.handshake_window = Duration::from_secs(positive("handshake_window_secs", n)?);
        }
        if let Some(n) = s.shutdown_grace_secs {
            cfg.shutdown_grace = Duration::from_secs(n);
        }
        if let Some(n) = s.header_read_timeout_secs {
            cfg.header_read_timeout = Duration::from_secs(positive("header_read_timeout_secs", n)?);
        }
        if let Some(n) = s.body_timeout_secs {
            cfg.body_timeout = Duration::from_secs(positive("body_timeout_secs", n)?);
        }
        if let Some(n) = s.keep_alive_timeout_secs {
            cfg.keep_alive_timeout = Duration::from_secs(positive("keep_alive_timeout_secs", n)?);
        }
        if let Some(n) = s.max_connections {
            if n < 2 {
                return Err(ConfigError(
                    "max_connections must be at least 2 (Asana and your health checks)".into(),
                ));
            }
            cfg.max_connections = n;
        }
        if let Some(n) = s.max_events_per_delivery {
            cfg.max_events_per_delivery = positive("max_events_per_delivery", n as u64)? as usize;
        }
        let latest = chrono::Utc::now()
            + chrono::Duration::from_std(MAX_HANDSHAKE_OPENING).unwrap_or(chrono::Duration::MAX);
        for w in &s.webhooks {
            let project = asana_api::Gid::parse(&w.project).map_err(|e| {
                ConfigError(format!("[[serve.webhooks]] id {:?}: project: {e}", w.id))
            })?;
            let handshake_until = match &w.handshake_until {
                None => None,
                Some(t) => {
                    let at = chrono::DateTime::parse_from_rfc3339(t.trim())
                        .map_err(|e| {
                            ConfigError(format!(
                                "[[serve.webhooks]] id {:?}: handshake_until {t:?}: {e} (use RFC 3339, e.g. 2026-12-01T12:00:00Z)",
                                w.id
                            ))
                        })?
                        .with_timezone(&chrono::Utc);
                    if at > latest {
                        return Err(ConfigError(format!(
                            "[[serve.webhooks]] id {:?}: handshake_until is more than 24 h away; open the window just before creating the webhook",
                            w.id
                        )));
                    }
                    Some(at)
                }
            };
            cfg.configured_webhooks.push(ConfiguredHook {
                id: w.id.clone(),
                project: project.to_string(),
                handshake_until,
            });
        }
        Ok(cfg)
    }

    /// Whether any rule names this project.
    pub fn has_rules_for(&self, project_gid: &str) -> bool {
        self.rules.iter().any(|r| r.project.as_str() == project_gid)
    }

    /// The rules for a project (several when it grants several rooms), as asks for one of
    /// its tasks. The reconcile merges them: strongest type, strongest level per room.
    pub fn asks_for(&self, project_gid: &str) -> Vec<Ask> {
        self.rules
            .iter()
            .filter(|r| r.project.as_str() == project_gid)
            .map(Rule::ask)
            .collect()
    }

    /// Every rule naming a room, across projects: a removal check reads them all.
    pub fn rules_naming_room(&self, room: &str) -> Vec<Rule> {
        self.rules
            .iter()
            .filter(|r| r.room.as_ref().is_some_and(|t| t.room.as_str() == room))
            .cloned()
            .collect()
    }

    /// The rules for a project, for a whole-project reconcile.
    pub fn rules_for(&self, project_gid: &str) -> Vec<Rule> {
        self.rules
            .iter()
            .filter(|r| r.project.as_str() == project_gid)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<ServeSection, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn serve_section_keys_parse_and_unknown_ones_are_refused() {
        let s = section(
            "listen = \"0.0.0.0:8080\"\nworkers = 2\nmax_attempts = 5\n\
             retry_schedule_secs = [1, 2]\nlease_secs = 45\nmax_body_bytes = 65536\n\
             handshake_window_secs = 60\nshutdown_grace_secs = 3\n\
             header_read_timeout_secs = 4\nbody_timeout_secs = 5\nkeep_alive_timeout_secs = 6\n\
             max_connections = 7\nmax_events_per_delivery = 8\n\
             [[webhooks]]\nid = \"hook-1\"\nproject = \"1201\"\n\
             [[webhooks]]\nid = \"hook-2\"\nproject = \"1202\"\n\
             handshake_until = \"2020-01-01T00:00:00Z\"\n",
        )
        .unwrap();
        let cfg = ServeConfig::from_section(&s, Vec::new(), SyncSettings::default()).unwrap();
        assert_eq!(
            cfg.retry_schedule,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(
            cfg.configured_webhooks,
            vec![
                ConfiguredHook {
                    id: "hook-1".into(),
                    project: "1201".into(),
                    handshake_until: None,
                },
                ConfiguredHook {
                    id: "hook-2".into(),
                    project: "1202".into(),
                    handshake_until: Some("2020-01-01T00:00:00Z".parse().unwrap()),
                }
            ]
        );
        assert_eq!(cfg.lease, Duration::from_secs(45));
        assert_eq!(
            (
                cfg.header_read_timeout,
                cfg.body_timeout,
                cfg.keep_alive_timeout
            ),
            (
                Duration::from_secs(4),
                Duration::from_secs(5),
                Duration::from_secs(6)
            )
        );
        assert_eq!((cfg.max_connections, cfg.max_events_per_delivery), (7, 8));
        assert!(section("lisen = \"x\"\n").is_err());
        assert!(section("[[webhooks]]\nid = \"a\"\n").is_err());
    }

    #[test]
    fn admin_passwords_come_from_env_over_file_and_are_checked_by_user() {
        let s: AdminSection = toml::from_str(
            "admin_password = \"file-admin-password\"\nviewer_password = \"file-viewer-password\"\n",
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("file-admin"), "{s:?}");
        let auth =
            AdminAuth::from_section(&s, Some(SecretString::from("env-admin-password")), None)
                .unwrap();
        assert!(auth.enabled() && auth.has_admin() && auth.has_viewer());
        assert_eq!(
            auth.check("admin", b"env-admin-password"),
            Some(Role::Admin)
        );
        assert_eq!(auth.check("admin", b"file-admin-password"), None);
        assert_eq!(
            auth.check("viewer", b"file-viewer-password"),
            Some(Role::Viewer)
        );
        // The right password under the other user's name does not sign in.
        assert_eq!(auth.check("viewer", b"env-admin-password"), None);
        assert_eq!(auth.check("root", b"env-admin-password"), None);
        assert!(!format!("{auth:?}").contains("password"), "{auth:?}");

        let off = AdminAuth::from_section(&AdminSection::default(), None, None).unwrap();
        assert!(!off.enabled());
        assert_eq!(off.check("admin", b""), None);
        assert!(toml::from_str::<AdminSection>("admin_pasword = \"x\"\n").is_err());
    }

    #[test]
    fn short_or_shared_admin_passwords_are_refused_without_echoing_them() {
        let short = AdminAuth::from_section(
            &AdminSection::default(),
            Some(SecretString::from("hunter2")),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(short.contains("at least 12"), "{short}");
        assert!(!short.contains("hunter2"), "{short}");
        let same = SecretString::from("the-same-long-password");
        let err = AdminAuth::from_section(&AdminSection::default(), Some(same.clone()), Some(same))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must differ"), "{err}");
        assert!(!err.contains("the-same"), "{err}");
    }

    #[test]
    fn values_that_cannot_work_are_refused() {
        for text in [
            "workers = 0\n",
            "retry_schedule_secs = []\n",
            "max_body_bytes = 10\n",
            "[[webhooks]]\nid = \"a\"\nproject = \"abc\"\n",
            "header_read_timeout_secs = 0\n",
            "max_connections = 1\n",
            "max_events_per_delivery = 0\n",
            "[[webhooks]]\nid = \"a\"\nproject = \"1\"\nhandshake_until = \"tomorrow\"\n",
            "[[webhooks]]\nid = \"a\"\nproject = \"1\"\nhandshake_until = \"2999-01-01T00:00:00Z\"\n",
        ] {
            let s = section(text).unwrap();
            assert!(
                ServeConfig::from_section(&s, Vec::new(), SyncSettings::default()).is_err(),
                "accepted {text}"
            );
        }
    }
}
