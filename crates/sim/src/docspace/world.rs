//! The DocSpace simulator's data: people, rooms, and logs of what the invite and share
//! endpoints did, so tests can assert "invited exactly once" or "sent integers".

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The user types DocSpace knows (`EmployeeType` minus the `All` filter value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SimUserType {
    /// 3: portal administrator.
    DocSpaceAdmin,
    /// 1: paid room administrator.
    RoomAdmin,
    /// 4: free internal user.
    User,
    /// 2: guest.
    Guest,
}

impl SimUserType {
    /// The integer DocSpace uses on the wire.
    pub fn as_int(self) -> u8 {
        match self {
            SimUserType::RoomAdmin => 1,
            SimUserType::Guest => 2,
            SimUserType::DocSpaceAdmin => 3,
            SimUserType::User => 4,
        }
    }

    /// The v3 enum name.
    pub fn name(self) -> &'static str {
        match self {
            SimUserType::RoomAdmin => "RoomAdmin",
            SimUserType::Guest => "Guest",
            SimUserType::DocSpaceAdmin => "DocSpaceAdmin",
            SimUserType::User => "User",
        }
    }

    /// The server's order for "upgrade on re-invite": DocSpaceAdmin > RoomAdmin > User > Guest.
    pub(crate) fn rank(self) -> u8 {
        match self {
            SimUserType::DocSpaceAdmin => 4,
            SimUserType::RoomAdmin => 3,
            SimUserType::User => 2,
            SimUserType::Guest => 1,
        }
    }

    /// Whether this type takes a paid seat; the share endpoint only lets these be RoomManager.
    pub(crate) fn can_manage_rooms(self) -> bool {
        matches!(self, SimUserType::DocSpaceAdmin | SimUserType::RoomAdmin)
    }
}

/// Where a person is in their lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PersonState {
    /// Accepted the invitation (status 1, activationStatus 1).
    Active,
    /// Invited, not yet accepted (status 4, activationStatus 2).
    Pending,
    /// Terminated by an admin (status 2).
    Disabled,
}

/// A DocSpace user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    /// A UUID string.
    pub id: String,
    /// The login email; lookups ignore its case.
    pub email: String,
    /// Empty for people who have not accepted an invitation yet, as on the real server.
    pub first_name: String,
    /// Empty until the invitation is accepted, like `first_name`.
    pub last_name: String,
    /// What the person may be given in rooms (and what they cost).
    pub user_type: SimUserType,
    /// Active, pending (invited) or disabled.
    pub state: PersonState,
    /// The portal owner, who the API key authenticates as (one, made by `with_owner`).
    pub is_owner: bool,
    /// When the account was created.
    pub registered_at: DateTime<Utc>,
    /// The `culture` the invitation asked for (served as `cultureName`, default `en-US`).
    pub culture: Option<String>,
}

impl Person {
    /// `First Last`, or the email when both names are empty (how pending users look).
    pub fn display_name(&self) -> String {
        let name = format!("{} {}", self.first_name, self.last_name);
        let name = name.trim();
        if name.is_empty() {
            self.email.clone()
        } else {
            name.to_string()
        }
    }
}

/// A room (a virtual room folder).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Room {
    /// The integer id, as a string.
    pub id: String,
    /// Display name.
    pub title: String,
    /// `RoomType`: 1 FillingForms, 2 Editing (collaboration), 5 Custom, 6 Public, 8 VDR, 9 AI.
    pub room_type: u8,
    /// Person id → `FileShare` access integer. The creator (the portal owner) is a member
    /// with RoomManager (9), as on a real portal.
    pub members: BTreeMap<String, u8>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What `POST /people/invite` did with one invitation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum InviteOutcome {
    /// A new pending person was created and an invitation e-mail "sent".
    Invited,
    /// The email already belonged to an active or pending person: silent no-op.
    Unchanged,
    /// An existing person was raised to a higher type; no e-mail.
    Upgraded,
    /// The invitation failed the request with this status.
    Rejected {
        /// The HTTP status of the answer.
        status: u16,
        /// The error message of the answer.
        message: String,
    },
}

/// One invitation as the invite endpoint received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InviteRecord {
    /// The invitation's email.
    pub email: String,
    /// The `type` value exactly as sent (a JSON number, a string, or `null` when absent),
    /// so tests can assert that clients send integers.
    pub type_sent: Value,
    /// What the endpoint did with it.
    pub outcome: InviteOutcome,
}

/// One entry of a `PUT /files/rooms/{id}/share` request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareRecord {
    /// Id of the room the request addressed.
    pub room: String,
    /// The `id` or, when absent, the `email` of the invitation.
    pub subject: String,
    /// The `access` value exactly as sent.
    pub access_sent: Value,
    /// The access the server applied (0 removes the member), or `None` when the entry
    /// was refused or silently dropped.
    pub access_applied: Option<u8>,
}

/// The whole portal.
#[derive(Debug, Clone, Serialize)]
pub struct DocSpaceWorld {
    /// Everyone on the portal, the owner first.
    pub people: Vec<Person>,
    /// Every room, in creation order.
    pub rooms: Vec<Room>,
    /// Every invitation the invite endpoint processed, in order.
    pub invite_log: Vec<InviteRecord>,
    /// Every share entry the room share endpoint processed, in order.
    pub share_log: Vec<ShareRecord>,
    /// People the API key cannot see: share entries naming them are dropped silently,
    /// as on the server (notes §3), though they stay listed as room members.
    pub unseen: BTreeSet<String>,
    /// (room, person) pairs where the person holds a form role: removing them (access 0)
    /// is refused with `error: 1` (`FormRoleBlockingDeletion`) unless the request says
    /// `force`.
    pub form_roles: BTreeSet<(String, String)>,
    next_person: u64,
    next_room: u64,
}

impl Default for DocSpaceWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl DocSpaceWorld {
    /// A portal with only its owner, `owner@docspace.example` (the API key's user).
    pub fn new() -> Self {
        Self::with_owner("owner@docspace.example", "Portal", "Owner")
    }

    /// A portal whose owner has this email and name.
    pub fn with_owner(email: &str, first_name: &str, last_name: &str) -> Self {
        let mut world = Self {
            people: Vec::new(),
            rooms: Vec::new(),
            invite_log: Vec::new(),
            share_log: Vec::new(),
            unseen: BTreeSet::new(),
            form_roles: BTreeSet::new(),
            next_person: 1,
            next_room: 10_001,
        };
        let id = world.add_person(email, SimUserType::DocSpaceAdmin, PersonState::Active);
        if let Some(owner) = world.person_mut(&id) {
            owner.is_owner = true;
            owner.first_name = first_name.to_string();
            owner.last_name = last_name.to_string();
        }
        world
    }

    /// The portal owner, who the API key authenticates as.
    pub fn owner(&self) -> Option<&Person> {
        self.people.iter().find(|p| p.is_owner)
    }

    /// Adds a person and returns their id. Active and disabled people get a first name made
    /// from the email's local part; pending people keep empty names, as invited users do.
    pub fn add_person(
        &mut self,
        email: &str,
        user_type: SimUserType,
        state: PersonState,
    ) -> String {
        let id = self.next_uuid();
        let (first_name, last_name) = match state {
            PersonState::Pending => (String::new(), String::new()),
            _ => name_from_email(email),
        };
        self.people.push(Person {
            id: id.clone(),
            email: email.to_string(),
            first_name,
            last_name,
            user_type,
            state,
            is_owner: false,
            registered_at: Utc::now(),
            culture: None,
        });
        id
    }

    /// Adds a room owned by the portal owner and returns its id.
    pub fn add_room(&mut self, title: &str, room_type: u8) -> String {
        let id = self.next_room.to_string();
        self.next_room += 1;
        let mut members = BTreeMap::new();
        if let Some(owner) = self.owner() {
            members.insert(owner.id.clone(), 9);
        }
        self.rooms.push(Room {
            id: id.clone(),
            title: title.to_string(),
            room_type,
            members,
            created_at: Utc::now(),
        });
        id
    }

    /// Gives `person` the `access` level in `room` directly (test setup); returns false when
    /// either is unknown.
    pub fn add_member(&mut self, room: &str, person: &str, access: u8) -> bool {
        if self.person(person).is_none() {
            return false;
        }
        match self.room_mut(room) {
            Some(r) => {
                r.members.insert(person.to_string(), access);
                true
            }
            None => false,
        }
    }

    /// Makes `person` invisible to the API key (test setup): the share endpoint then drops
    /// entries naming them without an error.
    pub fn hide_from_key(&mut self, person: &str) {
        self.unseen.insert(person.to_ascii_lowercase());
    }

    /// Gives `person` a form role in `room` (test setup).
    pub fn give_form_role(&mut self, room: &str, person: &str) {
        self.form_roles
            .insert((room.to_string(), person.to_ascii_lowercase()));
    }

    /// Share entries that removed someone (access 0 applied), in order: (room, person id).
    pub fn removals(&self) -> Vec<(String, String)> {
        self.share_log
            .iter()
            .filter(|r| r.access_applied == Some(0))
            .map(|r| (r.room.clone(), r.subject.clone()))
            .collect()
    }

    /// Share entries that asked for a removal (access 0 sent), applied or not.
    pub fn removal_requests(&self) -> Vec<(String, String)> {
        self.share_log
            .iter()
            .filter(|r| r.access_sent == 0)
            .map(|r| (r.room.clone(), r.subject.clone()))
            .collect()
    }

    /// Case-insensitive lookup, like the server's.
    pub fn person_by_email(&self, email: &str) -> Option<&Person> {
        self.people
            .iter()
            .find(|p| p.email.eq_ignore_ascii_case(email.trim()))
    }

    /// The person with this id (case-insensitive, as UUIDs are).
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// [`DocSpaceWorld::person`], for changing a person in a test.
    pub fn person_mut(&mut self, id: &str) -> Option<&mut Person> {
        self.people
            .iter_mut()
            .find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// The room with this id.
    pub fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id == id)
    }

    /// [`DocSpaceWorld::room`], for changing a room in a test.
    pub fn room_mut(&mut self, id: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| r.id == id)
    }

    /// Emails the invite endpoint newly invited (one entry per e-mail "sent"), in order.
    pub fn invitations_sent(&self) -> Vec<String> {
        self.invite_log
            .iter()
            .filter(|r| r.outcome == InviteOutcome::Invited)
            .map(|r| r.email.clone())
            .collect()
    }

    /// People that hold a seat for the `max_users` quota: everyone not disabled, guests aside.
    pub(crate) fn seats_used(&self) -> usize {
        self.people
            .iter()
            .filter(|p| p.state != PersonState::Disabled && p.user_type != SimUserType::Guest)
            .count()
    }

    /// Deterministic v4-shaped UUIDs, so seeded worlds give the same ids every run.
    fn next_uuid(&mut self) -> String {
        let n = self.next_person;
        self.next_person += 1;
        let hi = splitmix64(n ^ 0x5eed_d0c5_0000_0000);
        let lo = splitmix64(hi ^ n);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `ann.lee@x` → ("Ann", "Lee"); `bob@x` → ("Bob", "").
fn name_from_email(email: &str) -> (String, String) {
    let local = email.split('@').next().unwrap_or(email);
    let mut parts = local
        .split(['.', '_', '-', '+'])
        .filter(|s| !s.is_empty())
        .map(capitalize);
    let first = parts.next().unwrap_or_default();
    let last = parts.collect::<Vec<_>>().join(" ");
    (first, last)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// .NET's `[EmailAddress]`: one `@`, not first, not last, no line breaks. Lenient on purpose:
/// this is the model-validation check that yields the `response.errors` shape.
pub(crate) fn dotnet_email_attribute_ok(email: &str) -> bool {
    if email.contains(['\r', '\n']) {
        return false;
    }
    match (email.find('@'), email.rfind('@')) {
        (Some(first), Some(last)) => first == last && first > 0 && first < email.len() - 1,
        _ => false,
    }
}

/// The server's strict address check (fails with 400 "Incorrect email" while processing):
/// a plain local part, a dotted domain with an alphabetic TLD, no punycode.
pub(crate) fn strict_email_ok(email: &str) -> bool {
    if email.len() > 255 {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && !l.to_ascii_lowercase().starts_with("xn--")
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_checks() {
        assert!(dotnet_email_attribute_ok("a@b"));
        assert!(!dotnet_email_attribute_ok("ab"));
        assert!(!dotnet_email_attribute_ok("@b"));
        assert!(!dotnet_email_attribute_ok("a@b@c"));
        assert!(strict_email_ok("ann.lee+x@mail.example.com"));
        assert!(!strict_email_ok("a@b"));
        assert!(!strict_email_ok("a b@c.com"));
        assert!(!strict_email_ok("a@xn--bcher-kva.example"));
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = DocSpaceWorld::new();
        let b = DocSpaceWorld::new();
        assert_eq!(a.people[0].id, b.people[0].id);
        let mut w = DocSpaceWorld::new();
        let x = w.add_person("x@y.com", SimUserType::User, PersonState::Active);
        assert_ne!(x, w.people[0].id);
        assert_eq!(
            w.person_by_email("X@Y.COM").map(|p| p.first_name.as_str()),
            Some("X")
        );
        assert!(uuid::Uuid::parse_str(&x).is_ok());
    }
}
