//! Starting, logging and stopping the simulators.

use bridge_sim::log::to_jsonl;
use bridge_sim::seed::{DEMO_ASANA_TOKEN, DEMO_DOCSPACE_KEY};
use bridge_sim::{AsanaSim, DocSpaceSim, DocSpaceSimOptions};
use serde_json::json;

use crate::support::{add_me, asana_demo, client, get, get_status};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn sims_can_be_shared_between_tasks() {
    assert_send_sync::<AsanaSim>();
    assert_send_sync::<DocSpaceSim>();
}

#[tokio::test]
async fn log_keeps_order_query_body_and_no_secrets() {
    let (sim, ids) = asana_demo().await;
    let url = format!(
        "{}/tasks/{}?opt_fields=assignee.email",
        sim.base_url(),
        ids.task_pending
    );
    get(&url, DEMO_ASANA_TOKEN).send().await.unwrap();
    add_me(&client(), &sim, &ids.workspace)
        .send()
        .await
        .unwrap();
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].service, "asana");
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, format!("/api/1.0/tasks/{}", ids.task_pending));
    assert_eq!(log[0].query, "opt_fields=assignee.email");
    assert_eq!(log[0].body, None);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].method, "POST");
    assert_eq!(log[1].body, Some(json!({"data": {"user": "me"}})));

    let lines = to_jsonl(&log);
    assert_eq!(lines.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["service"], "asana");
    assert_eq!(first["status"], 200);
    assert!(!lines.contains(DEMO_ASANA_TOKEN));

    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn shutdown_stops_serving_and_frees_the_port() {
    let sim = DocSpaceSim::start(Default::default(), DocSpaceSimOptions::default())
        .await
        .unwrap();
    let addr = sim.addr();
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    let url = format!("{}/api/2.0/people/@self", sim.base_url());
    assert_eq!(get_status(&url, DEMO_DOCSPACE_KEY).await, 200);
    // A second sim cannot take the same port while the first runs.
    let taken = DocSpaceSim::start(
        Default::default(),
        DocSpaceSimOptions {
            addr,
            ..Default::default()
        },
    )
    .await;
    assert!(taken.is_err());
    sim.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
    let again = DocSpaceSim::start(
        Default::default(),
        DocSpaceSimOptions {
            addr,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.addr(), addr);
}

#[tokio::test]
async fn asana_shutdown_is_clean() {
    let (sim, _) = asana_demo().await;
    let url = format!("{}/users/me", sim.base_url());
    assert_eq!(get_status(&url, DEMO_ASANA_TOKEN).await, 200);
    sim.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
}
