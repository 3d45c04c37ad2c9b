//! [`Gid`]: an Asana global identifier, validated once at the boundary.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// The longest gid accepted. Asana gids are decimal strings (16 digits today); 32 leaves room
/// to grow while refusing obviously wrong input.
const MAX_LEN: usize = 32;

/// An Asana gid: 1 to 32 ASCII digits.
///
/// Asana sends ids as strings; this type is used for the ids a caller *passes in* (task,
/// project, workspace, webhook), so a typo is refused before any request is made. Response
/// models keep gids as plain `String`s so an unusual id never makes decoding fail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gid(String);

impl Gid {
    /// Validate `s` as a gid. Anything but 1–32 ASCII digits is [`Error::InvalidInput`],
    /// with a message naming the bad value.
    pub fn parse(s: &str) -> Result<Gid, Error> {
        if !s.is_empty() && s.len() <= MAX_LEN && s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Gid(s.to_owned()));
        }
        // Keep the message short even for a pasted paragraph.
        let shown: String = s.chars().take(48).collect();
        let ellipsis = if shown.len() < s.len() { "…" } else { "" };
        let why = if s.is_empty() {
            "it is empty".to_owned()
        } else if s.len() > MAX_LEN && s.bytes().all(|b| b.is_ascii_digit()) {
            format!("it has {} digits, more than {MAX_LEN}", s.len())
        } else {
            "it must contain only the digits 0-9".to_owned()
        };
        Err(Error::InvalidInput(format!(
            "invalid Asana gid {:?}: {why} (a gid is 1 to {MAX_LEN} digits, e.g. 1201234567890123)",
            format!("{shown}{ellipsis}")
        )))
    }

    /// The gid as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The gid as an owned `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Gid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Gid, Error> {
        Gid::parse(s)
    }
}

impl TryFrom<String> for Gid {
    type Error = Error;

    fn try_from(s: String) -> Result<Gid, Error> {
        Gid::parse(&s)
    }
}

impl TryFrom<&str> for Gid {
    type Error = Error;

    fn try_from(s: &str) -> Result<Gid, Error> {
        Gid::parse(s)
    }
}

impl From<Gid> for String {
    fn from(g: Gid) -> String {
        g.0
    }
}

impl AsRef<str> for Gid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Gid {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Gid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Gid {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl Serialize for Gid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Gid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Gid, D::Error> {
        let s = String::deserialize(d)?;
        Gid::parse(&s).map_err(|e| match e {
            Error::InvalidInput(m) => serde::de::Error::custom(m),
            other => serde::de::Error::custom(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_up_to_32() {
        for ok in ["1", "0", "1201234567890123", &"9".repeat(32)] {
            let g = Gid::parse(ok).unwrap();
            assert_eq!(g.as_str(), ok);
            assert_eq!(g.to_string(), ok);
        }
    }

    #[test]
    fn refuses_everything_else_and_names_the_value() {
        for bad in [
            "",
            " 12",
            "12 ",
            "12a",
            "-1",
            "+1",
            "1.0",
            "１２",
            "me",
            "a@b.c",
            &"1".repeat(33),
        ] {
            match Gid::parse(bad) {
                Err(Error::InvalidInput(m)) => {
                    assert!(m.contains(&format!("{bad:?}")), "{m}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn long_input_is_truncated_in_the_message() {
        let long = "x".repeat(10_000);
        let Err(Error::InvalidInput(m)) = Gid::parse(&long) else {
            panic!()
        };
        assert!(m.len() < 300, "{m}");
    }

    #[test]
    fn serde_round_trip_validates() {
        let g: Gid = serde_json::from_str("\"1201\"").unwrap();
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"1201\"");
        let e = serde_json::from_str::<Gid>("\"12x\"").unwrap_err();
        assert!(e.to_string().contains("12x"), "{e}");
    }
}
