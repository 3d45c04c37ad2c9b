//! Client settings.

use std::{fmt, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::Error;

/// How to reach a portal, and how politely.
///
/// Build with [`Config::new`], then adjust the public fields.
#[derive(Clone)]
pub struct Config {
    /// The portal root, e.g. `https://docspace.example.com/`.
    pub base_url: Url,
    /// An API key (`sk-…`) or a personal access token, sent as `Authorization: Bearer …`.
    pub api_key: SecretString,
    /// Timeout of one HTTP attempt. Default 30 s.
    pub timeout: Duration,
    /// How many times a failed request is repeated (so `max_retries + 1`
    /// attempts at most). Default 5.
    pub max_retries: u32,
    /// Client-side rate limit, in requests per minute, with bursts of at most
    /// ten seconds' worth. `None` (the default) means unlimited; DocSpace's own
    /// limit, when enabled on the server, defaults to 1500 per minute per user.
    pub requests_per_minute: Option<u32>,
    /// Concurrent GET requests at most; 0 means no limit. Default 50.
    pub max_concurrent_reads: usize,
    /// Concurrent POST/PUT requests at most; 0 means no limit. Default 15.
    pub max_concurrent_writes: usize,
    /// First backoff delay; it doubles on every retry, with jitter. Default 500 ms.
    pub backoff_base: Duration,
    /// Longest wait between two attempts, `Retry-After` included. Default 30 s.
    pub max_backoff: Duration,
}

impl Config {
    /// Settings for the portal at `url` with the defaults above.
    ///
    /// `url` may be `host`, `host:port` (both mean `https://`), or an `http://`
    /// or `https://` URL with an empty path or `/`.
    ///
    /// ```
    /// # use docspace_api::Config;
    /// let cfg = Config::new("docspace.example.com", "sk-example".to_owned().into()).unwrap();
    /// assert_eq!(cfg.base_url.as_str(), "https://docspace.example.com/");
    /// ```
    pub fn new(url: &str, api_key: SecretString) -> Result<Config, Error> {
        if api_key.expose_secret().trim().is_empty() {
            return Err(Error::InvalidInput(
                "the DocSpace API key is empty (set DOCSPACE_API_KEY)".into(),
            ));
        }
        Ok(Config {
            base_url: normalise_url(url)?,
            api_key,
            timeout: Duration::from_secs(30),
            max_retries: 5,
            requests_per_minute: None,
            max_concurrent_reads: 50,
            max_concurrent_writes: 15,
            backoff_base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("max_concurrent_reads", &self.max_concurrent_reads)
            .field("max_concurrent_writes", &self.max_concurrent_writes)
            .field("backoff_base", &self.backoff_base)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// `host` → `https://host/`; keeps `http(s)://`; the path must be empty or `/`.
pub(crate) fn normalise_url(input: &str) -> Result<Url, Error> {
    let input = input.trim();
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "invalid DocSpace URL `{}`: {why} (expected `https://host`)",
            shown(input)
        ))
    };
    if input.is_empty() {
        return Err(Error::InvalidInput(
            "the DocSpace URL is empty (set DOCSPACE_URL, e.g. `https://docspace.example.com`)"
                .into(),
        ));
    }
    let with_scheme = match input.split_once("://") {
        Some((scheme, _)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(bad("only http and https are supported"));
            }
            input.to_owned()
        }
        None => format!("https://{input}"),
    };
    let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials do not belong in the URL; use the API key"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad(&format!(
            "the path must be empty, not `{}`: give the portal root",
            url.path()
        )));
    }
    Ok(url)
}

/// The input as it may be shown in an error: without anything after `?` or `#`,
/// nor user info.
fn shown(input: &str) -> String {
    let cut = input.find(['?', '#']).map_or(input, |i| &input[..i]);
    match (cut.find("://"), cut.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}[redacted]@{}", &cut[..s + 3], &cut[at + 1..]),
        (None, Some(at)) => format!("[redacted]@{}", &cut[at + 1..]),
        _ => cut.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        normalise_url(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    fn refused(input: &str) -> String {
        match normalise_url(input) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("{input} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn url_normalisation() {
        assert_eq!(ok("docspace.example.com"), "https://docspace.example.com/");
        assert_eq!(ok("docspace.example.com/"), "https://docspace.example.com/");
        assert_eq!(
            ok("  docspace.example.com  "),
            "https://docspace.example.com/"
        );
        assert_eq!(
            ok("docspace.example.com:8443"),
            "https://docspace.example.com:8443/"
        );
        assert_eq!(
            ok("https://docspace.example.com"),
            "https://docspace.example.com/"
        );
        assert_eq!(
            ok("https://docspace.example.com/"),
            "https://docspace.example.com/"
        );
        assert_eq!(
            ok("HTTPS://DocSpace.Example.com"),
            "https://docspace.example.com/"
        );
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080/");
        assert_eq!(ok("http://localhost:8080/"), "http://localhost:8080/");
        assert_eq!(
            ok("https://docspace.example.com:443"),
            "https://docspace.example.com/"
        );
    }

    #[test]
    fn url_refusals() {
        assert!(refused("").contains("empty"));
        assert!(refused("ftp://docspace.example.com").contains("http and https"));
        assert!(refused("https://docspace.example.com/api/2.0").contains("path must be empty"));
        assert!(refused("docspace.example.com/portal/").contains("path must be empty"));
        assert!(refused("https://").contains("invalid DocSpace URL"));
        let m = refused("https://docspace.example.com/?token=sekrit");
        assert!(!m.contains("sekrit"), "{m}");
        let m = refused("https://user:pa55word@docspace.example.com/");
        assert!(!m.contains("pa55word"), "{m}");
    }

    #[test]
    fn defaults_and_empty_key() {
        let cfg = Config::new("example.com", "sk-x".to_owned().into()).unwrap();
        assert_eq!(cfg.timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_retries, 5);
        assert_eq!(cfg.requests_per_minute, None);
        assert_eq!(cfg.max_concurrent_reads, 50);
        assert_eq!(cfg.max_concurrent_writes, 15);
        assert_eq!(cfg.backoff_base, Duration::from_millis(500));
        assert_eq!(cfg.max_backoff, Duration::from_secs(30));
        assert!(matches!(
            Config::new("example.com", "  ".to_owned().into()),
            Err(Error::InvalidInput(_))
        ));
    }
}
