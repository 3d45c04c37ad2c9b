//! Room shares: one membership read per room, then shares by person id in batches, each
//! repeated only for those the room's members show are not yet at their level.

use std::collections::HashMap;

use docspace_api::{Access, RoomShare};
use futures::TryStreamExt;

use crate::domain::RoomId;

/// Current members of a room and their level, keyed by DocSpace person id.
pub type Members = HashMap<String, Access>;

/// Reads a room's members and their levels.
pub async fn members(
    docspace: &docspace_api::Client,
    room: &RoomId,
) -> Result<Members, docspace_api::Error> {
    let mut out = HashMap::new();
    let mut members = std::pin::pin!(docspace.room_members(room.as_str()));
    while let Some(m) = members.try_next().await? {
        if let (Some(id), Some(access)) = (m.user_id, m.access) {
            out.insert(id, access);
        }
    }
    Ok(out)
}

/// The most people one share call carries: DocSpace has no documented cap, and 100 keeps
/// each request small enough to retry cheaply.
pub const SHARE_BATCH: usize = 100;

/// Extra attempts for a share call that got no usable answer (a 5xx, a dropped
/// connection, 429s beyond the client's own retries). The client does not repeat writes.
const SHARE_EXTRA_ATTEMPTS: usize = 3;

/// Shares a room with up to [`SHARE_BATCH`] people by id (the caller chunks).
///
/// When a call gets no usable answer it may or may not have landed: the room's members
/// are read again and the call is repeated only for those not yet at their level, so
/// nobody is notified twice for a share that did land.
pub async fn share(
    docspace: docspace_api::Client,
    room: RoomId,
    grants: Vec<(String, Access)>,
) -> Result<(), docspace_api::Error> {
    let mut shares: Vec<RoomShare> = grants
        .into_iter()
        .map(|(user_id, access)| RoomShare { user_id, access })
        .collect();
    let mut extra = 0;
    loop {
        match docspace.share_room(room.as_str(), &shares, true).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && extra < SHARE_EXTRA_ATTEMPTS => {
                extra += 1;
                tracing::info!(error = %e, %room, attempt = extra,
                    "room share outcome unknown; reading the members before sending again");
                let now = members(&docspace, &room).await?;
                shares.retain(|s| !now.get(&s.user_id).is_some_and(|a| a.covers(s.access)));
                if shares.is_empty() {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}
