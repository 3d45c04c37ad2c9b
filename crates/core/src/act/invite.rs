//! Invitations: in batches, confirmed, and resilient.
//!
//! DocSpace's invite answer lists *every* pending user, without emails, so it cannot
//! prove by itself that our invitation landed. A brand-new invitee has empty names, and
//! DocSpace then shows the email as `displayName` (ONLYOFFICE's own API tests rely on
//! this); anyone not matched that way is confirmed with `GET /people/email`. A batch of
//! one (an `invite --task`, a webhook job) is always confirmed by that lookup: one call
//! buys the strongest evidence, where in a batch of fifty it would cost fifty.

use std::collections::HashMap;

use docspace_api::{Invitation, Person, UserType};
use futures::{StreamExt, TryStreamExt};

use crate::Transience;

/// Invite `emails` (already known to be absent from the portal) in one call and return
/// the DocSpace id of each one that is now on the portal. An email missing from the
/// result did not land.
async fn invite_batch(
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
    let pending = if emails.len() == 1 {
        Vec::new()
    } else {
        pending
    };
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

/// What one invitation batch produced.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Ids of the people now on the portal.
    pub ids: HashMap<String, String>,
    /// Addresses DocSpace refused one by one, with its reason.
    pub refused: HashMap<String, String>,
    /// Why the emails in neither map were not invited, and whether that may pass.
    pub error: Option<(String, Transience)>,
}

/// How many times an invitation whose outcome is unknown (a 5xx, a dropped connection,
/// 429s beyond the client's retries) is checked and sent again.
const UNKNOWN_OUTCOME_ROUNDS: usize = 3;

/// Invite a batch; when DocSpace rejects the whole call because of one address (a
/// disabled account, an address it considers invalid), drop that address, remember why,
/// and retry the rest — one bad person must not block forty-nine good ones.
///
/// A write that got no answer may or may not have landed, and the client does not repeat
/// writes. So we ask DocSpace who is on the portal now and invite again only those still
/// absent: nobody is invited twice, and a flaky network does not leave people out.
pub async fn invite_resilient(
    ds: docspace_api::Client,
    batch: Vec<String>,
    user_type: UserType,
) -> BatchResult {
    let mut rest = batch;
    let mut result = BatchResult::default();
    let mut unknown_rounds = 0;
    loop {
        match invite_batch(&ds, &rest, user_type).await {
            Ok(ids) => {
                result.ids.extend(ids);
                return result;
            }
            Err(e) if e.status() == Some(400) => {
                let msg = e.to_string().to_ascii_lowercase();
                match rest.iter().position(|x| msg.contains(x.as_str())) {
                    Some(i) => {
                        let bad = rest.remove(i);
                        result.refused.insert(bad, format!("DocSpace: {e}"));
                        if rest.is_empty() {
                            return result;
                        }
                    }
                    None => {
                        result.error = Some((format!("DocSpace: {e}"), (&e).into()));
                        return result;
                    }
                }
            }
            Err(e) if e.is_retryable() && unknown_rounds < UNKNOWN_OUTCOME_ROUNDS => {
                unknown_rounds += 1;
                tracing::info!(error = %e, batch = rest.len(), round = unknown_rounds,
                    "invitation outcome unknown; looking the batch up before sending again");
                let looked: Result<Vec<(String, Option<Person>)>, docspace_api::Error> =
                    futures::stream::iter(rest.clone())
                        .map(|email| {
                            let ds = ds.clone();
                            async move { ds.find_person_by_email(&email).await.map(|p| (email, p)) }
                        })
                        .buffer_unordered(8)
                        .try_collect()
                        .await;
                match looked {
                    Ok(looked) => {
                        for (email, person) in looked {
                            if let Some(p) = person {
                                rest.retain(|x| x != &email);
                                result.ids.insert(email, p.id);
                            }
                        }
                        if rest.is_empty() {
                            return result;
                        }
                    }
                    Err(le) => {
                        result.error = Some((
                            format!(
                                "DocSpace: {e}; checking whether the invitation landed failed too: {le}"
                            ),
                            Transience::from(&e).worst((&le).into()),
                        ));
                        return result;
                    }
                }
            }
            Err(e) => {
                result.error = Some((format!("DocSpace: {e}"), (&e).into()));
                return result;
            }
        }
    }
}
