//! Who may see and do what on the status page: HTTP basic auth on every page, `admin` for
//! writes, CSRF checks on every write, and the security headers of every answer.
//!
//! - **Sign-in**: `Authorization: Basic` for `admin` or `viewer`, checked by
//!   [`crate::config::AdminAuth::check`] (digests compared in constant time). Anything else
//!   is 401 with a `WWW-Authenticate` challenge. The header is never logged.
//! - **CSRF**: a write must carry this process's random token in the form field `csrf`
//!   (compared in constant time), and, when the browser says where it comes from,
//!   `Sec-Fetch-Site: same-origin` and an `Origin` whose host is the request's `Host`.
//!   Basic auth is sent by the browser on cross-site requests too, so without this any
//!   page the admin visits could replay the queue.
//! - **Headers**: a CSP allowing only our own stylesheet and script, no framing, no
//!   sniffing, referrers only to ourselves (`no-referrer` would make browsers send
//!   `Origin: null` on our own form posts), and `no-store` (pages show people's emails).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::Role;
use crate::http::App;

/// The realm browsers show in their sign-in prompt.
const REALM: &str = "Basic realm=\"asana-docspace status\", charset=\"UTF-8\"";

/// Every `/admin` answer carries these, 401s included.
pub const SECURITY_HEADERS: [(&str, &str); 7] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to whatever the page answered.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// `user:password` from an `Authorization: Basic …` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_string();
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Signs the request in (the [`Role`] goes into its extensions) or answers 401.
pub async fn require_sign_in(
    State(app): State<Arc<App>>,
    mut req: Request,
    next: Next,
) -> Response {
    let role = basic_credentials(req.headers())
        .and_then(|(user, password)| app.cfg.admin.check(&user, &password));
    match role {
        Some(role) => {
            req.extensions_mut().insert(role);
            next.run(req).await
        }
        None => {
            if req.headers().contains_key(header::AUTHORIZATION) {
                tracing::warn!(path = %req.uri().path(), "status page: sign-in refused");
            }
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, REALM)],
                "Sign in as admin or viewer to see the status page.\n",
            )
                .into_response()
        }
    }
}

/// Why a write was refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Signed in as `viewer`.
    ReadOnly,
    /// The form's token is missing or wrong.
    Token,
    /// The browser says the request comes from another site.
    CrossSite,
}

impl Refused {
    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Refused::ReadOnly => "Only the admin user may replay dead letters; viewer is read only.",
            Refused::Token => "This form is stale or did not come from the status page (CSRF token missing or wrong). Reload the page and try again.",
            Refused::CrossSite => "Refused: the request came from another site.",
        }
    }
}

/// The host part of an `Origin` (`https://host:port` → `host:port`).
fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// Checks a write: the role, then where it came from, then the token.
pub fn check_write(
    role: Role,
    headers: &HeaderMap,
    form_token: Option<&str>,
    token: &str,
) -> Result<(), Refused> {
    if role != Role::Admin {
        return Err(Refused::ReadOnly);
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Err(Refused::CrossSite);
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let from = origin.to_str().ok().and_then(origin_host);
        match (from, host) {
            (Some(from), Some(host)) if from.eq_ignore_ascii_case(host) => {}
            _ => return Err(Refused::CrossSite),
        }
    }
    let given = form_token.unwrap_or("").as_bytes();
    if given.len() != token.len() || !bool::from(given.ct_eq(token.as_bytes())) {
        return Err(Refused::Token);
    }
    Ok(())
}

/// A fresh per-process CSRF token: 256 random bits in hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn basic_credentials_are_decoded_and_odd_headers_ignored() {
        // "admin:pa:ss" — the password may hold a colon.
        let h = headers(&[("authorization", "Basic YWRtaW46cGE6c3M=")]);
        assert_eq!(
            basic_credentials(&h),
            Some(("admin".to_string(), b"pa:ss".to_vec()))
        );
        for bad in ["Bearer YWRtaW46cA==", "Basic !!!", "Basic YWRtaW4="] {
            let h = headers(&[("authorization", bad)]);
            assert_eq!(basic_credentials(&h), None, "{bad}");
        }
    }

    #[test]
    fn writes_need_admin_same_origin_and_the_token() {
        let token = new_token();
        assert_eq!(token.len(), 64);
        let same = headers(&[
            ("host", "bridge.example.com"),
            ("origin", "https://bridge.example.com"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(
            check_write(Role::Admin, &same, Some(&token), &token),
            Ok(())
        );
        // No browser headers at all (curl with the token): the token decides.
        assert_eq!(
            check_write(Role::Admin, &HeaderMap::new(), Some(&token), &token),
            Ok(())
        );
        assert_eq!(
            check_write(Role::Viewer, &same, Some(&token), &token),
            Err(Refused::ReadOnly)
        );
        assert_eq!(
            check_write(Role::Admin, &same, None, &token),
            Err(Refused::Token)
        );
        assert_eq!(
            check_write(Role::Admin, &same, Some(&token[..63]), &token),
            Err(Refused::Token)
        );
        for cross in [
            headers(&[
                ("host", "bridge.example.com"),
                ("sec-fetch-site", "cross-site"),
            ]),
            headers(&[
                ("host", "bridge.example.com"),
                ("sec-fetch-site", "same-site"),
            ]),
            headers(&[
                ("host", "bridge.example.com"),
                ("origin", "https://evil.example"),
            ]),
            headers(&[("host", "bridge.example.com"), ("origin", "null")]),
        ] {
            assert_eq!(
                check_write(Role::Admin, &cross, Some(&token), &token),
                Err(Refused::CrossSite)
            );
        }
    }
}
