//! `webhooks create | list | delete`. The logic is in `bridge_service::manage`; these only
//! resolve settings and print. DocSpace credentials are not needed here.

use std::collections::BTreeSet;

use asana_api::Gid;
use bridge_service::manage::{self, ManageError};

use crate::args::{Global, WebhooksArgs, WebhooksCommand};
use crate::{output, settings, usage};

fn manage_error(e: ManageError) -> anyhow::Error {
    match e {
        ManageError::InvalidTarget(_) => usage(e.to_string()),
        ManageError::Asana(a) => crate::from_core(a.into()),
        ManageError::Store(s) => crate::from_core(s.into()),
        other => anyhow::Error::new(other),
    }
}

fn gid(flag: &str, s: &str) -> anyhow::Result<Gid> {
    Gid::parse(s).map_err(|e| usage(format!("{flag}: {e}")))
}

pub async fn run(g: &Global, a: WebhooksArgs) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    match a.command {
        WebhooksCommand::Create { project, target } => {
            let project = gid("--project", &project)?;
            manage::delivery_url(&target, "x").map_err(manage_error)?;
            if g.config.is_some() {
                let rules = file.rules().map_err(crate::from_core)?;
                if !rules.iter().any(|r| r.project == project) {
                    eprintln!("warning: project {project} has no [[rules]] entry in the config file: `serve` will dead-letter its events until it has one");
                }
            }
            let asana = settings::asana(g, &file)?;
            let store = settings::store(g, &file).await?;
            let created = manage::create_webhook(&asana, store.as_ref(), &project, &target).await;
            store.close().await;
            let created = created.map_err(manage_error)?;
            if g.json {
                output::json_line(&created);
            } else {
                println!(
                    "webhook {} created on project {}: Asana delivers to {} (registration {})",
                    created.gid, created.project, created.target, created.id
                );
            }
            Ok(crate::exit::OK)
        }
        WebhooksCommand::List { project, workspace } => {
            let project = project.map(|p| gid("--project", &p)).transpose()?;
            let workspace = workspace.map(|w| gid("--workspace", &w)).transpose()?;
            let asana = settings::asana(g, &file)?;
            let store = settings::store(g, &file).await?;
            let mut workspaces: BTreeSet<Gid> = BTreeSet::new();
            if let Some(w) = workspace {
                workspaces.insert(w);
            } else {
                // Every project we know of: the one asked for, else the rules' and the
                // registered webhooks' projects.
                let mut projects: BTreeSet<Gid> = BTreeSet::new();
                if let Some(p) = &project {
                    projects.insert(p.clone());
                } else {
                    if g.config.is_some() {
                        for r in file.rules().map_err(crate::from_core)? {
                            projects.insert(r.project);
                        }
                    }
                    for r in store
                        .webhooks()
                        .await
                        .map_err(|e| crate::from_core(e.into()))?
                    {
                        if let Ok(p) = Gid::parse(&r.project_gid) {
                            projects.insert(p);
                        }
                    }
                }
                if projects.is_empty() {
                    return Err(usage(
                        "webhooks list needs a workspace: pass --workspace GID or --project GID",
                    ));
                }
                for p in &projects {
                    workspaces.insert(
                        manage::workspace_of(&asana, p)
                            .await
                            .map_err(manage_error)?,
                    );
                }
            }
            let mut all = Vec::new();
            for w in &workspaces {
                all.extend(
                    manage::list_webhooks(&asana, store.as_ref(), w, project.as_ref())
                        .await
                        .map_err(manage_error)?,
                );
            }
            store.close().await;
            if g.json {
                for h in &all {
                    output::json_line(h);
                }
            } else if all.is_empty() {
                println!("no webhooks");
            } else {
                let when = |t: &Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "never".into())
                };
                for h in &all {
                    println!(
                        "{}  {}  project {}{}  last success {}  last failure {}{}{}\n    → {}{}",
                        h.gid,
                        match h.active {
                            Some(true) => "active",
                            Some(false) => "INACTIVE",
                            None => "?",
                        },
                        h.resource.as_deref().unwrap_or("?"),
                        h.resource_name
                            .as_deref()
                            .map(|n| format!(" \"{n}\""))
                            .unwrap_or_default(),
                        when(&h.last_success_at),
                        when(&h.last_failure_at),
                        h.last_failure_content
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        h.delivery_retry_count
                            .filter(|n| *n > 0)
                            .map(|n| format!("  retries {n}"))
                            .unwrap_or_default(),
                        h.target.as_deref().unwrap_or("?"),
                        match &h.id {
                            Some(id) => format!("  (registration {id})"),
                            None => "  (not registered in this state database)".into(),
                        },
                    );
                }
            }
            Ok(crate::exit::OK)
        }
        WebhooksCommand::Delete { gid: g_arg } => {
            let hook = gid("GID", &g_arg)?;
            let asana = settings::asana(g, &file)?;
            let store = settings::store(g, &file).await?;
            let deleted = manage::delete_webhook(&asana, store.as_ref(), &hook).await;
            store.close().await;
            let deleted = deleted.map_err(manage_error)?;
            if g.json {
                output::json_line(&serde_json::json!({
                    "gid": hook.as_str(), "deleted_at_asana": deleted.asana, "forgotten_locally": deleted.local
                }));
            } else {
                println!(
                    "webhook {hook}: {}; {}",
                    if deleted.asana {
                        "deleted at Asana"
                    } else {
                        "Asana no longer knew it"
                    },
                    if deleted.local {
                        "its registration and secret are forgotten here"
                    } else {
                        "it was not registered in this state database"
                    }
                );
            }
            Ok(crate::exit::OK)
        }
    }
}
