//! Decoding helpers: the success envelope and tolerant readers for values
//! DocSpace may send as numbers or as strings.

use serde::{de::DeserializeOwned, Deserialize, Deserializer};
use serde_json::Value;

use crate::Error;

/// The success envelope: `{"response": …, "count": …, "total": …, "status": 0, …}`.
#[derive(Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) response: Option<T>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub(crate) total: Option<u64>,
}

/// Decodes a 2xx body, naming the JSON path of any mismatch.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<(T, Option<u64>), Error> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let envelope: Envelope<T> = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("not JSON ({inner})")
        } else {
            inner.to_string()
        };
        Error::Decode { path, message }
    })?;
    match envelope.response {
        Some(response) => Ok((response, envelope.total)),
        None => Err(Error::Decode {
            path: "response".into(),
            message: "missing or null".into(),
        }),
    }
}

/// An integer that may arrive as a JSON number or a numeric string; absent or
/// `null` is `None`.
pub(crate) fn opt_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let Some(v) = v else { return Ok(None) };
    let n = number(&v)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {v}")))?;
    i32::try_from(n)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
}

/// Like [`opt_i32`], for counts.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let Some(v) = v else { return Ok(None) };
    let n = number(&v)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {v}")))?;
    u64::try_from(n)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
}

/// A `FileShare` value: an integer, a numeric string, or a server-side name.
pub(crate) fn opt_file_share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let Some(v) = v else { return Ok(None) };
    if let Some(n) = number(&v) {
        return i32::try_from(n)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{n} is out of range")));
    }
    v.as_str()
        .and_then(crate::types::file_share_code)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an access level, got {v}")))
}

/// An id that may be a number (room ids) or a string (user ids).
pub(crate) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id (string or number), got {other}"
        ))),
    }
}

/// A string that may be `null`; `null` reads as the empty string.
pub(crate) fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
