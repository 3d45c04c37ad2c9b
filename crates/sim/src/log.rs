//! The request log both simulators keep.
//!
//! Tests assert on what the clients actually sent (integer `type`, `limit=100`, one invite
//! per person), and `tools/contract` replays the log against the vendors' OpenAPI specs, so
//! the log keeps method, path, query, content type and the parsed JSON body of every request,
//! in arrival order. The `Authorization` header is deliberately never captured: the log is
//! written to files and printed, and secrets must not leak through it.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One request as the simulator received it, with the status it answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedRequest {
    /// `"asana"` or `"docspace"`.
    pub service: &'static str,
    /// Upper-case HTTP method.
    pub method: String,
    /// Full path, including `/api/1.0` or `/api/2.0`.
    pub path: String,
    /// Raw query string as sent (still percent-encoded), empty when there was none.
    pub query: String,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body parsed as JSON; a non-JSON body is kept as a JSON string; `None` when empty.
    pub body: Option<serde_json::Value>,
    /// The status answered; `0` while the request is in flight or when the connection was
    /// dropped by a `Drop` fault.
    pub status: u16,
}

/// Serialises a log as JSON Lines, the format `tools/contract` reads.
pub fn to_jsonl(requests: &[LoggedRequest]) -> String {
    let mut out = String::new();
    for r in requests {
        if let Ok(line) = serde_json::to_string(r) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Shared, append-only log. Entries are pushed on arrival (so order is arrival order even
/// when slow requests finish late) and their status is filled in on completion.
#[derive(Clone, Default)]
pub(crate) struct RequestLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Default)]
struct LogInner {
    next_id: u64,
    entries: Vec<(u64, LoggedRequest)>,
}

impl RequestLog {
    pub fn push(&self, entry: LoggedRequest) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner.next_id;
        inner.next_id += 1;
        inner.entries.push((id, entry));
        id
    }

    pub fn set_status(&self, id: u64, status: u16) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(i) = inner.entries.binary_search_by_key(&id, |(k, _)| *k) {
            inner.entries[i].1.status = status;
        }
    }

    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .clear();
    }
}
