//! What DocSpace returns (people, rooms, room members) and what the client sends
//! (invitations, room shares, the people filter).
//!
//! Response models keep only the fields this tool uses; unknown fields are
//! ignored, numbers may arrive as strings, and missing flags read as `false`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{de, Access, RoomType, UserType};

/// `EmployeeStatus` 2: the user is disabled (terminated).
pub const EMPLOYEE_STATUS_TERMINATED: i32 = 2;
/// `EmployeeStatus` 4: the user was invited and has not joined yet.
pub const EMPLOYEE_STATUS_PENDING: i32 = 4;
/// `EmployeeStatus` 1: an active user.
pub const EMPLOYEE_STATUS_ACTIVE: i32 = 1;
/// `EmployeeActivationStatus` 2: the invitation has not been accepted yet.
pub const ACTIVATION_STATUS_PENDING: i32 = 2;

/// A person on the portal (`EmployeeFullDto`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// The user's id (a UUID).
    #[serde(deserialize_with = "de::id_string")]
    pub id: String,
    /// The e-mail address, when the caller may see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The display name; a pending invitee's display name is their e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `EmployeeStatus`: 1 active, 2 terminated, 4 pending.
    #[serde(
        default,
        deserialize_with = "de::opt_i32",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<i32>,
    /// `EmployeeActivationStatus`: 0 not activated, 1 activated, 2 pending.
    #[serde(
        default,
        deserialize_with = "de::opt_i32",
        skip_serializing_if = "Option::is_none"
    )]
    pub activation_status: Option<i32>,
    /// A DocSpace admin (false for the owner, see `is_owner`).
    #[serde(default)]
    pub is_admin: bool,
    /// A (paid) room admin.
    #[serde(default)]
    pub is_room_admin: bool,
    /// The portal owner.
    #[serde(default)]
    pub is_owner: bool,
    /// A guest.
    #[serde(default)]
    pub is_visitor: bool,
    /// A (free) user.
    #[serde(default)]
    pub is_collaborator: bool,
}

/// Where a person stands on the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonState {
    /// Joined and enabled.
    Active,
    /// Invited, has not joined yet. Inviting again is a silent no-op.
    Pending,
    /// Terminated. Inviting again is a 400 "User disabled".
    Disabled,
}

impl PersonState {
    /// `active`, `pending` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonState::Active => "active",
            PersonState::Pending => "pending",
            PersonState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for PersonState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Person {
    /// `status` 2 → disabled; `activation_status` 2 or `status` 4 → pending;
    /// anything else → active.
    pub fn state(&self) -> PersonState {
        if self.status == Some(EMPLOYEE_STATUS_TERMINATED) {
            PersonState::Disabled
        } else if self.activation_status == Some(ACTIVATION_STATUS_PENDING)
            || self.status == Some(EMPLOYEE_STATUS_PENDING)
        {
            PersonState::Pending
        } else {
            PersonState::Active
        }
    }

    /// The person's type from the DTO flags; the owner counts as a DocSpace
    /// admin. `None` for guests and when no flag is set.
    pub fn user_type(&self) -> Option<UserType> {
        if self.is_owner || self.is_admin {
            Some(UserType::DocSpaceAdmin)
        } else if self.is_room_admin {
            Some(UserType::RoomAdmin)
        } else if self.is_collaborator {
            Some(UserType::User)
        } else {
            None
        }
    }
}

/// One entry of the invite response (`EmployeeDto`). It has **no e-mail**, and
/// the list holds every pending user the caller can see, not only the people
/// just invited: look people up by e-mail afterwards instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonSummary {
    /// The user's id (a UUID).
    #[serde(deserialize_with = "de::id_string")]
    pub id: String,
    /// The display name (the e-mail for a pending invitee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A room (the part of `FolderDtoInteger` this tool needs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// The room id (an integer on the server, kept as a string here).
    #[serde(deserialize_with = "de::id_string")]
    pub id: String,
    /// The room's title.
    #[serde(default, deserialize_with = "de::string_or_null")]
    pub title: String,
    /// The room type; `None` when absent (a plain folder) or a type this crate
    /// does not know yet.
    #[serde(default, deserialize_with = "lenient_room_type")]
    pub room_type: Option<RoomType>,
}

fn lenient_room_type<'d, D: serde::Deserializer<'d>>(d: D) -> Result<Option<RoomType>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| match serde_json::from_value::<RoomType>(v.clone()) {
        Ok(t) => Some(t),
        Err(_) => {
            tracing::warn!(room_type = %v, "unknown DocSpace room type; access levels cannot be checked");
            None
        }
    }))
}

/// One member of a room (from `FileShareDto`). Links and groups appear too, with
/// no `user_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawShare")]
pub struct RoomMember {
    /// `sharedToUser.id`.
    pub user_id: Option<String>,
    /// `sharedToUser.email`.
    pub email: Option<String>,
    /// `sharedToUser.displayName`.
    pub display_name: Option<String>,
    /// The access level, when it is one this tool sets (see [`Access`]); the
    /// owner's `ReadWrite` (1) and other server-only levels read as `None`.
    pub access: Option<Access>,
    /// The raw `FileShare` integer, whatever it is.
    pub access_raw: Option<i32>,
    /// `SubjectType`: 0 user, 1 external link, 2 group, 3 invitation link,
    /// 4 primary external link.
    pub subject_type: Option<i32>,
    /// The room's owner.
    pub is_owner: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawShare {
    #[serde(default, deserialize_with = "de::opt_file_share")]
    access: Option<i32>,
    #[serde(default)]
    shared_to_user: Option<RawUser>,
    #[serde(default, deserialize_with = "de::opt_i32")]
    subject_type: Option<i32>,
    #[serde(default)]
    is_owner: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

impl From<RawShare> for RoomMember {
    fn from(raw: RawShare) -> RoomMember {
        let user = raw.shared_to_user;
        RoomMember {
            user_id: user.as_ref().and_then(|u| u.id.clone()),
            email: user.as_ref().and_then(|u| u.email.clone()),
            display_name: user.and_then(|u| u.display_name),
            access: raw.access.and_then(|a| Access::try_from(a).ok()),
            access_raw: raw.access,
            subject_type: raw.subject_type,
            is_owner: raw.is_owner,
        }
    }
}

/// The answer to a room share (`RoomSecurityDto`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareResult {
    /// The members re-read for the request's ids (not necessarily all of them).
    #[serde(default, deserialize_with = "members_or_null")]
    pub members: Vec<RoomMember>,
    /// Problems that did not fail the request (e.g. a guest that could not be created).
    #[serde(default)]
    pub warning: Option<String>,
    /// `RoomSecurityError`: `true` for 1 / `FormRoleBlockingDeletion`, a member the
    /// request would have removed still holds a form role (send `force` to remove anyway).
    #[serde(default, rename = "error", deserialize_with = "form_role_blocking")]
    pub form_role_blocking: bool,
}

/// `RoomSecurityError` as an integer or its name; anything but 1 / the name is "no error".
fn form_role_blocking<'d, D: serde::Deserializer<'d>>(d: D) -> Result<bool, D::Error> {
    Ok(
        match Option::<serde_json::Value>::deserialize(d)?.unwrap_or_default() {
            serde_json::Value::Number(n) => n.as_i64() == Some(1),
            serde_json::Value::String(s) => s == "FormRoleBlockingDeletion" || s == "1",
            _ => false,
        },
    )
}

fn members_or_null<'d, D: serde::Deserializer<'d>>(d: D) -> Result<Vec<RoomMember>, D::Error> {
    Ok(Option::<Vec<RoomMember>>::deserialize(d)?.unwrap_or_default())
}

/// Filters for [`Client::people`](crate::Client::people) (`GET /people/filter`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PeopleFilter {
    /// `activationStatus`: 0 not activated, 1 activated, 2 pending.
    pub activation_status: Option<i32>,
    /// `employeeStatus`: 1 active, 2 terminated, 4 pending, 5 default, 7 all.
    pub employee_status: Option<i32>,
}

impl PeopleFilter {
    /// Everyone the caller may list (no filter).
    pub fn all() -> PeopleFilter {
        PeopleFilter::default()
    }

    /// Invitees who have not joined yet (`activationStatus=2`).
    pub fn pending() -> PeopleFilter {
        PeopleFilter {
            activation_status: Some(ACTIVATION_STATUS_PENDING),
            employee_status: None,
        }
    }

    /// Active users (`employeeStatus=1`).
    pub fn active() -> PeopleFilter {
        PeopleFilter {
            activation_status: None,
            employee_status: Some(EMPLOYEE_STATUS_ACTIVE),
        }
    }
}

/// One entry of `POST /people/invite`: `{"email": …, "type": <int>}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Invitation {
    /// The address to invite.
    pub email: String,
    /// The type to invite as, sent as an integer.
    #[serde(rename = "type")]
    pub user_type: UserType,
}

impl Invitation {
    /// An invitation for `email` as `user_type`.
    pub fn new(email: impl Into<String>, user_type: UserType) -> Invitation {
        Invitation {
            email: email.into(),
            user_type,
        }
    }
}

/// One entry of `PUT /files/rooms/{id}/share`: `{"id": <uuid>, "access": <int>}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoomShare {
    /// The user's id (a UUID), from a lookup by e-mail.
    #[serde(rename = "id")]
    pub user_id: String,
    /// The access level, sent as an integer.
    pub access: Access,
}

impl RoomShare {
    /// A share of the room with `user_id` at `access`.
    pub fn new(user_id: impl Into<String>, access: Access) -> RoomShare {
        RoomShare {
            user_id: user_id.into(),
            access,
        }
    }
}

/// Counters since the client was built, shared by its clones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// 429 answers met.
    pub rate_limited: u64,
    /// Attempts repeated after a retryable failure.
    pub retries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{de::decode, Error};

    fn person(fixture: &str) -> Person {
        decode::<Person>(fixture.as_bytes()).unwrap().0
    }

    #[test]
    fn active_person_decodes() {
        let p = person(include_str!("../tests/fixtures/person_active.json"));
        assert_eq!(p.id, "4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f");
        assert_eq!(p.email.as_deref(), Some("ada@example.com"));
        assert_eq!(p.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!((p.status, p.activation_status), (Some(1), Some(1)));
        assert_eq!(p.state(), PersonState::Active);
        assert_eq!(p.user_type(), Some(UserType::User));
    }

    #[test]
    fn pending_person_decodes_numbers_sent_as_strings() {
        let p = person(include_str!("../tests/fixtures/person_pending.json"));
        assert_eq!((p.status, p.activation_status), (Some(4), Some(2)));
        assert_eq!(p.state(), PersonState::Pending);
        assert_eq!(p.user_type(), Some(UserType::RoomAdmin));
        assert_eq!(p.display_name.as_deref(), Some("grace@example.com"));
    }

    #[test]
    fn terminated_person_is_disabled() {
        let p = person(include_str!("../tests/fixtures/person_terminated.json"));
        assert_eq!(p.state(), PersonState::Disabled);
    }

    #[test]
    fn state_rules() {
        let with = |status, activation_status| Person {
            status,
            activation_status,
            ..Person::default()
        };
        assert_eq!(with(Some(2), Some(2)).state(), PersonState::Disabled);
        assert_eq!(with(Some(1), Some(2)).state(), PersonState::Pending);
        assert_eq!(with(Some(4), Some(0)).state(), PersonState::Pending);
        assert_eq!(with(Some(1), Some(1)).state(), PersonState::Active);
        assert_eq!(with(None, None).state(), PersonState::Active);
    }

    #[test]
    fn user_type_from_flags() {
        let owner = Person {
            is_owner: true,
            ..Person::default()
        };
        assert_eq!(owner.user_type(), Some(UserType::DocSpaceAdmin));
        let admin = Person {
            is_admin: true,
            ..Person::default()
        };
        assert_eq!(admin.user_type(), Some(UserType::DocSpaceAdmin));
        let guest = Person {
            is_visitor: true,
            ..Person::default()
        };
        assert_eq!(guest.user_type(), None);
        assert_eq!(Person::default().user_type(), None);
    }

    #[test]
    fn invite_response_has_no_emails() {
        let (people, _) =
            decode::<Vec<PersonSummary>>(include_bytes!("../tests/fixtures/invite_response.json"))
                .unwrap();
        assert_eq!(
            people,
            vec![
                PersonSummary {
                    id: "7d6e5f40-3a2b-4c1d-9e8f-112233445566".into(),
                    display_name: Some("grace@example.com".into()),
                },
                PersonSummary {
                    id: "99887766-5544-4332-a110-ffeeddccbbaa".into(),
                    display_name: Some("someone.else@example.com".into()),
                },
            ]
        );
    }

    #[test]
    fn room_decodes_with_integer_id() {
        let (room, _) = decode::<Room>(include_bytes!("../tests/fixtures/room.json")).unwrap();
        assert_eq!(
            room,
            Room {
                id: "123456".into(),
                title: "Project Apollo".into(),
                room_type: Some(RoomType::Custom),
            }
        );
        let (room, _) =
            decode::<Room>(br#"{"response":{"id":"7","title":"X","roomType":42}}"#).unwrap();
        assert_eq!(room.room_type, None);
    }

    #[test]
    fn room_members_decode_with_total() {
        let (members, total) =
            decode::<Vec<RoomMember>>(include_bytes!("../tests/fixtures/room_members.json"))
                .unwrap();
        assert_eq!(total, Some(4));
        assert_eq!(members.len(), 4);
        assert_eq!(
            members[0],
            RoomMember {
                user_id: Some("66faa6e4-f133-11ea-b126-00ffeec8b4ef".into()),
                email: Some("owner@example.com".into()),
                display_name: Some("Owner".into()),
                access: Some(Access::RoomManager),
                access_raw: Some(9),
                subject_type: Some(0),
                is_owner: true,
            }
        );
        assert_eq!(members[1].access, Some(Access::Editing));
        assert_eq!(members[1].email.as_deref(), Some("ada@example.com"));
        assert_eq!(members[2].user_id, None);
        assert_eq!(members[2].subject_type, Some(4));
        assert_eq!((members[3].access, members[3].access_raw), (None, Some(1)));
    }

    #[test]
    fn share_response_keeps_the_warning() {
        let (result, _) =
            decode::<ShareResult>(include_bytes!("../tests/fixtures/share_response.json")).unwrap();
        assert_eq!(result.members.len(), 1);
        assert_eq!(result.members[0].access, Some(Access::Editing));
        assert_eq!(
            result.warning.as_deref(),
            Some("Could not invite guest@example.com")
        );
    }

    #[test]
    fn decode_errors_name_the_json_path() {
        let err = decode::<Vec<PersonSummary>>(
            br#"{"response":[{"id":"a"},{"id":"b","displayName":42}]}"#,
        )
        .unwrap_err();
        match err {
            Error::Decode { path, .. } => assert_eq!(path, "response[1].displayName"),
            other => panic!("{other:?}"),
        }
        let err = decode::<Person>(b"<html>oops</html>").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        let err = decode::<Person>(br#"{"status":0}"#).unwrap_err();
        assert_eq!(
            err,
            Error::Decode {
                path: "response".into(),
                message: "missing or null".into()
            }
        );
    }

    #[test]
    fn requests_send_integers() {
        let inv = Invitation::new("ada@example.com", UserType::User);
        assert_eq!(
            serde_json::to_value(&inv).unwrap(),
            serde_json::json!({"email": "ada@example.com", "type": 4})
        );
        let inv = Invitation::new("grace@example.com", UserType::RoomAdmin);
        assert_eq!(serde_json::to_value(&inv).unwrap()["type"], 1);
        let share = RoomShare::new("4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", Access::Editing);
        assert_eq!(
            serde_json::to_value(&share).unwrap(),
            serde_json::json!({"id": "4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", "access": 10})
        );
        let share = RoomShare::new("4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", Access::RoomManager);
        assert_eq!(serde_json::to_value(&share).unwrap()["access"], 9);
    }
}
