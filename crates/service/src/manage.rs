//! `webhooks create | list | delete`: managing Asana webhooks that point at `serve`.
//!
//! Creating one is a three-party dance, because Asana performs the `X-Hook-Secret`
//! handshake *during* the create call and sends the secret only then:
//!
//! 1. pick a fresh id and write the expectation to the state database
//!    (`Store::expect_webhook`) — the running `serve` reads it from there;
//! 2. `POST /webhooks` with target `BASE/webhooks/asana/{id}`; Asana calls that URL,
//!    `serve` finds the expectation, stores the secret, echoes it;
//! 3. mark the registration active with Asana's webhook gid (`Store::activate_webhook`).
//!
//! If step 2 fails, the expectation is deleted again so it cannot be answered later.

use asana_api::{Gid, WebhookFilter};
use bridge_core::record::{Store, StoreError};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;

/// Path prefix of delivery URLs; the registration id follows.
pub const WEBHOOK_PATH: &str = "/webhooks/asana/";

/// Errors of webhook management.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The `--target` base URL cannot be used.
    #[error("--target {0}")]
    InvalidTarget(String),
    /// Asana refused or failed.
    #[error("Asana: {0}")]
    Asana(#[from] asana_api::Error),
    /// Asana could not complete the handshake with our target.
    #[error("Asana could not complete the webhook handshake with {target}: {source}. Is `asana-docspace serve` running with this state database and reachable from the internet at that URL?")]
    Handshake {
        /// The delivery URL Asana tried.
        target: String,
        /// Asana's answer.
        source: asana_api::Error,
    },
    /// The state database failed.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
}

/// The filters every webhook is created with: assignee and completion changes, tasks added
/// to the project, and tasks removed from it or deleted (these end an assignment, which
/// matters to rooms with `on_unassign = "revoke"`). An event passes if it matches any
/// filter. Webhooks created before completion and removal were watched keep their old
/// filters until they are made again (`webhooks delete`, then `webhooks create`).
pub fn filters() -> Vec<WebhookFilter> {
    vec![
        WebhookFilter::changed("task", &["assignee", "completed"]),
        WebhookFilter::action("task", "added"),
        WebhookFilter::action("task", "removed"),
        WebhookFilter::action("task", "deleted"),
    ]
}

/// A fresh registration id: 128 random bits in hex, so delivery paths cannot be guessed.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `base` (the service's public base URL) + `/webhooks/asana/{id}`.
pub fn delivery_url(base: &str, id: &str) -> Result<String, ManageError> {
    let base = base.trim();
    let url = url::Url::parse(base).map_err(|e| {
        ManageError::InvalidTarget(format!(
            "is not an absolute URL ({e}); give the service's public base URL, e.g. https://bridge.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ManageError::InvalidTarget(
            "must be an http(s) URL such as https://bridge.example.com".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ManageError::InvalidTarget(
            "must not carry a query string or fragment".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ManageError::InvalidTarget(
            "must not carry credentials".into(),
        ));
    }
    let s = url.as_str().trim_end_matches('/');
    Ok(format!("{s}{WEBHOOK_PATH}{id}"))
}

/// A webhook created by [`create_webhook`].
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// Our registration id (the last segment of `target`).
    pub id: String,
    /// Asana's webhook gid (for `webhooks delete`).
    pub gid: String,
    /// The watched project.
    pub project: String,
    /// The delivery URL registered with Asana.
    pub target: String,
    /// Asana's `active` flag.
    pub active: Option<bool>,
}

/// Registers a webhook on `project` that delivers to `base_url`'s `/webhooks/asana/{id}`.
/// `serve` must be running on the same state database and reachable at `base_url`.
pub async fn create_webhook(
    asana: &asana_api::Client,
    store: &dyn Store,
    project: &Gid,
    base_url: &str,
) -> Result<Created, ManageError> {
    let id = new_id();
    let target = delivery_url(base_url, &id)?;
    store.expect_webhook(&id, project.as_str(), &target).await?;
    let created = match asana.create_webhook(project, &target, &filters()).await {
        Ok(w) => w,
        Err(e) => {
            if let Err(d) = store.delete_webhook(&id).await {
                tracing::warn!(webhook = %id, error = %d, "could not remove the unused webhook expectation");
            }
            return Err(match e.status() {
                Some(400) | Some(403) => ManageError::Handshake { target, source: e },
                _ => ManageError::Asana(e),
            });
        }
    };
    // `serve` stored the secret during the handshake. Should it not have (the handshake
    // answered by something else on a shared database), keep the copy Asana returned:
    // without it no delivery could ever be verified.
    let stored = store.webhook(&id).await?;
    if stored.as_ref().is_some_and(|r| r.secret.is_none()) {
        if let Some(secret) = &created.secret {
            store
                .store_webhook_secret(&id, secret.expose_secret())
                .await?;
        }
    }
    store.activate_webhook(&id, &created.gid).await?;
    Ok(Created {
        id,
        gid: created.gid,
        project: project.to_string(),
        target,
        active: created.active,
    })
}

/// The workspace a project belongs to (`GET /projects/{gid}?opt_fields=workspace`), which
/// Asana's webhook listing needs.
pub async fn workspace_of(asana: &asana_api::Client, project: &Gid) -> Result<Gid, ManageError> {
    let p = asana.get_project(project, &["workspace"]).await?;
    let ws = p.workspace.ok_or_else(|| {
        ManageError::Asana(asana_api::Error::Decode {
            path: "data.workspace".into(),
            message: "the project came back without its workspace".into(),
        })
    })?;
    Gid::parse(&ws.gid).map_err(ManageError::Asana)
}

/// One webhook as Asana reports it, with our registration id when it is one of ours.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Asana's gid.
    pub gid: String,
    /// Our registration id, when this state database knows the webhook.
    pub id: Option<String>,
    /// The watched resource's gid.
    pub resource: Option<String>,
    /// The watched resource's name.
    pub resource_name: Option<String>,
    /// The delivery URL.
    pub target: Option<String>,
    /// Whether Asana is delivering.
    pub active: Option<bool>,
    /// Last successful delivery.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last failed delivery.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What our side answered on the last failure.
    pub last_failure_content: Option<String>,
    /// Retries since the last success.
    pub delivery_retry_count: Option<u32>,
}

/// Every webhook of the token's app in `workspace` (only `project`'s, when given), with
/// Asana's own health fields.
pub async fn list_webhooks(
    asana: &asana_api::Client,
    store: &dyn Store,
    workspace: &Gid,
    project: Option<&Gid>,
) -> Result<Vec<Listed>, ManageError> {
    let hooks = asana.list_webhooks(workspace, project).await?;
    let ours = store.webhooks().await?;
    Ok(hooks
        .into_iter()
        .map(|h| Listed {
            id: ours
                .iter()
                .find(|r| r.asana_gid.as_deref() == Some(h.gid.as_str()))
                .map(|r| r.id.clone()),
            resource: h.resource.as_ref().map(|r| r.gid.clone()),
            resource_name: h.resource.as_ref().and_then(|r| r.name.clone()),
            gid: h.gid,
            target: h.target,
            active: h.active,
            last_success_at: h.last_success_at,
            last_failure_at: h.last_failure_at,
            last_failure_content: h.last_failure_content.filter(|c| !c.is_empty()),
            delivery_retry_count: h.delivery_retry_count,
        })
        .collect())
}

/// What [`delete_webhook`] did.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Deleted {
    /// Asana knew the webhook and deleted it (false: it was already gone).
    pub asana: bool,
    /// Our registration was removed from the state database.
    pub local: bool,
}

/// Deletes webhook `gid` at Asana and forgets its registration (and secret) here.
/// A webhook Asana no longer knows (404) is still forgotten locally.
pub async fn delete_webhook(
    asana: &asana_api::Client,
    store: &dyn Store,
    gid: &Gid,
) -> Result<Deleted, ManageError> {
    let at_asana = match asana.delete_webhook(gid).await {
        Ok(()) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    let local = store.delete_webhook_by_asana_gid(gid.as_str()).await?;
    Ok(Deleted {
        asana: at_asana,
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_urls_keep_the_base_path_and_refuse_odd_bases() {
        assert_eq!(
            delivery_url("https://bridge.example.com", "ab12").unwrap(),
            "https://bridge.example.com/webhooks/asana/ab12"
        );
        assert_eq!(
            delivery_url("https://example.com/bridge/", "ab12").unwrap(),
            "https://example.com/bridge/webhooks/asana/ab12"
        );
        for bad in [
            "bridge.example.com",
            "ftp://x.example.com",
            "https://x.example.com/?a=1",
            "https://u:p@x.example.com",
        ] {
            assert!(delivery_url(bad, "ab12").is_err(), "{bad}");
        }
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn filters_are_assignment_changes_and_added_removed_or_deleted_tasks() {
        assert_eq!(
            serde_json::to_value(filters()).unwrap(),
            serde_json::json!([
                {"resource_type": "task", "action": "changed", "fields": ["assignee", "completed"]},
                {"resource_type": "task", "action": "added"},
                {"resource_type": "task", "action": "removed"},
                {"resource_type": "task", "action": "deleted"}
            ])
        );
    }
}
