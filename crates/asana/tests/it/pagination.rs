//! `project_tasks` pages lazily with `limit=100` and passes `next_page.offset` back verbatim.

use asana_api::{Error, Gid};
use futures::{StreamExt, TryStreamExt};

use crate::support::{Reply, Server};

/// Offsets are opaque; these contain characters that must survive URL encoding.
const OFFSET_2: &str = "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9+/==";
const OFFSET_3: &str = "page 3&x=y,z";

fn page(gids: &[&str], next: Option<&str>) -> Reply {
    let data: Vec<_> = gids
        .iter()
        .map(|g| serde_json::json!({"gid": g, "assignee": {"gid": "1100", "email": format!("{g}@example.com")}}))
        .collect();
    let next_page = next.map(|o| {
        serde_json::json!({
            "offset": o,
            "path": format!("/projects/1200/tasks?limit=100&offset={o}"),
            "uri": format!("https://app.asana.com/api/1.0/projects/1200/tasks?limit=100&offset={o}")
        })
    });
    Reply::json(
        200,
        serde_json::json!({"data": data, "next_page": next_page}).to_string(),
    )
}

fn three_pages() -> Vec<Reply> {
    vec![
        page(&["1", "2"], Some(OFFSET_2)),
        page(&["3", "4"], Some(OFFSET_3)),
        page(&["5"], None),
    ]
}

#[tokio::test]
async fn three_pages_with_offsets_passed_back_verbatim() {
    let server = Server::start(three_pages()).await;
    let client = server.client();
    let tasks: Vec<_> = client
        .project_tasks(
            &Gid::parse("1200").unwrap(),
            &["name", "assignee.email"],
            Some("now"),
        )
        .try_collect()
        .await
        .unwrap();
    let gids: Vec<_> = tasks.iter().map(|t| t.gid.as_str()).collect();
    assert_eq!(gids, ["1", "2", "3", "4", "5"]);
    assert_eq!(
        tasks[4].assignee.as_ref().unwrap().email.as_deref(),
        Some("5@example.com")
    );

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/1.0/projects/1200/tasks");
        assert_eq!(r.param("limit").as_deref(), Some("100"));
        assert_eq!(
            r.param("opt_fields").as_deref(),
            Some("name,assignee.email")
        );
        assert_eq!(r.param("completed_since").as_deref(), Some("now"));
    }
    assert_eq!(reqs[0].param("offset"), None);
    assert_eq!(reqs[1].param("offset").as_deref(), Some(OFFSET_2));
    assert_eq!(reqs[2].param("offset").as_deref(), Some(OFFSET_3));
}

#[tokio::test]
async fn the_stream_is_lazy() {
    let server = Server::start(three_pages()).await;
    let client = server.client();
    let project = Gid::parse("1200").unwrap();
    let first: Vec<_> = client
        .project_tasks(&project, &[], None)
        .take(2)
        .collect()
        .await;
    assert_eq!(first.len(), 2);
    assert_eq!(
        server.requests().len(),
        1,
        "only the first page was fetched"
    );
    assert_eq!(server.requests()[0].param("completed_since"), None);
    assert_eq!(server.requests()[0].param("opt_fields"), None);
}

#[tokio::test]
async fn an_error_page_ends_the_stream_with_the_error() {
    let server = Server::start(vec![
        page(&["1"], Some("next")),
        Reply::json(400, r#"{"errors":[{"message":"The result is too large. You should use pagination (may require specifying a workspace)!"}]}"#),
    ])
    .await;
    let client = server.client();
    let project = Gid::parse("1200").unwrap();
    let items: Vec<Result<_, Error>> = client.project_tasks(&project, &[], None).collect().await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().status(), Some(400));
}

#[tokio::test]
async fn a_repeated_offset_stops_instead_of_looping() {
    let server = Server::always(page(&["1"], Some("same"))).await;
    let client = server.client();
    let project = Gid::parse("1200").unwrap();
    let res: Result<Vec<_>, _> = client
        .project_tasks(&project, &[], None)
        .try_collect()
        .await;
    assert!(matches!(res, Err(Error::Decode { .. })), "{res:?}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn the_stream_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let cfg = asana_api::Config::new("http://127.0.0.1:9", "t".into()).unwrap();
    let client = asana_api::Client::new(cfg).unwrap();
    let project = Gid::parse("1").unwrap();
    assert_send(client.project_tasks(&project, &[], None));
    assert_send(client.get_task(&project, &[]));
    assert_send(client.list_webhooks(&project, None));
}
