//! A scripted loopback server: answers requests with queued [`Reply`]s in order, records
//! every request, counts requests in flight, and can drop a connection.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use asana_api::{Client, Config};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    Router,
};

/// The token every test client uses; no output may ever contain it.
pub const TOKEN: &str = "SENTINEL-0/abcdef0123456789";

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
    drop_connection: bool,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
            drop_connection: false,
        }
    }

    /// A non-JSON answer (e.g. a proxy's HTML page).
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
        Reply {
            headers: vec![("content-type", content_type.to_owned())],
            ..Reply::json(status, body)
        }
    }

    /// Asana's 429 body, optionally with `Retry-After`.
    pub fn rate_limited(retry_after: Option<&str>) -> Reply {
        let r = Reply::json(
            429,
            r#"{"errors":[{"message":"You've made too many requests and hit a rate limit. Please retry after the given amount of time."}]}"#,
        );
        match retry_after {
            Some(v) => r.header("retry-after", v),
            None => r,
        }
    }

    /// A handler that panics: the connection is dropped without an answer.
    pub fn dropped() -> Reply {
        Reply {
            drop_connection: true,
            ..Reply::json(200, "")
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Option<serde_json::Value>,
    /// When the server saw it (the body read).
    pub arrived: std::time::Instant,
}

impl Recorded {
    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Default)]
struct ServerState {
    replies: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    log: Mutex<Vec<Recorded>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

pub struct Server {
    pub base_url: String,
    state: Arc<ServerState>,
}

impl Server {
    /// Serve `replies` in order; after them, every request gets a 500 naming it.
    pub async fn start(replies: Vec<Reply>) -> Server {
        Server::start_inner(replies, None).await
    }

    /// Answer every request with `reply`.
    pub async fn always(reply: Reply) -> Server {
        Server::start_inner(Vec::new(), Some(reply)).await
    }

    async fn start_inner(replies: Vec<Reply>, fallback: Option<Reply>) -> Server {
        let state = Arc::new(ServerState::default());
        *state.replies.lock().unwrap() = replies.into();
        *state.fallback.lock().unwrap() = fallback;
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            base_url: format!("http://{addr}/api/1.0"),
            state,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// A client for this server: fast backoff, no practical rate limit.
    pub fn client(&self) -> Client {
        self.client_with(|_| {})
    }

    pub fn client_with(&self, tweak: impl FnOnce(&mut Config)) -> Client {
        let mut cfg = Config::new(&self.base_url, TOKEN.into()).unwrap();
        cfg.backoff_base = Duration::from_millis(1);
        cfg.max_backoff = Duration::from_millis(20);
        cfg.requests_per_minute = 600_000;
        cfg.timeout = Duration::from_secs(10);
        tweak(&mut cfg);
        Client::new(cfg).unwrap()
    }
}

async fn handle(State(st): State<Arc<ServerState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
    st.log.lock().unwrap().push(Recorded {
        arrived: std::time::Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
    });
    contract_log(&st.log.lock().unwrap()[..]);
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);

    let next = st.replies.lock().unwrap().pop_front();
    let reply = next
        .or_else(|| st.fallback.lock().unwrap().clone())
        .unwrap_or_else(|| {
            Reply::json(
                500,
                format!(
                    r#"{{"errors":[{{"message":"test server: no reply scripted for {} {}"}}]}}"#,
                    parts.method,
                    parts.uri.path()
                ),
            )
        });
    tokio::time::sleep(reply.delay).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    if reply.drop_connection {
        // Unwind without running the panic hook: hyper drops the connection unanswered.
        std::panic::resume_unwind(Box::new(()));
    }
    let mut res = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        res = res.header(*k, v);
    }
    res.body(Body::from(reply.body)).unwrap()
}

/// With `ASANA_CONTRACT_LOG=/path/file.jsonl`, append the latest request in the request-log
/// format of docs/architecture.md, for `tools/contract/check.py` (the OpenAPI check).
fn contract_log(log: &[Recorded]) {
    let Some(path) = std::env::var_os("ASANA_CONTRACT_LOG") else {
        return;
    };
    let Some(r) = log.last() else { return };
    let line = serde_json::json!({
        "service": "asana",
        "method": r.method,
        "path": r.path,
        "query": r.query,
        "content_type": r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        "body": r.body,
        "status": null,
    });
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Load a fixture from `tests/it/fixtures`.
#[macro_export]
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/fixtures/",
            $name
        ))
    };
}
