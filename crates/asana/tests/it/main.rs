//! Integration tests for asana-api: one binary, one module per concern. Each test starts
//! its own small axum server on 127.0.0.1:0 (see `support`).

mod decode;
mod endpoints;
mod limiter;
mod pagination;
mod support;
mod transport;
