//! A tiny recording HTTP server on 127.0.0.1:0 and a client pointed at it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use docspace_api::{Client, Config};
use secrecy::SecretString;

/// The key every test client sends; tests assert it never leaks.
pub const KEY: &str = "sk-SENTINEL-7f3a9c0e5b1d";

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of query parameter `name`, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

type Responder = dyn Fn(&Seen, usize) -> Response + Send + Sync;

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Arc<Responder>,
}

/// A server that records every request and answers with `respond(request, n)`,
/// where `n` counts earlier requests with the same method and path.
pub struct Mock {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    pub async fn start(respond: impl Fn(&Seen, usize) -> Response + Send + Sync + 'static) -> Mock {
        let shared = Shared {
            seen: Arc::default(),
            respond: Arc::new(respond),
        };
        let seen = shared.seen.clone();
        let app = Router::new().fallback(handle).with_state(shared);
        let url = serve(app).await;
        Mock { url, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body: body.to_vec(),
    };
    let n = {
        let mut log = shared.seen.lock().unwrap();
        let n = log
            .iter()
            .filter(|s| s.method == seen.method && s.path == seen.path)
            .count();
        log.push(seen.clone());
        n
    };
    (shared.respond)(&seen, n)
}

/// Serves `app` on 127.0.0.1:0 and returns its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// Settings for tests: fast backoff, three retries.
pub fn config(url: &str) -> Config {
    let mut cfg = Config::new(url, SecretString::from(KEY)).unwrap();
    cfg.backoff_base = Duration::from_millis(10);
    cfg.max_backoff = Duration::from_secs(3);
    cfg.max_retries = 3;
    cfg.timeout = Duration::from_secs(5);
    cfg
}

pub fn client(url: &str) -> Client {
    Client::new(config(url)).unwrap()
}

/// A DocSpace JSON answer.
pub fn json(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
}

/// Drops the connection without answering.
pub fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new(()))
}

/// A response with an empty body.
pub fn empty(status: u16) -> Response {
    (StatusCode::from_u16(status).unwrap(), Body::empty()).into_response()
}

pub const PERSON_ACTIVE: &str = include_str!("../fixtures/person_active.json");
pub const PERSON_PENDING: &str = include_str!("../fixtures/person_pending.json");
pub const INVITE_RESPONSE: &str = include_str!("../fixtures/invite_response.json");
pub const NOT_FOUND: &str = include_str!("../fixtures/error_not_found.json");
pub const VALIDATION: &str = include_str!("../fixtures/error_validation.json");
pub const PROXY_502: &str = include_str!("../fixtures/error_proxy_502.html");
pub const ROOM: &str = include_str!("../fixtures/room.json");
pub const SHARE_RESPONSE: &str = include_str!("../fixtures/share_response.json");
