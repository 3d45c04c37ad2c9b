//! The Asana simulator's data: workspaces, users, projects, tasks, webhooks and the event
//! journal that feeds both webhook deliveries and the Events API.
//!
//! Mutations that Asana would report as events (a task added to a project, an assignee or
//! completion change) go through the helper methods, which append to `events`; that is
//! how a test's `sim.world(|w| w.assign_task(..))` turns into a signed webhook delivery.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Why a world helper could not apply a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// No task has this gid.
    #[error("unknown task {0}")]
    UnknownTask(String),
    /// No user has this gid.
    #[error("unknown user {0}")]
    UnknownUser(String),
    /// No project has this gid.
    #[error("unknown project {0}")]
    UnknownProject(String),
    /// No section has this gid (or not in that project).
    #[error("unknown section {0}")]
    UnknownSection(String),
}

/// An Asana workspace (or organization), the scope users are added to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workspace {
    /// Asana's numeric-string id.
    pub gid: String,
    /// Display name.
    pub name: String,
    /// Whether it is an organization (a domain-bound workspace).
    pub is_organization: bool,
}

/// An Asana user: whose email a task's assignee resolves to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsanaUser {
    /// Asana's numeric-string id.
    pub gid: String,
    /// Display name.
    pub name: String,
    /// `None` models a user whose email the API does not show: responses simply lack the key.
    pub email: Option<String>,
    /// Gids of the workspaces the user belongs to.
    pub workspaces: Vec<String>,
}

/// A project: the unit `[[rules]]` map to a room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    /// Asana's numeric-string id.
    pub gid: String,
    /// Display name.
    pub name: String,
    /// Gid of the workspace it belongs to.
    pub workspace: String,
    /// The token's user cannot see this project: every read answers 403.
    pub no_access: bool,
}

/// A section of a project. Every task of a project is in exactly one of its sections, as
/// in Asana; `add_project` makes the first one ("Untitled section", as Asana does).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    /// Asana's numeric-string id.
    pub gid: String,
    /// Display name.
    pub name: String,
    /// Gid of the project it belongs to.
    pub project: String,
}

/// A task: its assignee is who gets invited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Asana's numeric-string id.
    pub gid: String,
    /// Display name.
    pub name: String,
    /// Gid of the assigned user, if any.
    pub assignee: Option<String>,
    /// Completed tasks are skipped by `completed_since=now`.
    pub completed: bool,
    /// When it was completed, if it is.
    pub completed_at: Option<DateTime<Utc>>,
    /// Gids of the projects it is in.
    pub projects: Vec<String>,
    /// Its section in each of those projects, in the same order (`memberships[].section`).
    pub sections: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed: assigning, completing and adding it to a project count
    /// (what `GET /tasks?modified_since=` selects on).
    pub modified_at: DateTime<Utc>,
}

impl Task {
    /// Its section in `project`, if it is in the project.
    pub fn section_in(&self, project: &str) -> Option<&str> {
        self.projects
            .iter()
            .position(|p| p == project)
            .and_then(|i| self.sections.get(i))
            .map(String::as_str)
    }
}

/// A webhook's event filter (`WebhookFilter`); an event passes if it matches any filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookFilter {
    /// Only events on this resource type (`task`, `project`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Only events on this subtype (`default_task`, `milestone`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subtype: Option<String>,
    /// Only this action (`added`, `changed`, `removed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For `changed`: only changes of one of these fields (`assignee`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl WebhookFilter {
    fn matches(&self, e: &Event) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == e.resource_type)
            && self
                .resource_subtype
                .as_deref()
                .is_none_or(|t| t == e.resource_subtype)
            && self.action.as_deref().is_none_or(|a| a == e.action)
            && self.fields.as_ref().is_none_or(|fields| {
                e.field
                    .as_ref()
                    .is_some_and(|f| fields.iter().any(|x| x == f))
            })
    }
}

/// A registered webhook and its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    /// Asana's numeric-string id.
    pub gid: String,
    /// Gid of the watched resource (a project, a task or a workspace).
    pub resource: String,
    /// The URL deliveries are posted to.
    pub target: String,
    /// The handshake secret; deliveries are signed with it.
    #[serde(skip)]
    pub secret: String,
    /// Which events are delivered; empty means all of the resource's events.
    pub filters: Vec<WebhookFilter>,
    /// Whether deliveries are still attempted.
    pub active: bool,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When a delivery last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When a delivery last failed.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What the target answered the last failed delivery, as Asana reports it.
    pub last_failure_content: String,
    /// Failed delivery attempts since the last success, as Asana reports it.
    pub delivery_retry_count: u32,
    /// Index into `AsanaWorld::events` of the next event not yet handed to delivery.
    pub(crate) cursor: usize,
}

impl Webhook {
    /// Whether an event concerns this webhook's resource and passes its filters.
    pub(crate) fn wants(&self, e: &Event) -> bool {
        e.scopes.contains(&self.resource)
            && (self.filters.is_empty() || self.filters.iter().any(|f| f.matches(e)))
    }
}

/// One entry of the event journal (`EventResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Gid of the user who made the change.
    pub user: Option<String>,
    /// Gid of the changed resource.
    pub resource_gid: String,
    /// Its type (`task`, ...).
    pub resource_type: String,
    /// Its subtype (`default_task`, ...).
    pub resource_subtype: String,
    /// What happened: `added` or `changed` (the two the sim produces).
    pub action: String,
    /// `(gid, resource_type)` of the parent, for `added`/`removed`.
    pub parent: Option<(String, String)>,
    /// For `changed`: the field that changed (`assignee`, `completed`, ...).
    pub field: Option<String>,
    /// `(gid, resource_type)` of the new value when it is a resource (an assignee).
    pub new_value: Option<(String, String)>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// Resource gids this event is visible on: the task itself and its projects.
    pub scopes: Vec<String>,
}

impl Event {
    /// The wire form, shared by webhook deliveries and `GET /events`.
    pub fn to_json(&self) -> Value {
        let compact = |(gid, ty): &(String, String)| json!({ "gid": gid, "resource_type": ty });
        let mut v = json!({
            "user": self.user.as_ref().map(|u| json!({ "gid": u, "resource_type": "user" })),
            "resource": {
                "gid": self.resource_gid,
                "resource_type": self.resource_type,
                "resource_subtype": self.resource_subtype,
            },
            "type": self.resource_type,
            "action": self.action,
            "parent": self.parent.as_ref().map(compact),
            "created_at": rfc3339_millis(&self.created_at),
        });
        if let Some(field) = &self.field {
            let mut change = json!({ "field": field, "action": "changed" });
            if let Some(nv) = &self.new_value {
                change["new_value"] = compact(nv);
            }
            v["change"] = change;
        }
        v
    }
}

/// Asana's timestamp format: RFC 3339 with milliseconds and `Z`.
pub(crate) fn rfc3339_millis(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Everything the Asana simulator serves.
#[derive(Debug, Clone, Serialize)]
pub struct AsanaWorld {
    /// Workspaces by gid.
    pub workspaces: BTreeMap<String, Workspace>,
    /// Users by gid.
    pub users: BTreeMap<String, AsanaUser>,
    /// Projects by gid.
    pub projects: BTreeMap<String, Project>,
    /// Sections by gid (creation order, so a project's sections are in its order).
    pub sections: BTreeMap<String, Section>,
    /// Tasks by gid.
    pub tasks: BTreeMap<String, Task>,
    /// Registered webhooks by gid.
    pub webhooks: BTreeMap<String, Webhook>,
    /// The event journal, oldest first.
    pub events: Vec<Event>,
    /// Gid of the token's user (`me`); made by `new()`.
    pub me: String,
    next_gid: u64,
}

impl Default for AsanaWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl AsanaWorld {
    /// An empty world with only the token's user, "Sim Admin" `<admin@example.com>`.
    pub fn new() -> Self {
        Self::with_me("Sim Admin", "admin@example.com")
    }

    /// An empty world whose token user has this name and email.
    pub fn with_me(name: &str, email: &str) -> Self {
        let mut w = Self {
            workspaces: BTreeMap::new(),
            users: BTreeMap::new(),
            projects: BTreeMap::new(),
            sections: BTreeMap::new(),
            tasks: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            events: Vec::new(),
            me: String::new(),
            next_gid: 0,
        };
        let me = w.next_gid();
        w.users.insert(
            me.clone(),
            AsanaUser {
                gid: me.clone(),
                name: name.to_string(),
                email: Some(email.to_string()),
                workspaces: Vec::new(),
            },
        );
        w.me = me;
        w
    }

    /// A fresh 16-digit gid; increasing, so `BTreeMap` order is creation order.
    pub fn next_gid(&mut self) -> String {
        let n = self.next_gid;
        self.next_gid += 1;
        (1_208_305_000_000_000u64 + n * 10_007).to_string()
    }

    /// Adds a workspace (an organization) that the token's user belongs to.
    pub fn add_workspace(&mut self, name: &str) -> String {
        let gid = self.next_gid();
        self.workspaces.insert(
            gid.clone(),
            Workspace {
                gid: gid.clone(),
                name: name.to_string(),
                is_organization: true,
            },
        );
        if let Some(me) = self.users.get_mut(&self.me) {
            me.workspaces.push(gid.clone());
        }
        gid
    }

    /// Adds a user who is a member of `workspace`; `email: None` hides their email.
    pub fn add_user(&mut self, workspace: &str, name: &str, email: Option<&str>) -> String {
        let gid = self.next_gid();
        self.users.insert(
            gid.clone(),
            AsanaUser {
                gid: gid.clone(),
                name: name.to_string(),
                email: email.map(str::to_string),
                workspaces: vec![workspace.to_string()],
            },
        );
        gid
    }

    /// Adds a project in `workspace`, with its first section ("Untitled section").
    pub fn add_project(&mut self, workspace: &str, name: &str) -> String {
        let gid = self.next_gid();
        self.projects.insert(
            gid.clone(),
            Project {
                gid: gid.clone(),
                name: name.to_string(),
                workspace: workspace.to_string(),
                no_access: false,
            },
        );
        self.add_section(&gid, "Untitled section");
        gid
    }

    /// Adds a section at the end of `project`.
    pub fn add_section(&mut self, project: &str, name: &str) -> String {
        let gid = self.next_gid();
        self.sections.insert(
            gid.clone(),
            Section {
                gid: gid.clone(),
                name: name.to_string(),
                project: project.to_string(),
            },
        );
        gid
    }

    /// The sections of `project`, in order.
    pub fn project_sections(&self, project: &str) -> Vec<&Section> {
        self.sections
            .values()
            .filter(|s| s.project == project)
            .collect()
    }

    /// The section a task added to `project` without one lands in: its first.
    fn first_section(&self, project: &str) -> String {
        self.sections
            .values()
            .find(|s| s.project == project)
            .map(|s| s.gid.clone())
            .unwrap_or_default()
    }

    /// Adds an incomplete task to `project` (in its first section) and records an `added`
    /// event on the project.
    pub fn add_task(&mut self, project: &str, name: &str, assignee: Option<&str>) -> String {
        let section = self.first_section(project);
        self.insert_task(project, &section, name, assignee)
    }

    /// Adds an incomplete task to `section` of its project, like [`AsanaWorld::add_task`].
    pub fn add_task_in_section(
        &mut self,
        section: &str,
        name: &str,
        assignee: Option<&str>,
    ) -> Result<String, WorldError> {
        let project = self
            .sections
            .get(section)
            .map(|s| s.project.clone())
            .ok_or_else(|| WorldError::UnknownSection(section.to_string()))?;
        Ok(self.insert_task(&project, section, name, assignee))
    }

    fn insert_task(
        &mut self,
        project: &str,
        section: &str,
        name: &str,
        assignee: Option<&str>,
    ) -> String {
        let gid = self.next_gid();
        let now = Utc::now();
        self.tasks.insert(
            gid.clone(),
            Task {
                gid: gid.clone(),
                name: name.to_string(),
                assignee: assignee.map(str::to_string),
                completed: false,
                completed_at: None,
                projects: vec![project.to_string()],
                sections: vec![section.to_string()],
                created_at: now,
                modified_at: now,
            },
        );
        self.events.push(Event {
            user: Some(self.me.clone()),
            resource_gid: gid.clone(),
            resource_type: "task".into(),
            resource_subtype: "default_task".into(),
            action: "added".into(),
            parent: Some((project.to_string(), "project".into())),
            field: None,
            new_value: None,
            created_at: now,
            scopes: vec![gid.clone(), project.to_string()],
        });
        gid
    }

    /// Adds an existing task to another project (in `section`, else the project's first),
    /// recording an `added` event on the project; a modification, as on Asana.
    pub fn add_task_to_project(
        &mut self,
        task: &str,
        project: &str,
        section: Option<&str>,
    ) -> Result<(), WorldError> {
        if !self.projects.contains_key(project) {
            return Err(WorldError::UnknownProject(project.to_string()));
        }
        let section = match section {
            Some(s) if self.sections.get(s).is_some_and(|x| x.project == project) => s.to_string(),
            Some(s) => return Err(WorldError::UnknownSection(s.to_string())),
            None => self.first_section(project),
        };
        let me = self.me.clone();
        let t = self
            .tasks
            .get_mut(task)
            .ok_or_else(|| WorldError::UnknownTask(task.to_string()))?;
        if t.projects.iter().any(|p| p == project) {
            return Ok(());
        }
        let now = Utc::now();
        t.projects.push(project.to_string());
        t.sections.push(section);
        t.modified_at = now;
        self.events.push(Event {
            user: Some(me),
            resource_gid: task.to_string(),
            resource_type: "task".into(),
            resource_subtype: "default_task".into(),
            action: "added".into(),
            parent: Some((project.to_string(), "project".into())),
            field: None,
            new_value: None,
            created_at: now,
            scopes: vec![task.to_string(), project.to_string()],
        });
        Ok(())
    }

    /// Sets or clears a task's assignee, recording a `changed`/`assignee` event when it
    /// actually changes (Asana reports no event for a no-op).
    pub fn assign_task(&mut self, task: &str, assignee: Option<&str>) -> Result<(), WorldError> {
        if let Some(user) = assignee {
            if !self.users.contains_key(user) {
                return Err(WorldError::UnknownUser(user.to_string()));
            }
        }
        let me = self.me.clone();
        let t = self
            .tasks
            .get_mut(task)
            .ok_or_else(|| WorldError::UnknownTask(task.to_string()))?;
        if t.assignee.as_deref() == assignee {
            return Ok(());
        }
        let now = Utc::now();
        t.assignee = assignee.map(str::to_string);
        t.modified_at = now;
        let mut scopes = vec![t.gid.clone()];
        scopes.extend(t.projects.iter().cloned());
        self.events.push(Event {
            user: Some(me),
            resource_gid: task.to_string(),
            resource_type: "task".into(),
            resource_subtype: "default_task".into(),
            action: "changed".into(),
            parent: None,
            field: Some("assignee".into()),
            new_value: assignee.map(|u| (u.to_string(), "user".to_string())),
            created_at: now,
            scopes,
        });
        Ok(())
    }

    /// Marks a task completed (now), recording a `changed`/`completed` event.
    pub fn complete_task(&mut self, task: &str) -> Result<(), WorldError> {
        self.set_completed(task, true)
    }

    pub(crate) fn set_completed(&mut self, task: &str, completed: bool) -> Result<(), WorldError> {
        let me = self.me.clone();
        let t = self
            .tasks
            .get_mut(task)
            .ok_or_else(|| WorldError::UnknownTask(task.to_string()))?;
        if t.completed == completed {
            return Ok(());
        }
        let now = Utc::now();
        t.completed = completed;
        t.completed_at = completed.then_some(now);
        t.modified_at = now;
        let mut scopes = vec![t.gid.clone()];
        scopes.extend(t.projects.iter().cloned());
        self.events.push(Event {
            user: Some(me),
            resource_gid: task.to_string(),
            resource_type: "task".into(),
            resource_subtype: "default_task".into(),
            action: "changed".into(),
            parent: None,
            field: Some("completed".into()),
            new_value: None,
            created_at: now,
            scopes,
        });
        Ok(())
    }

    /// Finds a user by email, case-insensitively (hidden emails never match).
    pub fn user_by_email(&self, email: &str) -> Option<&AsanaUser> {
        self.users.values().find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
        })
    }

    /// Resolves a user identifier as the API does: `me`, a gid, or an email.
    pub fn resolve_user(&self, ident: &str) -> Option<&AsanaUser> {
        if ident == "me" {
            self.users.get(&self.me)
        } else if ident.contains('@') {
            self.user_by_email(ident)
        } else {
            self.users.get(ident)
        }
    }

    /// Task gids of `project`, in project order (creation order here).
    pub fn project_task_gids(&self, project: &str) -> Vec<String> {
        self.tasks
            .values()
            .filter(|t| t.projects.iter().any(|p| p == project))
            .map(|t| t.gid.clone())
            .collect()
    }

    /// Name and `resource_type` of any gid the world knows, for webhook and event resources.
    pub(crate) fn describe(&self, gid: &str) -> Option<(&'static str, String, String)> {
        if let Some(p) = self.projects.get(gid) {
            return Some(("project", p.name.clone(), p.workspace.clone()));
        }
        if let Some(t) = self.tasks.get(gid) {
            let ws = t
                .projects
                .first()
                .and_then(|p| self.projects.get(p))
                .map(|p| p.workspace.clone())
                .unwrap_or_default();
            return Some(("task", t.name.clone(), ws));
        }
        if let Some(w) = self.workspaces.get(gid) {
            return Some(("workspace", w.name.clone(), w.gid.clone()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_look_real_and_sort() {
        let mut w = AsanaWorld::new();
        let a = w.next_gid();
        let b = w.next_gid();
        assert_eq!(a.len(), 16);
        assert!(a < b);
    }

    #[test]
    fn helpers_record_events() {
        let mut w = AsanaWorld::new();
        let ws = w.add_workspace("W");
        let u = w.add_user(&ws, "U", Some("u@x.com"));
        let p = w.add_project(&ws, "P");
        let t = w.add_task(&p, "T", None);
        w.assign_task(&t, Some(&u)).unwrap();
        w.assign_task(&t, Some(&u)).unwrap();
        assert_eq!(w.events.len(), 2);
        assert_eq!(
            w.events[1].to_json()["change"]["new_value"]["gid"],
            u.as_str()
        );
        assert!(matches!(
            w.assign_task("1", None),
            Err(WorldError::UnknownTask(_))
        ));
        assert!(matches!(
            w.assign_task(&t, Some("9")),
            Err(WorldError::UnknownUser(_))
        ));
        let before = w.tasks[&t].modified_at;
        w.complete_task(&t).unwrap();
        assert!(w.tasks[&t].completed);
        assert!(w.tasks[&t].modified_at >= before);
        // Every task of a project is in exactly one of its sections.
        let s2 = w.add_section(&p, "Doing");
        let t2 = w.add_task_in_section(&s2, "T2", None).unwrap();
        assert_eq!(
            w.tasks[&t].section_in(&p),
            Some(w.project_sections(&p)[0].gid.as_str())
        );
        assert_eq!(w.tasks[&t2].section_in(&p), Some(s2.as_str()));
        let p2 = w.add_project(&ws, "P2");
        w.add_task_to_project(&t2, &p2, None).unwrap();
        assert_eq!(w.tasks[&t2].projects.len(), 2);
        assert_eq!(
            w.tasks[&t2].section_in(&p2),
            Some(w.project_sections(&p2)[0].gid.as_str())
        );
        assert!(matches!(
            w.add_task_to_project(&t, &p2, Some(&s2)),
            Err(WorldError::UnknownSection(_))
        ));
        assert_eq!(w.resolve_user("U@X.COM").map(|u| u.gid.clone()), Some(u));
    }
}
