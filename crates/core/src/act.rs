//! Act: the DocSpace writes, batched, and each followed by the evidence that it landed.
//!
//! DocSpace's invite answer lists *every* pending user, without emails, so it cannot
//! prove by itself that our invitation landed. A brand-new invitee has empty names, and
//! DocSpace then shows the email as `displayName` (ONLYOFFICE's own API tests rely on
//! this); anyone not matched that way is confirmed with `GET /people/email`.

use std::collections::HashMap;

use docspace_api::{Access, Invitation, RoomShare, UserType};
use futures::TryStreamExt;

/// Invite `emails` (already known to be absent from the portal) in one call and return
/// the DocSpace id of each one that is now on the portal.
///
/// An email missing from the result did not land; the caller reports it as failed.
pub async fn invite_batch(
    docspace: &docspace_api::Client,
    emails: &[String],
    user_type: UserType,
) -> Result<HashMap<String, String>, docspace_api::Error> {
    if emails.is_empty() {
        return Ok(HashMap::new());
    }
    let invitations: Vec<Invitation> = emails
        .iter()
        .map(|e| Invitation {
            email: e.clone(),
            user_type,
        })
        .collect();
    let pending = docspace.invite(&invitations).await?;
    let by_display: HashMap<String, String> = pending
        .into_iter()
        .filter_map(|p| {
            p.display_name
                .map(|d| (d.trim().to_ascii_lowercase(), p.id))
        })
        .collect();
    let mut ids = HashMap::with_capacity(emails.len());
    for email in emails {
        if let Some(id) = by_display.get(email) {
            ids.insert(email.clone(), id.clone());
        } else if let Some(p) = docspace.find_person_by_email(email).await? {
            ids.insert(email.clone(), p.id);
        }
    }
    Ok(ids)
}

/// Invite one email and confirm it by looking the person up again: the seed flow, done
/// right. Returns the new person's id, or `None` if DocSpace accepted the call but the
/// person is still unknown.
pub async fn invite_one(
    docspace: &docspace_api::Client,
    email: &str,
    user_type: UserType,
) -> Result<Option<String>, docspace_api::Error> {
    docspace
        .invite(&[Invitation {
            email: email.to_string(),
            user_type,
        }])
        .await?;
    Ok(docspace.find_person_by_email(email).await?.map(|p| p.id))
}

/// Current members of a room and their level, keyed by user id.
pub async fn room_access(
    docspace: &docspace_api::Client,
    room_id: &str,
) -> Result<HashMap<String, Access>, docspace_api::Error> {
    let mut out = HashMap::new();
    let mut members = std::pin::pin!(docspace.room_members(room_id));
    while let Some(m) = members.try_next().await? {
        if let (Some(id), Some(access)) = (m.user_id, m.access) {
            out.insert(id, access);
        }
    }
    Ok(out)
}

/// The most invitations one share call carries: DocSpace has no documented cap, and
/// 100 keeps each request small enough to retry cheaply.
pub const SHARE_BATCH: usize = 100;

/// Extra attempts for a share call that got no usable answer (a 5xx, a dropped
/// connection, 429s beyond the client's own retries). The client does not repeat writes.
const SHARE_EXTRA_ATTEMPTS: usize = 3;

/// Share a room with people by id, in batches.
///
/// When a call gets no usable answer it may or may not have landed: the room's members
/// are read again and the call is repeated only for those not yet at their level, so
/// nobody is notified twice for a share that did land.
pub async fn share(
    docspace: &docspace_api::Client,
    room_id: &str,
    grants: &[(String, Access)],
) -> Result<(), docspace_api::Error> {
    for chunk in grants.chunks(SHARE_BATCH) {
        let mut shares: Vec<RoomShare> = chunk
            .iter()
            .map(|(id, a)| RoomShare {
                user_id: id.clone(),
                access: *a,
            })
            .collect();
        let mut extra = 0;
        loop {
            match docspace.share_room(room_id, &shares, true).await {
                Ok(_) => break,
                Err(e) if e.is_retryable() && extra < SHARE_EXTRA_ATTEMPTS => {
                    extra += 1;
                    tracing::info!(error = %e, room = room_id, attempt = extra,
                        "room share outcome unknown; reading the members before sending again");
                    let members = room_access(docspace, room_id).await?;
                    shares.retain(|s| members.get(&s.user_id) != Some(&s.access));
                    if shares.is_empty() {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
