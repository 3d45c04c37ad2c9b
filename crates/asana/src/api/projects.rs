//! Projects: `GET /projects/{gid}`, `GET /projects/{gid}/sections`.

use futures::Stream;

use super::{with_fields, Query};
use crate::{Client, Compact, Error, Gid, Project};

impl Client {
    /// `GET /projects/{project_gid}?opt_fields=…` (`getProject`).
    pub async fn get_project(&self, project: &Gid, opt_fields: &[&str]) -> Result<Project, Error> {
        let query = with_fields(Query::new(), opt_fields);
        let url = self.url(&["projects", project.as_str()], &query);
        self.data(self.get(url)).await
    }

    /// `GET /projects/{project_gid}/sections` (`getSectionsForProject`) as a lazy stream
    /// of `SectionCompact`s (`gid`, `name`) in project order, pages of 100.
    pub fn project_sections(
        &self,
        project: &Gid,
    ) -> impl Stream<Item = Result<Compact, Error>> + Send + '_ {
        let segments = vec![
            "projects".to_owned(),
            project.as_str().to_owned(),
            "sections".to_owned(),
        ];
        self.paged(segments, with_fields(Query::new(), &["name"]))
    }
}
