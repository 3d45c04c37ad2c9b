//! Room removals: `PUT /files/rooms/{id}/share` with access 0 by person id, in batches.
//!
//! DocSpace answers a removal with the members it re-read for the request's ids, and drops
//! subjects the key may not see without an error — so the answer is compared with the
//! request: whoever is still listed was not removed, and is reported with the likely reason
//! (a form role the server refuses to drop without `force`, which this tool never sends; or
//! a subject the key cannot see). A call without a usable answer is repeated only for those
//! a fresh read of the room still lists, so nobody is sent twice for a removal that landed.

use std::collections::{BTreeMap, BTreeSet};

use docspace_api::RoomMember;
use futures::TryStreamExt;

use crate::domain::RoomId;

/// Extra attempts for a removal call that got no usable answer.
const EXTRA_ATTEMPTS: usize = 3;

/// A room's people (user subjects with an id), by DocSpace id, with everything the
/// ownership check needs: the raw level (any `FileShare`, not only those this tool sets) and
/// the email.
pub async fn members(
    docspace: &docspace_api::Client,
    room: &RoomId,
) -> Result<BTreeMap<String, RoomMember>, docspace_api::Error> {
    let mut out = BTreeMap::new();
    let mut members = std::pin::pin!(docspace.room_members(room.as_str()));
    while let Some(m) = members.try_next().await? {
        if let Some(id) = m.user_id.clone() {
            out.insert(id.to_ascii_lowercase(), m);
        }
    }
    Ok(out)
}

/// What one batch of removals came to.
#[derive(Debug, Default)]
pub struct Removed {
    /// Ids DocSpace no longer lists in the room.
    pub removed: BTreeSet<String>,
    /// Ids still listed after the request, with why.
    pub refused: BTreeMap<String, String>,
}

/// Removes up to [`crate::act::share::SHARE_BATCH`] people (by id) from a room.
pub async fn remove(
    docspace: docspace_api::Client,
    room: RoomId,
    ids: Vec<String>,
) -> Result<Removed, docspace_api::Error> {
    let mut pending: Vec<String> = ids.iter().map(|i| i.to_ascii_lowercase()).collect();
    let mut out = Removed::default();
    let mut extra = 0;
    loop {
        match docspace.remove_from_room(room.as_str(), &pending).await {
            Ok(answer) => {
                let listed = still_listed(&answer);
                let kept: Vec<String> = pending
                    .iter()
                    .filter(|id| listed.contains(*id))
                    .cloned()
                    .collect();
                for id in pending.iter().filter(|id| !listed.contains(*id)) {
                    out.removed.insert(id.clone());
                }
                if answer.form_role_blocking && kept.len() > 1 {
                    // One answer flag for the whole batch: ask again one by one (none of
                    // them was removed) to say which of them holds the form role.
                    for id in kept {
                        let single = docspace
                            .remove_from_room(room.as_str(), std::slice::from_ref(&id))
                            .await?;
                        if still_listed(&single).contains(&id) {
                            out.refused.insert(id, refusal(single.form_role_blocking));
                        } else {
                            out.removed.insert(id);
                        }
                    }
                } else {
                    for id in kept {
                        out.refused.insert(id, refusal(answer.form_role_blocking));
                    }
                }
                return Ok(out);
            }
            Err(e) if e.is_retryable() && extra < EXTRA_ATTEMPTS => {
                extra += 1;
                tracing::info!(error = %e, %room, attempt = extra,
                    "room removal outcome unknown; reading the members before sending again");
                let now = members(&docspace, &room).await?;
                let (still, gone): (Vec<String>, Vec<String>) =
                    pending.into_iter().partition(|id| now.contains_key(id));
                out.removed.extend(gone);
                pending = still;
                if pending.is_empty() {
                    return Ok(out);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The requested people the answer still lists (a removed member is not listed).
fn still_listed(answer: &docspace_api::ShareResult) -> BTreeSet<String> {
    answer
        .members
        .iter()
        .filter(|m| m.access_raw != Some(0))
        .filter_map(|m| m.user_id.as_deref().map(str::to_ascii_lowercase))
        .collect()
}

fn refusal(form_role: bool) -> String {
    if form_role {
        "DocSpace refused the removal: the person holds a form role in this room (FormRoleBlockingDeletion); this tool never forces it — remove the form role or the member by hand".to_string()
    } else {
        "DocSpace kept the person in the room without an error (it drops subjects the API key may not see): check that the key's user can see this person".to_string()
    }
}
