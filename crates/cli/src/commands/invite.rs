use bridge_core::config::{parse_room_id, RoomTarget, DEFAULT_ACCESS};
use bridge_core::invite::{self, InviteRequest};
use docspace_api::{Access, UserType};

use crate::args::{Global, InviteArgs};
use crate::{output, settings, usage};

pub async fn run(g: &Global, a: InviteArgs) -> anyhow::Result<u8> {
    // Everything the user typed is checked before any network call.
    asana_api::Gid::parse(&a.task).map_err(|e| usage(format!("--task: {e}")))?;
    let user_type: UserType = a
        .user_type
        .parse()
        .map_err(|e| usage(format!("--type: {e}")))?;
    let room = match &a.room {
        None => None,
        Some(r) => {
            let room_id = parse_room_id(r).map_err(|e| usage(format!("--room: {e}")))?;
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
            Some(RoomTarget { room_id, access })
        }
    };
    let file = settings::file_config(g)?;
    let svc = settings::services(g, &file).await?;
    let req = InviteRequest {
        task: a.task,
        user_type,
        room,
        dry_run: a.dry_run,
        run_id: super::run_id(),
        source: "invite".into(),
    };
    let report = invite::run(&svc, &req).await.map_err(crate::from_core)?;
    if g.json {
        output::json_line(&report);
    } else {
        println!("{}", output::invite_human(&report));
    }
    Ok(report.exit_code() as u8)
}
