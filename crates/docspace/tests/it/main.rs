//! HTTP behaviour of the DocSpace client against a tiny axum server on
//! 127.0.0.1:0: request shapes, retries, paging, error mapping, secrets.

mod http;
mod paging;
mod retries;
mod secrets;
mod support;
