//! `state migrate --to postgres://…`: move a SQLite state to PostgreSQL, for running
//! several replicas. The copying itself is `bridge_core::record::copy_sqlite_to_postgres`
//! (idempotent: a rerun copies nothing twice).

use bridge_core::record::{self, Copied, PgStore, SqliteStore, Store};
use serde::Serialize;

use crate::args::{Global, StateArgs, StateCommand};
use crate::{output, settings, usage};

#[derive(Serialize)]
struct Migrated<'a> {
    from: &'a str,
    to: &'a str,
    copied: Copied,
}

pub async fn run(g: &Global, a: StateArgs) -> anyhow::Result<u8> {
    match a.command {
        StateCommand::Migrate { to } => migrate(g, &to).await,
    }
}

async fn migrate(g: &Global, to: &str) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    let from = settings::state_location(g, &file);
    if record::is_postgres(&from) {
        return Err(usage(format!(
            "the current state is already PostgreSQL ({}); `state migrate` copies a SQLite state (set --state or ASANA_DOCSPACE_STATE to the SQLite file)",
            record::display_location(&from)
        )));
    }
    if !record::is_postgres(to) {
        return Err(usage(format!(
            "--to {to:?}: expected a postgres://user@host:5432/database URL"
        )));
    }
    let shown_to = record::display_location(to);
    let path = from
        .strip_prefix("sqlite://")
        .or_else(|| from.strip_prefix("sqlite:"))
        .unwrap_or(&from);
    if !std::path::Path::new(path).is_file() {
        return Err(usage(format!(
            "no SQLite state at {path}: nothing to migrate (set --state or ASANA_DOCSPACE_STATE)"
        )));
    }
    let source = SqliteStore::open(path)
        .await
        .map_err(|e| usage(format!("state database {path}: {e}")))?;
    let target = PgStore::open(to)
        .await
        .map_err(|e| usage(format!("--to {shown_to}: {e}")))?;
    let copied = record::copy_sqlite_to_postgres(&source, &target)
        .await
        .map_err(|e| crate::from_core(e.into()))?;
    if g.json {
        output::json_line(&Migrated {
            from: path,
            to: &shown_to,
            copied,
        });
    } else {
        println!(
            "copied {path} → {shown_to}: {} ledger entries, {} jobs, {} webhook registrations, {} sync tokens, {} sync marks{}",
            copied.ledger,
            copied.jobs,
            copied.webhooks,
            copied.sync_tokens,
            copied.sync_marks,
            if copied.total() == 0 {
                " (everything was already there)"
            } else {
                ""
            }
        );
        println!("next: start serve/watch with ASANA_DOCSPACE_STATE={shown_to}");
    }
    source.close().await;
    target.close().await;
    Ok(crate::exit::OK)
}
