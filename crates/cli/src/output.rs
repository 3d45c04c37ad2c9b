//! Human and `--json` output. JSON is one object per line on stdout; humans get one
//! readable line per person and the details scripts would want in JSON.

use bridge_core::outcome::RoomOutcome;
use bridge_core::report::{Line, RoomLine};
use bridge_core::Outcome;
use serde::Serialize;

pub fn json_line<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// `invite --json`'s line: the reconcile's [`Line`] with its one room as `room`, as the
/// interface contract has it.
#[derive(Debug, Serialize)]
pub struct InviteAnswer<'a> {
    pub task: &'a str,
    pub email: Option<&'a str>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a RoomLine>,
}

impl<'a> From<&'a Line> for InviteAnswer<'a> {
    fn from(l: &'a Line) -> Self {
        InviteAnswer {
            task: &l.task,
            email: l.email.as_deref(),
            outcome: l.outcome,
            error: l.error.as_deref(),
            assignee: l.assignee.as_deref(),
            person_id: l.person_id.as_deref(),
            // The room step is not tried when the portal step failed; say nothing of it.
            room: l
                .rooms
                .first()
                .filter(|r| r.outcome != RoomOutcome::Skipped),
        }
    }
}

impl InviteAnswer<'_> {
    /// The documented exit code for this single-task answer.
    pub fn exit_code(&self) -> i32 {
        let room_failed = self.room.is_some_and(|r| r.outcome == RoomOutcome::Failed);
        match self.outcome {
            Outcome::Failed => 1,
            o if o.is_nothing_to_do() => 3,
            _ if room_failed => 1,
            _ => 0,
        }
    }
}

pub fn invite_human(r: &InviteAnswer) -> String {
    let who = r.email.unwrap_or("(no email)");
    let mut line = match r.outcome {
        Outcome::Invited => format!("task {}: invited {who} to DocSpace", r.task),
        Outcome::AlreadyMember => format!(
            "task {}: {who} is already a DocSpace member; nothing sent",
            r.task
        ),
        Outcome::AlreadyInvited => format!(
            "task {}: {who} was already invited and has not accepted yet; nothing sent",
            r.task
        ),
        Outcome::DryRun => format!(
            "task {}: would invite {who} (dry run, nothing sent)",
            r.task
        ),
        Outcome::NoAssignee => format!("task {}: no assignee; nothing to do", r.task),
        Outcome::EmailHidden => format!(
            "task {}: Asana does not show the assignee's email to this token; nothing to do",
            r.task
        ),
        Outcome::Failed => format!(
            "task {}: FAILED for {who}: {}",
            r.task,
            r.error.unwrap_or("unknown error")
        ),
    };
    if let Some(room) = r.room {
        line.push_str("; ");
        line.push_str(&room_human(room, true));
    }
    line
}

/// One room's outcome in words.
pub fn room_human(room: &RoomLine, dry_run: bool) -> String {
    match room.outcome {
        RoomOutcome::Shared => format!("shared room {} ({})", room.id, room.access),
        RoomOutcome::AlreadyShared => {
            format!("already in room {} at {} or higher", room.id, room.access)
        }
        RoomOutcome::DryRun if dry_run => format!("would share room {} ({})", room.id, room.access),
        RoomOutcome::Skipped => format!("room {} skipped", room.id),
        RoomOutcome::Failed => format!(
            "room {} FAILED: {}",
            room.id,
            room.error.as_deref().unwrap_or("unknown error")
        ),
        o => format!("room {} {}", room.id, o.as_str()),
    }
}
