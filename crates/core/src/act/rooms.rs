//! Room targets are checked before any write: the room exists and its type allows the
//! level. A bad target stops a reconcile before it has half-done anything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RoomTarget;
use crate::CoreError;

/// How long a successful room check is trusted: rooms rarely change, and checking per
/// webhook job would double the DocSpace calls of the service.
pub const ROOM_CHECK_TTL: Duration = Duration::from_secs(600);

/// Room checks that passed, and when. Shared by every reconcile of one process.
#[derive(Debug, Default)]
pub struct RoomChecks(Mutex<HashMap<RoomTarget, Instant>>);

impl RoomChecks {
    fn fresh(&self, room: &RoomTarget) -> bool {
        let ok = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ok.get(room).is_some_and(|t| t.elapsed() < ROOM_CHECK_TTL)
    }

    fn passed(&self, room: &RoomTarget) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room.clone(), Instant::now());
    }
}

/// Checks `room` unless it passed within [`ROOM_CHECK_TTL`]. A missing room or a level
/// its type does not allow is [`CoreError::Config`]: the rule (or flag) must change.
pub async fn check(
    docspace: &docspace_api::Client,
    cache: &RoomChecks,
    room: &RoomTarget,
) -> Result<(), CoreError> {
    if cache.fresh(room) {
        return Ok(());
    }
    let info = docspace
        .get_room(room.room.as_str())
        .await
        .map_err(|e| match e.status() {
            Some(404) => CoreError::Config(format!(
                "DocSpace has no room {} (or this key cannot see it)",
                room.room
            )),
            _ => CoreError::DocSpace(e),
        })?;
    if let Some(t) = info.room_type {
        if !t.allows(room.access) {
            return Err(CoreError::Config(format!(
                "room {} is a {t:?} room, which does not allow access {:?}; pick one of: {}",
                room.room,
                room.access,
                docspace_api::Access::ALL
                    .iter()
                    .filter(|a| t.allows(**a))
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    cache.passed(room);
    Ok(())
}
