use std::io::IsTerminal;
use std::sync::Arc;

use bridge_core::domain::Source;
use bridge_core::reconcile::{self, NoProgress, Options, Progress, Scope};
use bridge_core::report::Line;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::args::{Global, SyncArgs};
use crate::{output, settings, usage};

/// Progress bars on stderr, drawn only when stderr is a terminal: logs and pipes stay clean.
struct Bars {
    _multi: MultiProgress,
    phase: ProgressBar,
    tasks: ProgressBar,
    people: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::new();
        let phase = multi.add(ProgressBar::new_spinner());
        phase.enable_steady_tick(std::time::Duration::from_millis(120));
        let tasks = multi.add(ProgressBar::new_spinner());
        tasks.set_style(
            ProgressStyle::with_template("  tasks read   {pos} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let people = multi.add(ProgressBar::new(0));
        people.set_style(
            ProgressStyle::with_template("  people       [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bars {
            _multi: multi,
            phase,
            tasks,
            people,
        }
    }
}

impl Progress for Bars {
    fn phase(&self, name: &str) {
        self.phase.set_message(name.to_string());
    }
    fn tasks_read(&self, n: u64) {
        self.tasks.inc(n);
    }
    fn people_total(&self, n: u64) {
        self.people.set_length(n);
    }
    fn people_done(&self, n: u64) {
        self.people.inc(n);
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.phase.finish_and_clear();
        self.tasks.finish_and_clear();
        self.people.finish_and_clear();
    }
}

pub async fn run(g: &Global, a: SyncArgs) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    if g.config.is_none() {
        return Err(usage(
            "sync needs rules: pass --config FILE or set ASANA_DOCSPACE_CONFIG (see docs/config.example.toml)",
        ));
    }
    let all_rules = file.rules().map_err(crate::from_core)?;
    // Removals weigh every rule of the file, not only those of this run: a room is touched
    // only when every rule naming it was read.
    let mut revocation = file.revocation(&all_rules).map_err(crate::from_core)?;
    revocation.allow = a.allow_revocations;
    let rules = if a.projects.is_empty() {
        all_rules
    } else {
        let mut picked = Vec::new();
        for p in &a.projects {
            let gid = asana_api::Gid::parse(p).map_err(|e| usage(format!("--project: {e}")))?;
            let matching: Vec<_> = all_rules
                .iter()
                .filter(|r| r.project == gid)
                .cloned()
                .collect();
            if matching.is_empty() {
                return Err(usage(format!(
                    "--project {gid}: no [[rules]] entry for this project in the config file"
                )));
            }
            picked.extend(matching);
        }
        picked
    };
    if rules.is_empty() {
        return Err(usage("the config file has no [[rules]]: nothing to sync"));
    }
    let settings = file.sync().map_err(crate::from_core)?;
    let svc = settings::services(g, &file).await?;
    let bars: Arc<dyn Progress> = if std::io::stderr().is_terminal() && !g.json {
        Arc::new(Bars::new())
    } else {
        Arc::new(NoProgress)
    };
    let opts = Options {
        dry_run: a.dry_run,
        settings,
        progress: bars.clone(),
        incremental: !a.full,
        revocation,
        ..Options::new(super::run_id(), Source::Sync)
    };
    let report = reconcile::run(&svc, &Scope::Projects(rules), &opts)
        .await
        .map_err(crate::from_core)?;
    drop(opts);
    drop(bars);

    if g.json {
        for l in &report.lines {
            output::json_line(l);
        }
        for e in &report.project_errors {
            output::json_line(
                &serde_json::json!({"project": e.project, "outcome": "failed", "error": e.error}),
            );
        }
        for r in &report.revocations {
            output::json_line(r);
        }
        for r in &report.revocations_skipped {
            output::json_line(
                &serde_json::json!({"revocation": true, "room": r.room, "outcome": "not_computed", "reason": r.reason}),
            );
        }
        output::json_line(&report.summary);
    } else {
        print_human(&report.lines, a.dry_run);
        print_revocations(&report, a.dry_run);
        for e in &report.project_errors {
            println!("project {}: FAILED: {}", e.project, e.error);
        }
        let s = &report.summary;
        let counts: Vec<String> = s.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let rooms: Vec<String> = s.rooms.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "\n{}{} project(s), {} task(s), {} person(s): {}{}",
            if s.dry_run {
                "DRY RUN — nothing was sent. "
            } else {
                ""
            },
            s.projects,
            s.tasks,
            s.people,
            if counts.is_empty() {
                "nothing to do".into()
            } else {
                counts.join(", ")
            },
            if rooms.is_empty() {
                String::new()
            } else {
                format!("; rooms: {}", rooms.join(", "))
            },
        );
        println!(
            "mode: {}{}",
            s.mode.unwrap_or("full"),
            match (s.mode, s.projects_incremental) {
                (Some("full"), n) if n > 0 => {
                    format!(" ({n} of {} project(s) incrementally)", s.projects)
                }
                (Some("incremental"), _) => {
                    " (only tasks modified since the last sync; --full reads everything)".into()
                }
                _ => String::new(),
            }
        );
        if !s.revocations.is_empty() {
            let counts: Vec<String> = s
                .revocations
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!("room access removals: {}", counts.join(", "));
        }
        if s.revocations_held_back > 0 {
            println!(
                "HELD BACK: {} removal(s) over [deprovision] max_revocations; nothing was removed (exit 4). Check the list above, then run `sync --full --allow-revocations {}`.",
                s.revocations_held_back, s.revocations_held_back
            );
        }
        println!(
            "API calls: Asana {} ({} rate-limited), DocSpace {} ({} rate-limited); {:.1}s",
            s.asana_calls,
            s.asana_429,
            s.docspace_calls,
            s.docspace_429,
            s.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(report.exit_code() as u8)
}

fn print_human(lines: &[Line], dry_run: bool) {
    use bridge_core::Outcome::*;
    for l in lines {
        let who = l.email.as_deref().unwrap_or("(email hidden)");
        let why = format!("task {}", l.task);
        let text = match l.outcome {
            // One line per task would drown the people in a big backfill; they are counted.
            NoAssignee => continue,
            Invited => format!("invited {who} ({why})"),
            DryRun => format!(
                "would invite {who} as {} ({why})",
                l.user_type.as_deref().unwrap_or("user")
            ),
            AlreadyMember => {
                if l.rooms
                    .iter()
                    .all(|r| r.outcome == bridge_core::outcome::RoomOutcome::AlreadyShared)
                {
                    continue;
                }
                format!("{who} is already a member")
            }
            AlreadyInvited => {
                if l.rooms
                    .iter()
                    .all(|r| r.outcome == bridge_core::outcome::RoomOutcome::AlreadyShared)
                {
                    continue;
                }
                format!("{who} is already invited")
            }
            EmailHidden => format!(
                "assignee {} of {why}: email not visible to this token",
                l.assignee.as_deref().unwrap_or("?")
            ),
            Failed => format!(
                "FAILED {who} ({why}): {}",
                l.error.as_deref().unwrap_or("unknown error")
            ),
        };
        let rooms: Vec<String> = l
            .rooms
            .iter()
            .map(|r| match r.outcome {
                bridge_core::outcome::RoomOutcome::AlreadyShared => {
                    format!("room {} already_shared", r.id)
                }
                _ => output::room_human(r, dry_run),
            })
            .collect();
        if rooms.is_empty() {
            println!("{text}");
        } else {
            println!("{text}; {}", rooms.join("; "));
        }
    }
}

/// One line per removal decision; access left alone is listed in a dry run (with why) and
/// only counted otherwise.
fn print_revocations(report: &bridge_core::report::Report, dry_run: bool) {
    use bridge_core::domain::Recorded;
    for r in &report.revocations {
        let who = r.email.as_deref().unwrap_or("(unknown)");
        let room = &r.room;
        let text = match r.outcome {
            Recorded::Revoked => format!("removed {who} from room {room}: {}", r.reason),
            Recorded::DryRun => format!("room {room}: {who}: {}", r.reason),
            Recorded::HeldBack => format!("HELD BACK removal of {who} from room {room}"),
            Recorded::PendingRemoval => format!(
                "{who} leaves room {room} at {} unless assigned again: {}",
                r.due_at.as_deref().unwrap_or("?"),
                r.reason
            ),
            Recorded::RemovalCancelled => {
                format!("kept {who} in room {room}: removal cancelled, {}", r.reason)
            }
            Recorded::Kept if dry_run => format!("leaving {who} in room {room}: {}", r.reason),
            Recorded::Kept => continue,
            Recorded::AlreadyRemoved => format!("{who} is no longer in room {room}: {}", r.reason),
            _ => format!(
                "FAILED removing {who} from room {room}: {}",
                r.error.as_deref().unwrap_or(&r.reason)
            ),
        };
        println!("{text}");
    }
    for r in &report.revocations_skipped {
        println!("room {}: removals not computed: {}", r.room, r.reason);
    }
}
