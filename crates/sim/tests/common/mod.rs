//! Shared helpers for the simulator tests: a proxy-free client and bearer requests.
#![allow(dead_code)]

use reqwest::{Client, RequestBuilder};
use serde_json::Value;

pub fn client() -> Client {
    Client::builder().no_proxy().build().expect("client")
}

pub fn get(url: &str, token: &str) -> RequestBuilder {
    client().get(url).bearer_auth(token)
}

pub async fn json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}
