//! `config check [--online]`: validate the config file the way `serve`, `watch` and `sync`
//! will read it — every section through its own crate's validation — plus the connection
//! settings layered over it, and print the effective configuration with every secret
//! redacted. Every problem is listed in one run; any of them means exit 2.
//!
//! With `--online` it also calls both APIs: the credentials must work and each rule's
//! room must exist. An API that cannot be reached is exit 1 (an outage, not the file).

use std::collections::BTreeSet;

use bridge_service::config::DEFAULT_LISTEN;
use serde_json::{json, Map, Value};

use crate::args::{ConfigArgs, ConfigCommand, Global};
use crate::commands::serve::serve_config;
use crate::config::FileConfig;
use crate::settings::{self, env};
use crate::{exit, output, usage};

const REDACTED: &str = "[redacted]";

/// Where a secret came from, never what it is.
fn secret_source(vars: &[&str], in_file: bool, key: &str) -> Value {
    if let Some(var) = vars.iter().find(|v| env(v).is_some()) {
        Value::String(format!("{REDACTED} (from {var})"))
    } else if in_file {
        Value::String(format!("{REDACTED} (from {key} in the file)"))
    } else {
        Value::String("not set".into())
    }
}

/// TOML has no null: drop them so the human output is a valid TOML document.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

struct Report {
    problems: Vec<String>,
    code: u8,
}

impl Report {
    fn problem(&mut self, code: u8, message: impl Into<String>) {
        self.problems.push(message.into());
        // A configuration problem (2) outranks an unreachable API (1).
        self.code = self.code.max(code);
    }
}

pub async fn run(g: &Global, a: ConfigArgs) -> anyhow::Result<u8> {
    let ConfigCommand::Check { online } = a.command;
    let Some(path) = &g.config else {
        return Err(usage(
            "config check needs a config file: pass --config FILE or set ASANA_DOCSPACE_CONFIG",
        ));
    };
    let file = FileConfig::load(path).map_err(crate::from_core)?;
    let mut report = Report {
        problems: Vec::new(),
        code: exit::OK,
    };

    let rules = match file.rules() {
        Ok(r) => {
            if r.is_empty() {
                report.problem(
                    exit::USAGE,
                    "no [[rules]]: sync, serve and watch would have nothing to do",
                );
            }
            r
        }
        Err(e) => {
            report.problem(exit::USAGE, e.to_string());
            Vec::new()
        }
    };
    let serve = match serve_config(&file, rules.clone()) {
        Ok(c) => Some(c),
        Err(e) => {
            report.problem(exit::USAGE, e.to_string());
            None
        }
    };
    let listen = file
        .serve
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if !listen.contains(':') {
        report.problem(
            exit::USAGE,
            format!("[serve] listen {listen:?}: expected HOST:PORT, e.g. 0.0.0.0:8080"),
        );
    }
    let asana = settings::asana(g, &file)
        .map_err(|e| report.problem(exit::USAGE, e.to_string()))
        .ok();
    let docspace = settings::docspace(g, &file)
        .map_err(|e| report.problem(exit::USAGE, e.to_string()))
        .ok();

    let state = settings::state_location(g, &file);
    let effective = json!({
        "config": path.display().to_string(),
        "state": bridge_core::record::display_location(&state),
        "asana": {
            "base_url": settings::asana_base_url(g, &file),
            "token": secret_source(&["ASANA_TOKEN"], file.asana.token.is_some(), "[asana] token"),
            "requests_per_minute": g.asana_rpm.or(file.asana.requests_per_minute),
        },
        "docspace": {
            "url": docspace.as_ref().map(|d| d.base_url().to_string()),
            "api_key": secret_source(
                &["DOCSPACE_API_KEY", "ONLYOFFICE_API_KEY"],
                file.docspace.api_key.is_some(),
                "[docspace] api_key",
            ),
        },
        "sync": serve.as_ref().map(|c| json!({
            "invite_batch": c.sync.invite_batch,
            "claim_wait_secs": c.sync.claim_wait.as_secs(),
        })),
        "serve": serve.as_ref().map(|c| json!({
            "listen": listen,
            "workers": c.workers,
            "max_attempts": c.max_attempts,
            "retry_schedule_secs": c.retry_schedule.iter().map(|d| d.as_secs()).collect::<Vec<_>>(),
            "lease_secs": c.lease.as_secs(),
            "max_body_bytes": c.max_body_bytes,
            "handshake_window_secs": c.handshake_window.as_secs(),
            "shutdown_grace_secs": c.shutdown_grace.as_secs(),
            "header_read_timeout_secs": c.header_read_timeout.as_secs(),
            "body_timeout_secs": c.body_timeout.as_secs(),
            "keep_alive_timeout_secs": c.keep_alive_timeout.as_secs(),
            "max_connections": c.max_connections,
            "max_events_per_delivery": c.max_events_per_delivery,
            "webhooks": c.configured_webhooks.iter()
                .map(|h| json!({
                    "id": h.id,
                    "project": h.project,
                    "handshake_until": h.handshake_until.map(|t| t.to_rfc3339()),
                }))
                .collect::<Vec<_>>(),
        })),
        "admin": serve.as_ref().map(|c| json!({
            "status_page": if c.admin.enabled() { "on (/admin)" } else { "off (no password set)" },
            "admin_password": secret_source(
                &["ASANA_DOCSPACE_ADMIN_PASSWORD"],
                file.admin.admin_password.is_some(),
                "[admin] admin_password",
            ),
            "viewer_password": secret_source(
                &["ASANA_DOCSPACE_VIEWER_PASSWORD"],
                file.admin.viewer_password.is_some(),
                "[admin] viewer_password",
            ),
        })),
        "rules": rules.iter().map(|r| json!({
            "project": r.project.as_str(),
            "room": r.room.as_ref().map(|t| t.room.as_str()),
            "access": r.room.as_ref().map(|t| t.access.as_str()),
            "user_type": r.user_type.as_str(),
            "include_completed": r.include_completed,
            "on_unassign": r.on_unassign.as_str(),
            "revoke_after_secs": r.revoke_after.as_secs(),
        })).collect::<Vec<_>>(),
        "deprovision": serve.as_ref().map(|c| json!({
            "max_revocations": c.revocation.max.to_string(),
            "revocable_rooms": c.revocation.rooms.keys().map(|r| r.as_str()).collect::<Vec<_>>(),
        })),
    });

    let mut checks = Vec::new();
    if online {
        if let Some(asana) = &asana {
            match asana.get_user("me", &["gid"]).await {
                Ok(_) => checks.push(json!({"check": "asana credentials", "ok": true})),
                Err(e) => {
                    let code = online_code(e.status());
                    report.problem(code, format!("Asana: {e}"));
                    checks.push(json!({"check": "asana credentials", "ok": false}));
                }
            }
        }
        if let Some(ds) = &docspace {
            match ds.me().await {
                Ok(_) => checks.push(json!({"check": "docspace credentials", "ok": true})),
                Err(e) => {
                    report.problem(online_code(e.status()), format!("DocSpace: {e}"));
                    checks.push(json!({"check": "docspace credentials", "ok": false}));
                }
            }
            let rooms: BTreeSet<&str> = rules
                .iter()
                .filter_map(|r| r.room.as_ref().map(|t| t.room.as_str()))
                .collect();
            for room in rooms {
                let what = format!("room {room}");
                match ds.get_room(room).await {
                    Ok(r) => checks.push(json!({"check": what, "ok": true, "title": r.title})),
                    Err(e) => {
                        let code = online_code(e.status());
                        report.problem(
                            code,
                            match e.status() {
                                Some(403 | 404) => format!(
                                    "room {room} does not exist or the API key's user cannot see it ({e})"
                                ),
                                _ => format!("room {room}: {e}"),
                            },
                        );
                        checks.push(json!({"check": what, "ok": false}));
                    }
                }
            }
        }
    }

    let effective = without_nulls(effective);
    if g.json {
        output::json_line(&json!({
            "ok": report.problems.is_empty(),
            "effective": effective,
            "online": online.then_some(&checks),
            "problems": report.problems,
        }));
    } else {
        match toml::to_string(&effective) {
            Ok(text) => print!("# effective configuration (secrets redacted)\n{text}"),
            Err(e) => return Err(anyhow::anyhow!("cannot print the configuration: {e}")),
        }
        for c in &checks {
            println!(
                "# online: [{}] {}",
                if c["ok"] == true { " ok " } else { "FAIL" },
                c["check"].as_str().unwrap_or_default()
            );
        }
        for p in &report.problems {
            eprintln!("problem: {p}");
        }
        if report.problems.is_empty() {
            eprintln!(
                "config check: {} is valid{}",
                path.display(),
                if online {
                    "; both credentials work and every room exists"
                } else {
                    ""
                }
            );
        }
    }
    Ok(report.code)
}

/// A refused credential or a missing room is the configuration's fault (2); no answer or
/// a server error is an outage (1).
fn online_code(status: Option<u16>) -> u8 {
    match status {
        Some(400..=499) => exit::USAGE,
        _ => exit::FAILURE,
    }
}
