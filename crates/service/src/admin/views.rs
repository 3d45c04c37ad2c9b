//! What the templates show, computed here so the templates stay plain: times, ages, the
//! summary of a run, and what to do about a failed ledger row.

use std::collections::BTreeMap;

use bridge_core::domain::{Recorded, Source};
use bridge_core::record::{Job, LedgerEntry};
use chrono::{DateTime, Utc};

/// `2026-01-02 10:11:12 UTC`.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `4 s`, `3 min 12 s`, `2 h 5 min`, `3 d 4 h`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago `at` was, from `now`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", age((now - at).num_seconds()))
}

/// One ledger row on the person page.
pub struct Row {
    pub at: String,
    pub source: &'static str,
    pub task: Option<String>,
    pub email: Option<String>,
    pub target: String,
    pub action: &'static str,
    pub outcome: &'static str,
    /// `ok`, `warn` or `bad`: the badge colour.
    pub tone: &'static str,
    pub why: Option<String>,
    pub error: Option<String>,
    pub advice: Option<&'static str>,
}

fn tone(outcome: Recorded) -> &'static str {
    match outcome {
        Recorded::Failed | Recorded::Dead => "bad",
        Recorded::NoAssignee | Recorded::EmailHidden | Recorded::Skipped => "warn",
        _ => "ok",
    }
}

impl Row {
    pub fn from(e: &LedgerEntry) -> Row {
        Row {
            at: when(e.at),
            source: e.source.as_str(),
            task: e.task_gid.clone(),
            email: e.email.clone(),
            target: e.target.to_string(),
            action: e.action.as_str(),
            outcome: e.outcome.as_str(),
            tone: tone(e.outcome),
            why: e.detail.clone(),
            error: e.error.clone(),
            advice: advice(e.outcome, e.error.as_deref()),
        }
    }
}

/// What an operator can do about a row that did not end well (`None` when it did).
pub fn advice(outcome: Recorded, error: Option<&str>) -> Option<&'static str> {
    let e = error.unwrap_or("").to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| e.contains(n));
    match outcome {
        Recorded::EmailHidden => Some(
            "Asana does not show this person's email to the token's user. Use a token of a \
             workspace admin (or a member who can see emails), then run the task again \
             (`asana-docspace invite --task GID`).",
        ),
        Recorded::NoAssignee => Some("Nothing to do: the task has no assignee."),
        Recorded::Failed | Recorded::Dead => Some(if has(&["no [[rules]]", "no rule"]) {
            "Add a [[rules]] entry for the project to the config file, restart serve, then \
             replay the dead letter."
        } else if has(&["401", "unauthorized", "token", "api key"]) {
            "A credential was refused. Check ASANA_TOKEN and DOCSPACE_API_KEY with \
             `asana-docspace doctor`, then replay."
        } else if has(&["403", "forbidden", "permission"]) {
            "DocSpace refused the key's user: inviting needs a DocSpace admin (or room admin), \
             sharing a room needs its room manager. Fix the key's rights, then replay."
        } else if has(&["room"]) && has(&["404", "not found", "does not exist"]) {
            "The rule's room does not exist or the key's user cannot see it. Fix `room` in \
             the rule (`asana-docspace config check --online`), then replay."
        } else if has(&["disabled", "terminated", "blocked"]) {
            "The person's DocSpace account is disabled. Re-enable it in DocSpace \
             (People → Enable), then replay."
        } else if has(&["email", "address"]) && has(&["invalid", "not valid"]) {
            "DocSpace refused the address. Correct the person's email in Asana; the next \
             assignment (or a replay) invites the corrected address."
        } else if has(&["429", "rate"]) {
            "Rate limited. The queue retries by itself; a dead letter can be replayed once \
             the budget recovers."
        } else if has(&[
            "timed out",
            "timeout",
            "connect",
            "network",
            "500",
            "502",
            "503",
            "504",
        ]) {
            "An API was unreachable or failing. Check /healthz; once both APIs answer, \
             replay the dead letter."
        } else {
            "Read the error above; once its cause is fixed, replay the dead letter from the \
             Dead letters page (or run `asana-docspace replay`)."
        }),
        _ => None,
    }
}

/// One dead letter.
pub struct Dead {
    pub id: i64,
    pub kind: &'static str,
    pub resource: String,
    pub is_task: bool,
    pub project: Option<String>,
    pub attempts: u32,
    pub error: String,
    pub created: String,
    pub advice: &'static str,
}

impl Dead {
    pub fn from(j: &Job) -> Dead {
        Dead {
            id: j.id,
            kind: j.kind.as_str(),
            resource: j.resource_gid.clone(),
            is_task: j.kind == bridge_core::domain::JobKind::Task,
            project: j.project_gid.clone(),
            attempts: j.attempts,
            error: j
                .last_error
                .clone()
                .unwrap_or_else(|| "no error recorded".into()),
            created: when(j.created_at),
            advice: advice(Recorded::Dead, j.last_error.as_deref()).unwrap_or_default(),
        }
    }
}

/// One `sync` run, summarised from its ledger rows.
pub struct Run {
    pub run_id: String,
    pub started: String,
    pub finished: String,
    pub rows: usize,
    /// `invited 3 · already_member 2`.
    pub outcomes: String,
    pub failed: usize,
}

/// The newest `most` sync runs among `rows` (oldest first, as `history` returns them),
/// newest first.
pub fn sync_runs(rows: &[LedgerEntry], most: usize) -> Vec<Run> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_run: BTreeMap<&str, Vec<&LedgerEntry>> = BTreeMap::new();
    for e in rows.iter().filter(|e| e.source == Source::Sync) {
        if !by_run.contains_key(e.run_id.as_str()) {
            order.push(&e.run_id);
        }
        by_run.entry(&e.run_id).or_default().push(e);
    }
    order
        .iter()
        .rev()
        .take(most)
        .map(|id| {
            let entries = &by_run[id];
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for e in entries {
                *counts.entry(e.outcome.as_str()).or_default() += 1;
            }
            Run {
                run_id: id.to_string(),
                started: entries.first().map(|e| when(e.at)).unwrap_or_default(),
                finished: entries.last().map(|e| when(e.at)).unwrap_or_default(),
                rows: entries.len(),
                failed: entries
                    .iter()
                    .filter(|e| matches!(e.outcome, Recorded::Failed | Recorded::Dead))
                    .count(),
                outcomes: counts
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(" · "),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(-3), "0 s");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(192), "3 min 12 s");
        assert_eq!(age(7500), "2 h 5 min");
        assert_eq!(age(3 * 86_400 + 4 * 3600), "3 d 4 h");
    }

    #[test]
    fn failures_get_advice_and_successes_none() {
        assert_eq!(advice(Recorded::Invited, None), None);
        let rule = advice(
            Recorded::Dead,
            Some("no [[rules]] entry for project 1201 in the configuration"),
        )
        .unwrap();
        assert!(rule.contains("[[rules]]"), "{rule}");
        let room = advice(Recorded::Failed, Some("room 5: DocSpace 404 not found")).unwrap();
        assert!(room.contains("room"), "{room}");
        let key = advice(Recorded::Failed, Some("DocSpace answered 401")).unwrap();
        assert!(key.contains("doctor"), "{key}");
        assert!(advice(Recorded::EmailHidden, None)
            .unwrap()
            .contains("email"));
        assert!(advice(Recorded::Failed, None).unwrap().contains("replay"));
    }
}
