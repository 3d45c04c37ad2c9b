//! How `sync` reads projects: sections paged in parallel (a one-section project paged as
//! before), tasks deduplicated by gid, and incremental re-runs that ask Asana only for
//! what was modified since the last complete, successful sync.

use std::time::Duration;

use asana_api::Gid;
use bridge_core::config::{RoomTarget, Rule};
use bridge_core::domain::{RoomId, Source};
use bridge_core::reconcile::{self, Options, Scope};
use bridge_core::report::Report;
use bridge_core::Services;
use bridge_sim::seed::{bench_projects, BenchIds, BenchSpec};
use bridge_sim::{AsanaSim, DocSpaceSim, LoggedRequest};
use docspace_api::{Access, UserType};

struct Bench {
    asana: AsanaSim,
    _docspace: DocSpaceSim,
    svc: Services,
    ids: BenchIds,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// A bench world; every task last modified an hour ago (an unchanged project).
    async fn start(spec: BenchSpec) -> Bench {
        let (mut a, d, ids) = bench_projects(spec);
        let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        for t in a.tasks.values_mut() {
            t.created_at = hour_ago;
            t.modified_at = hour_ago;
        }
        let (asana, docspace, svc, dir) = crate::support::sims(a, d).await;
        Bench {
            asana,
            _docspace: docspace,
            svc,
            ids,
            _dir: dir,
        }
    }

    fn rules(&self) -> Vec<Rule> {
        self.ids
            .projects
            .iter()
            .map(|p| Rule {
                project: Gid::parse(p).unwrap(),
                room: Some(RoomTarget {
                    room: RoomId::parse(&self.ids.room).unwrap(),
                    access: Access::Editing,
                }),
                user_type: UserType::User,
                include_completed: false,
                on_unassign: bridge_core::config::OnUnassign::Keep,
                revoke_after: bridge_core::config::DEFAULT_REVOKE_AFTER,
            })
            .collect()
    }

    async fn sync_with(&self, rules: Vec<Rule>, tweak: impl FnOnce(&mut Options)) -> Report {
        let mut opts = Options {
            incremental: true,
            ..Options::new("t", Source::Sync)
        };
        tweak(&mut opts);
        self.asana.clear_requests();
        reconcile::run(&self.svc, &Scope::Projects(rules), &opts)
            .await
            .unwrap()
    }

    async fn sync(&self) -> Report {
        self.sync_with(self.rules(), |_| {}).await
    }

    fn asana_gets(&self) -> Vec<LoggedRequest> {
        self.asana.requests()
    }
}

fn count(reqs: &[LoggedRequest], path_ends: &str, query_has: &str) -> usize {
    reqs.iter()
        .filter(|r| r.path.ends_with(path_ends) && r.query.contains(query_has))
        .count()
}

#[tokio::test]
async fn sections_are_paged_at_once_and_tasks_deduplicated() {
    let b = Bench::start(BenchSpec {
        tasks_per_project: 450,
        sections: 3,
        assignees: 30,
        ..BenchSpec::default()
    })
    .await;
    let r = b.sync().await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.lines);
    // Page 1 of the project overlaps the sections' pages: every task counted once.
    assert_eq!(r.summary.tasks, 450);
    assert_eq!(r.summary.people, 30);
    assert_eq!(r.summary.mode, Some("full"));
    let reqs = b.asana_gets();
    let p = &b.ids.project;
    assert_eq!(count(&reqs, &format!("/projects/{p}/tasks"), ""), 1);
    assert_eq!(count(&reqs, &format!("/projects/{p}/sections"), ""), 1);
    // 150 tasks a section: 2 pages each, with the same opt_fields and completed_since.
    assert_eq!(count(&reqs, "/tasks", "section="), 6);
    for r in reqs.iter().filter(|r| r.query.contains("section=")) {
        assert!(r.query.contains("completed_since=20"), "{}", r.query);
        assert!(r.query.contains("assignee.email"), "{}", r.query);
    }
    assert_eq!(reqs.len(), 8);
}

#[tokio::test]
async fn a_one_section_project_is_paged_as_before() {
    let b = Bench::start(BenchSpec {
        tasks_per_project: 250,
        assignees: 10,
        ..BenchSpec::default()
    })
    .await;
    let r = b.sync().await;
    assert_eq!(r.summary.tasks, 250);
    let reqs = b.asana_gets();
    let p = &b.ids.project;
    assert_eq!(count(&reqs, &format!("/projects/{p}/tasks"), ""), 3);
    assert_eq!(count(&reqs, &format!("/projects/{p}/sections"), ""), 1);
    assert_eq!(reqs.len(), 4);

    // A project of one page: its page and its sections, asked at once; nothing more.
    let small = Bench::start(BenchSpec {
        tasks_per_project: 60,
        sections: 4,
        assignees: 10,
        ..BenchSpec::default()
    })
    .await;
    let r = small.sync().await;
    assert_eq!(r.summary.tasks, 60);
    let reqs = small.asana_gets();
    let p = &small.ids.project;
    assert_eq!(count(&reqs, &format!("/projects/{p}/tasks"), ""), 1);
    assert_eq!(count(&reqs, &format!("/projects/{p}/sections"), ""), 1);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
}

#[tokio::test]
async fn an_unchanged_project_is_read_with_one_call_then_changes_are_picked_up() {
    let b = Bench::start(BenchSpec {
        tasks_per_project: 450,
        sections: 3,
        assignees: 30,
        ..BenchSpec::default()
    })
    .await;
    let first = b.sync().await;
    assert_eq!(first.summary.mode, Some("full"));
    assert_eq!(first.summary.outcomes.get("invited"), Some(&15));

    // Nothing changed: one GET /tasks?project=…&modified_since=…, nothing read or sent.
    let again = b.sync().await;
    assert_eq!(again.summary.mode, Some("incremental"));
    assert_eq!(again.summary.projects_incremental, 1);
    assert_eq!(again.summary.tasks, 0);
    assert_eq!(again.summary.asana_calls, 1);
    let reqs = b.asana_gets();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].path.ends_with("/tasks"), "{}", reqs[0].path);
    assert!(reqs[0]
        .query
        .contains(&format!("project={}", b.ids.project)));
    assert!(
        reqs[0].query.contains("modified_since="),
        "{}",
        reqs[0].query
    );
    assert!(
        reqs[0].query.contains("completed_since=20"),
        "{}",
        reqs[0].query
    );

    // A new person assigned: the next incremental run reads that task and invites them.
    let task = b.asana.world(|w| {
        let ws = b.ids.workspace.clone();
        let u = w.add_user(&ws, "Newcomer", Some("newcomer@bench.example"));
        let t = w.project_task_gids(&b.ids.project)[7].clone();
        w.assign_task(&t, Some(&u)).unwrap();
        t
    });
    let r = b.sync().await;
    assert_eq!(r.summary.mode, Some("incremental"));
    assert_eq!(r.summary.tasks, 1);
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].task, task);
    assert_eq!(r.summary.outcomes.get("invited"), Some(&1));

    // --full (incremental off) reads everything again.
    let full = b.sync_with(b.rules(), |o| o.incremental = false).await;
    assert_eq!(full.summary.mode, Some("full"));
    assert_eq!(full.summary.tasks, 450);
}

#[tokio::test]
async fn a_changed_rule_an_old_full_sync_or_a_dry_run_mean_full() {
    let b = Bench::start(BenchSpec {
        tasks_per_project: 120,
        assignees: 10,
        ..BenchSpec::default()
    })
    .await;
    // A dry run records nothing: the next run is still full.
    let dry = b.sync_with(b.rules(), |o| o.dry_run = true).await;
    assert_eq!(dry.summary.mode, Some("full"));
    assert_eq!(b.sync().await.summary.mode, Some("full"));
    assert_eq!(b.sync().await.summary.mode, Some("incremental"));

    // The rule changed (another user type): full, then incremental under the new rule.
    let mut changed = b.rules();
    changed[0].user_type = UserType::RoomAdmin;
    let r = b.sync_with(changed.clone(), |_| {}).await;
    assert_eq!(r.summary.mode, Some("full"));
    assert_eq!(r.summary.tasks, 120);
    let r = b.sync_with(changed.clone(), |_| {}).await;
    assert_eq!(r.summary.mode, Some("incremental"));

    // The last full sync is older than full_every: full.
    let r = b
        .sync_with(changed, |o| o.settings.full_every = Duration::ZERO)
        .await;
    assert_eq!(r.summary.mode, Some("full"));
}

#[tokio::test]
async fn projects_of_one_run_are_read_together_in_their_modes() {
    let b = Bench::start(BenchSpec {
        projects: 6,
        tasks_per_project: 150,
        sections: 2,
        assignees: 40,
        ..BenchSpec::default()
    })
    .await;
    let r = b.sync().await;
    assert_eq!(r.summary.tasks, 900);
    assert_eq!(r.summary.projects, 6);
    // Every project's mark is fresh: six calls, one a project.
    let r = b.sync().await;
    assert_eq!(r.summary.mode, Some("incremental"));
    assert_eq!(r.summary.projects_incremental, 6);
    assert_eq!(r.summary.asana_calls, 6);
    // A new project in the rules: that one is read whole, the others incrementally.
    let (extra, _) = b.asana.world(|w| {
        let p = w.add_project(&b.ids.workspace, "Late project");
        let u = w.users.keys().nth(3).cloned();
        (p.clone(), w.add_task(&p, "late", u.as_deref()))
    });
    let mut rules = b.rules();
    let mut late = rules[0].clone();
    late.project = Gid::parse(&extra).unwrap();
    rules.push(late);
    let r = b.sync_with(rules, |_| {}).await;
    assert_eq!(r.summary.mode, Some("full"));
    assert_eq!(r.summary.projects_incremental, 6);
    assert_eq!(r.summary.tasks, 1);
}
