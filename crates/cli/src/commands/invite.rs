//! `invite --task GID`: the one reconcile with a scope of one task and one ask built from
//! the flags. Everything the user typed is checked before any network call.

use bridge_core::config::{Ask, RoomTarget, DEFAULT_ACCESS};
use bridge_core::domain::{RoomId, Source};
use bridge_core::reconcile::{self, Options, Scope};
use docspace_api::{Access, UserType};

use crate::args::{Global, InviteArgs};
use crate::{output, settings, usage};

pub async fn run(g: &Global, a: InviteArgs) -> anyhow::Result<u8> {
    let task = asana_api::Gid::parse(&a.task).map_err(|e| usage(format!("--task: {e}")))?;
    let user_type: UserType = a
        .user_type
        .parse()
        .map_err(|e| usage(format!("--type: {e}")))?;
    let room = match &a.room {
        None => None,
        Some(r) => {
            let room = RoomId::parse(r).map_err(|e| usage(format!("--room: {e}")))?;
            let access = match &a.access {
                Some(s) => s
                    .parse::<Access>()
                    .map_err(|e| usage(format!("--access: {e}")))?,
                None => DEFAULT_ACCESS,
            };
            if !access.allowed_for(user_type) {
                return Err(usage(format!(
                    "--access {}: DocSpace only gives that level to room admins and DocSpace admins; use --type room-admin or a lower level",
                    access.as_str()
                )));
            }
            Some(RoomTarget { room, access })
        }
    };
    let file = settings::file_config(g)?;
    let sync = file.sync().map_err(crate::from_core)?;
    let svc = settings::services(g, &file).await?;
    let scope = Scope::Task {
        task,
        project: None,
        // An explicit invite acts on a completed task too.
        asks: vec![Ask {
            user_type,
            room,
            include_completed: true,
        }],
    };
    let opts = Options {
        dry_run: a.dry_run,
        settings: sync,
        ..Options::new(super::run_id(), Source::Invite)
    };
    let report = reconcile::run(&svc, &scope, &opts)
        .await
        .map_err(crate::from_core)?;
    let Some(line) = report.lines.first() else {
        return Err(anyhow::anyhow!(
            "the reconcile of task {} answered nothing",
            a.task
        ));
    };
    let answer = output::InviteAnswer::from(line);
    if g.json {
        output::json_line(&answer);
    } else {
        println!("{}", output::invite_human(&answer));
    }
    Ok(answer.exit_code() as u8)
}
