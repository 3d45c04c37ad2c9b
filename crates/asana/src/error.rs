//! [`Error`]: everything a call can fail with, plus the decoding of Asana's error envelope.
//!
//! No variant ever holds the token, a request header or a URL's query string.

use serde::Deserialize;

/// An error from the Asana client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Asana (or a proxy in front of it) answered with a non-2xx status, after any retries.
    ///
    /// `message` joins the `errors[].message` of Asana's envelope (with the `phrase` of a
    /// 500, which Asana support can look up), or is a short excerpt of a non-JSON body.
    #[error("Asana API error {status}: {message}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// What Asana said went wrong.
        message: String,
        /// Asana's `help` text, when it sent one.
        help: Option<String>,
    },
    /// `GET /events` answered 412: the sync token is missing, invalid or too old.
    /// Re-read the full state, then continue with `sync`.
    #[error(
        "Asana events sync token is missing or expired; resync, then continue from the new token"
    )]
    SyncTokenExpired {
        /// The fresh sync token Asana sent with the 412.
        sync: String,
    },
    /// The request could not be completed (connection refused or dropped, timeout, TLS),
    /// after any retries. The message names the method and path, never the query or token.
    #[error("could not reach Asana: {0}")]
    Transport(String),
    /// A 2xx response whose body did not have the expected shape.
    #[error("unexpected Asana response at {path}: {message}")]
    Decode {
        /// The JSON path of the value that failed to decode, e.g. `data.assignee.gid`.
        path: String,
        /// What was wrong with it.
        message: String,
    },
    /// The caller passed something that cannot be sent (bad gid, empty user, bad URL…).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// The HTTP status behind this error, if there was one (412 for
    /// [`Error::SyncTokenExpired`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::SyncTokenExpired { .. } => Some(412),
            _ => None,
        }
    }

    /// `true` for a 404: the object does not exist or is not visible to this token.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// `true` when trying again later may succeed: 429, 5xx and transport failures.
    /// (The client has already retried these as far as its configuration allows.)
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429 || (500..=599).contains(status),
            Error::Transport(_) => true,
            _ => false,
        }
    }

    /// Build an [`Error::Api`] from a non-2xx response body.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Error {
        let (message, help) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b)
                if b.errors
                    .iter()
                    .any(|e| e.message.is_some() || e.phrase.is_some()) =>
            {
                b.describe()
            }
            _ => (excerpt(status, body), None),
        };
        Error::Api {
            status,
            message,
            help,
        }
    }
}

/// Asana's error envelope: `{"errors":[{"message","help","phrase"}]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    message: Option<String>,
    help: Option<String>,
    phrase: Option<String>,
}

impl ErrorBody {
    fn describe(self) -> (String, Option<String>) {
        let mut messages = Vec::new();
        let mut helps: Vec<String> = Vec::new();
        for e in self.errors {
            let mut m = e.message.unwrap_or_default().trim().to_owned();
            if let Some(p) = e.phrase.filter(|p| !p.trim().is_empty()) {
                if m.is_empty() {
                    m = format!("error phrase: {}", p.trim());
                } else {
                    m = format!("{m} (error phrase: {})", p.trim());
                }
            }
            if !m.is_empty() && !messages.contains(&m) {
                messages.push(m);
            }
            if let Some(h) = e
                .help
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
            {
                if !helps.contains(&h) {
                    helps.push(h);
                }
            }
        }
        let help = (!helps.is_empty()).then(|| helps.join("; "));
        (messages.join("; "), help)
    }
}

/// The longest excerpt of a non-JSON error body kept in a message.
const EXCERPT_CHARS: usize = 200;

/// A short, single-line excerpt of a body that is not Asana's envelope (a proxy's HTML page,
/// plain text, nothing at all). Markup is dropped and whitespace collapsed.
fn excerpt(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut plain = String::with_capacity(text.len().min(4096));
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            _ => plain.push(c),
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.is_empty() {
        return match reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
        {
            Some(reason) => format!("{reason} (empty or non-JSON body)"),
            None => "empty or non-JSON body".to_owned(),
        };
    }
    let mut out: String = joined.chars().take(EXCERPT_CHARS).collect();
    if out.len() < joined.len() {
        out.push('…');
    }
    out
}

/// The fresh `sync` token Asana sends with a 412 from `GET /events`.
#[derive(Debug, Deserialize)]
pub(crate) struct SyncBody {
    pub(crate) sync: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_with_help() {
        let body = br#"{"errors":[{"message":"project: Missing input","help":"For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors"}]}"#;
        let e = Error::from_response(400, body);
        assert_eq!(
            e,
            Error::Api {
                status: 400,
                message: "project: Missing input".into(),
                help: Some("For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors".into()),
            }
        );
        assert_eq!(e.status(), Some(400));
        assert!(!e.is_retryable());
    }

    #[test]
    fn several_messages_are_joined() {
        let body = br#"{"errors":[{"message":"a: Missing input"},{"message":"b: Not a gid"}]}"#;
        let Error::Api { message, help, .. } = Error::from_response(400, body) else {
            panic!()
        };
        assert_eq!(message, "a: Missing input; b: Not a gid");
        assert_eq!(help, None);
    }

    #[test]
    fn server_error_keeps_the_phrase() {
        let body =
            br#"{"errors":[{"message":"Server Error","phrase":"6 sad squid snuggle softly"}]}"#;
        let e = Error::from_response(500, body);
        assert!(e.is_retryable());
        let Error::Api { message, .. } = e else {
            panic!()
        };
        assert_eq!(
            message,
            "Server Error (error phrase: 6 sad squid snuggle softly)"
        );
    }

    #[test]
    fn html_from_a_proxy_becomes_a_short_excerpt() {
        let body = format!(
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>{}</body></html>",
            "<p>nginx</p>".repeat(200)
        );
        let Error::Api {
            status, message, ..
        } = Error::from_response(502, body.as_bytes())
        else {
            panic!()
        };
        assert_eq!(status, 502);
        assert!(
            message.starts_with("502 Bad Gateway 502 Bad Gateway nginx"),
            "{message}"
        );
        assert!(!message.contains('<'));
        assert!(message.chars().count() <= EXCERPT_CHARS + 1, "{message}");
    }

    #[test]
    fn empty_body_uses_the_reason_phrase() {
        let Error::Api { message, .. } = Error::from_response(503, b"") else {
            panic!()
        };
        assert_eq!(message, "Service Unavailable (empty or non-JSON body)");
        let Error::Api { message, .. } = Error::from_response(400, br#"{"errors":[]}"#) else {
            panic!()
        };
        assert!(message.contains("{\"errors\":[]}"), "{message}");
    }

    #[test]
    fn helpers() {
        assert!(Error::from_response(404, b"{}").is_not_found());
        assert!(Error::from_response(429, b"{}").is_retryable());
        assert!(Error::Transport("x".into()).is_retryable());
        let e = Error::SyncTokenExpired { sync: "t".into() };
        assert_eq!(e.status(), Some(412));
        assert!(!e.is_retryable());
        assert_eq!(Error::InvalidInput("x".into()).status(), None);
    }
}
