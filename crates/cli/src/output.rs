//! Human and `--json` output. JSON is one object per line on stdout; humans get one
//! readable line per person and the details scripts would want in JSON.

use bridge_core::invite::InviteReport;
use bridge_core::outcome::RoomOutcome;
use serde::Serialize;

pub fn json_line<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

pub fn invite_human(r: &InviteReport) -> String {
    let who = r.email.as_deref().unwrap_or("(no email)");
    let mut line = match r.outcome {
        bridge_core::Outcome::Invited => format!("task {}: invited {who} to DocSpace", r.task),
        bridge_core::Outcome::AlreadyMember => format!(
            "task {}: {who} is already a DocSpace member; nothing sent",
            r.task
        ),
        bridge_core::Outcome::AlreadyInvited => format!(
            "task {}: {who} was already invited and has not accepted yet; nothing sent",
            r.task
        ),
        bridge_core::Outcome::DryRun => format!(
            "task {}: would invite {who} (dry run, nothing sent)",
            r.task
        ),
        bridge_core::Outcome::NoAssignee => format!("task {}: no assignee; nothing to do", r.task),
        bridge_core::Outcome::EmailHidden => format!(
            "task {}: Asana does not show the assignee's email to this token; nothing to do",
            r.task
        ),
        bridge_core::Outcome::Failed => format!(
            "task {}: FAILED for {who}: {}",
            r.task,
            r.error.as_deref().unwrap_or("unknown error")
        ),
    };
    if let Some(room) = &r.room {
        let what = match room.outcome {
            RoomOutcome::Shared => format!("shared room {} ({})", room.id, room.access),
            RoomOutcome::AlreadyShared => {
                format!("already in room {} at {} or higher", room.id, room.access)
            }
            RoomOutcome::DryRun => format!("would share room {} ({})", room.id, room.access),
            RoomOutcome::Skipped => format!("room {} skipped", room.id),
            RoomOutcome::Failed => format!(
                "room {} FAILED: {}",
                room.id,
                room.error.as_deref().unwrap_or("unknown error")
            ),
        };
        line.push_str("; ");
        line.push_str(&what);
    }
    line
}
