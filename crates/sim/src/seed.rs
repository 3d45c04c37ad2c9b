//! Seeded worlds: `demo()` covers every outcome the product reports, so `asana-docspace
//! demo` and the integration tests exercise each branch; `bench()` builds a large single
//! project for throughput tests.

use crate::asana::AsanaWorld;
use crate::docspace::{DocSpaceWorld, PersonState, SimUserType};

/// The Asana token both the sim (by default) and `demo` use. Not a real credential.
pub const DEMO_ASANA_TOKEN: &str =
    "2/1208305000000000/1208305000099999:demo0sim0token0not0a0secret";
/// The DocSpace API key both the sim (by default) and `demo` use. Not a real credential.
pub const DEMO_DOCSPACE_KEY: &str = "sk-demo-0123456789abcdef0123456789abcdef";

/// The DocSpace room type `demo()` uses (Custom room).
pub const CUSTOM_ROOM: u8 = 5;

/// Gids and ids of the demo world, named by the case each one exercises.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoIds {
    /// The demo workspace.
    pub workspace: String,
    /// The token's own user (`me`).
    pub me: String,
    /// Has a room rule in the demo config: tasks here are invited and shared.
    pub project_website: String,
    /// No room: tasks here are only invited.
    pub project_onboarding: String,
    /// A project the token cannot read (403).
    pub project_restricted: String,
    /// DocSpace room (Custom room) for `project_website`.
    pub room: String,

    /// Assignee not in DocSpace → `invited`.
    pub task_new_assignee: String,
    /// Same assignee on a second task → deduplicated, still one invitation.
    pub task_new_assignee_again: String,
    /// Assignee already an active DocSpace user → `already_member`.
    pub task_active_member: String,
    /// Assignee already invited and pending → `already_invited`.
    pub task_pending: String,
    /// Assignee whose DocSpace account is disabled → `failed` (400 "User disabled").
    pub task_disabled: String,
    /// No assignee → `no_assignee`.
    pub task_unassigned: String,
    /// Assignee whose email Asana hides → `email_hidden`.
    pub task_hidden_email: String,
    /// Completed task whose assignee appears nowhere else: skipped unless
    /// `include_completed`.
    pub task_completed: String,
    /// In `project_onboarding`, a second new person.
    pub task_onboarding_new: String,
    /// In `project_onboarding`, the active member again.
    pub task_onboarding_active: String,

    /// `task_new_assignee`'s assignee (Alice, not in DocSpace).
    pub user_new: String,
    /// `task_active_member`'s assignee (Bob, active in DocSpace).
    pub user_active: String,
    /// `task_pending`'s assignee (Carol, invited and pending in DocSpace).
    pub user_pending: String,
    /// `task_disabled`'s assignee (Dave, disabled in DocSpace).
    pub user_disabled: String,
    /// `task_hidden_email`'s assignee (Erin, whose email Asana hides).
    pub user_hidden_email: String,
    /// `task_completed`'s assignee (Heidi), on no open task.
    pub user_completed_only: String,
    /// `task_onboarding_new`'s assignee (Frank, not in DocSpace).
    pub user_onboarding_new: String,

    /// The email of `user_new`.
    pub email_new: String,
    /// The email of `user_active`.
    pub email_active: String,
    /// The email of `user_pending`.
    pub email_pending: String,
    /// The email of `user_disabled`.
    pub email_disabled: String,
    /// The email of `user_completed_only`.
    pub email_completed_only: String,
    /// The email of `user_onboarding_new`.
    pub email_onboarding_new: String,

    /// Id of the DocSpace portal owner (the API key's user).
    pub docspace_owner: String,
    /// DocSpace id of `user_active`'s person (active).
    pub person_active: String,
    /// DocSpace id of `user_pending`'s person (pending).
    pub person_pending: String,
    /// DocSpace id of `user_disabled`'s person (disabled).
    pub person_disabled: String,
}

/// The demo worlds: one workspace, three projects, twelve tasks, one Custom room.
pub fn demo() -> (AsanaWorld, DocSpaceWorld, DemoIds) {
    let mut a = AsanaWorld::with_me("Dana Admin", "dana.admin@acme.example");
    let ws = a.add_workspace("Acme Corp");

    let email_new = "alice.new@acme.example".to_string();
    let email_active = "bob.active@acme.example".to_string();
    let email_pending = "carol.pending@acme.example".to_string();
    let email_disabled = "dave.disabled@acme.example".to_string();
    let email_completed_only = "heidi.done@acme.example".to_string();
    let email_onboarding_new = "frank.newhire@acme.example".to_string();

    let user_new = a.add_user(&ws, "Alice New", Some(&email_new));
    let user_active = a.add_user(&ws, "Bob Active", Some(&email_active));
    let user_pending = a.add_user(&ws, "Carol Pending", Some(&email_pending));
    let user_disabled = a.add_user(&ws, "Dave Disabled", Some(&email_disabled));
    let user_hidden_email = a.add_user(&ws, "Erin Hidden", None);
    let user_completed_only = a.add_user(&ws, "Heidi Done", Some(&email_completed_only));
    let user_onboarding_new = a.add_user(&ws, "Frank Newhire", Some(&email_onboarding_new));

    let project_website = a.add_project(&ws, "Website relaunch");
    let project_onboarding = a.add_project(&ws, "Onboarding");
    let project_restricted = a.add_project(&ws, "Board minutes");
    if let Some(p) = a.projects.get_mut(&project_restricted) {
        p.no_access = true;
    }

    let w = &project_website;
    let task_new_assignee = a.add_task(w, "Draft the new landing page copy", Some(&user_new));
    let task_active_member = a.add_task(w, "Review brand guidelines", Some(&user_active));
    let task_pending = a.add_task(w, "Collect customer quotes", Some(&user_pending));
    let task_disabled = a.add_task(w, "Archive old press kit", Some(&user_disabled));
    let task_unassigned = a.add_task(w, "Pick a launch date", None);
    let task_hidden_email = a.add_task(
        w,
        "Legal check of the cookie banner",
        Some(&user_hidden_email),
    );
    let task_new_assignee_again = a.add_task(w, "Proofread the FAQ", Some(&user_new));
    let task_completed = a.add_task(w, "Kick-off meeting notes", Some(&user_completed_only));
    // Completion goes through the helper so `completed_at` is set like Asana's.
    let _ = a.complete_task(&task_completed);

    let o = &project_onboarding;
    let task_onboarding_new = a.add_task(o, "Set up laptop", Some(&user_onboarding_new));
    let task_onboarding_active = a.add_task(o, "Buddy introduction", Some(&user_active));
    a.add_task(o, "Order business cards", None);

    a.add_task(
        &project_restricted,
        "Quarterly board pack",
        Some(&user_active),
    );

    let mut d = DocSpaceWorld::with_owner("dana.admin@acme.example", "Dana", "Admin");
    let docspace_owner = d.owner().map(|p| p.id.clone()).unwrap_or_default();
    let person_active = d.add_person(&email_active, SimUserType::User, PersonState::Active);
    let person_pending = d.add_person(&email_pending, SimUserType::User, PersonState::Pending);
    let person_disabled = d.add_person(&email_disabled, SimUserType::User, PersonState::Disabled);
    let room = d.add_room("Website relaunch", CUSTOM_ROOM);
    d.add_member(&room, &person_active, 10);

    let ids = DemoIds {
        workspace: ws,
        me: a.me.clone(),
        project_website,
        project_onboarding,
        project_restricted,
        room,
        task_new_assignee,
        task_new_assignee_again,
        task_active_member,
        task_pending,
        task_disabled,
        task_unassigned,
        task_hidden_email,
        task_completed,
        task_onboarding_new,
        task_onboarding_active,
        user_new,
        user_active,
        user_pending,
        user_disabled,
        user_hidden_email,
        user_completed_only,
        user_onboarding_new,
        email_new,
        email_active,
        email_pending,
        email_disabled,
        email_completed_only,
        email_onboarding_new,
        docspace_owner,
        person_active,
        person_pending,
        person_disabled,
    };
    (a, d, ids)
}

/// Ids of a `bench()` world.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchIds {
    /// The bench workspace.
    pub workspace: String,
    /// The first project (the only one of `bench()`).
    pub project: String,
    /// Every project, in order (`bench_projects`).
    pub projects: Vec<String>,
    /// Every project's sections, project by project.
    pub sections: Vec<String>,
    /// The room a rule maps the project to.
    pub room: String,
    /// Every assignee's email, in user order.
    pub assignee_emails: Vec<String>,
    /// The subset already active in DocSpace.
    pub existing_emails: Vec<String>,
    /// How many tasks there are in all.
    pub task_count: usize,
}

/// One project with `tasks` tasks assigned round-robin to `assignees` users, of whom the
/// first `existing_fraction` are already active DocSpace users. Built in memory in
/// milliseconds, so benchmarks measure the tool, not the fixture.
pub fn bench(
    tasks: usize,
    assignees: usize,
    existing_fraction: f64,
) -> (AsanaWorld, DocSpaceWorld, BenchIds) {
    bench_projects(BenchSpec {
        tasks_per_project: tasks,
        assignees,
        existing_fraction,
        ..BenchSpec::default()
    })
}

/// The shape of a `bench_projects` world.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSpec {
    /// Projects, each with its own tasks (default 1).
    pub projects: usize,
    /// Tasks in each project (default 10,000).
    pub tasks_per_project: usize,
    /// Sections in each project, tasks spread over them in equal consecutive blocks
    /// (default 1: the project's "Untitled section" only).
    pub sections: usize,
    /// Users the tasks are assigned to round-robin, across all projects (default 500).
    pub assignees: usize,
    /// The share of them already active in DocSpace (default 0.5).
    pub existing_fraction: f64,
}

impl Default for BenchSpec {
    fn default() -> Self {
        BenchSpec {
            projects: 1,
            tasks_per_project: 10_000,
            sections: 1,
            assignees: 500,
            existing_fraction: 0.5,
        }
    }
}

/// `projects` projects of `tasks_per_project` tasks in `sections` sections each, assigned
/// round-robin to `assignees` users; one DocSpace room for the rules to share.
pub fn bench_projects(spec: BenchSpec) -> (AsanaWorld, DocSpaceWorld, BenchIds) {
    let mut a = AsanaWorld::with_me("Bench Admin", "bench.admin@bench.example");
    let ws = a.add_workspace("Bench Inc");
    let assignees = spec.assignees.max(1);
    let users: Vec<(String, String)> = (0..assignees)
        .map(|i| {
            let email = format!("user{i:05}@bench.example");
            let gid = a.add_user(&ws, &format!("User {i:05}"), Some(&email));
            (gid, email)
        })
        .collect();
    let mut projects = Vec::new();
    let mut all_sections = Vec::new();
    let mut n = 0usize;
    let per = spec.tasks_per_project;
    for p in 0..spec.projects.max(1) {
        let name = if spec.projects <= 1 {
            "Bench project".to_string()
        } else {
            format!("Bench project {p:03}")
        };
        let project = a.add_project(&ws, &name);
        let mut sections: Vec<String> = a
            .project_sections(&project)
            .iter()
            .map(|s| s.gid.clone())
            .collect();
        for k in 1..spec.sections.max(1) {
            sections.push(a.add_section(&project, &format!("Section {k:02}")));
        }
        for i in 0..per {
            let (gid, _) = &users[n % users.len()];
            n += 1;
            let section = &sections[i * sections.len() / per.max(1)];
            let name = format!("Bench task {p:03}-{i:06}");
            let _ = a.add_task_in_section(section, &name, Some(gid));
        }
        projects.push(project);
        all_sections.extend(sections);
    }
    let existing = ((assignees as f64) * spec.existing_fraction.clamp(0.0, 1.0)).round() as usize;
    let mut d = DocSpaceWorld::with_owner("bench.admin@bench.example", "Bench", "Admin");
    let room = d.add_room("Bench room", CUSTOM_ROOM);
    let existing_emails: Vec<String> = users
        .iter()
        .take(existing)
        .map(|(_, e)| {
            d.add_person(e, SimUserType::User, PersonState::Active);
            e.clone()
        })
        .collect();
    let ids = BenchIds {
        workspace: ws,
        project: projects[0].clone(),
        projects,
        sections: all_sections,
        room,
        assignee_emails: users.into_iter().map(|(_, e)| e).collect(),
        existing_emails,
        task_count: n,
    };
    (a, d, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_covers_every_case() {
        let (a, d, ids) = demo();
        assert!(a.tasks[&ids.task_unassigned].assignee.is_none());
        assert!(a.users[&ids.user_hidden_email].email.is_none());
        assert!(a.tasks[&ids.task_completed].completed);
        assert_eq!(
            d.person_by_email(&ids.email_pending).map(|p| p.state),
            Some(PersonState::Pending)
        );
        assert_eq!(
            d.person_by_email(&ids.email_disabled).map(|p| p.state),
            Some(PersonState::Disabled)
        );
        assert!(d.person_by_email(&ids.email_new).is_none());
        assert_eq!(d.room(&ids.room).map(|r| r.room_type), Some(CUSTOM_ROOM));
        assert!((10..=14).contains(&a.tasks.len()));
        assert!(DEMO_DOCSPACE_KEY.starts_with("sk-demo-"));
    }

    #[test]
    fn bench_builds_fast() {
        let t = std::time::Instant::now();
        let (a, d, ids) = bench(10_000, 500, 0.5);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(a.project_task_gids(&ids.project).len(), 10_000);
        assert_eq!(ids.existing_emails.len(), 250);
        assert_eq!(d.people.len(), 251);
        assert_eq!(ids.sections.len(), 1);
    }

    #[test]
    fn bench_sections_hold_every_task_once() {
        let (a, _, ids) = bench_projects(BenchSpec {
            projects: 2,
            tasks_per_project: 1_000,
            sections: 10,
            ..BenchSpec::default()
        });
        assert_eq!(ids.projects.len(), 2);
        assert_eq!(ids.sections.len(), 20);
        assert_eq!(ids.task_count, 2_000);
        for p in &ids.projects {
            let sections = a.project_sections(p);
            assert_eq!(sections.len(), 10);
            let gids = a.project_task_gids(p);
            assert_eq!(gids.len(), 1_000);
            for s in &sections {
                let n = gids
                    .iter()
                    .filter(|g| a.tasks[*g].section_in(p) == Some(s.gid.as_str()))
                    .count();
                assert_eq!(n, 100, "section {}", s.name);
            }
        }
    }
}
