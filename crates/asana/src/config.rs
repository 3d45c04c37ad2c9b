//! [`Config`]: where Asana is, the token, and the reliability knobs with their defaults.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::Error;

/// The production API root.
pub const DEFAULT_BASE_URL: &str = "https://app.asana.com/api/1.0";

/// Settings for a [`Client`](crate::Client). Build with [`Config::new`], then adjust the
/// public fields. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct Config {
    /// API root including its path prefix, e.g. `https://app.asana.com/api/1.0`
    /// (no trailing slash; endpoint paths are appended to it).
    pub base_url: Url,
    /// Personal access token or OAuth access token, sent as `Authorization: Bearer …`.
    pub token: SecretString,
    /// Timeout for one attempt, connect to last body byte. Default 30 s.
    pub timeout: Duration,
    /// Retries after the first attempt. Default 5.
    pub max_retries: u32,
    /// Client-side budget shared by every clone of the client: 150 on free plans,
    /// 1,500 on paid ones. Default 150. Counted as Asana counts it: at most this many in
    /// any rolling `rate_window`.
    pub requests_per_minute: u32,
    /// The window `requests_per_minute` is counted over. Default one minute (Asana's);
    /// shorter only in tests.
    pub rate_window: Duration,
    /// GETs in flight at once. Asana allows 50 per token. Default 50.
    pub max_concurrent_reads: usize,
    /// POST/PUT/DELETE in flight at once. Asana allows 15 per token. Default 15.
    pub max_concurrent_writes: usize,
    /// First retry delay of the jittered exponential backoff. Default 500 ms.
    pub backoff_base: Duration,
    /// Longest single wait between attempts, also capping a huge `Retry-After`. Default 30 s.
    pub max_backoff: Duration,
}

impl Config {
    /// A config with the documented defaults.
    ///
    /// `base_url` must be an absolute `http`/`https` URL without query or fragment; its path
    /// prefix (such as `/api/1.0`) is kept. The token must be non-empty printable ASCII.
    pub fn new(base_url: &str, token: SecretString) -> Result<Config, Error> {
        Ok(Config {
            base_url: parse_base_url(base_url)?,
            token: check_token(token)?,
            timeout: Duration::from_secs(30),
            max_retries: 5,
            requests_per_minute: 150,
            rate_window: Duration::from_secs(60),
            max_concurrent_reads: 50,
            max_concurrent_writes: 15,
            backoff_base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        })
    }

    /// Check the fields a caller may have changed after [`Config::new`].
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::InvalidInput(format!("Asana client: {what}")));
        if !matches!(self.base_url.scheme(), "http" | "https") || self.base_url.cannot_be_a_base() {
            return bad("base_url must be an http or https URL");
        }
        if self.requests_per_minute == 0 {
            return bad("requests_per_minute must be at least 1");
        }
        if self.max_concurrent_reads == 0 || self.max_concurrent_writes == 0 {
            return bad("max_concurrent_reads and max_concurrent_writes must be at least 1");
        }
        if self.rate_window.is_zero() {
            return bad("rate_window must be longer than zero");
        }
        if self.timeout.is_zero() {
            return bad("timeout must be longer than zero");
        }
        check_token(self.token.clone()).map(|_| ())
    }
}

fn parse_base_url(raw: &str) -> Result<Url, Error> {
    let raw = raw.trim();
    let bad = |why: &str| {
        // A base URL may carry credentials (`https://user:pass@host`); name only what is safe.
        let shown = match Url::parse(raw) {
            Ok(mut u) => {
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.set_query(None);
                u.to_string()
            }
            Err(_) => raw.chars().take(80).collect(),
        };
        Error::InvalidInput(format!(
            "invalid Asana base URL {shown:?}: {why} (expected e.g. {DEFAULT_BASE_URL})"
        ))
    };
    let mut url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query string or fragment"));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

fn check_token(token: SecretString) -> Result<SecretString, Error> {
    let t = token.expose_secret();
    if t.trim().is_empty() {
        return Err(Error::InvalidInput(
            "the Asana token is empty (set ASANA_TOKEN to a personal access token)".into(),
        ));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        // Never echo the token itself.
        return Err(Error::InvalidInput(
            "the Asana token contains spaces, line breaks or non-ASCII characters".into(),
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_prefix() {
        let c = Config::new("https://app.asana.com/api/1.0/", "tok".into()).unwrap();
        assert_eq!(c.base_url.as_str(), "https://app.asana.com/api/1.0");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.requests_per_minute, 150);
        assert_eq!(c.max_concurrent_reads, 50);
        assert_eq!(c.max_concurrent_writes, 15);
        assert_eq!(c.backoff_base, Duration::from_millis(500));
        assert_eq!(c.max_backoff, Duration::from_secs(30));
        let c = Config::new("http://127.0.0.1:8080", "tok".into()).unwrap();
        assert_eq!(c.base_url.path(), "/");
        c.validate().unwrap();
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in [
            "",
            "app.asana.com",
            "ftp://app.asana.com/api/1.0",
            "mailto:x@y.z",
            "https://app.asana.com/api/1.0?x=1",
            "https://app.asana.com/api/1.0#frag",
        ] {
            assert!(
                matches!(Config::new(bad, "tok".into()), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn url_credentials_are_not_echoed() {
        let Err(Error::InvalidInput(m)) =
            Config::new("ftp://user:hunter2@example.com/?q=hunter3", "tok".into())
        else {
            panic!()
        };
        assert!(!m.contains("hunter2") && !m.contains("hunter3"), "{m}");
    }

    #[test]
    fn refuses_bad_tokens_without_echoing_them() {
        for bad in ["", "   ", "abc def-SENTINEL", "tok\n", "tökSENTINEL"] {
            let Err(Error::InvalidInput(m)) = Config::new(DEFAULT_BASE_URL, bad.into()) else {
                panic!("{bad:?} accepted")
            };
            assert!(!m.contains("SENTINEL"), "{m}");
        }
    }
}
