//! `doctor`: check each credential, permission and the state database, and say what to
//! fix. Every check runs even when an earlier one fails, so one run lists every problem.

use serde::Serialize;

use crate::args::Global;
use crate::{output, settings};

#[derive(Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(g: &Global) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    let mut checks = Vec::new();

    match settings::asana(g, &file) {
        Err(e) => checks.push(Check {
            check: "asana credentials",
            ok: false,
            detail: e.to_string(),
        }),
        Ok(asana) => match asana.get_user("me", &["name", "email"]).await {
            Ok(me) => checks.push(Check {
                check: "asana credentials",
                ok: true,
                detail: format!(
                    "token works; acting as {} <{}>",
                    me.name.unwrap_or_default(),
                    me.email.unwrap_or_default()
                ),
            }),
            Err(e) => checks.push(Check {
                check: "asana credentials",
                ok: false,
                detail: match e.status() {
                    Some(401) => {
                        "Asana rejected the token (401): create a new personal access token".into()
                    }
                    _ => format!("cannot reach Asana: {e}"),
                },
            }),
        },
    }

    match settings::docspace(g, &file) {
        Err(e) => checks.push(Check { check: "docspace credentials", ok: false, detail: e.to_string() }),
        Ok(ds) => match ds.me().await {
            Ok(me) => {
                let can_invite = me.is_owner || me.is_admin || me.is_room_admin;
                checks.push(Check {
                    check: "docspace credentials",
                    ok: true,
                    detail: format!("key works; acting as {}", me.email.unwrap_or_else(|| me.id.clone())),
                });
                checks.push(Check {
                    check: "docspace permissions",
                    ok: can_invite,
                    detail: if can_invite {
                        format!(
                            "can invite users{}",
                            if me.is_owner { ", room admins and DocSpace admins" } else if me.is_admin { " and room admins" } else { "" }
                        )
                    } else {
                        "the key's owner is not an admin or room admin: DocSpace will answer 403 to invitations; create the key as an admin".into()
                    },
                });
            }
            Err(e) => checks.push(Check {
                check: "docspace credentials",
                ok: false,
                detail: match e.status() {
                    Some(401) => "DocSpace rejected the API key (401): create a new key under Settings → Developer Tools".into(),
                    Some(403) => "DocSpace refused (403): the key lacks the accounts:read scope".into(),
                    _ => format!("cannot reach DocSpace: {e}"),
                },
            }),
        },
    }

    match settings::store(g, &file).await {
        Ok(s) => checks.push(Check {
            check: "state database",
            ok: s.ping().await.is_ok(),
            detail: "opened and migrated".into(),
        }),
        Err(e) => checks.push(Check {
            check: "state database",
            ok: false,
            detail: e.to_string(),
        }),
    }

    if let Some(path) = &g.config {
        match file.rules() {
            Ok(r) => checks.push(Check {
                check: "config rules",
                ok: true,
                detail: format!("{} rule(s) in {}", r.len(), path.display()),
            }),
            Err(e) => checks.push(Check {
                check: "config rules",
                ok: false,
                detail: e.to_string(),
            }),
        }
    }

    let all_ok = checks.iter().all(|c| c.ok);
    for c in &checks {
        if g.json {
            output::json_line(c);
        } else {
            println!(
                "[{}] {}: {}",
                if c.ok { " ok " } else { "FAIL" },
                c.check,
                c.detail
            );
        }
    }
    Ok(if all_ok {
        crate::exit::OK
    } else {
        crate::exit::FAILURE
    })
}
