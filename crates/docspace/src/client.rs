//! The client: one private `send` that every call goes through (auth, rate
//! limit, concurrency, retries, decoding), and one method per endpoint.

use std::{
    fmt,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use backon::{ExponentialBuilder, Retryable};
use futures::{stream, Stream, StreamExt, TryStreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{
    header::{self, HeaderMap, HeaderValue},
    Method, StatusCode,
};
use secrecy::ExposeSecret;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};
use url::Url;

use crate::{
    de, Config, Error, Invitation, Metrics, PeopleFilter, Person, PersonSummary, Room, RoomMember,
    RoomShare, ShareResult,
};

/// Page size of the listing endpoints (their maximum).
const PAGE_SIZE: u64 = 100;

/// A DocSpace API client.
///
/// Cheap to clone: clones share one connection pool, one rate limiter, the
/// read/write semaphores and the [`Metrics`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    auth: HeaderValue,
    api_key: secrecy::SecretString,
    max_retries: u32,
    backoff_base: Duration,
    max_backoff: Duration,
    timeout: Duration,
    requests_per_minute: Option<u32>,
    limiter: Option<DefaultDirectRateLimiter>,
    reads: Option<Semaphore>,
    writes: Option<Semaphore>,
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("base_url", &i.base_url.as_str())
            .field("api_key", &"[redacted]")
            .field("timeout", &i.timeout)
            .field("max_retries", &i.max_retries)
            .field("requests_per_minute", &i.requests_per_minute)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// A failed attempt, with what the retry policy needs to know.
struct Attempt {
    error: Error,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Client {
    /// Builds a client. Fails only on settings that cannot work (a key that is
    /// not a valid header value, a zero rate limit).
    pub fn new(cfg: Config) -> Result<Client, Error> {
        let key = cfg.api_key.expose_secret().trim();
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            Error::InvalidInput(
                "the DocSpace API key contains characters that cannot be sent in a header".into(),
            )
        })?;
        auth.set_sensitive(true);

        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("asana-docspace/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot build the HTTP client: {e}")))?;

        let limiter = match cfg.requests_per_minute {
            None => None,
            Some(n) => {
                let n = NonZeroU32::new(n).ok_or_else(|| {
                    Error::InvalidInput(
                        "requests_per_minute must be at least 1 (or unset for no limit)".into(),
                    )
                })?;
                // Bursts of at most ten seconds' worth, so that no minute sees
                // much more than `n` requests.
                let burst = NonZeroU32::new((n.get() / 6).max(1)).unwrap_or(NonZeroU32::MIN);
                Some(RateLimiter::direct(Quota::per_minute(n).allow_burst(burst)))
            }
        };
        let semaphore = |n: usize| (n > 0).then(|| Semaphore::new(n));

        Ok(Client {
            inner: Arc::new(Inner {
                http,
                auth,
                api_key: cfg.api_key.clone(),
                base_url: cfg.base_url,
                max_retries: cfg.max_retries,
                backoff_base: cfg.backoff_base,
                max_backoff: cfg.max_backoff,
                timeout: cfg.timeout,
                requests_per_minute: cfg.requests_per_minute,
                limiter,
                reads: semaphore(cfg.max_concurrent_reads),
                writes: semaphore(cfg.max_concurrent_writes),
                requests: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        })
    }

    /// The portal root this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Counters since the client was built (shared by clones).
    pub fn metrics(&self) -> Metrics {
        let i = &self.inner;
        Metrics {
            requests: i.requests.load(Ordering::Relaxed),
            rate_limited: i.rate_limited.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
        }
    }

    // -----------------------------------------------------------------------
    // # People
    // -----------------------------------------------------------------------

    /// Looks a person up by e-mail: `GET /api/2.0/people/email?email=`.
    ///
    /// Finds active, pending and disabled users; `Ok(None)` when DocSpace
    /// answers 404 (nobody on the portal has that address).
    pub async fn find_person_by_email(&self, email: &str) -> Result<Option<Person>, Error> {
        let email = check_email(email)?;
        match self
            .send::<Person, ()>(
                Method::GET,
                "/api/2.0/people/email",
                &[("email", email.to_owned())],
                None,
            )
            .await
        {
            Ok((person, _)) => Ok(Some(person)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Invites people to the portal: `POST /api/2.0/people/invite`, with
    /// `type` sent as an integer.
    ///
    /// Inviting an address that already belongs to an active or pending user
    /// is a silent no-op on the server; a disabled user is a 400.
    ///
    /// The answer lists **every** pending user the caller can see, without
    /// e-mails: use [`find_person_by_email`](Self::find_person_by_email) to
    /// learn an invitee's id. An empty slice sends nothing.
    pub async fn invite(&self, invitations: &[Invitation]) -> Result<Vec<PersonSummary>, Error> {
        if invitations.is_empty() {
            return Ok(Vec::new());
        }
        for inv in invitations {
            check_email(&inv.email)?;
        }
        #[derive(Serialize)]
        struct Body<'a> {
            invitations: &'a [Invitation],
        }
        let (people, _) = self
            .send(
                Method::POST,
                "/api/2.0/people/invite",
                &[],
                Some(&Body { invitations }),
            )
            .await?;
        Ok(people)
    }

    /// Lists people: `GET /api/2.0/people/filter`, 100 per page, lazily.
    pub fn people(
        &self,
        filter: PeopleFilter,
    ) -> impl Stream<Item = Result<Person, Error>> + Send + '_ {
        self.paged(
            Ok("/api/2.0/people/filter".to_owned()),
            filter_query(&filter),
        )
    }

    /// One page of `GET /api/2.0/people/filter`, with the listing's `total`.
    ///
    /// For callers that decide from the portal's size whether listing everybody is
    /// cheaper than looking each email up, and that fetch the remaining pages in parallel.
    pub async fn people_page(
        &self,
        filter: &PeopleFilter,
        start_index: u64,
        count: u64,
    ) -> Result<(Vec<Person>, u64), Error> {
        let mut q = vec![
            ("count", count.clamp(1, PAGE_SIZE).to_string()),
            ("startIndex", start_index.to_string()),
        ];
        q.extend(filter_query(filter));
        let (people, total) = self
            .send::<Vec<Person>, ()>(Method::GET, "/api/2.0/people/filter", &q, None)
            .await?;
        let total = total.unwrap_or(start_index + people.len() as u64);
        Ok((people, total))
    }

    /// The key's own profile: `GET /api/2.0/people/@self`.
    pub async fn me(&self) -> Result<Person, Error> {
        let (me, _) = self
            .send::<Person, ()>(Method::GET, "/api/2.0/people/@self", &[], None)
            .await?;
        Ok(me)
    }

    // -----------------------------------------------------------------------
    // # Rooms
    // -----------------------------------------------------------------------

    /// A room's id, title and type: `GET /api/2.0/files/rooms/{id}`.
    pub async fn get_room(&self, room_id: &str) -> Result<Room, Error> {
        let path = room_path(room_id, "")?;
        let (room, _) = self.send::<Room, ()>(Method::GET, &path, &[], None).await?;
        Ok(room)
    }

    /// Gives people access to a room: `PUT /api/2.0/files/rooms/{id}/share`
    /// with `{"invitations":[{"id","access"}],"notify"}`, access levels as
    /// integers.
    ///
    /// Check [`ShareResult::warning`]; a subject the caller may not see is
    /// dropped silently by the server, so confirm with
    /// [`room_members`](Self::room_members). An empty slice sends nothing.
    pub async fn share_room(
        &self,
        room_id: &str,
        shares: &[RoomShare],
        notify: bool,
    ) -> Result<ShareResult, Error> {
        let path = room_path(room_id, "/share")?;
        if shares.is_empty() {
            return Ok(ShareResult::default());
        }
        for share in shares {
            if !is_uuid(&share.user_id) {
                return Err(Error::InvalidInput(format!(
                    "`{}` is not a DocSpace user id (a UUID); look the person up by e-mail first",
                    share.user_id
                )));
            }
        }
        #[derive(Serialize)]
        struct Body<'a> {
            invitations: &'a [RoomShare],
            notify: bool,
        }
        self.put_share(
            &path,
            &Body {
                invitations: shares,
                notify,
            },
        )
        .await
    }

    /// Removes people from a room: the same `PUT /api/2.0/files/rooms/{id}/share` with
    /// `access: 0` (`None`) for each id, `notify: false`, and `force: false` — a member who
    /// still holds a form role is refused ([`ShareResult::form_role_blocking`]), never
    /// forced. The caller must be a manager of the room (otherwise 403).
    ///
    /// DocSpace drops subjects the key may not see **without an error**: the answer's
    /// `members` are re-read for the request's ids, so anyone listed there was not removed.
    /// Portal accounts are untouched. An empty slice sends nothing.
    pub async fn remove_from_room(
        &self,
        room_id: &str,
        user_ids: &[String],
    ) -> Result<ShareResult, Error> {
        let path = room_path(room_id, "/share")?;
        if user_ids.is_empty() {
            return Ok(ShareResult::default());
        }
        #[derive(Serialize)]
        struct Removal<'a> {
            id: &'a str,
            access: i32,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            invitations: Vec<Removal<'a>>,
            notify: bool,
            force: bool,
        }
        let mut invitations = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            if !is_uuid(id) {
                return Err(Error::InvalidInput(format!(
                    "`{id}` is not a DocSpace user id (a UUID)"
                )));
            }
            // FileShare.None: the one level that removes. Written here only, as an integer.
            invitations.push(Removal { id, access: 0 });
        }
        self.put_share(
            &path,
            &Body {
                invitations,
                notify: false,
                force: false,
            },
        )
        .await
    }

    /// `PUT …/rooms/{id}/share` with a body: shares and removals alike.
    async fn put_share<B: Serialize>(&self, path: &str, body: &B) -> Result<ShareResult, Error> {
        let (result, _) = self.send(Method::PUT, path, &[], Some(body)).await?;
        Ok(result)
    }

    /// A room's members (and links): `GET /api/2.0/files/rooms/{id}/share`,
    /// 100 per page, lazily.
    pub fn room_members(
        &self,
        room_id: &str,
    ) -> impl Stream<Item = Result<RoomMember, Error>> + Send + '_ {
        self.paged(room_path(room_id, "/share"), Vec::new())
    }

    // -----------------------------------------------------------------------
    // Transport
    // -----------------------------------------------------------------------

    /// Pages through a listing with `count`/`startIndex`, stopping at `total`
    /// (or at a short page when the server sends no total).
    fn paged<T>(
        &self,
        path: Result<String, Error>,
        query: Vec<(&'static str, String)>,
    ) -> impl Stream<Item = Result<T, Error>> + Send + '_
    where
        T: DeserializeOwned + Send + 'static,
    {
        stream::try_unfold(Some(0u64), move |start| {
            let path = path.clone();
            let query = query.clone();
            async move {
                let Some(start) = start else { return Ok(None) };
                let path = path?;
                let mut q = vec![
                    ("count", PAGE_SIZE.to_string()),
                    ("startIndex", start.to_string()),
                ];
                q.extend(query);
                let (items, total) = self
                    .send::<Vec<T>, ()>(Method::GET, &path, &q, None)
                    .await?;
                let n = items.len() as u64;
                let next = start + n;
                let more = n > 0 && total.map_or(n >= PAGE_SIZE, |t| next < t);
                Ok(Some((
                    stream::iter(items.into_iter().map(Ok)),
                    more.then_some(next),
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// Sends one request with retries and decodes the envelope. Returns the
    /// unwrapped `response` and the envelope's `total`.
    async fn send<T, B>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<(T, Option<u64>), Error>
    where
        T: DeserializeOwned,
        B: Serialize + ?Sized,
    {
        let inner = &self.inner;
        let mut url = inner.base_url.clone();
        url.set_path(path);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::InvalidInput(format!("cannot encode the request body: {e}")))?;
        let is_read = method == Method::GET;
        let attempts = AtomicU32::new(0);

        let backoff = ExponentialBuilder::default()
            .with_min_delay(inner.backoff_base)
            .with_max_delay(inner.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(inner.max_retries as usize);
        let max_backoff = inner.max_backoff;

        let result = (|| self.attempt(&method, path, &url, body.as_deref(), &attempts))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|a: &Attempt| a.retryable && (is_read || a.error.status() == Some(429)))
            .adjust(move |a: &Attempt, delay| {
                // While retries remain (`delay` is Some), wait at least what the
                // server asked for and at least the backoff, capped by `max_backoff`.
                delay.map(|d| match a.retry_after {
                    Some(after) => after.max(d).min(max_backoff),
                    None => d.min(max_backoff),
                })
            })
            .notify(|a: &Attempt, delay: Duration| {
                inner.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    method = %method,
                    path,
                    delay_ms = delay.as_millis() as u64,
                    error = %a.error,
                    "retrying DocSpace request"
                );
            })
            .await;

        let bytes = result.map_err(|a| a.error)?;
        de::decode(&bytes).map_err(|e| e.scrub(inner.api_key.expose_secret()))
    }

    /// One HTTP attempt: wait for the rate limiter and a concurrency slot, send,
    /// read the body, classify the outcome.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        url: &Url,
        body: Option<&[u8]>,
        attempts: &AtomicU32,
    ) -> Result<Vec<u8>, Attempt> {
        let inner = &self.inner;
        let is_read = *method == Method::GET;
        if let Some(limiter) = &inner.limiter {
            limiter.until_ready().await;
        }
        let _permit: Option<SemaphorePermit<'_>> =
            match if is_read { &inner.reads } else { &inner.writes } {
                Some(sem) => Some(sem.acquire().await.map_err(|_| Attempt {
                    error: Error::Transport("the client is shutting down".into()),
                    retryable: false,
                    retry_after: None,
                })?),
                None => None,
            };

        let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        inner.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut request = inner
            .http
            .request(method.clone(), url.clone())
            .header(header::AUTHORIZATION, inner.auth.clone());
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }

        let transport = |e: reqwest::Error| {
            let error =
                Error::transport(method.as_str(), path, e).scrub(inner.api_key.expose_secret());
            tracing::debug!(method = %method, path, attempt, error = %error, "DocSpace request failed");
            Attempt {
                error,
                retryable: true,
                retry_after: None,
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(transport)?;
        tracing::debug!(
            method = %method,
            path,
            attempt,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "DocSpace request"
        );

        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            inner.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let error = Error::from_response(status, &bytes).scrub(inner.api_key.expose_secret());
        Err(Attempt {
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            error,
            retry_after,
        })
    }
}

/// `Retry-After` as seconds (possibly fractional) or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Refuses addresses DocSpace would answer 400 "Incorrect email" for — after
/// applying the invitations before it in the same request.
fn check_email(email: &str) -> Result<&str, Error> {
    let email = email.trim();
    let valid = email.len() <= 255
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(Error::InvalidInput(format!(
            "`{email}` is not an e-mail address"
        )))
    }
}

/// `/api/2.0/files/rooms/{id}{suffix}`; room ids are integers.
fn room_path(room_id: &str, suffix: &str) -> Result<String, Error> {
    let id = room_id.trim();
    if id.is_empty()
        || id.len() > 10
        || !id.bytes().all(|b| b.is_ascii_digit())
        || id.parse::<i32>().is_err()
    {
        return Err(Error::InvalidInput(format!(
            "`{room_id}` is not a DocSpace room id (a number, as in the room's URL)"
        )));
    }
    Ok(format!("/api/2.0/files/rooms/{id}{suffix}"))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn filter_query(filter: &PeopleFilter) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(a) = filter.activation_status {
        query.push(("activationStatus", a.to_string()));
    }
    if let Some(s) = filter.employee_status {
        query.push(("employeeStatus", s.to_string()));
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn room_ids_are_numbers() {
        assert_eq!(room_path("123", "").unwrap(), "/api/2.0/files/rooms/123");
        assert_eq!(
            room_path(" 7 ", "/share").unwrap(),
            "/api/2.0/files/rooms/7/share"
        );
        for bad in ["", "abc", "1/../2", "-1", "99999999999", "12a"] {
            assert!(
                matches!(room_path(bad, ""), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn email_and_uuid_checks() {
        assert_eq!(check_email(" a@b.c ").unwrap(), "a@b.c");
        for bad in ["", "ab", "a b@c.d", "@c.d", "a@", "a@b@c"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(is_uuid("4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f"));
        assert!(!is_uuid("4c3f2d3e1b2a4c5d8e9f0a1b2c3d4e5f"));
        assert!(!is_uuid("someone@example.com"));
    }
}
