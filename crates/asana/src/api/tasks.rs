//! Tasks: `GET /tasks/{gid}`, `GET /projects/{gid}/tasks`, `GET /tasks` (by project or
//! section, `modified_since`).

use futures::Stream;

use super::{with_fields, Query};
use crate::{client::enc, Client, Error, Gid, Task};

impl Client {
    /// `GET /tasks/{task_gid}?opt_fields=…` (`getTask`).
    ///
    /// Pass nested fields such as `assignee.email`; only `gid` is returned unasked.
    pub async fn get_task(&self, task: &Gid, opt_fields: &[&str]) -> Result<Task, Error> {
        let query = with_fields(Query::new(), opt_fields);
        let url = self.url(&["tasks", task.as_str()], &query);
        self.data(self.get(url)).await
    }

    /// The first page of [`Client::project_tasks`], with the offset of the next one
    /// (`None`: that was all). Lets a caller decide how to read the rest, e.g. by section.
    pub async fn project_tasks_page(
        &self,
        project: &Gid,
        opt_fields: &[&str],
        completed_since: Option<&str>,
        offset: Option<&str>,
    ) -> Result<TaskPage, Error> {
        let (tasks, next_offset) = self
            .page(
                &project_segments(project),
                &task_query(opt_fields, completed_since, None),
                offset,
            )
            .await?;
        Ok(TaskPage { tasks, next_offset })
    }

    /// [`Client::project_tasks`] from the page `offset` names on (from
    /// [`TaskPage::next_offset`]).
    pub fn project_tasks_from(
        &self,
        project: &Gid,
        opt_fields: &[&str],
        completed_since: Option<&str>,
        offset: String,
    ) -> impl Stream<Item = Result<Task, Error>> + Send + '_ {
        self.paged_from(
            project_segments(project),
            task_query(opt_fields, completed_since, None),
            Some(offset),
        )
    }

    /// `GET /tasks?project=…` or `?section=…` (`getTasks`) as a lazy stream of pages of
    /// 100. `modified_since` (a date-time) keeps only tasks changed since then — Asana
    /// counts assigning, completing and adding to a project as changes;
    /// `completed_since` is a date-time here (the spec documents no `now` for `getTasks`).
    pub fn tasks(
        &self,
        list: TaskList,
        opt_fields: &[&str],
        completed_since: Option<&str>,
        modified_since: Option<&str>,
    ) -> impl Stream<Item = Result<Task, Error>> + Send + '_ {
        let mut query = match list {
            TaskList::Project(p) => vec![("project", enc(p.as_str()))],
            TaskList::Section(s) => vec![("section", enc(s.as_str()))],
        };
        query.extend(task_query(opt_fields, completed_since, modified_since));
        self.paged(vec!["tasks".to_owned()], query)
    }

    /// `GET /projects/{project_gid}/tasks` (`getTasksForProject`) as a lazy stream:
    /// pages of 100, following `next_page.offset`.
    ///
    /// `completed_since` is a date-time or `now` (only incomplete tasks); `None` lists all.
    pub fn project_tasks(
        &self,
        project: &Gid,
        opt_fields: &[&str],
        completed_since: Option<&str>,
    ) -> impl Stream<Item = Result<Task, Error>> + Send + '_ {
        self.paged(
            project_segments(project),
            task_query(opt_fields, completed_since, None),
        )
    }
}

/// Which list `GET /tasks` reads.
#[derive(Debug, Clone)]
pub enum TaskList {
    /// Every task of a project.
    Project(Gid),
    /// Every task of one section.
    Section(Gid),
}

/// One page of a task list.
#[derive(Debug, Clone)]
pub struct TaskPage {
    /// Its tasks.
    pub tasks: Vec<Task>,
    /// The next page's offset; `None` on the last page.
    pub next_offset: Option<String>,
}

fn project_segments(project: &Gid) -> Vec<String> {
    vec![
        "projects".to_owned(),
        project.as_str().to_owned(),
        "tasks".to_owned(),
    ]
}

fn task_query(
    opt_fields: &[&str],
    completed_since: Option<&str>,
    modified_since: Option<&str>,
) -> Query {
    let mut query = Query::new();
    if let Some(since) = completed_since {
        query.push(("completed_since", enc(since)));
    }
    if let Some(since) = modified_since {
        query.push(("modified_since", enc(since)));
    }
    with_fields(query, opt_fields)
}
