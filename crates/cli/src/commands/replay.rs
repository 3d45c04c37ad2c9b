//! `replay`: dead letters back into the queue. A running `serve` or `watch` picks them up
//! within its poll interval; they are worked exactly like new jobs (idempotently).

use serde::Serialize;

use crate::args::{Global, ReplayArgs};
use crate::{output, settings};

#[derive(Serialize)]
struct DeadLine<'a> {
    job: i64,
    kind: &'a str,
    resource: &'a str,
    project: Option<&'a str>,
    attempts: u32,
    error: Option<&'a str>,
    at: String,
}

pub async fn run(g: &Global, a: ReplayArgs) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    let store = settings::store(g, &file).await?;
    let dead = store
        .dead_jobs(10_000)
        .await
        .map_err(|e| crate::from_core(e.into()))?;
    for j in &dead {
        let line = DeadLine {
            job: j.id,
            kind: j.kind.as_str(),
            resource: &j.resource_gid,
            project: j.project_gid.as_deref(),
            attempts: j.attempts,
            error: j.last_error.as_deref(),
            at: j.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        if g.json {
            output::json_line(&line);
        } else {
            println!(
                "dead job {} ({} {}{}) after {} attempt(s): {}",
                line.job,
                line.kind,
                line.resource,
                line.project
                    .map(|p| format!(", project {p}"))
                    .unwrap_or_default(),
                line.attempts,
                line.error.unwrap_or("no error recorded")
            );
        }
    }
    if a.list {
        if dead.is_empty() && !g.json {
            println!("no dead letters");
        }
        store.close().await;
        return Ok(crate::exit::OK);
    }
    let n = store
        .replay_dead()
        .await
        .map_err(|e| crate::from_core(e.into()))?;
    store.close().await;
    if g.json {
        output::json_line(&serde_json::json!({ "summary": true, "replayed": n }));
    } else if n == 0 {
        println!("no dead letters to replay");
    } else {
        println!("{n} dead letter(s) queued again; a running `serve` or `watch` works them now");
    }
    Ok(crate::exit::OK)
}
