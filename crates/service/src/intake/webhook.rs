//! Asana webhook deliveries: signature verification on the raw bytes, then events → jobs.
//!
//! A delivery goes through a small type-state so that nothing can parse (let alone store)
//! a body whose signature was not checked first:
//!
//! ```text
//! Unverified { body, X-Hook-Signature } --verify(secret)--> Verified --parse--> WebhookDelivery
//! ```
//!
//! `X-Hook-Signature` is the lowercase hex HMAC-SHA256 of the exact request body, keyed
//! with the secret Asana sent in the handshake. We recompute it over the bytes as received
//! (never a re-serialisation) and compare in constant time with `subtle`.
//!
//! Asana sends no event id and may send an event twice, so each event gets a
//! [`dedupe_key`] derived from what identifies it; the queue refuses a second job with the
//! same key. Events are hints, not the truth: a job carries only the task and project
//! ids, and the worker re-reads the task when it runs.

use std::fmt;

use asana_api::{Event, EventAction, WebhookDelivery};
use bridge_core::domain::{JobKind, JobPayload, Source};
use bridge_core::record::NewJob;
use bytes::Bytes;
use chrono::SecondsFormat;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header carrying the handshake secret (request and our echo).
pub const SECRET_HEADER: &str = "x-hook-secret";
/// Header carrying the delivery signature.
pub const SIGNATURE_HEADER: &str = "x-hook-signature";

/// A webhook's handshake secret, ready to verify signatures. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret {
    /// The HMAC state after absorbing the key: cloned per delivery, so the key schedule is
    /// computed once per registration rather than once per request.
    mac: Hmac<Sha256>,
}

impl WebhookSecret {
    /// Prepares `secret` (the `X-Hook-Secret` value, used as bytes, as Asana does).
    pub fn new(secret: &str) -> WebhookSecret {
        WebhookSecret {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
                .expect("HMAC-SHA256 accepts keys of any length"),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The lowercase hex signature Asana would send for `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(WebhookSecret::new(secret).tag(body))
}

/// Why a signature was refused. Each is a 401 and nothing is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hook-Signature` header.
    #[error("missing X-Hook-Signature")]
    Missing,
    /// The header is not 64 hex characters.
    #[error("X-Hook-Signature is not a hex HMAC-SHA256")]
    Malformed,
    /// Well-formed, but not the HMAC of this body under this webhook's secret.
    #[error("X-Hook-Signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    /// The `reason` label of the rejection metric.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// A delivery as received: raw body and the signature header, not yet trusted.
#[derive(Debug)]
pub struct Unverified<'a> {
    body: Bytes,
    signature: Option<&'a [u8]>,
}

impl<'a> Unverified<'a> {
    /// Wraps the raw body and the `X-Hook-Signature` header value, if any.
    pub fn new(body: Bytes, signature: Option<&'a [u8]>) -> Unverified<'a> {
        Unverified { body, signature }
    }

    /// Checks the signature in constant time; only then is the body usable.
    pub fn verify(self, secret: &WebhookSecret) -> Result<Verified, SignatureError> {
        let given = self.signature.ok_or(SignatureError::Missing)?;
        let given = trim_ascii(given);
        let mut claimed = [0u8; 32];
        if given.len() != 64 || hex::decode_to_slice(given, &mut claimed).is_err() {
            return Err(SignatureError::Malformed);
        }
        let expected = secret.tag(&self.body);
        if bool::from(expected.ct_eq(&claimed)) {
            Ok(Verified(self.body))
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// A body whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified(Bytes);

impl Verified {
    /// Decodes `{"events":[…]}`; an error names the JSON path that did not fit.
    pub fn parse(&self) -> Result<WebhookDelivery, asana_api::Error> {
        WebhookDelivery::from_slice(&self.0)
    }

    /// Decodes `{"events":[…]}` event by event: an event that does not fit is set aside
    /// rather than failing the others ([`WebhookDelivery::from_slice_lenient`]).
    pub fn parse_lenient(&self) -> Result<asana_api::Lenient, asana_api::Error> {
        WebhookDelivery::from_slice_lenient(&self.0)
    }

    /// The raw body.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

/// Which intake an event came through; becomes the job's [`JobPayload`] (and so the
/// ledger's `source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A delivery to `/webhooks/asana/{id}`.
    Webhook {
        /// Our registration id.
        id: String,
    },
    /// The Events API poller (`watch`).
    Watch,
}

impl Origin {
    /// The ledger's source for this intake.
    pub fn source(&self) -> Source {
        match self {
            Origin::Webhook { .. } => Source::Webhook,
            Origin::Watch => Source::Watch,
        }
    }
}

/// The task fields whose change can change who should have access: the assignee, and
/// `completed` (a reopened task counts again under `include_completed = false`).
const FIELDS: &[&str] = &["assignee", "completed"];

/// Whether an event can change who should have access, and so deserves a job.
///
/// - a task's `assignee` or `completed` changed;
/// - a task was added to a project (it may arrive with an assignee) or undeleted;
/// - a task was removed from a project or deleted: its previous assignee may have lost
///   their last reason for a room with `on_unassign = "revoke"` (the job reads nothing from
///   Asana for these, and does nothing when no room revokes).
///
/// Everything else (stories, moves between sections) is ignored; the worker re-reads the
/// task anyway.
pub fn is_relevant(e: &Event) -> bool {
    if e.resource.resource_type.as_deref() != Some("task") {
        return false;
    }
    match &e.action {
        EventAction::Changed => e
            .change
            .as_ref()
            .and_then(|c| c.field.as_deref())
            .is_some_and(|f| FIELDS.contains(&f)),
        EventAction::Added => e
            .parent
            .as_ref()
            .is_none_or(|p| p.resource_type.as_deref() == Some("project")),
        EventAction::Undeleted | EventAction::Deleted => true,
        EventAction::Removed => e
            .parent
            .as_ref()
            .is_some_and(|p| p.resource_type.as_deref() == Some("project")),
        _ => false,
    }
}

/// The identity of an event, since Asana gives none: resource, action, changed field,
/// parent, `created_at` (millisecond precision, as Asana sends it), the acting user, and
/// the new value's gid.
///
/// The new value matters: one person reassigning a task twice within a millisecond (a
/// script, a rule) produces two events that agree on everything else, and dropping the
/// second could lose the final assignee if the first one's job already ran.
///
/// The webhook id is deliberately left out, so the same event reaching us through two
/// registrations, or through a webhook and `watch`, is one job. An event without
/// `created_at` (never seen, but the field is optional) falls back to a hash of its JSON,
/// which still catches Asana's byte-for-byte redeliveries.
pub fn dedupe_key(e: &Event) -> String {
    let field = e
        .change
        .as_ref()
        .and_then(|c| c.field.as_deref())
        .unwrap_or("-");
    let parent = e.parent.as_ref().map_or("-", |p| p.gid.as_str());
    let user = e.user.as_ref().map_or("-", |u| u.gid.as_str());
    let value = e
        .change
        .as_ref()
        .and_then(|c| {
            c.new_value
                .as_ref()
                .or(c.added_value.as_ref())
                .or(c.removed_value.as_ref())
        })
        .and_then(|v| v.gid())
        .unwrap_or("-");
    match e.created_at {
        Some(at) => format!(
            "ev1:{}:{}:{}:{}:{}:{}:{}",
            e.resource.gid,
            e.action.as_str(),
            field,
            parent,
            at.to_rfc3339_opts(SecondsFormat::Millis, true),
            user,
            value
        ),
        None => {
            let json = serde_json::to_vec(e).unwrap_or_default();
            let digest = Sha256::digest(&json);
            format!(
                "ev1:{}:{}:{}:{}:#{}:{}",
                e.resource.gid,
                e.action.as_str(),
                field,
                parent,
                hex::encode(&digest[..16]),
                user
            )
        }
    }
}

/// The job for one relevant event: reconcile `task` under `project`'s rule.
pub fn job_for_event(e: &Event, project_gid: &str, origin: &Origin) -> Option<NewJob> {
    if !is_relevant(e) {
        return None;
    }
    let what = match e.change.as_ref().and_then(|c| c.field.as_deref()) {
        Some(field) => format!("{}:{field}", e.action.as_str()),
        None => e.action.as_str().to_string(),
    };
    let payload = JobPayload {
        source: origin.source(),
        event: Some(what),
        webhook: match origin {
            Origin::Webhook { id } => Some(id.clone()),
            Origin::Watch => None,
        },
        at: e
            .created_at
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true)),
    };
    Some(NewJob {
        kind: JobKind::Task,
        resource_gid: e.resource.gid.clone(),
        project_gid: Some(project_gid.to_string()),
        dedupe_key: dedupe_key(e),
        payload,
    })
}

/// Jobs for every relevant event, in order.
pub fn jobs_for_events(events: &[Event], project_gid: &str, origin: &Origin) -> Vec<NewJob> {
    events
        .iter()
        .filter_map(|e| job_for_event(e, project_gid, origin))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> Event {
        serde_json::from_value(json).unwrap()
    }

    fn assignee_event(task: &str, at: &str, user: &str) -> Event {
        event(serde_json::json!({
            "user": {"gid": "7", "resource_type": "user"},
            "resource": {"gid": task, "resource_type": "task", "resource_subtype": "default_task"},
            "type": "task",
            "action": "changed",
            "parent": null,
            "created_at": at,
            "change": {"field": "assignee", "action": "changed",
                       "new_value": {"gid": user, "resource_type": "user"}}
        }))
    }

    /// A known vector: HMAC-SHA256 of the RFC 4231 test case 2 (key "Jefe").
    #[test]
    fn signature_matches_a_known_vector() {
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verification_accepts_the_right_signature_only() {
        let secret = WebhookSecret::new("s3cret");
        let body = Bytes::from_static(br#"{"events":[]}"#);
        let good = sign("s3cret", &body);
        assert!(Unverified::new(body.clone(), Some(good.as_bytes()))
            .verify(&secret)
            .is_ok());
        // Hex is case-insensitive on the wire; whitespace around the header is tolerated.
        let upper = format!(" {} ", good.to_uppercase());
        assert!(Unverified::new(body.clone(), Some(upper.as_bytes()))
            .verify(&secret)
            .is_ok());
        assert_eq!(
            Unverified::new(body.clone(), None)
                .verify(&secret)
                .unwrap_err(),
            SignatureError::Missing
        );
        for bad in ["", "zz", &good[..63], &format!("{good}00")] {
            assert_eq!(
                Unverified::new(body.clone(), Some(bad.as_bytes()))
                    .verify(&secret)
                    .unwrap_err(),
                SignatureError::Malformed,
                "{bad:?}"
            );
        }
        let other = sign("other", &body);
        assert_eq!(
            Unverified::new(body.clone(), Some(other.as_bytes()))
                .verify(&secret)
                .unwrap_err(),
            SignatureError::Mismatch
        );
        let tampered = Bytes::from_static(br#"{"events":[] }"#);
        assert_eq!(
            Unverified::new(tampered, Some(good.as_bytes()))
                .verify(&secret)
                .unwrap_err(),
            SignatureError::Mismatch
        );
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
    }

    #[test]
    fn dedupe_key_is_stable_and_distinguishes_events() {
        let a = assignee_event("1201", "2024-05-01T10:00:00.123Z", "42");
        let again = assignee_event("1201", "2024-05-01T10:00:00.123Z", "42");
        assert_eq!(dedupe_key(&a), dedupe_key(&again));
        assert_eq!(
            dedupe_key(&a),
            "ev1:1201:changed:assignee:-:2024-05-01T10:00:00.123Z:7:42"
        );
        // Same task, same millisecond, same actor, another assignee: another event.
        let reassigned = assignee_event("1201", "2024-05-01T10:00:00.123Z", "43");
        assert_ne!(dedupe_key(&a), dedupe_key(&reassigned));
        let later = assignee_event("1201", "2024-05-01T10:00:00.124Z", "42");
        assert_ne!(dedupe_key(&a), dedupe_key(&later));
        let other_task = assignee_event("1202", "2024-05-01T10:00:00.123Z", "42");
        assert_ne!(dedupe_key(&a), dedupe_key(&other_task));
        let mut no_time = a.clone();
        no_time.created_at = None;
        let key = dedupe_key(&no_time);
        assert!(key.contains(":#"), "{key}");
        assert_eq!(key, dedupe_key(&no_time.clone()));
    }

    #[test]
    fn only_access_relevant_events_become_jobs() {
        let src = Origin::Webhook { id: "abc".into() };
        let a = assignee_event("1201", "2024-05-01T10:00:00.123Z", "42");
        let job = job_for_event(&a, "99", &src).unwrap();
        assert_eq!(job.kind, JobKind::Task);
        assert_eq!(job.resource_gid, "1201");
        assert_eq!(job.project_gid.as_deref(), Some("99"));
        assert_eq!(job.payload.source, Source::Webhook);
        assert_eq!(job.payload.webhook.as_deref(), Some("abc"));
        let added = event(serde_json::json!({
            "resource": {"gid": "1203", "resource_type": "task"},
            "action": "added", "created_at": "2024-05-01T10:00:00.000Z",
            "parent": {"gid": "99", "resource_type": "project"}
        }));
        assert!(is_relevant(&added));
        let to_section = event(serde_json::json!({
            "resource": {"gid": "1203", "resource_type": "task"},
            "action": "added", "parent": {"gid": "5", "resource_type": "section"}
        }));
        assert!(!is_relevant(&to_section));
        let story = event(serde_json::json!({
            "resource": {"gid": "8", "resource_type": "story"}, "action": "added"
        }));
        assert!(!is_relevant(&story));
        let name = event(serde_json::json!({
            "resource": {"gid": "1203", "resource_type": "task"}, "action": "changed",
            "change": {"field": "name", "action": "changed"}
        }));
        assert!(!is_relevant(&name));
        let deleted = event(serde_json::json!({
            "resource": {"gid": "1203", "resource_type": "task"}, "action": "deleted"
        }));
        assert!(is_relevant(&deleted));
        let removed = |parent: &str| {
            event(serde_json::json!({
                "resource": {"gid": "1203", "resource_type": "task"}, "action": "removed",
                "parent": {"gid": "5", "resource_type": parent}
            }))
        };
        assert!(is_relevant(&removed("project")));
        assert!(!is_relevant(&removed("section")));
        let jobs = jobs_for_events(&[a, story, added], "99", &Origin::Watch);
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].payload.source, Source::Watch);
    }
}
