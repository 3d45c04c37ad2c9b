//! Tasks: `GET /tasks/{gid}`, `GET /projects/{gid}/tasks`.

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
        let mut query = Query::new();
        if let Some(since) = completed_since {
            query.push(("completed_since", enc(since)));
        }
        let query = with_fields(query, opt_fields);
        let segments = vec![
            "projects".to_owned(),
            project.as_str().to_owned(),
            "tasks".to_owned(),
        ];
        self.paged(segments, query)
    }
}
