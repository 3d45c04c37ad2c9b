//! Users and workspace membership: `GET /users/{gid}`, `POST /workspaces/{gid}/addUser`.

use reqwest::Method;
use serde_json::json;

use super::{user_ident, with_fields, Query};
use crate::{client::Request, Client, Error, Gid, User};

impl Client {
    /// `GET /users/{user_gid}?opt_fields=…` (`getUser`). `user` is a gid, an email or `me`.
    ///
    /// `email` may still be absent in the answer; a 403/404 means the user is not visible.
    pub async fn get_user(&self, user: &str, opt_fields: &[&str]) -> Result<User, Error> {
        let user = user_ident(user)?;
        let query = with_fields(Query::new(), opt_fields);
        let url = self.url(&["users", user], &query);
        self.data(self.get(url)).await
    }

    /// `POST /workspaces/{workspace_gid}/addUser?opt_fields=email,name` with
    /// `{"data":{"user":…}}` (`addUserForWorkspace`). `user` is a gid, an email or `me`.
    /// Returns the user record Asana answers with.
    ///
    /// A write: retried on 429 only, never on a 5xx (it may have happened).
    pub async fn add_user_to_workspace(&self, workspace: &Gid, user: &str) -> Result<User, Error> {
        let user = user_ident(user)?;
        let query = with_fields(Query::new(), &["email", "name"]);
        let url = self.url(&["workspaces", workspace.as_str(), "addUser"], &query);
        self.data(Request {
            method: Method::POST,
            url,
            body: Some(json!({ "data": { "user": user } })),
        })
        .await
    }
}
