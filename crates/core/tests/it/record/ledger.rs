//! Ledger: record, record_many, history filters and ordering.

use bridge_core::record::{HistoryFilter, NewLedgerEntry};

use super::Backend;

fn entry(run: &str, task: &str, email: Option<&str>, outcome: &str) -> NewLedgerEntry {
    NewLedgerEntry {
        run_id: run.into(),
        source: "sync".parse().unwrap(),
        task_gid: Some(task.into()),
        assignee_gid: Some(format!("a{task}")),
        email: email.map(Into::into),
        target: "portal".parse().unwrap(),
        action: "invite".parse().unwrap(),
        outcome: outcome.parse().unwrap(),
        error: None,
        detail: None,
    }
}

async fn record_returns_ids_and_history_keeps_every_field(backend: &Backend) {
    let s = backend.open().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut e = entry("run-1", "11", Some("Ann@Example.com"), "failed");
    e.target = "room:42".parse().unwrap();
    e.action = "share".parse().unwrap();
    e.error = Some("docspace 500".into());
    e.detail = Some(r#"{"access":"editing"}"#.into());
    e.source = "webhook".parse().unwrap();
    let id1 = s.record(&e).await.unwrap();
    let id2 = s
        .record(&entry("run-1", "12", None, "no_assignee"))
        .await
        .unwrap();
    assert!(id2 > id1);

    let h = s.history(&HistoryFilter::default()).await.unwrap();
    assert_eq!(h.len(), 2);
    let got = &h[0];
    assert_eq!(got.id, id1);
    assert!(got.at >= before && got.at <= chrono::Utc::now());
    assert_eq!(got.run_id, "run-1");
    assert_eq!(got.source, "webhook");
    assert_eq!(got.task_gid.as_deref(), Some("11"));
    assert_eq!(got.assignee_gid.as_deref(), Some("a11"));
    assert_eq!(got.email.as_deref(), Some("Ann@Example.com"));
    assert_eq!(got.target, "room:42");
    assert_eq!(got.action, "share");
    assert_eq!(got.outcome, "failed");
    assert_eq!(got.error.as_deref(), Some("docspace 500"));
    assert_eq!(got.detail.as_deref(), Some(r#"{"access":"editing"}"#));
    assert_eq!(h[1].email, None);
}

async fn history_filters_combine_and_email_ignores_case(backend: &Backend) {
    let s = backend.open().await;
    s.record_many(&[
        entry("r1", "1", Some("ann@example.com"), "invited"),
        entry("r1", "2", Some("bob@example.com"), "invited"),
        entry("r2", "1", Some("ANN@EXAMPLE.COM"), "already_member"),
        entry("r2", "3", None, "no_assignee"),
    ])
    .await
    .unwrap();

    let by_email = s
        .history(&HistoryFilter {
            email: Some("Ann@Example.Com".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_email
            .iter()
            .map(|e| e.outcome.as_str())
            .collect::<Vec<_>>(),
        ["invited", "already_member"]
    );

    let by_task = s
        .history(&HistoryFilter {
            task_gid: Some("1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_task.len(), 2);

    let by_run = s
        .history(&HistoryFilter {
            run_id: Some("r2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_run.len(), 2);
    assert!(by_run.iter().all(|e| e.run_id == "r2"));

    let both = s
        .history(&HistoryFilter {
            task_gid: Some("1".into()),
            run_id: Some("r1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].outcome, "invited");

    let none = s
        .history(&HistoryFilter {
            email: Some("nobody@example.com".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn limit_keeps_the_newest_and_returns_them_oldest_first(backend: &Backend) {
    let s = backend.open().await;
    let es: Vec<_> = (0..10)
        .map(|i| entry("r", &i.to_string(), None, "invited"))
        .collect();
    s.record_many(&es).await.unwrap();
    let h = s
        .history(&HistoryFilter {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        h.iter()
            .map(|e| e.task_gid.clone().unwrap())
            .collect::<Vec<_>>(),
        ["7", "8", "9"]
    );
    assert!(h.windows(2).all(|w| w[0].id < w[1].id));
    let all = s.history(&HistoryFilter::default()).await.unwrap();
    assert_eq!(all.len(), 10);
    let zero = s
        .history(&HistoryFilter {
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(zero.is_empty());
}

async fn record_many_empty_is_a_no_op(backend: &Backend) {
    let s = backend.open().await;
    s.record_many(&[]).await.unwrap();
    assert!(s
        .history(&HistoryFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_writers_do_not_hit_busy_errors(backend: &Backend) {
    // Two stores (two pools) on one file, as when a CLI run shares the file with `serve`.
    let a = backend.open().await;
    let b = backend.open().await;
    let mut tasks = Vec::new();
    for (n, s) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let batch: Vec<_> = (0..5)
                    .map(|k| entry(&format!("w{n}"), &format!("{i}-{k}"), None, "invited"))
                    .collect();
                s.record_many(&batch).await.unwrap();
                s.record(&entry(&format!("w{n}"), "single", None, "invited"))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        a.history(&HistoryFilter::default()).await.unwrap().len(),
        4 * 50 * 6
    );
}

/// More rows than one multi-row statement takes: every row stored, in the order given, with
/// its own fields.
async fn record_many_stores_every_row_of_a_large_batch_in_order(backend: &Backend) {
    let s = backend.open().await;
    let es: Vec<_> = (0..1_234)
        .map(|i| {
            let mut e = entry(
                "big",
                &i.to_string(),
                Some(&format!("p{i}@x.io")),
                "invited",
            );
            e.detail = (i % 2 == 0).then(|| format!("d{i}"));
            e
        })
        .collect();
    s.record_many(&es).await.unwrap();
    let all = s.history(&HistoryFilter::default()).await.unwrap();
    assert_eq!(all.len(), es.len());
    for (i, (got, want)) in all.iter().zip(&es).enumerate() {
        assert_eq!(got.task_gid, want.task_gid, "row {i}");
        assert_eq!(got.email, want.email, "row {i}");
        assert_eq!(got.detail, want.detail, "row {i}");
        assert_eq!(got.run_id, "big");
    }
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
}

super::conformance!(
    record_many_stores_every_row_of_a_large_batch_in_order,
    record_returns_ids_and_history_keeps_every_field,
    history_filters_combine_and_email_ignores_case,
    limit_keeps_the_newest_and_returns_them_oldest_first,
    record_many_empty_is_a_no_op,
    concurrent_writers_do_not_hit_busy_errors,
);
