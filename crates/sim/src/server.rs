//! The machinery both simulators share: request logging, fault injection, latency,
//! bearer authentication, a per-token sliding-window rate limit and in-flight concurrency
//! limits, plus binding and graceful shutdown.
//!
//! It runs as one axum middleware in front of the vendor-specific routes so that every
//! request, including unknown routes, goes through the same order of checks:
//! log → fault → auth → rate window → concurrency → latency → handler.
//! Faults come before auth on purpose: they model the infrastructure in front of the API
//! (a proxy that 503s or drops), which answers whether or not the token is good.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::faults::{Fault, FaultEngine, FaultKind};
use crate::log::{LoggedRequest, RequestLog};

/// Largest request body the sims accept; far above anything the clients send.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Asana's standard `help` text on every error object.
pub(crate) const ASANA_HELP: &str = "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors";

/// Which vendor a harness imitates; decides the error envelope and the log's service name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Asana,
    DocSpace,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Asana => "asana",
            Service::DocSpace => "docspace",
        }
    }

    /// An error answer in the vendor's own envelope.
    pub fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Service::Asana => asana_error(status, message),
            Service::DocSpace => docspace_error(status, message),
        }
    }
}

/// `{"errors":[{"message","help"}]}`; 500s carry a `phrase` like real Asana's.
pub(crate) fn asana_error(status: StatusCode, message: &str) -> Response {
    let mut err = json!({ "message": message, "help": ASANA_HELP });
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        err["phrase"] = json!("6 sad squid snuggle softly");
    }
    (status, axum::Json(json!({ "errors": [err] }))).into_response()
}

/// `{"error":{"message":…},"status":1,"statusCode":N}`, DocSpace's `CustomExceptionHandler` shape.
pub(crate) fn docspace_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": { "message": message },
            "status": 1,
            "statusCode": status.as_u16(),
        })),
    )
        .into_response()
}

/// Who the request authenticated as, put in the request extensions for handlers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// Index of the token in the sim's list, used as the rate-limit key (never the token itself).
    pub token_index: usize,
    /// False for tokens listed as non-admin (Asana `addUser` answers 403 to them).
    pub admin: bool,
}

/// A per-token sliding window. Rejected requests count too, as Asana documents ("rejected
/// requests still count against the quota"), so a client that ignores `Retry-After` stays
/// locked out longer.
pub(crate) struct SlidingWindow {
    limit: usize,
    window: Duration,
    hits: Mutex<HashMap<usize, VecDeque<Instant>>>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1) as usize,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every counted request: a new window, as after a quiet minute.
    fn reset(&self) {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `Ok(remaining)` or `Err(retry_after_seconds)`.
    fn check(&self, key: usize) -> Result<usize, u64> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        let q = hits.entry(key).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        let allowed = q.len() < self.limit;
        q.push_back(now);
        if allowed {
            return Ok(self.limit - q.len());
        }
        // The window has room again once all but `limit - 1` of the counted hits expired.
        let idx = q.len() - self.limit;
        let frees_at = q[idx] + self.window;
        let wait = frees_at.saturating_duration_since(now);
        // Whole seconds, rounded up, never 0: a `Retry-After: 0` would invite a hot loop.
        Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }
}

/// In-flight limits per token, reads (GET) and writes (everything else) counted apart,
/// as Asana does (50 / 15).
pub(crate) struct Concurrency {
    max_reads: usize,
    max_writes: usize,
    counters: Mutex<HashMap<(usize, bool), Arc<AtomicUsize>>>,
}

/// Releases a concurrency slot when the request finishes, including on unwind.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Concurrency {
    pub fn new(max_reads: usize, max_writes: usize) -> Self {
        Self {
            max_reads,
            max_writes,
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn acquire(&self, key: usize, write: bool) -> Option<Slot> {
        let counter = {
            let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            map.entry((key, write)).or_default().clone()
        };
        let max = if write {
            self.max_writes
        } else {
            self.max_reads
        };
        let prev = counter.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(counter);
        (prev < max).then_some(slot)
    }
}

/// Everything the middleware needs; one per simulator.
pub(crate) struct Harness {
    pub service: Service,
    pub log: RequestLog,
    pub faults: Mutex<FaultEngine>,
    pub latency: Mutex<Duration>,
    /// Accepted bearer tokens, with whether each one is an admin.
    pub tokens: Vec<(String, bool)>,
    pub rate: Option<SlidingWindow>,
    pub concurrency: Option<Concurrency>,
}

impl Harness {
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(faults);
    }

    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// Empties the rate window (if the sim has one): every token's budget is whole again.
    pub fn reset_rate_window(&self) {
        if let Some(w) = &self.rate {
            w.reset();
        }
    }

    fn latency(&self) -> Duration {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn authenticate(&self, req: &Request) -> Option<Caller> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        self.tokens
            .iter()
            .position(|(t, _)| constant_time_eq(t.as_bytes(), token.as_bytes()))
            .map(|token_index| Caller {
                token_index,
                admin: self.tokens[token_index].1,
            })
    }

    fn unauthorized(&self) -> Response {
        match self.service {
            // Real Asana answers exactly this body, without `help`.
            Service::Asana => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "errors": [{ "message": "Not Authorized" }] })),
            )
                .into_response(),
            Service::DocSpace => docspace_error(StatusCode::UNAUTHORIZED, "Unauthorized"),
        }
    }

    fn too_many(&self, retry_after: Option<u64>) -> Response {
        let message = match self.service {
            Service::Asana => "You've made too many requests and hit a rate limit. Please retry after the given amount of time.",
            Service::DocSpace => "Too many requests. Please try again later.",
        };
        let mut resp = self.service.error(StatusCode::TOO_MANY_REQUESTS, message);
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }

    fn fault_response(&self, code: u16, retry_after: Option<u64>) -> Response {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return self.too_many(retry_after);
        }
        let message = match (self.service, status.as_u16()) {
            (Service::Asana, 500) => "Server Error".to_string(),
            _ => status
                .canonical_reason()
                .unwrap_or("Simulated failure")
                .to_string(),
        };
        let mut resp = self.service.error(status, &message);
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Compares tokens without an early exit, so the sim does not teach a timing side channel.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a logged body: JSON when it parses, else the text, else nothing.
fn body_for_log(bytes: &Bytes) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Some(v),
        Err(_) => Some(Value::String(String::from_utf8_lossy(bytes).into_owned())),
    }
}

/// The middleware function wired in front of every route of both sims.
pub(crate) async fn middleware(
    State(h): State<Arc<Harness>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return h
                .service
                .error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
        }
    };
    let id = h.log.push(LoggedRequest {
        service: h.service.name(),
        method: method.clone(),
        path: path.clone(),
        query,
        content_type,
        body: body_for_log(&bytes),
        status: 0,
    });
    let req = Request::from_parts(parts, Body::from(bytes));
    let resp = handle(&h, req, next, &method, &path).await;
    h.log.set_status(id, resp.status().as_u16());
    resp
}

async fn handle(h: &Harness, mut req: Request, next: Next, method: &str, path: &str) -> Response {
    let decision = h
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .decide(method, path);
    let latency = h.latency();
    match decision.terminal {
        Some(FaultKind::Drop) => {
            tokio::time::sleep(latency + decision.delay).await;
            // Unwinds the connection task without running the panic hook: hyper never
            // writes a response and the socket is closed, which is what a client sees when a
            // proxy dies mid-request. Tokio catches the unwind at the task boundary.
            std::panic::resume_unwind(Box::new(()));
        }
        Some(FaultKind::Status { code, retry_after }) => {
            tokio::time::sleep(latency + decision.delay).await;
            return h.fault_response(code, retry_after);
        }
        Some(FaultKind::Delay(_)) | None => {}
    }
    let Some(caller) = h.authenticate(&req) else {
        tokio::time::sleep(latency).await;
        return h.unauthorized();
    };
    let mut remaining = None;
    if let Some(rate) = &h.rate {
        match rate.check(caller.token_index) {
            Ok(r) => remaining = Some((r, rate.limit)),
            Err(secs) => {
                tokio::time::sleep(latency).await;
                return h.too_many(Some(secs));
            }
        }
    }
    let _slot = match &h.concurrency {
        Some(c) => {
            let write = req.method() != Method::GET && req.method() != Method::HEAD;
            match c.acquire(caller.token_index, write) {
                Some(slot) => Some(slot),
                // Asana's concurrency 429 carries no usable Retry-After (node-asana #210).
                None => return h.too_many(None),
            }
        }
        None => None,
    };
    tokio::time::sleep(latency + decision.delay).await;
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    if let (Service::DocSpace, Some((remaining, limit))) = (h.service, remaining) {
        // DocSpace's rate limiter advertises its budget on successful answers.
        let headers = resp.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", "60".to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    resp
}

/// A bound, running server and the handle to stop it.
pub(crate) struct Running {
    pub addr: SocketAddr,
    pub cancel: CancellationToken,
    pub task: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
    /// Binds `addr` (port 0 picks a free port) and serves `router` until cancelled.
    pub async fn start(router: Router, addr: SocketAddr) -> std::io::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator server stopped with an error");
            }
        });
        Ok(Running {
            addr,
            cancel,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops accepting, lets in-flight requests finish for up to 5 s, then aborts.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A sim dropped without `shutdown()` must not keep serving in the background.
        self.cancel.cancel();
    }
}

/// Builds the full request URL the way DocSpace echoes it in `links[].href`.
pub(crate) fn request_url(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}{uri}")
}

/// Reads a query string into ordered pairs (later duplicates win in lookups).
pub(crate) fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Looks a parameter up in parsed query pairs.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
