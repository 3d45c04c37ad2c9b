//! Events: `GET /events?resource=…&sync=…`.

use super::Query;
use crate::{
    client::{decode, enc},
    error::SyncBody,
    Client, Error, EventsPage, Gid,
};

impl Client {
    /// `GET /events?resource=…[&sync=…]` (`getEvents`): events on `resource` (a task,
    /// project or goal) since `sync`.
    ///
    /// Without a token, or with one that is invalid or older than ~24 h, Asana answers 412;
    /// that is [`Error::SyncTokenExpired`] carrying the fresh token to continue from (after
    /// re-reading the full state). With `has_more`, call again at once with the new `sync`.
    pub async fn get_events(
        &self,
        resource: &Gid,
        sync: Option<&str>,
    ) -> Result<EventsPage, Error> {
        let mut query: Query = vec![("resource", enc(resource.as_str()))];
        if let Some(s) = sync.filter(|s| !s.is_empty()) {
            query.push(("sync", enc(s)));
        }
        let res = self.send(self.get(self.url(&["events"], &query))).await?;
        if res.status.as_u16() == 412 {
            if let Ok(SyncBody { sync: Some(sync) }) = serde_json::from_slice(&res.body) {
                if !sync.is_empty() {
                    return Err(Error::SyncTokenExpired { sync });
                }
            }
        }
        if !res.status.is_success() {
            return Err(Error::from_response(res.status.as_u16(), &res.body));
        }
        decode(&res.body)
    }
}
