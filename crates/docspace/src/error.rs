//! The crate's error type, and how a non-2xx DocSpace answer becomes one.
//!
//! DocSpace reports failures in two shapes (see `notes/docspace-api.md` §0):
//! `{"error":{"message":…},"status":1,…}` for exceptions, and an RFC 7807
//! `ValidationProblemDetails` *inside* `response` for model-validation errors.
//! A reverse proxy in front of the portal may answer 502/503 with an HTML page.

use reqwest::StatusCode;
use serde_json::Value;

/// Longest excerpt of a non-JSON error body kept in [`Error::Api`].
const EXCERPT_CHARS: usize = 200;

/// Everything that can go wrong talking to DocSpace.
///
/// No variant ever holds the API key, a request header or a URL query string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// DocSpace (or a proxy in front of it) answered with a non-2xx status.
    #[error("DocSpace answered {status}: {message}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// `error.message`, else the validation problems as `Field: message` pairs,
        /// else a short excerpt of the body.
        message: String,
    },
    /// The request did not get an HTTP answer: connection refused or dropped,
    /// DNS failure, TLS failure, timeout.
    #[error("could not reach DocSpace: {0}")]
    Transport(String),
    /// A 2xx answer whose body did not have the expected shape.
    #[error("unexpected DocSpace response at `{path}`: {message}")]
    Decode {
        /// The JSON path of the mismatch, e.g. `response[3].id`.
        path: String,
        /// What serde found there.
        message: String,
    },
    /// A value was refused locally, before any request was sent.
    #[error("{0}")]
    InvalidInput(String),
}

impl Error {
    /// The HTTP status, for [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: rate limiting (429), server or
    /// proxy errors (5xx) and transport failures.
    ///
    /// The client already retried these where that is safe; this tells a caller
    /// (a queue worker, say) whether to schedule the job again or give up.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429 || (500..=599).contains(status),
            Error::Transport(_) => true,
            Error::Decode { .. } | Error::InvalidInput(_) => false,
        }
    }

    /// Builds [`Error::Api`] from a non-2xx answer.
    pub(crate) fn from_response(status: StatusCode, body: &[u8]) -> Error {
        let message = match serde_json::from_slice::<Value>(body) {
            Ok(json) => message_from_json(&json),
            Err(_) => excerpt(body),
        }
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_owned()
        });
        Error::Api {
            status: status.as_u16(),
            message,
        }
    }

    /// Builds [`Error::Transport`] from a reqwest error, dropping the URL (and
    /// with it the query string) and keeping the cause chain.
    pub(crate) fn transport(method: &str, path: &str, err: reqwest::Error) -> Error {
        let err = err.without_url();
        let mut text = if err.is_timeout() {
            format!("{method} {path}: timed out")
        } else {
            format!("{method} {path}: {err}")
        };
        let mut seen = vec![err.to_string()];
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !seen.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
                seen.push(cause_text);
            }
            source = cause.source();
        }
        Error::Transport(text)
    }

    /// Replaces every occurrence of `secret` in the error's text.
    ///
    /// Defence in depth: a misconfigured proxy may echo request headers in its
    /// error page.
    pub(crate) fn scrub(self, secret: &str) -> Error {
        if secret.len() < 8 {
            return self;
        }
        let clean = |s: String| s.replace(secret, "[redacted]");
        match self {
            Error::Api { status, message } => Error::Api {
                status,
                message: clean(message),
            },
            Error::Transport(m) => Error::Transport(clean(m)),
            Error::Decode { path, message } => Error::Decode {
                path: clean(path),
                message: clean(message),
            },
            Error::InvalidInput(m) => Error::InvalidInput(clean(m)),
        }
    }
}

/// `error.message`, then `response.errors` (validation problems), then
/// `response.title`, then a top-level `message`.
fn message_from_json(json: &Value) -> Option<String> {
    let non_empty = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let Some(message) = json.pointer("/error/message").and_then(non_empty) {
        return Some(message);
    }
    if let Some(errors) = json.pointer("/response/errors").and_then(Value::as_object) {
        let pairs: Vec<String> = errors
            .iter()
            .flat_map(|(field, messages)| {
                let messages: Vec<String> = match messages {
                    Value::Array(items) => items.iter().filter_map(non_empty).collect(),
                    other => non_empty(other).into_iter().collect(),
                };
                messages
                    .into_iter()
                    .map(move |m| format!("{field}: {m}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !pairs.is_empty() {
            return Some(pairs.join("; "));
        }
    }
    json.pointer("/response/title")
        .and_then(non_empty)
        .or_else(|| json.get("message").and_then(non_empty))
}

/// A short, single-line excerpt of a non-JSON body: the `<title>` of an HTML
/// page when it has one, else the text with tags removed.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let title = lower.find("<title>").and_then(|start| {
        let start = start + "<title>".len();
        lower[start..]
            .find("</title>")
            .map(|len| text[start..start + len].to_owned())
    });
    let raw = match title {
        Some(t) if !t.trim().is_empty() => t,
        _ => strip_tags(&text),
    };
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    if collapsed.chars().count() <= EXCERPT_CHARS {
        Some(collapsed)
    } else {
        let cut: String = collapsed.chars().take(EXCERPT_CHARS).collect();
        Some(format!("{cut}…"))
    }
}

fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> Error {
        Error::from_response(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn error_message_is_taken_from_error_message() {
        let err = api(404, include_str!("../tests/fixtures/error_not_found.json"));
        assert_eq!(
            err,
            Error::Api {
                status: 404,
                message: "The user could not be found".into()
            }
        );
        assert_eq!(err.status(), Some(404));
        assert!(!err.is_retryable());
    }

    #[test]
    fn validation_problems_inside_response_are_joined() {
        let err = api(400, include_str!("../tests/fixtures/error_validation.json"));
        assert_eq!(
            err,
            Error::Api {
                status: 400,
                message: "Invitations[0].Email: The field Email must be a string or array type \
                          with a maximum length of '255'.; Invitations[1].Email: The Email field \
                          is not a valid e-mail address."
                    .into()
            }
        );
    }

    #[test]
    fn html_from_a_proxy_becomes_its_title() {
        let err = api(502, include_str!("../tests/fixtures/error_proxy_502.html"));
        assert_eq!(
            err,
            Error::Api {
                status: 502,
                message: "502 Bad Gateway".into()
            }
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn long_plain_text_is_cut_short() {
        let body = "x ".repeat(1000);
        let Error::Api { message, .. } = api(503, &body) else {
            panic!("not an Api error")
        };
        assert!(message.chars().count() <= EXCERPT_CHARS + 1, "{message}");
        assert!(message.ends_with('…'));
    }

    #[test]
    fn empty_body_falls_back_to_the_reason_phrase() {
        assert_eq!(
            api(503, ""),
            Error::Api {
                status: 503,
                message: "Service Unavailable".into()
            }
        );
        assert_eq!(
            api(429, r#"{"status":1,"statusCode":429}"#),
            Error::Api {
                status: 429,
                message: "Too Many Requests".into()
            }
        );
    }

    #[test]
    fn retryable_classification() {
        assert!(Error::Transport("x".into()).is_retryable());
        assert!(api(429, "").is_retryable());
        assert!(api(500, "").is_retryable());
        assert!(!api(400, "").is_retryable());
        assert!(!api(403, "").is_retryable());
        assert!(!Error::InvalidInput("x".into()).is_retryable());
        assert!(!Error::Decode {
            path: ".".into(),
            message: "x".into()
        }
        .is_retryable());
        assert_eq!(Error::Transport("x".into()).status(), None);
    }

    #[test]
    fn scrub_removes_the_secret() {
        let err = Error::Api {
            status: 401,
            message: "bad header Bearer sk-abcdef123456".into(),
        }
        .scrub("sk-abcdef123456");
        assert_eq!(
            err.to_string(),
            "DocSpace answered 401: bad header Bearer [redacted]"
        );
    }
}
