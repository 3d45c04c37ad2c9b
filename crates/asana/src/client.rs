//! [`Client`] and its single transport: every endpoint goes through `Client::send`, which
//! waits on the shared rate window ([`RateWindow`]), holds a read or write permit, retries what is safe to
//! retry and counts what it did in [`Metrics`].

use std::{
    fmt,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{header, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{de::DeserializeOwned, Deserialize};
use tokio::sync::Semaphore;
use url::Url;

use crate::{Config, Error, RateWindow};

/// `User-Agent` sent with every request.
const USER_AGENT: &str = concat!("asana-docspace/", env!("CARGO_PKG_VERSION"));

/// A handle to the Asana API. Cheap to clone: all clones share one rate limiter, the
/// read/write concurrency caps and the metrics.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    limiter: RateWindow,
    reads: Semaphore,
    writes: Semaphore,
    max_retries: u32,
    backoff_base: Duration,
    max_backoff: Duration,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

/// What a [`Client`] (and its clones) has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// HTTP attempts sent, retries included.
    pub requests: u64,
    /// 429 responses met.
    pub rate_limited: u64,
    /// Attempts repeated after a 429, a 5xx or a transport failure.
    pub retries: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("token", &"[REDACTED]")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// A request as the endpoints describe it.
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) body: Option<serde_json::Value>,
}

/// The final response of a request: any 2xx, or a non-2xx that was not (or no longer)
/// retried. Endpoints decide what a non-2xx means.
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// Why one attempt did not produce a final response.
enum Failure {
    /// 429 or 5xx: retried when allowed, otherwise handed back as the final response.
    Status {
        response: RawResponse,
        retry_after: Option<Duration>,
    },
    /// No response. `connect` is true when the connection was never established, so the
    /// request certainly did not run and may be retried even for a write.
    Transport { error: Error, connect: bool },
}

impl Client {
    /// Build a client. Fails with [`Error::InvalidInput`] on an unusable [`Config`].
    pub fn new(cfg: Config) -> Result<Client, Error> {
        cfg.validate()?;
        let mut headers = header::HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            header::HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot build the HTTP client: {e}")))?;
        // Asana's budget as Asana counts it: `requests_per_minute` in any rolling minute,
        // all of it available at once (a job of 100 calls at 150/min does not wait).
        let limiter = RateWindow::new(cfg.requests_per_minute, cfg.rate_window);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: cfg.base_url,
                token: cfg.token,
                limiter,
                reads: Semaphore::new(cfg.max_concurrent_reads),
                writes: Semaphore::new(cfg.max_concurrent_writes),
                max_retries: cfg.max_retries,
                backoff_base: cfg.backoff_base,
                max_backoff: cfg.max_backoff,
                counters: Counters::default(),
            }),
        })
    }

    /// The API root this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Counters shared by all clones of this client.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.counters;
        Metrics {
            requests: c.requests.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// `base_url` + `/seg/seg…` (each segment percent-encoded) + `?query`.
    /// `query` values must already be encoded with [`enc`] / [`enc_list`].
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        set_query(&mut url, query);
        url
    }

    /// `GET`/`POST`/… a `{"data": T}` envelope and decode `T`.
    pub(crate) async fn data<T: DeserializeOwned>(&self, req: Request) -> Result<T, Error> {
        #[derive(Deserialize)]
        struct Data<T> {
            data: T,
        }
        let res = self.send(req).await?;
        if !res.status.is_success() {
            return Err(Error::from_response(res.status.as_u16(), &res.body));
        }
        decode::<Data<T>>(&res.body).map(|d| d.data)
    }

    /// The one transport. Retries (up to `max_retries`, backoff from `backoff_base` to
    /// `max_backoff`, with jitter):
    /// - 429 on any method, waiting `Retry-After` when sent (capped by `max_backoff`);
    /// - 5xx and transport failures on GET only (a write may already have happened);
    /// - connection failures on any method (nothing was sent).
    ///
    /// Returns the final response, 2xx or not; `Err` only for transport failures.
    pub(crate) async fn send(&self, req: Request) -> Result<RawResponse, Error> {
        let inner = &self.inner;
        let is_read = req.method == Method::GET;
        let attempt = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(inner.backoff_base)
            .with_max_delay(inner.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(inner.max_retries as usize);
        let max_backoff = inner.max_backoff;

        let result = (|| self.attempt(&req, attempt.fetch_add(1, Ordering::Relaxed) + 1))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| match f {
                Failure::Status { response, .. } => {
                    response.status == StatusCode::TOO_MANY_REQUESTS || is_read
                }
                Failure::Transport { connect, .. } => is_read || *connect,
            })
            .adjust(move |f, next| {
                // `next` is None once the retry budget is spent: stop then, whatever the header.
                let next = next?;
                match f {
                    Failure::Status {
                        retry_after: Some(wait),
                        ..
                    } => Some((*wait).min(max_backoff)),
                    _ => Some(next.min(max_backoff)),
                }
            })
            .notify(|f, wait| {
                inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                let why = match f {
                    Failure::Status { response, .. } => response.status.as_u16().to_string(),
                    Failure::Transport { error, .. } => error.to_string(),
                };
                tracing::debug!(
                    method = %req.method,
                    path = req.url.path(),
                    wait_ms = wait.as_millis() as u64,
                    why = %why,
                    "retrying Asana request"
                );
            })
            .await;

        match result {
            Ok(res) => Ok(res),
            Err(Failure::Status { response, .. }) => Ok(response),
            Err(Failure::Transport { error, .. }) => Err(error),
        }
    }

    /// One attempt: permit, rate limiter, request, whole body.
    async fn attempt(&self, req: &Request, attempt: u32) -> Result<RawResponse, Failure> {
        let inner = &self.inner;
        let path = req.url.path();
        let semaphore = if req.method == Method::GET {
            &inner.reads
        } else {
            &inner.writes
        };
        // The permit is held until the body has been read (end of this function).
        let _permit = semaphore.acquire().await.map_err(|_| Failure::Transport {
            error: Error::Transport("client is shutting down".into()),
            connect: false,
        })?;
        // The slot is held until the body has been read too: it counts from then.
        let _slot = inner.limiter.acquire().await;
        inner.counters.requests.fetch_add(1, Ordering::Relaxed);

        let started = Instant::now();
        let mut builder = inner
            .http
            .request(req.method.clone(), req.url.clone())
            .bearer_auth(inner.token.expose_secret());
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let transport = |e: reqwest::Error| {
            let connect = e.is_connect();
            tracing::debug!(
                method = %req.method,
                path,
                attempt,
                error = %describe(&e),
                "Asana request failed"
            );
            Failure::Transport {
                error: Error::Transport(format!("{} {path}: {}", req.method, describe(&e))),
                connect,
            }
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(
            method = %req.method,
            path,
            status = status.as_u16(),
            attempt,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Asana request"
        );

        let response = RawResponse { status, body };
        if status == StatusCode::TOO_MANY_REQUESTS {
            inner.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            // Asana computed the wait for the token, not for this request: every caller
            // holds off (a 429 without the header is a concurrency limit; no pause).
            if let Some(wait) = retry_after {
                inner.limiter.pause_for(wait.min(inner.max_backoff));
            }
            return Err(Failure::Status {
                response,
                retry_after,
            });
        }
        if status.is_server_error() {
            // A 503 may say when to come back; honour it like a 429's.
            return Err(Failure::Status {
                response,
                retry_after,
            });
        }
        Ok(response)
    }
}

/// Decode JSON, naming the path of the first mismatch.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| Error::Decode {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// Percent-encode one query value (form encoding, so `,` becomes `%2C`).
pub(crate) fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Encode a comma-separated list (`opt_fields`): each item encoded, the commas kept literal
/// as OpenAPI's `style: form, explode: false` expects.
pub(crate) fn enc_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .map(enc)
        .collect::<Vec<_>>()
        .join(",")
}

fn set_query(url: &mut Url, query: &[(&str, String)]) {
    if query.is_empty() {
        url.set_query(None);
        return;
    }
    let q = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    url.set_query(Some(&q));
}

/// `Retry-After` as delay-seconds (integer or decimal) or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A reqwest error without its URL (which carries the query string), with its causes.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else if e.is_request() {
        "sending the request failed"
    } else {
        "request failed"
    };
    let mut out = kind.to_owned();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "SENTINEL-tok-0123456789abcdef";

    fn client(base: &str) -> Client {
        Client::new(Config::new(base, SENTINEL.into()).unwrap()).unwrap()
    }

    #[test]
    fn urls_keep_the_prefix_and_encode() {
        let c = client("https://app.asana.com/api/1.0");
        let u = c.url(
            &["users", "a b@example.com"],
            &[("opt_fields", enc_list(&["email", "assignee.email", " "]))],
        );
        assert_eq!(
            u.as_str(),
            "https://app.asana.com/api/1.0/users/a%20b@example.com?opt_fields=email,assignee.email"
        );
        let u = c.url(&["tasks"], &[("offset", enc("a+b/c=="))]);
        assert_eq!(
            u.as_str(),
            "https://app.asana.com/api/1.0/tasks?offset=a%2Bb%2Fc%3D%3D"
        );
        let c = client("http://127.0.0.1:9");
        assert_eq!(
            c.url(&["events"], &[]).as_str(),
            "http://127.0.0.1:9/events"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn nothing_prints_the_token() {
        let cfg = Config::new("https://app.asana.com/api/1.0", SENTINEL.into()).unwrap();
        let c = Client::new(cfg.clone()).unwrap();
        let webhook: crate::Webhook =
            serde_json::from_value(serde_json::json!({"gid": "1"})).unwrap();
        let webhook = crate::Webhook {
            secret: Some(SENTINEL.into()),
            ..webhook
        };
        let texts = [
            format!("{cfg:?}"),
            format!("{cfg:#?}"),
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{webhook:?}"),
            serde_json::to_string(&webhook).unwrap(),
        ];
        for t in texts {
            assert!(!t.contains(SENTINEL), "{t}");
        }
    }

    #[tokio::test]
    async fn transport_errors_hide_token_and_query() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let mut cfg = Config::new("http://127.0.0.1:9/api/1.0", SENTINEL.into()).unwrap();
        cfg.max_retries = 1;
        cfg.backoff_base = Duration::from_millis(1);
        let c = Client::new(cfg).unwrap();
        let req = Request {
            method: Method::GET,
            url: c.url(&["tasks", "1"], &[("opt_fields", "SECRETQUERY".into())]),
            body: None,
        };
        let Err(e) = c.send(req).await else {
            panic!("expected a transport error")
        };
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        for t in [e.to_string(), format!("{e:?}")] {
            assert!(!t.contains(SENTINEL), "{t}");
            assert!(!t.contains("SECRETQUERY"), "{t}");
            assert!(t.contains("GET /api/1.0/tasks/1"), "{t}");
        }
        assert_eq!(c.metrics().requests, 2);
        assert_eq!(c.metrics().retries, 1);
    }
}
