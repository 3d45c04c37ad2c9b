//! `/healthz` and `/metrics`.

use bridge_sim::Fault;

use crate::support::TestApp;

#[tokio::test]
async fn healthz_reports_the_database_and_both_apis() {
    let app = TestApp::start().await; // health_ttl 0: every call probes
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["asana"]["ok"], true);
    assert_eq!(body["docspace"]["ok"], true);
    assert_eq!(body["queue"]["queued"], 0);

    app.docspace.set_faults(vec![Fault::status(503)]);
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert_eq!(body["docspace"]["ok"], false);
    assert!(
        body["docspace"]["error"].as_str().unwrap().contains("503"),
        "{body}"
    );
    assert_eq!(body["asana"]["ok"], true);
    assert!(
        !body.to_string().contains("sk-demo"),
        "no secrets in health output"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_promised_series() {
    let app = TestApp::start().await;
    app.create_webhook().await;
    let (task, user) = (app.ids.tasks[0].clone(), app.ids.users[0].clone());
    app.asana
        .world(|w| w.assign_task(&task, Some(&user)))
        .unwrap();
    app.settle().await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let m = r.text().await.unwrap();
    for series in [
        "asana_docspace_deliveries_received_total{kind=\"events\"} 1",
        "asana_docspace_deliveries_received_total{kind=\"handshake\"} 1",
        "asana_docspace_queue_depth{state=\"queued\"} 0",
        "asana_docspace_actions_total{target=\"portal\",outcome=\"invited\"} 1",
        "asana_docspace_api_requests_total{service=\"asana\"}",
        "asana_docspace_api_requests_total{service=\"docspace\"}",
        "asana_docspace_api_rate_limited_total{service=\"docspace\"} 0",
        "asana_docspace_delivery_duration_seconds_bucket",
        "asana_docspace_enqueue_to_done_seconds_count 1",
        "asana_docspace_job_duration_seconds_count 1",
        "asana_docspace_commit_batch_jobs_count 1",
    ] {
        assert!(m.contains(series), "missing {series}:\n{m}");
    }
    assert!(m.ends_with("# EOF\n"));
}
