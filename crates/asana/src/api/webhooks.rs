//! Webhooks: `POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/{gid}`.

use futures::TryStreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::Query;
use crate::{
    client::{decode, enc, Request},
    Client, Error, Gid, Webhook, WebhookFilter,
};

impl Client {
    /// `POST /webhooks` with `{"data":{"resource","target","filters"}}` (`createWebhook`).
    ///
    /// Asana performs the `X-Hook-Secret` handshake with `target` *before* answering, so the
    /// receiver must already be serving. The returned webhook carries that secret in
    /// [`Webhook::secret`]; Asana never sends it again. Empty `filters` are left out.
    pub async fn create_webhook(
        &self,
        resource: &Gid,
        target: &str,
        filters: &[WebhookFilter],
    ) -> Result<Webhook, Error> {
        let target = target.trim();
        match url::Url::parse(target) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                let shown: String = target
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect();
                return Err(Error::InvalidInput(format!(
                    "invalid webhook target {shown:?}: expected an absolute https URL"
                )));
            }
        }
        let mut data = json!({ "resource": resource, "target": target });
        if !filters.is_empty() {
            data["filters"] = json!(filters);
        }
        let res = self
            .send(Request {
                method: Method::POST,
                url: self.url(&["webhooks"], &[]),
                body: Some(json!({ "data": data })),
            })
            .await?;
        if !res.status.is_success() {
            return Err(Error::from_response(res.status.as_u16(), &res.body));
        }
        #[derive(Deserialize)]
        struct Created {
            data: Webhook,
            #[serde(rename = "X-Hook-Secret", default)]
            secret: Option<String>,
        }
        let created: Created = decode(&res.body)?;
        let mut webhook = created.data;
        webhook.secret = created.secret.filter(|s| !s.is_empty()).map(Into::into);
        Ok(webhook)
    }

    /// `GET /webhooks?workspace=…[&resource=…]` (`getWebhooks`): every webhook this token's
    /// app registered in the workspace, all pages.
    pub async fn list_webhooks(
        &self,
        workspace: &Gid,
        resource: Option<&Gid>,
    ) -> Result<Vec<Webhook>, Error> {
        let mut query: Query = vec![("workspace", enc(workspace.as_str()))];
        if let Some(r) = resource {
            query.push(("resource", enc(r.as_str())));
        }
        self.paged(vec!["webhooks".to_owned()], query)
            .try_collect()
            .await
    }

    /// `DELETE /webhooks/{webhook_gid}` (`deleteWebhook`). A delivery already in flight may
    /// still arrive afterwards.
    pub async fn delete_webhook(&self, webhook: &Gid) -> Result<(), Error> {
        let res = self
            .send(Request {
                method: Method::DELETE,
                url: self.url(&["webhooks", webhook.as_str()], &[]),
                body: None,
            })
            .await?;
        if !res.status.is_success() {
            return Err(Error::from_response(res.status.as_u16(), &res.body));
        }
        Ok(())
    }
}
