//! Projects: `GET /projects/{gid}`.

use super::{with_fields, Query};
use crate::{Client, Error, Gid, Project};

impl Client {
    /// `GET /projects/{project_gid}?opt_fields=…` (`getProject`).
    pub async fn get_project(&self, project: &Gid, opt_fields: &[&str]) -> Result<Project, Error> {
        let query = with_fields(Query::new(), opt_fields);
        let url = self.url(&["projects", project.as_str()], &query);
        self.data(self.get(url)).await
    }
}
