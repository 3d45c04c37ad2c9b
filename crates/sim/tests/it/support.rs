//! What the simulator tests share: a proxy-free client, bearer requests read back as
//! `(status, JSON body)`, and the simulators started on the seeded demo worlds.

use bridge_sim::seed::{self, DemoIds, DEMO_ASANA_TOKEN};
use bridge_sim::{AsanaSim, AsanaSimOptions, DocSpaceSim, DocSpaceSimOptions};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

/// A client that ignores proxy variables: the simulators are on loopback.
pub fn client() -> Client {
    Client::builder().no_proxy().build().expect("client")
}

/// `GET url` with the bearer `token`.
pub fn get(url: &str, token: &str) -> RequestBuilder {
    client().get(url).bearer_auth(token)
}

/// The status and the JSON body of an answer (`Null` when the body is not JSON).
pub async fn json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Sends `req`, which must get an answer, and reads it with [`json`].
pub async fn send(req: RequestBuilder) -> (u16, Value) {
    json(req.send().await.unwrap()).await
}

/// [`get`], sent and read with [`json`].
pub async fn get_json(url: &str, token: &str) -> (u16, Value) {
    send(get(url, token)).await
}

/// The status of [`get`] (the body is not read).
pub async fn get_status(url: &str, token: &str) -> u16 {
    get(url, token).send().await.unwrap().status().as_u16()
}

/// The Asana simulator on the demo world, with `opts`.
pub async fn asana_demo_with(opts: AsanaSimOptions) -> (AsanaSim, DemoIds) {
    let (a, _, ids) = seed::demo();
    (AsanaSim::start(a, opts).await.unwrap(), ids)
}

/// The Asana simulator on the demo world.
pub async fn asana_demo() -> (AsanaSim, DemoIds) {
    asana_demo_with(AsanaSimOptions::default()).await
}

/// The DocSpace simulator on the demo world.
pub async fn docspace_demo() -> (DocSpaceSim, DemoIds) {
    let (_, d, ids) = seed::demo();
    (
        DocSpaceSim::start(d, DocSpaceSimOptions::default())
            .await
            .unwrap(),
        ids,
    )
}

/// The `Retry-After` of a 429, in seconds (panics when it is missing or not a number).
pub fn retry_after_secs(resp: &Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `POST /workspaces/{workspace}/addUser` for the token's own user (`me`): the simplest
/// write, which every workspace admin may repeat.
pub fn add_me(client: &Client, sim: &AsanaSim, workspace: &str) -> RequestBuilder {
    client
        .post(format!("{}/workspaces/{workspace}/addUser", sim.base_url()))
        .bearer_auth(DEMO_ASANA_TOKEN)
        .json(&json!({"data": {"user": "me"}}))
}
