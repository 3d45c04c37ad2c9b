//! `watch`: poll the Events API (no public URL needed) and work the queue.

use std::time::Duration;

use bridge_service::WatchConfig;

use crate::args::{Global, WatchArgs};
use crate::commands::serve::{rules, serve_config, shutdown_on_signals};
use crate::{settings, usage};

pub async fn run(g: &Global, a: WatchArgs) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    let all_rules = rules(g, &file, "watch")?;
    if a.interval == 0 {
        return Err(usage("--interval must be at least 1 second"));
    }
    let mut projects: Vec<asana_api::Gid> = Vec::new();
    if a.projects.is_empty() {
        for r in &all_rules {
            if !projects.contains(&r.project) {
                projects.push(r.project.clone());
            }
        }
    } else {
        for p in &a.projects {
            let gid = asana_api::Gid::parse(p).map_err(|e| usage(format!("--project: {e}")))?;
            if !all_rules.iter().any(|r| r.project == gid) {
                return Err(usage(format!(
                    "--project {gid}: no [[rules]] entry for this project in the config file"
                )));
            }
            if !projects.contains(&gid) {
                projects.push(gid);
            }
        }
    }
    let cfg = serve_config(&file, all_rules)?;
    let svc = settings::services(g, &file).await?;
    eprintln!(
        "asana-docspace watch: polling {} project(s) every {} s",
        projects.len(),
        a.interval
    );
    let shutdown = shutdown_on_signals();
    let watch = WatchConfig {
        projects,
        interval: Duration::from_secs(a.interval),
    };
    let result = bridge_service::watch(cfg, svc.clone(), watch, shutdown).await;
    svc.store.close().await;
    result.map_err(|e| match e {
        bridge_service::ServiceError::Config(m) => usage(m),
        other => anyhow::Error::new(other),
    })?;
    Ok(crate::exit::OK)
}
