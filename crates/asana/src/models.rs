//! Response and request types.
//!
//! Asana trims responses to the requested `opt_fields` (only `gid` is always present), so
//! every other field is an `Option` and unknown fields are ignored. Gids in responses are
//! plain `String`s; use [`Gid`](crate::Gid) for ids you send.
//!
//! The response structs are `#[non_exhaustive]`: outside this crate, build them from JSON
//! (`serde_json::from_value`) rather than with struct literals.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A compact reference to any Asana resource: `{gid, resource_type, name}`
/// (`AsanaNamedResource` in the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Compact {
    /// Globally unique identifier.
    pub gid: String,
    /// `task`, `project`, `workspace`, `user`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// `default_task`, `milestone`, … (events send it for tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subtype: Option<String>,
    /// The object's name, when requested or included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An Asana user: the compact form inside tasks and events, or the full record from
/// `GET /users/{gid}` and `addUser`.
///
/// `email` may be absent even when requested (token scope, guests, privacy): treat a
/// missing or empty email as hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// Globally unique identifier.
    pub gid: String,
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's email, when Asana shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Always `user` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
}

/// The user reference inside a task or event: the same shape as [`User`].
pub type UserRef = User;

/// A task (`TaskResponse`), trimmed to the requested `opt_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Task {
    /// Globally unique identifier.
    pub gid: String,
    /// The task's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The assignee; `None` when unassigned (`null`) or not requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<UserRef>,
    /// Whether the task is marked complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    /// When it was completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Projects the task is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<Compact>>,
    /// Project and section memberships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memberships: Option<Vec<TaskMembership>>,
    /// Always `task` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
}

/// One entry of `Task.memberships`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskMembership {
    /// The project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Compact>,
    /// The section within the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<Compact>,
}

/// A project, trimmed to the requested `opt_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Project {
    /// Globally unique identifier.
    pub gid: String,
    /// The project's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The workspace (or organization) the project belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Compact>,
}

/// A filter limiting which events a webhook delivers (`WebhookFilter`). An event is
/// delivered if it passes any filter. `None` fields are left out of the request.
///
/// ```
/// use asana_api::WebhookFilter;
/// let f = WebhookFilter::changed("task", &["assignee"]);
/// assert_eq!(
///     serde_json::to_string(&f).unwrap(),
///     r#"{"resource_type":"task","action":"changed","fields":["assignee"]}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookFilter {
    /// Resource type the filter applies to, e.g. `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Resource subtype, e.g. `milestone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subtype: Option<String>,
    /// `changed`, `added`, `removed`, `deleted` or `undeleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Fields whose change passes the filter; only valid with `action: changed`, and not
    /// on workspace, team or portfolio webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl WebhookFilter {
    /// A filter for `action: changed` on `resource_type`, limited to `fields` (none = any).
    pub fn changed(resource_type: &str, fields: &[&str]) -> WebhookFilter {
        WebhookFilter {
            resource_type: Some(resource_type.to_owned()),
            resource_subtype: None,
            action: Some("changed".to_owned()),
            fields: (!fields.is_empty()).then(|| fields.iter().map(|f| (*f).to_owned()).collect()),
        }
    }

    /// A filter for `action` (e.g. `added`) on `resource_type`.
    pub fn action(resource_type: &str, action: &str) -> WebhookFilter {
        WebhookFilter {
            resource_type: Some(resource_type.to_owned()),
            action: Some(action.to_owned()),
            ..WebhookFilter::default()
        }
    }
}

/// A webhook registration (`WebhookResponse`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Webhook {
    /// Globally unique identifier.
    pub gid: String,
    /// Whether Asana is delivering events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The watched resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Compact>,
    /// The URL deliveries are POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// When the webhook was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Last successful delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last failed delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What the target answered on the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_content: Option<String>,
    /// Delivery retries since the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_retry_count: Option<u32>,
    /// The filters the webhook was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<WebhookFilter>>,
    /// The `X-Hook-Secret` from the handshake, set only on the value returned by
    /// [`Client::create_webhook`](crate::Client::create_webhook) (Asana sends it once).
    /// Never serialized.
    #[serde(skip)]
    pub secret: Option<SecretString>,
}

impl PartialEq for Webhook {
    /// Compares everything but the secret.
    fn eq(&self, o: &Webhook) -> bool {
        self.gid == o.gid
            && self.active == o.active
            && self.resource == o.resource
            && self.target == o.target
            && self.created_at == o.created_at
            && self.last_success_at == o.last_success_at
            && self.last_failure_at == o.last_failure_at
            && self.last_failure_content == o.last_failure_content
            && self.delivery_retry_count == o.delivery_retry_count
            && self.filters == o.filters
    }
}

/// What happened to a resource (`Event.action`) or to a field (`Event.change.action`).
/// Values this crate does not know are kept in [`EventAction::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventAction {
    /// A field of the resource changed.
    Changed,
    /// The resource was added to its parent (or a value added to a field).
    Added,
    /// The resource was removed from its parent (or a value removed from a field).
    Removed,
    /// The resource was deleted.
    Deleted,
    /// The resource was restored.
    Undeleted,
    /// Any other value, kept verbatim.
    Unknown(String),
}

impl EventAction {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            EventAction::Changed => "changed",
            EventAction::Added => "added",
            EventAction::Removed => "removed",
            EventAction::Deleted => "deleted",
            EventAction::Undeleted => "undeleted",
            EventAction::Unknown(s) => s,
        }
    }
}

impl From<&str> for EventAction {
    fn from(s: &str) -> EventAction {
        match s {
            "changed" => EventAction::Changed,
            "added" => EventAction::Added,
            "removed" => EventAction::Removed,
            "deleted" => EventAction::Deleted,
            "undeleted" => EventAction::Undeleted,
            other => EventAction::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for EventAction {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for EventAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventAction, D::Error> {
        let s = String::deserialize(d)?;
        Ok(EventAction::from(s.as_str()))
    }
}

/// A value inside [`Change`]: usually a compact resource (the new assignee, an added
/// follower); anything else is kept as raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChangeValue {
    /// A resource with a gid, e.g. `{"gid":"1100","resource_type":"user"}`.
    Resource(Compact),
    /// Any other JSON value.
    Other(serde_json::Value),
}

impl ChangeValue {
    /// The gid, when the value is a resource.
    pub fn gid(&self) -> Option<&str> {
        match self {
            ChangeValue::Resource(c) => Some(&c.gid),
            ChangeValue::Other(_) => None,
        }
    }

    /// The resource type, when the value is a resource that names it.
    pub fn resource_type(&self) -> Option<&str> {
        match self {
            ChangeValue::Resource(c) => c.resource_type.as_deref(),
            ChangeValue::Other(_) => None,
        }
    }
}

/// How a field changed (`Event.change`); present only when `Event.action` is `changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// The field that changed, e.g. `assignee`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `changed` (a single value replaced), `added` or `removed` (a list member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<EventAction>,
    /// The new value when it is an Asana resource; absent on un-assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_value: Option<ChangeValue>,
    /// The value added to a list field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_value: Option<ChangeValue>,
    /// The value removed from a list field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_value: Option<ChangeValue>,
}

/// One event from a webhook delivery or `GET /events` (`EventResponse`).
///
/// Asana sends no event id; dedupe on (`resource.gid`, `change.field`, `created_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Who caused it; `None` for system-generated events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRef>,
    /// The resource that changed (may be below the watched one, e.g. a task in a project).
    pub resource: Compact,
    /// What happened to the resource.
    pub action: EventAction,
    /// The parent for `added`/`removed` (e.g. the project a task was added to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Compact>,
    /// When it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// The field change, for `action: changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// The body of a webhook delivery: `{"events":[…]}`; empty for heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// The delivered events.
    #[serde(default)]
    pub events: Vec<Event>,
}

impl WebhookDelivery {
    /// Decode a delivery body (the raw bytes whose signature was already checked).
    /// A failure names the JSON path, e.g. `events[2].resource.gid`.
    pub fn from_slice(body: &[u8]) -> Result<WebhookDelivery, crate::Error> {
        crate::client::decode(body)
    }

    /// Decode a delivery body event by event: the body must be a JSON object whose
    /// `events` (if present) is an array, but an event that does not fit [`Event`] (a
    /// wrong-typed field, a missing `resource`) is set aside in
    /// [`Lenient::malformed`] instead of failing the events beside it. A redelivery of
    /// the same body would fail the same way, so refusing the whole delivery would lose
    /// the valid events for good.
    pub fn from_slice_lenient(body: &[u8]) -> Result<Lenient, crate::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            events: Vec<serde_json::Value>,
        }
        let raw: Raw = crate::client::decode(body)?;
        let mut delivery = WebhookDelivery { events: Vec::new() };
        let mut malformed = Vec::new();
        for (index, value) in raw.events.into_iter().enumerate() {
            match serde_path_to_error::deserialize::<_, Event>(value) {
                Ok(e) => delivery.events.push(e),
                Err(e) => malformed.push(MalformedEvent {
                    index,
                    path: e.path().to_string(),
                    message: e.into_inner().to_string(),
                }),
            }
        }
        Ok(Lenient {
            delivery,
            malformed,
        })
    }
}

/// A delivery decoded by [`WebhookDelivery::from_slice_lenient`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Lenient {
    /// The events that decoded, in order.
    pub delivery: WebhookDelivery,
    /// The ones that did not.
    pub malformed: Vec<MalformedEvent>,
}

/// An event of a delivery that does not have Asana's documented shape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MalformedEvent {
    /// Its position in `events`.
    pub index: usize,
    /// The JSON path inside the event that did not fit, e.g. `resource.gid`.
    pub path: String,
    /// What was wrong with it (serde's message).
    pub message: String,
}

/// One page of `GET /events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventsPage {
    /// Events since the token passed in (at most 100).
    #[serde(default)]
    pub data: Vec<Event>,
    /// The token for the next call.
    pub sync: String,
    /// More events are waiting: call again with `sync` right away.
    #[serde(default)]
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lenient_delivery_keeps_the_events_that_decode() {
        let body = br#"{"events":[
            {"resource":{"gid":"1","resource_type":"task"},"action":"changed"},
            {"resource":{"gid":5,"resource_type":"task"},"action":"changed"},
            {"action":"added"},
            {"resource":{"gid":"2","resource_type":"task"},"action":"added"}]}"#;
        let l = WebhookDelivery::from_slice_lenient(body).unwrap();
        let gids: Vec<_> = l
            .delivery
            .events
            .iter()
            .map(|e| e.resource.gid.as_str())
            .collect();
        assert_eq!(gids, ["1", "2"]);
        let bad: Vec<_> = l
            .malformed
            .iter()
            .map(|m| (m.index, m.path.as_str()))
            .collect();
        assert_eq!(bad, [(1, "resource.gid"), (2, ".")]);
        // The strict decoder refuses the same body as a whole.
        assert!(WebhookDelivery::from_slice(body).is_err());
        // Not an object with an array of events: refused as a whole.
        assert!(WebhookDelivery::from_slice_lenient(br#"{"events":{}}"#).is_err());
        assert!(WebhookDelivery::from_slice_lenient(b"[1]").is_err());
        assert!(WebhookDelivery::from_slice_lenient(b"{}")
            .unwrap()
            .delivery
            .events
            .is_empty());
    }

    #[test]
    fn event_action_round_trips_and_keeps_unknowns() {
        for s in [
            "changed",
            "added",
            "removed",
            "deleted",
            "undeleted",
            "merged",
        ] {
            let a: EventAction = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(a, s);
            assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::json!(s));
        }
        assert_eq!(
            EventAction::from("merged"),
            EventAction::Unknown("merged".into())
        );
    }

    #[test]
    fn change_values_are_resources_or_raw() {
        let c: Change = serde_json::from_value(serde_json::json!({
            "field": "assignee", "action": "changed",
            "new_value": {"gid": "1100", "resource_type": "user"},
            "added_value": "text"
        }))
        .unwrap();
        assert_eq!(
            c.new_value.as_ref().and_then(ChangeValue::gid),
            Some("1100")
        );
        assert_eq!(
            c.new_value.as_ref().and_then(ChangeValue::resource_type),
            Some("user")
        );
        assert_eq!(
            c.added_value,
            Some(ChangeValue::Other(serde_json::json!("text")))
        );
        assert_eq!(c.removed_value, None);
    }

    #[test]
    fn filters_skip_none() {
        let f = WebhookFilter::action("task", "added");
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"resource_type":"task","action":"added"})
        );
    }
}
