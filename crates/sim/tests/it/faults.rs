//! Fault injection on both simulators: statuses in each vendor's envelope, dropped
//! connections, delays, latency, `times`, and seeded probabilities.

use std::time::{Duration, Instant};

use bridge_sim::seed::{self, DEMO_ASANA_TOKEN, DEMO_DOCSPACE_KEY};
use bridge_sim::{AsanaSim, AsanaSimOptions, DocSpaceSim, DocSpaceSimOptions, Fault, FaultKind};

use crate::support::{client, get, get_json, get_status, json};

async fn sims(seed_value: u64) -> (AsanaSim, DocSpaceSim, seed::DemoIds) {
    let (a, d, ids) = seed::demo();
    let asana = AsanaSim::start(
        a,
        AsanaSimOptions {
            rng_seed: seed_value,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let docspace = DocSpaceSim::start(
        d,
        DocSpaceSimOptions {
            rng_seed: seed_value,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (asana, docspace, ids)
}

#[tokio::test]
async fn status_faults_use_each_vendors_envelope() {
    let (asana, docspace, ids) = sims(1).await;
    asana.set_faults(vec![Fault::status(503).on_path("/tasks/")]);
    docspace.set_faults(vec![Fault::status(500)]);

    let (s, b) = get_json(
        &format!("{}/tasks/{}", asana.base_url(), ids.task_pending),
        DEMO_ASANA_TOKEN,
    )
    .await;
    assert_eq!(s, 503);
    assert!(b["errors"][0]["message"].is_string());
    // Other paths are untouched.
    let r = get(&format!("{}/users/me", asana.base_url()), DEMO_ASANA_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (s, b) = get_json(
        &format!("{}/api/2.0/people/@self", docspace.base_url()),
        DEMO_DOCSPACE_KEY,
    )
    .await;
    assert_eq!(s, 500);
    assert_eq!(
        (b["status"].as_i64(), b["statusCode"].as_i64()),
        (Some(1), Some(500))
    );
    assert!(b["error"]["message"].is_string());
    // Faults answer before authentication, like a proxy in front of the API would.
    let r = client()
        .get(format!("{}/api/2.0/people/@self", docspace.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(docspace.requests()[0].status, 500);
}

#[tokio::test]
async fn asana_500_fault_carries_a_phrase_and_429_fault_its_retry_after() {
    let (asana, _d, _) = sims(2).await;
    asana.set_faults(vec![
        Fault::status(500).times(1),
        Fault::rate_limited(Some(7)).times(1),
        Fault::new(FaultKind::Status {
            code: 429,
            retry_after: None,
        })
        .times(1),
    ]);
    let url = format!("{}/users/me", asana.base_url());
    let (s, b) = get_json(&url, DEMO_ASANA_TOKEN).await;
    assert_eq!(s, 500);
    assert!(b["errors"][0]["phrase"].is_string());
    let r = get(&url, DEMO_ASANA_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let r = get(&url, DEMO_ASANA_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    let (_, b) = json(r).await;
    assert!(b["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("rate limit"));
    // `times` exhausted: back to normal.
    assert_eq!(get_status(&url, DEMO_ASANA_TOKEN).await, 200);
}

#[tokio::test]
async fn drop_closes_the_connection_without_a_response() {
    let (asana, docspace, _) = sims(3).await;
    asana.set_faults(vec![Fault::drop_connection().on_method("GET").times(1)]);
    let url = format!("{}/users/me", asana.base_url());
    let err = get(&url, DEMO_ASANA_TOKEN)
        .send()
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_timeout());
    assert!(err.status().is_none());
    // The server survives and serves the next request.
    assert_eq!(get_status(&url, DEMO_ASANA_TOKEN).await, 200);
    let log = asana.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[0].status, 0,
        "a dropped request is logged with status 0"
    );
    assert_eq!(log[1].status, 200);

    docspace.set_faults(vec![Fault::drop_connection()]);
    let r = get(
        &format!("{}/api/2.0/people/@self", docspace.base_url()),
        DEMO_DOCSPACE_KEY,
    )
    .send()
    .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn delay_and_latency_slow_answers_down() {
    let (asana, docspace, _) = sims(4).await;
    asana.set_faults(vec![
        Fault::delay(Duration::from_millis(300)).on_path("/users/")
    ]);
    let t = Instant::now();
    let r = get(&format!("{}/users/me", asana.base_url()), DEMO_ASANA_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    docspace.set_latency(Duration::from_millis(200));
    let t = Instant::now();
    let r = get(
        &format!("{}/api/2.0/people/@self", docspace.base_url()),
        DEMO_DOCSPACE_KEY,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(200));

    // A client timeout shorter than the delay sees a timeout.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/api/2.0/people/@self", docspace.base_url()))
        .bearer_auth(DEMO_DOCSPACE_KEY)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
}

async fn outcomes(seed_value: u64) -> Vec<u16> {
    let (asana, _d, _) = sims(seed_value).await;
    asana.set_faults(vec![Fault::status(503).with_probability(0.5)]);
    let url = format!("{}/users/me", asana.base_url());
    let mut out = Vec::new();
    for _ in 0..24 {
        out.push(get_status(&url, DEMO_ASANA_TOKEN).await);
    }
    out
}

#[tokio::test]
async fn probability_is_deterministic_given_the_seed() {
    let a = outcomes(42).await;
    let b = outcomes(42).await;
    let c = outcomes(43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let failures = a.iter().filter(|s| **s == 503).count();
    assert!((3..=21).contains(&failures), "{a:?}");
}

#[test]
fn fault_specs_parse_from_the_command_line_form() {
    let f: Fault = "kind=429,retry_after=3,method=POST,path=/people/invite,times=2"
        .parse()
        .unwrap();
    assert_eq!(
        f.kind,
        FaultKind::Status {
            code: 429,
            retry_after: Some(3)
        }
    );
    assert_eq!(f.times, Some(2));
}
