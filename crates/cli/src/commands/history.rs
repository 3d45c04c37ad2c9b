use bridge_core::record::HistoryFilter;

use crate::args::{Global, HistoryArgs};
use crate::{output, settings};

pub async fn run(g: &Global, a: HistoryArgs) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    let store = settings::store(g, &file).await?;
    let rows = store
        .history(&HistoryFilter {
            email: a.email.map(|e| e.trim().to_ascii_lowercase()),
            task_gid: a.task,
            run_id: None,
            limit: Some(a.limit),
        })
        .await
        .map_err(|e| crate::from_core(e.into()))?;
    if rows.is_empty() && !g.json {
        println!("no history yet");
    }
    for r in &rows {
        if g.json {
            output::json_line(r);
        } else {
            println!(
                "{}  {:<8} {:<7} {:<12} task {:<18} {:<32} {}{}{}",
                r.at.format("%Y-%m-%d %H:%M:%S"),
                r.source,
                r.action,
                r.target,
                r.task_gid.as_deref().unwrap_or("-"),
                r.email.as_deref().unwrap_or("-"),
                r.outcome,
                r.error
                    .as_deref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default(),
                r.detail
                    .as_deref()
                    .map(|d| format!(" [{d}]"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(crate::exit::OK)
}
