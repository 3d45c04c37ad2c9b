//! The one reconcile against the simulators, in process: the task scope and the project
//! scope agree on every outcome and ledger row; overlapping runs invite each person once;
//! the future is `Send`; a cancelled run gives its claims back.

use std::sync::Arc;
use std::time::Duration;

use asana_api::Gid;
use bridge_core::config::{RoomTarget, Rule};
use bridge_core::domain::{RoomId, Source};
use bridge_core::reconcile::{self, Options, Scope};
use bridge_core::record::{HistoryFilter, LedgerEntry};
use bridge_core::report::Report;
use bridge_core::{Outcome, Services};
use bridge_sim::seed::CUSTOM_ROOM;
use bridge_sim::{AsanaSim, AsanaWorld, DocSpaceSim, DocSpaceWorld, PersonState, SimUserType};
use docspace_api::{Access, UserType};

/// Both simulators over a one-project world, and services over them with a private
/// state database.
struct World {
    _asana: AsanaSim,
    docspace: DocSpaceSim,
    svc: Services,
    project: String,
    room: String,
    tasks: Vec<String>,
    _dir: tempfile::TempDir,
}

/// What a test puts in the worlds: `(name, assignee email or None)` per task, and what
/// DocSpace already knows (email, state, room access).
#[derive(Clone)]
struct Setup {
    tasks: Vec<(&'static str, Option<&'static str>)>,
    hidden_email: bool,
    people: Vec<(&'static str, PersonState, Option<u8>)>,
}

impl World {
    async fn start(setup: &Setup) -> World {
        let mut a = AsanaWorld::with_me("Admin", "admin@acme.example");
        let ws = a.add_workspace("Acme");
        let project = a.add_project(&ws, "Website");
        let mut users = std::collections::HashMap::new();
        let mut tasks = Vec::new();
        for (name, email) in &setup.tasks {
            let assignee = email.map(|e| {
                users
                    .entry(e)
                    .or_insert_with(|| {
                        let shown = if setup.hidden_email { None } else { Some(e) };
                        a.add_user(&ws, e, shown)
                    })
                    .clone()
            });
            tasks.push(a.add_task(&project, name, assignee.as_deref()));
        }
        let mut d = DocSpaceWorld::with_owner("admin@acme.example", "Ada", "Admin");
        let room = d.add_room("Website", CUSTOM_ROOM);
        for (email, state, access) in &setup.people {
            let id = d.add_person(email, SimUserType::User, *state);
            if let Some(level) = access {
                assert!(d.add_member(&room, &id, *level));
            }
        }
        let (asana, docspace, svc, dir) = crate::support::sims(a, d).await;
        World {
            _asana: asana,
            docspace,
            svc,
            project,
            room,
            tasks,
            _dir: dir,
        }
    }

    fn rule(&self) -> Rule {
        Rule {
            project: Gid::parse(&self.project).unwrap(),
            room: Some(RoomTarget {
                room: RoomId::parse(&self.room).unwrap(),
                access: Access::Editing,
            }),
            user_type: UserType::User,
            include_completed: false,
            on_unassign: bridge_core::config::OnUnassign::Keep,
            revoke_after: bridge_core::config::DEFAULT_REVOKE_AFTER,
        }
    }

    fn task_scope(&self, i: usize) -> Scope {
        Scope::Task {
            task: Gid::parse(&self.tasks[i]).unwrap(),
            project: Some(Gid::parse(&self.project).unwrap()),
            asks: vec![self.rule().ask()],
        }
    }

    async fn run(&self, scope: &Scope, dry_run: bool) -> Report {
        let opts = Options {
            dry_run,
            ..Options::new("run-1", Source::Sync)
        };
        reconcile::run(&self.svc, scope, &opts).await.unwrap()
    }

    async fn history(&self) -> Vec<LedgerEntry> {
        self.svc
            .store
            .history(&HistoryFilter::default())
            .await
            .unwrap()
    }

    /// Invitations the DocSpace simulator received, one entry per email per request.
    fn invite_requests(&self) -> Vec<String> {
        self.docspace.invite_requests()
    }

    fn share_requests(&self) -> usize {
        self.docspace
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with("/share"))
            .count()
    }
}

/// A ledger row without what differs between two runs (ids, times, run ids).
fn shape(rows: &[LedgerEntry]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {} {} {:?} {:?} {:?}",
                r.target,
                r.action,
                r.outcome,
                r.task_gid.is_some(),
                r.email,
                r.error.is_some(),
                r.detail
            )
        })
        .collect()
}

fn outcomes(report: &Report) -> Vec<String> {
    report
        .lines
        .iter()
        .map(|l| {
            let rooms: Vec<&str> = l.rooms.iter().map(|r| r.outcome.as_str()).collect();
            format!(
                "{:?} {} {:?} {}",
                l.email,
                l.outcome,
                rooms,
                l.error.is_some()
            )
        })
        .collect()
}

/// The same one-task situation through the task scope and through the project scope
/// gives the same outcomes and the same ledger rows.
#[tokio::test]
async fn task_scope_and_project_scope_agree_on_outcomes_and_ledger() {
    let cases: Vec<(&str, Setup, bool)> = vec![
        (
            "a new person with a room",
            Setup {
                tasks: vec![("Launch", Some("new@acme.example"))],
                hidden_email: false,
                people: vec![],
            },
            false,
        ),
        (
            "an active member below the wanted level",
            Setup {
                tasks: vec![("Launch", Some("ann@acme.example"))],
                hidden_email: false,
                people: vec![("ann@acme.example", PersonState::Active, Some(2))],
            },
            false,
        ),
        (
            "a member already above the level",
            Setup {
                tasks: vec![("Launch", Some("ann@acme.example"))],
                hidden_email: false,
                people: vec![("ann@acme.example", PersonState::Active, Some(11))],
            },
            false,
        ),
        (
            "a disabled account",
            Setup {
                tasks: vec![("Launch", Some("gone@acme.example"))],
                hidden_email: false,
                people: vec![("gone@acme.example", PersonState::Disabled, None)],
            },
            false,
        ),
        (
            "a pending invitee",
            Setup {
                tasks: vec![("Launch", Some("pen@acme.example"))],
                hidden_email: false,
                people: vec![("pen@acme.example", PersonState::Pending, None)],
            },
            false,
        ),
        (
            "no assignee",
            Setup {
                tasks: vec![("Launch", None)],
                hidden_email: false,
                people: vec![],
            },
            false,
        ),
        (
            "a hidden email",
            Setup {
                tasks: vec![("Launch", Some("hid@acme.example"))],
                hidden_email: true,
                people: vec![],
            },
            false,
        ),
        (
            "a dry run for a new person and a member below the level",
            Setup {
                tasks: vec![("Launch", Some("new@acme.example"))],
                hidden_email: false,
                people: vec![],
            },
            true,
        ),
        (
            "a dry run for a member below the level",
            Setup {
                tasks: vec![("Launch", Some("ann@acme.example"))],
                hidden_email: false,
                people: vec![("ann@acme.example", PersonState::Active, Some(2))],
            },
            true,
        ),
    ];
    for (what, setup, dry_run) in cases {
        let by_task = World::start(&setup).await;
        let task_report = by_task.run(&by_task.task_scope(0), dry_run).await;
        let by_project = World::start(&setup).await;
        let project_report = by_project
            .run(&Scope::Projects(vec![by_project.rule()]), dry_run)
            .await;
        assert_eq!(
            outcomes(&task_report),
            outcomes(&project_report),
            "{what}: outcomes differ"
        );
        let (t, p) = (by_task.history().await, by_project.history().await);
        assert!(!t.is_empty(), "{what}: nothing recorded");
        // The task gids differ between the two worlds; the details name them.
        let strip = |rows: Vec<String>, task: &str| -> Vec<String> {
            rows.into_iter().map(|r| r.replace(task, "TASK")).collect()
        };
        let strip_project = |rows: Vec<String>, project: &str| -> Vec<String> {
            rows.into_iter()
                .map(|r| r.replace(project, "PROJECT"))
                .collect()
        };
        assert_eq!(
            strip_project(strip(shape(&t), &by_task.tasks[0]), &by_task.project),
            strip_project(strip(shape(&p), &by_project.tasks[0]), &by_project.project),
            "{what}: ledger rows differ"
        );
        assert_eq!(
            by_task.invite_requests(),
            by_project.invite_requests(),
            "{what}"
        );
        if dry_run {
            assert!(
                by_task.invite_requests().is_empty(),
                "{what}: a dry run sent"
            );
            assert_eq!(by_task.share_requests(), 0, "{what}: a dry run shared");
        }
    }
}

/// Five tasks of one new person reconciled at once (five webhook jobs in one `serve`):
/// one invitation, one share, one `invited` row; the others wait and find the person.
#[tokio::test]
async fn overlapping_task_reconciles_invite_a_person_once() {
    let setup = Setup {
        tasks: (0..5)
            .map(|_| ("Same person", Some("solo@acme.example")))
            .collect(),
        hidden_email: false,
        people: vec![],
    };
    let w = Arc::new(World::start(&setup).await);
    let runs = (0..5).map(|i| {
        let w = w.clone();
        tokio::spawn(async move {
            let scope = w.task_scope(i);
            w.run(&scope, false).await
        })
    });
    let reports = futures::future::join_all(runs).await;
    let outcomes: Vec<Outcome> = reports
        .into_iter()
        .map(|r| r.unwrap().lines[0].outcome)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Invited).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Invited | Outcome::AlreadyInvited)));
    assert_eq!(w.invite_requests(), vec!["solo@acme.example".to_string()]);
    assert_eq!(w.share_requests(), 1);
    let invited = w
        .history()
        .await
        .into_iter()
        .filter(|r| r.outcome == "invited")
        .count();
    assert_eq!(invited, 1);
}

/// A project reconcile and task reconciles over the same people at once.
#[tokio::test]
async fn a_project_reconcile_beside_task_reconciles_invites_each_person_once() {
    let emails: Vec<&'static str> = (0..30)
        .map(|i| &*Box::leak(format!("p{i:02}@acme.example").into_boxed_str()))
        .collect();
    let setup = Setup {
        tasks: emails.iter().map(|e| ("Task", Some(*e))).collect(),
        hidden_email: false,
        people: vec![],
    };
    let w = Arc::new(World::start(&setup).await);
    let mut runs = Vec::new();
    for i in 0..30 {
        let w = w.clone();
        runs.push(tokio::spawn(async move {
            let scope = w.task_scope(i);
            w.run(&scope, false).await
        }));
    }
    for _ in 0..2 {
        let w = w.clone();
        runs.push(tokio::spawn(async move {
            w.run(&Scope::Projects(vec![w.rule()]), false).await
        }));
    }
    for r in futures::future::join_all(runs).await {
        assert_eq!(r.unwrap().exit_code(), 0);
    }
    let mut sent = w.invite_requests();
    sent.sort();
    let mut want: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    want.sort();
    assert_eq!(sent, want, "each person exactly once");
    let rows = w.history().await;
    for e in &emails {
        let invited = rows
            .iter()
            .filter(|r| r.email.as_deref() == Some(*e) && r.outcome == "invited")
            .count();
        assert_eq!(invited, 1, "{e}");
        let shared = rows
            .iter()
            .filter(|r| r.email.as_deref() == Some(*e) && r.outcome == "shared")
            .count();
        assert_eq!(shared, 1, "{e}");
    }
}

fn assert_send<T: Send>(_: &T) {}

/// The reconcile future can be spawned and awaited by a worker directly.
#[tokio::test]
async fn the_reconcile_future_is_send() {
    let w = World::start(&Setup {
        tasks: vec![("Launch", Some("new@acme.example"))],
        hidden_email: false,
        people: vec![],
    })
    .await;
    let opts = Options::new("r", Source::Webhook);
    let scope = Scope::Projects(vec![w.rule()]);
    assert_send(&reconcile::run(&w.svc, &scope, &opts));
    let report = tokio::spawn({
        let svc = w.svc.clone();
        async move { reconcile::run(&svc, &scope, &opts).await }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.lines[0].outcome, Outcome::Invited);
}

/// A reconcile dropped mid-way (a job timeout, a shutdown) gives its claims back at once,
/// so the next run does not wait for a lease to run out.
#[tokio::test]
async fn a_cancelled_reconcile_gives_its_claims_back() {
    let setup = Setup {
        tasks: vec![("Launch", Some("slow@acme.example"))],
        hidden_email: false,
        people: vec![],
    };
    let w = World::start(&setup).await;
    // The invitation hangs, so the run is inside its claim when it is dropped.
    w.docspace
        .set_faults(vec![bridge_sim::Fault::delay(Duration::from_secs(3))
            .on_path("/people/invite")
            .times(1)]);
    let scope = w.task_scope(0);
    let opts = Options::new("cancelled", Source::Webhook);
    let cancelled = tokio::time::timeout(
        Duration::from_secs(1),
        reconcile::run(&w.svc, &scope, &opts),
    )
    .await;
    assert!(cancelled.is_err(), "the run should still have been going");
    // The guard's release runs on the runtime; give it a moment, then the person's claim
    // must be free for a newcomer — not held until its lease runs out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = bridge_core::record::Holder::new();
    let granted = w
        .svc
        .store
        .claim_keys(
            &["person:slow@acme.example".to_string()],
            &other,
            bridge_core::record::ClaimEpoch::default(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(granted.len(), 1, "the dropped run still holds the claim");
    assert!(
        granted[0].stale,
        "someone acted since the epoch: the claim says so"
    );
    w.svc
        .store
        .release_claims(&["person:slow@acme.example".to_string()], &other)
        .await
        .unwrap();
    let report = w.run(&scope, false).await;
    // The dropped run's invitation may or may not land (it hangs in DocSpace); the person
    // ends up invited, and DocSpace sends them one invitation e-mail.
    assert!(matches!(
        report.lines[0].outcome,
        Outcome::Invited | Outcome::AlreadyInvited
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.docspace.world(|d| d.invitations_sent()),
        vec!["slow@acme.example".to_string()]
    );
}
