//! `demo`: the product end to end against the simulators, printed step by step with
//! every HTTP call it made, so a newcomer sees what the tool does with no accounts.

use bridge_core::config::{Ask, RoomTarget};
use bridge_core::domain::{RoomId, Source};
use bridge_core::reconcile::{self, Options, Scope};
use bridge_core::record::{self, HistoryFilter};
use bridge_core::Services;
use bridge_sim::{seed, AsanaSim, AsanaSimOptions, DocSpaceSim, DocSpaceSimOptions, LoggedRequest};
use docspace_api::{Access, UserType};
use secrecy::SecretString;

use crate::args::Global;
use crate::config::FileConfig;
use crate::output;

/// Shows the requests the simulators received since the last call.
struct Wire<'a> {
    asana: &'a AsanaSim,
    docspace: &'a DocSpaceSim,
    seen_asana: usize,
    seen_docspace: usize,
}

impl Wire<'_> {
    fn show(&mut self) {
        let a = self.asana.requests();
        let d = self.docspace.requests();
        let mut new: Vec<LoggedRequest> = a[self.seen_asana..].to_vec();
        new.extend(d[self.seen_docspace..].iter().cloned());
        self.seen_asana = a.len();
        self.seen_docspace = d.len();
        for r in new {
            let q = if r.query.is_empty() {
                String::new()
            } else {
                format!("?{}", r.query)
            };
            let body = match (&r.body, r.method.as_str()) {
                (Some(b), "POST" | "PUT") => format!("  {b}"),
                _ => String::new(),
            };
            println!(
                "     {:<8} {:<6} {}{}  → {}{}",
                r.service, r.method, r.path, q, r.status, body
            );
        }
    }

    fn writes_since(&mut self) -> usize {
        let d = self.docspace.requests();
        let n = d[self.seen_docspace..]
            .iter()
            .filter(|r| r.method != "GET")
            .count();
        self.show();
        n
    }
}

pub async fn run(g: &Global) -> anyhow::Result<u8> {
    let (asana_world, docspace_world, ids) = seed::demo();
    let asana_sim = AsanaSim::start(asana_world, AsanaSimOptions::default()).await?;
    let docspace_sim = DocSpaceSim::start(docspace_world, DocSpaceSimOptions::default()).await?;
    let dir = std::env::temp_dir().join(format!("asana-docspace-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let state_path = dir.join("state.db");
    let store = record::open(&state_path.to_string_lossy())
        .await
        .map_err(|e| crate::from_core(e.into()))?;
    let asana = asana_api::Client::new(asana_api::Config::new(
        &asana_sim.base_url(),
        SecretString::from(seed::DEMO_ASANA_TOKEN),
    )?)?;
    let docspace = docspace_api::Client::new(docspace_api::Config::new(
        &docspace_sim.base_url(),
        SecretString::from(seed::DEMO_DOCSPACE_KEY),
    )?)?;
    let svc = Services::new(asana, docspace, store.clone());
    let mut wire = Wire {
        asana: &asana_sim,
        docspace: &docspace_sim,
        seen_asana: 0,
        seen_docspace: 0,
    };

    println!("asana-docspace demo: the whole flow against local simulators (no accounts needed)\n");
    println!("  Asana simulator     {}", asana_sim.base_url());
    println!("  DocSpace simulator  {}", docspace_sim.base_url());
    println!("  state database      {}\n", state_path.display());

    let run_id = super::run_id();
    let invite_scope = |task: &str, room: Option<RoomTarget>| -> anyhow::Result<Scope> {
        Ok(Scope::Task {
            task: asana_api::Gid::parse(task)?,
            project: None,
            asks: vec![Ask {
                user_type: UserType::User,
                room,
                include_completed: true,
            }],
        })
    };
    let invite_opts = Options::new(run_id.clone(), Source::Invite);
    let cases: [(&str, &str, Option<RoomTarget>); 6] = [
        (
            "the assignee is not in DocSpace yet: look up, invite as User (type 4), confirm",
            &ids.task_new_assignee,
            None,
        ),
        (
            "the same task again: DocSpace already has the person, nothing is sent",
            &ids.task_new_assignee,
            None,
        ),
        (
            "an active member, plus a room share by user id at Editing (10)",
            &ids.task_active_member,
            Some(RoomTarget {
                room: RoomId::parse(&ids.room).map_err(anyhow::Error::msg)?,
                access: Access::Editing,
            }),
        ),
        (
            "a disabled DocSpace account: reported, never re-invited",
            &ids.task_disabled,
            None,
        ),
        (
            "a task with no assignee: nothing to do (exit code 3)",
            &ids.task_unassigned,
            None,
        ),
        (
            "an assignee whose email Asana does not show: nothing to do (exit code 3)",
            &ids.task_hidden_email,
            None,
        ),
    ];
    let mut step = 0;
    for (what, task, room) in cases {
        step += 1;
        let room_flag = room
            .as_ref()
            .map(|r| format!(" --room {} --access {}", r.room, r.access.as_str()))
            .unwrap_or_default();
        println!("{step}. asana-docspace invite --task {task}{room_flag}\n   ({what})");
        let report = reconcile::run(&svc, &invite_scope(task, room)?, &invite_opts)
            .await
            .map_err(crate::from_core)?;
        wire.show();
        let Some(line) = report.lines.first() else {
            continue;
        };
        let answer = output::InviteAnswer::from(line);
        if g.json {
            output::json_line(&answer);
        } else {
            println!(
                "   ⇒ {}  [exit {}]\n",
                output::invite_human(&answer),
                answer.exit_code()
            );
        }
    }

    let config = FileConfig::parse(&format!(
        "[[rules]]\nproject = \"{}\"\nroom = \"{}\"\naccess = \"editing\"\n\n[[rules]]\nproject = \"{}\"\n\n[[rules]]\nproject = \"{}\"\n",
        ids.project_website, ids.room, ids.project_onboarding, ids.project_restricted
    ))
    .map_err(crate::from_core)?;
    let rules = config.rules().map_err(crate::from_core)?;
    for dry_run in [true, false, false] {
        step += 1;
        let label = if dry_run { "sync --dry-run" } else { "sync" };
        println!(
            "{step}. asana-docspace {label}   (3 rules: Website → room {} at editing, Onboarding → portal, Board minutes → not visible to the token)",
            ids.room
        );
        let opts = Options {
            dry_run,
            ..Options::new(super::run_id(), Source::Sync)
        };
        let report = reconcile::run(&svc, &Scope::Projects(rules.clone()), &opts)
            .await
            .map_err(crate::from_core)?;
        let writes = wire.writes_since();
        for l in report
            .lines
            .iter()
            .filter(|l| l.outcome != bridge_core::Outcome::NoAssignee)
        {
            let rooms: Vec<String> = l
                .rooms
                .iter()
                .map(|r| format!("room {} {}", r.id, r.outcome.as_str()))
                .collect();
            println!(
                "   ⇒ {:<30} {:<16} task {}{}",
                l.email.as_deref().unwrap_or("(email hidden)"),
                l.outcome.as_str(),
                l.task,
                if rooms.is_empty() {
                    String::new()
                } else {
                    format!("; {}", rooms.join(", "))
                }
            );
        }
        for e in &report.project_errors {
            println!("   ⇒ project {}: {}", e.project, e.error);
        }
        println!(
            "   {} task(s), {} person(s); Asana calls {}, DocSpace calls {}, DocSpace writes {}\n",
            report.summary.tasks,
            report.summary.people,
            report.summary.asana_calls,
            report.summary.docspace_calls,
            writes
        );
    }

    step += 1;
    println!("{step}. asana-docspace history   (the audit log: every decision, with its task)");
    let rows = store
        .history(&HistoryFilter {
            limit: Some(12),
            ..Default::default()
        })
        .await
        .map_err(|e| crate::from_core(e.into()))?;
    for r in rows {
        println!(
            "   {} {:<7} {:<6} {:<12} {:<28} {}",
            r.at.format("%H:%M:%S"),
            r.source,
            r.action,
            r.target,
            r.email.as_deref().unwrap_or("-"),
            r.outcome
        );
    }

    let sent = docspace_sim.world(|w| w.invitations_sent());
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    println!(
        "\nThe DocSpace simulator sent {} invitation e-mail(s), to {} distinct people: {}",
        sent.len(),
        unique.len(),
        unique.join(", ")
    );
    if sent.len() == unique.len() {
        println!("Nobody was invited twice.");
    } else {
        println!("WARNING: someone was invited more than once — this is a bug, please report it.");
    }
    println!("Next: `asana-docspace sim` serves the same data for your own experiments.");
    asana_sim.shutdown().await;
    docspace_sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(crate::exit::OK)
}
