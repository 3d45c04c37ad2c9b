//! [`ServeConfig`]: everything `serve` and `watch` can be tuned with, and the defaults.
//!
//! The binary fills it from the `[serve]` section of the config file
//! (`bridge_core::config::ServeSection`); tests build it directly with short timings.

use std::time::Duration;

use bridge_core::config::Rule;

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
    /// How long a claimed job is reserved. A job still running at its end is given up
    /// (and retried), so one worker never overlaps another on the same job; after a crash
    /// the job is claimed again once its lease has passed.
    pub lease: Duration,
    /// How long a `project` job (a whole-project resync, which can take minutes on a big
    /// project under Asana's rate limit) keeps its job parked: it is set aside until then
    /// when it starts, and runs again at that time only if this process died meanwhile.
    pub resync_lease: Duration,
    /// How often idle workers look for due jobs (retries coming due, jobs enqueued by
    /// another process). New jobs from this process wake them at once.
    pub poll_interval: Duration,
    /// Largest webhook body accepted; larger is 413.
    pub max_body_bytes: usize,
    /// How long after `webhooks create` registered an id its handshake is accepted.
    pub handshake_window: Duration,
    /// Registrations from the config file: `(id, project gid)`. Expected until their
    /// handshake, whatever their age.
    pub configured_webhooks: Vec<(String, String)>,
    /// After SIGTERM, how long in-flight jobs may finish before they are released.
    pub shutdown_grace: Duration,
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
    /// Invitations per call when a `project` job (a resync) runs `sync`.
    pub invite_batch: usize,
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
            lease: Duration::from_secs(120),
            resync_lease: Duration::from_secs(1800),
            poll_interval: Duration::from_secs(1),
            max_body_bytes: 1024 * 1024,
            handshake_window: Duration::from_secs(600),
            configured_webhooks: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            max_batch: 512,
            intake_timeout: Duration::from_secs(8),
            health_ttl: Duration::from_secs(30),
            keep_done: Duration::from_secs(48 * 3600),
            invite_batch: bridge_core::sync::DEFAULT_INVITE_BATCH,
        }
    }
}

impl ServeConfig {
    /// The rules for a project (several when it grants several rooms), strongest user
    /// type first: the first one to run invites, so a person gets the strongest type any
    /// rule asks for, as `sync` does.
    pub fn rules_for(&self, project_gid: &str) -> Vec<&Rule> {
        let mut rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.project.as_str() == project_gid)
            .collect();
        rules.sort_by_key(|r| std::cmp::Reverse(type_rank(r.user_type)));
        rules
    }
}

fn type_rank(t: docspace_api::UserType) -> u8 {
    match t {
        docspace_api::UserType::User => 1,
        docspace_api::UserType::RoomAdmin => 2,
        docspace_api::UserType::DocSpaceAdmin => 3,
    }
}
