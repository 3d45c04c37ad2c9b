//! The DocSpace enums this tool sends: user types, room access levels, room types.
//!
//! DocSpace changed the *names* of these values in v3.0 (`User` meant 2 before and
//! means 4 now) and maps an unknown access name to 0 = "remove the member", so they
//! are always sent as **integers**. Their [`FromStr`] implementations accept the
//! names used in the config file and refuse, with the reason, the values that
//! would do something else than intended.

use std::{fmt, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Lowercase and drop `-`, `_` and spaces, so `Room-Admin`, `room_admin` and
/// `roomadmin` compare equal.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

// ---------------------------------------------------------------------------
// UserType
// ---------------------------------------------------------------------------

/// The type a person is invited as (`EmployeeType`). Serializes as its integer.
///
/// `Guest` (2) and `All` (0) exist on the server but cannot be built here: guests
/// cannot be invited to the portal, and `All` is a filter value that, on current
/// servers, creates a paid room admin.
///
/// It deliberately does not implement `Ord`: the wire codes (1, 3, 4) are not ordered by
/// privilege. Compare with [`UserType::rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum UserType {
    /// Paid "Room admin". Inviting one needs a DocSpace admin's key and a free seat.
    RoomAdmin = 1,
    /// "DocSpace admin". Only the portal owner may invite one.
    DocSpaceAdmin = 3,
    /// Free internal user: the default.
    #[default]
    User = 4,
}

impl UserType {
    /// Every value, in config-name order.
    pub const ALL: [UserType; 3] = [UserType::User, UserType::RoomAdmin, UserType::DocSpaceAdmin];

    /// The integer DocSpace expects.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// How much the type lets a person do, to pick the strongest of several asks
    /// (User < RoomAdmin < DocSpaceAdmin). The only ordering of user types there is.
    pub fn rank(self) -> u8 {
        match self {
            UserType::User => 1,
            UserType::RoomAdmin => 2,
            UserType::DocSpaceAdmin => 3,
        }
    }

    /// The stronger of two types by [`UserType::rank`].
    pub fn strongest(self, other: UserType) -> UserType {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The name used in config files and output (`user`, `room-admin`, `docspace-admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::User => "user",
            UserType::RoomAdmin => "room-admin",
            UserType::DocSpaceAdmin => "docspace-admin",
        }
    }

    fn valid_names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let valid = Self::valid_names();
        match normalise(s).as_str() {
            "user" => Ok(UserType::User),
            "roomadmin" => Ok(UserType::RoomAdmin),
            "docspaceadmin" => Ok(UserType::DocSpaceAdmin),
            "guest" => Err(Error::InvalidInput(format!(
                "user type `{s}` refused: guests cannot be invited to the portal (DocSpace \
                 answers 403); share a room by email instead. Valid user types: {valid}"
            ))),
            "all" => Err(Error::InvalidInput(format!(
                "user type `{s}` refused: `All` is a filter value: on current servers it creates \
                 a paid room admin. Valid user types: {valid}"
            ))),
            _ => Err(Error::InvalidInput(format!(
                "unknown user type `{s}`. Valid user types: {valid}"
            ))),
        }
    }
}

impl TryFrom<i32> for UserType {
    type Error = Error;

    fn try_from(value: i32) -> Result<Self, Error> {
        match value {
            1 => Ok(UserType::RoomAdmin),
            3 => Ok(UserType::DocSpaceAdmin),
            4 => Ok(UserType::User),
            2 => "guest".parse(),
            0 => "all".parse(),
            other => Err(Error::InvalidInput(format!(
                "unknown user type {other}. Valid user types: 1 (room-admin), 3 (docspace-admin), \
                 4 (user)"
            ))),
        }
    }
}

impl Serialize for UserType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.as_i32())
    }
}

impl<'de> Deserialize<'de> for UserType {
    /// Accepts the integer (1, 3, 4) or a config name (`"room-admin"`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CodeOrName::<UserType>::new("a user type"))
    }
}

// ---------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------

/// A room access level (`FileShare`). Serializes as its integer.
///
/// `None` (0) is deliberately absent: it *removes* the member from the room.
///
/// No `Ord`: `FileShare` integers are not ordered by power (RoomManager = 9 < Editing = 10).
/// Compare with [`Access::rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Access {
    /// Viewer.
    Read = 2,
    /// Reviewer.
    Review = 5,
    /// Commenter.
    Comment = 6,
    /// Form filler.
    FillForms = 7,
    /// Room manager (called `RoomAdmin` before v3.0). Only for DocSpace admins and room admins.
    RoomManager = 9,
    /// Editor.
    Editing = 10,
    /// Content creator (called `PowerUser` before v3.0).
    ContentCreator = 11,
}

impl Access {
    /// Every value, in config-name order.
    pub const ALL: [Access; 7] = [
        Access::Read,
        Access::Review,
        Access::Comment,
        Access::FillForms,
        Access::RoomManager,
        Access::Editing,
        Access::ContentCreator,
    ];

    /// The integer DocSpace expects (`FileShare`).
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// How much a level lets someone do, to compare levels: the only ordering of access
    /// levels there is (never the `FileShare` integers).
    pub fn rank(self) -> u8 {
        match self {
            Access::RoomManager => 6,
            Access::ContentCreator => 5,
            Access::Editing => 4,
            Access::Review => 3,
            Access::Comment | Access::FillForms => 2,
            Access::Read => 1,
        }
    }

    /// Whether a member at `self` already has at least `wanted`: we never downgrade.
    pub fn covers(self, wanted: Access) -> bool {
        self == wanted || self.rank() > wanted.rank()
    }

    /// The stronger of two levels by [`Access::rank`].
    pub fn strongest(self, other: Access) -> Access {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The name used in config files and output (`read`, `fill-forms`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Review => "review",
            Access::Comment => "comment",
            Access::FillForms => "fill-forms",
            Access::RoomManager => "room-manager",
            Access::Editing => "editing",
            Access::ContentCreator => "content-creator",
        }
    }

    /// Whether a person of type `user_type` may hold this level: `RoomManager` is
    /// only for DocSpace admins and room admins (DocSpace answers 403 otherwise).
    pub fn allowed_for(self, user_type: UserType) -> bool {
        match self {
            Access::RoomManager => {
                matches!(user_type, UserType::DocSpaceAdmin | UserType::RoomAdmin)
            }
            _ => true,
        }
    }

    fn valid_names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let valid = Self::valid_names();
        match normalise(s).as_str() {
            "read" => Ok(Access::Read),
            "review" => Ok(Access::Review),
            "comment" => Ok(Access::Comment),
            "fillforms" => Ok(Access::FillForms),
            "roommanager" => Ok(Access::RoomManager),
            "editing" => Ok(Access::Editing),
            "contentcreator" => Ok(Access::ContentCreator),
            "none" => Err(Error::InvalidInput(format!(
                "access level `{s}` refused: `none` REMOVES the member from the room. Valid \
                 access levels: {valid}"
            ))),
            _ => Err(Error::InvalidInput(format!(
                "unknown access level `{s}` (DocSpace would read it as 0 = remove the member). \
                 Valid access levels: {valid}"
            ))),
        }
    }
}

impl TryFrom<i32> for Access {
    type Error = Error;

    fn try_from(value: i32) -> Result<Self, Error> {
        Access::ALL
            .into_iter()
            .find(|a| a.as_i32() == value)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "access level {value} ({}) is not one this tool sets",
                    file_share_name(value).unwrap_or("unknown")
                ))
            })
    }
}

impl Serialize for Access {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.as_i32())
    }
}

impl<'de> Deserialize<'de> for Access {
    /// Accepts the `FileShare` integer or a config name (`"editing"`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CodeOrName::<Access>::new("a room access level"))
    }
}

/// The server's name for every `FileShare` integer, current and pre-v3.0.
pub(crate) fn file_share_name(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "None",
        1 => "ReadWrite",
        2 => "Read",
        3 => "Restrict",
        4 => "Varies",
        5 => "Review",
        6 => "Comment",
        7 => "FillForms",
        8 => "CustomFilter",
        9 => "RoomManager",
        10 => "Editing",
        11 => "ContentCreator",
        _ => return None,
    })
}

/// The `FileShare` integer for a server-side name (as a tolerant reader of
/// listings; requests always send integers).
pub(crate) fn file_share_code(name: &str) -> Option<i32> {
    let name = normalise(name);
    (0..=11)
        .find(|&c| file_share_name(c).is_some_and(|n| normalise(n) == name))
        .or(match name.as_str() {
            "roomadmin" => Some(9),
            "poweruser" => Some(11),
            _ => None,
        })
}

// ---------------------------------------------------------------------------
// RoomType
// ---------------------------------------------------------------------------

/// The kind of a room (`RoomType`), which decides the access levels it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RoomType {
    /// Form filling room.
    FillingForms = 1,
    /// Collaboration room (`EditingRoom`).
    Editing = 2,
    /// Custom room.
    Custom = 5,
    /// Public room.
    Public = 6,
    /// Virtual data room.
    VirtualData = 8,
    /// AI room.
    Ai = 9,
}

impl RoomType {
    /// Every value.
    pub const ALL: [RoomType; 6] = [
        RoomType::FillingForms,
        RoomType::Editing,
        RoomType::Custom,
        RoomType::Public,
        RoomType::VirtualData,
        RoomType::Ai,
    ];

    /// The integer DocSpace uses.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The server's name (`CustomRoom`, …).
    pub fn server_name(self) -> &'static str {
        match self {
            RoomType::FillingForms => "FillingFormsRoom",
            RoomType::Editing => "EditingRoom",
            RoomType::Custom => "CustomRoom",
            RoomType::Public => "PublicRoom",
            RoomType::VirtualData => "VirtualDataRoom",
            RoomType::Ai => "AiRoom",
        }
    }

    /// Whether a user may be given `access` in a room of this type
    /// (`FileSecurity.AvailableRoomAccesses` for subject User; DocSpace answers
    /// 403 otherwise).
    pub fn allows(self, access: Access) -> bool {
        use Access::*;
        let allowed: &[Access] = match self {
            RoomType::Custom => &[RoomManager, ContentCreator, Editing, Review, Comment, Read],
            RoomType::Public => &[RoomManager, ContentCreator],
            RoomType::FillingForms => &[RoomManager, ContentCreator, FillForms],
            RoomType::Editing => &[RoomManager, ContentCreator, Editing, Read],
            RoomType::VirtualData => &[RoomManager, ContentCreator, Editing, Read, FillForms],
            RoomType::Ai => &[RoomManager, ContentCreator, Read],
        };
        allowed.contains(&access)
    }

    /// The access levels a room of this type offers, in [`Access::ALL`] order.
    pub fn allowed_accesses(self) -> Vec<Access> {
        Access::ALL
            .into_iter()
            .filter(|a| self.allows(*a))
            .collect()
    }
}

impl fmt::Display for RoomType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.server_name())
    }
}

impl TryFrom<i32> for RoomType {
    type Error = Error;

    fn try_from(value: i32) -> Result<Self, Error> {
        RoomType::ALL
            .into_iter()
            .find(|t| t.as_i32() == value)
            .ok_or_else(|| Error::InvalidInput(format!("unknown room type {value}")))
    }
}

impl FromStr for RoomType {
    type Err = Error;

    /// Accepts the server's names (`CustomRoom`), with or without the `Room` suffix.
    fn from_str(s: &str) -> Result<Self, Error> {
        let n = normalise(s);
        let n = n.strip_suffix("room").unwrap_or(&n);
        RoomType::ALL
            .into_iter()
            .find(|t| {
                let name = normalise(t.server_name());
                name.strip_suffix("room") == Some(n)
            })
            .ok_or_else(|| Error::InvalidInput(format!("unknown room type `{s}`")))
    }
}

impl Serialize for RoomType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.as_i32())
    }
}

impl<'de> Deserialize<'de> for RoomType {
    /// Accepts the integer, a numeric string, or the server's name.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CodeOrName::<RoomType>::new("a room type"))
    }
}

// ---------------------------------------------------------------------------
// Shared visitor: an integer, a numeric string, or a name.
// ---------------------------------------------------------------------------

struct CodeOrName<T> {
    expecting: &'static str,
    _marker: std::marker::PhantomData<T>,
}

impl<T> CodeOrName<T> {
    fn new(expecting: &'static str) -> Self {
        CodeOrName {
            expecting,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<T> de::Visitor<'_> for CodeOrName<T>
where
    T: TryFrom<i32, Error = Error> + FromStr<Err = Error>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (an integer or a name)", self.expecting)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        let v = i32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))?;
        T::try_from(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        let v = i32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))?;
        T::try_from(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match v.trim().parse::<i32>() {
            Ok(code) => T::try_from(code).map_err(E::custom),
            Err(_) => v.parse().map_err(E::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T: FromStr<Err = Error> + fmt::Debug>(s: &str) -> String {
        match s.parse::<T>() {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("{s:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn user_type_names_parse() {
        for (s, t) in [
            ("user", UserType::User),
            ("User", UserType::User),
            ("room-admin", UserType::RoomAdmin),
            ("room_admin", UserType::RoomAdmin),
            ("roomadmin", UserType::RoomAdmin),
            ("RoomAdmin", UserType::RoomAdmin),
            ("docspace-admin", UserType::DocSpaceAdmin),
            ("DOCSPACE_ADMIN", UserType::DocSpaceAdmin),
            ("DocSpaceAdmin", UserType::DocSpaceAdmin),
        ] {
            assert_eq!(s.parse::<UserType>().unwrap(), t, "{s}");
        }
        assert_eq!(UserType::default(), UserType::User);
        for t in UserType::ALL {
            assert_eq!(t.to_string().parse::<UserType>().unwrap(), t);
        }
    }

    #[test]
    fn user_type_refusals_say_why() {
        let guest = refusal::<UserType>("guest");
        assert!(
            guest.contains(
                "guests cannot be invited to the portal (DocSpace answers 403); share a room by \
                 email instead"
            ),
            "{guest}"
        );
        assert!(
            guest.contains("user, room-admin, docspace-admin"),
            "{guest}"
        );

        let all = refusal::<UserType>("All");
        assert!(
            all.contains(
                "`All` is a filter value: on current servers it creates a paid room admin"
            ),
            "{all}"
        );
        assert!(all.contains("user, room-admin, docspace-admin"), "{all}");

        for unknown in ["admin", "collaborator", "", "4"] {
            let m = refusal::<UserType>(unknown);
            assert!(m.contains("unknown user type"), "{m}");
            assert!(m.contains("user, room-admin, docspace-admin"), "{m}");
        }
    }

    #[test]
    fn access_names_parse() {
        for (s, a) in [
            ("read", Access::Read),
            ("review", Access::Review),
            ("comment", Access::Comment),
            ("fill-forms", Access::FillForms),
            ("fill_forms", Access::FillForms),
            ("fillforms", Access::FillForms),
            ("room-manager", Access::RoomManager),
            ("RoomManager", Access::RoomManager),
            ("editing", Access::Editing),
            ("Editing", Access::Editing),
            ("content-creator", Access::ContentCreator),
            ("content_creator", Access::ContentCreator),
            ("contentcreator", Access::ContentCreator),
        ] {
            assert_eq!(s.parse::<Access>().unwrap(), a, "{s}");
        }
        for a in Access::ALL {
            assert_eq!(a.to_string().parse::<Access>().unwrap(), a);
        }
    }

    #[test]
    fn access_refusals_say_why() {
        let none = refusal::<Access>("none");
        assert!(none.contains("REMOVES the member"), "{none}");
        assert!(
            none.contains(
                "read, review, comment, fill-forms, room-manager, editing, content-creator"
            ),
            "{none}"
        );
        for unknown in ["edit", "write", "readwrite", "room-admin", "0", ""] {
            let m = refusal::<Access>(unknown);
            assert!(m.contains("unknown access level"), "{m}");
            assert!(m.contains("0 = remove the member"), "{m}");
            assert!(m.contains("read, review, comment, fill-forms"), "{m}");
        }
    }

    #[test]
    fn integers_are_serialized() {
        assert_eq!(serde_json::to_string(&UserType::User).unwrap(), "4");
        assert_eq!(serde_json::to_string(&UserType::RoomAdmin).unwrap(), "1");
        assert_eq!(
            serde_json::to_string(&UserType::DocSpaceAdmin).unwrap(),
            "3"
        );
        let codes: Vec<i32> = Access::ALL.map(Access::as_i32).to_vec();
        assert_eq!(codes, [2, 5, 6, 7, 9, 10, 11]);
        for a in Access::ALL {
            assert_eq!(serde_json::to_string(&a).unwrap(), a.as_i32().to_string());
        }
    }

    #[test]
    fn deserialize_from_integer_or_name() {
        let a: Access = serde_json::from_str("10").unwrap();
        assert_eq!(a, Access::Editing);
        let a: Access = serde_json::from_str("\"9\"").unwrap();
        assert_eq!(a, Access::RoomManager);
        let a: Access = serde_json::from_str("\"fill-forms\"").unwrap();
        assert_eq!(a, Access::FillForms);
        assert!(serde_json::from_str::<Access>("0").is_err());
        assert!(serde_json::from_str::<Access>("\"none\"").is_err());

        let t: UserType = serde_json::from_str("1").unwrap();
        assert_eq!(t, UserType::RoomAdmin);
        let t: UserType = serde_json::from_str("\"room-admin\"").unwrap();
        assert_eq!(t, UserType::RoomAdmin);
        let guest = serde_json::from_str::<UserType>("2").unwrap_err();
        assert!(
            guest.to_string().contains("guests cannot be invited"),
            "{guest}"
        );

        let r: RoomType = serde_json::from_str("5").unwrap();
        assert_eq!(r, RoomType::Custom);
        let r: RoomType = serde_json::from_str("\"EditingRoom\"").unwrap();
        assert_eq!(r, RoomType::Editing);
        assert!(serde_json::from_str::<RoomType>("3").is_err());
    }

    #[test]
    fn room_type_allows_matches_available_room_accesses() {
        use Access::*;
        let table: [(RoomType, &[Access]); 6] = [
            (
                RoomType::Custom,
                &[Read, Review, Comment, RoomManager, Editing, ContentCreator],
            ),
            (RoomType::Public, &[RoomManager, ContentCreator]),
            (
                RoomType::FillingForms,
                &[FillForms, RoomManager, ContentCreator],
            ),
            (
                RoomType::Editing,
                &[Read, RoomManager, Editing, ContentCreator],
            ),
            (
                RoomType::VirtualData,
                &[Read, FillForms, RoomManager, Editing, ContentCreator],
            ),
            (RoomType::Ai, &[Read, RoomManager, ContentCreator]),
        ];
        for (room, allowed) in table {
            for access in Access::ALL {
                assert_eq!(
                    room.allows(access),
                    allowed.contains(&access),
                    "{room} / {access}"
                );
            }
            assert_eq!(room.allowed_accesses(), allowed.to_vec(), "{room}");
        }
    }

    #[test]
    fn room_manager_only_for_admins() {
        assert!(Access::RoomManager.allowed_for(UserType::DocSpaceAdmin));
        assert!(Access::RoomManager.allowed_for(UserType::RoomAdmin));
        assert!(!Access::RoomManager.allowed_for(UserType::User));
        for a in Access::ALL
            .into_iter()
            .filter(|a| *a != Access::RoomManager)
        {
            for t in UserType::ALL {
                assert!(a.allowed_for(t), "{a} / {t}");
            }
        }
    }

    #[test]
    fn file_share_names_round_trip() {
        assert_eq!(file_share_code("ReadWrite"), Some(1));
        assert_eq!(file_share_code("RoomAdmin"), Some(9));
        assert_eq!(file_share_code("PowerUser"), Some(11));
        assert_eq!(file_share_code("nonsense"), None);
        for c in 0..=11 {
            assert_eq!(file_share_code(file_share_name(c).unwrap()), Some(c));
        }
    }
}
