//! Listings page with `count=100&startIndex=` until `total`.

use docspace_api::{Access, Error, PeopleFilter, Person, RoomMember};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::support::*;

fn person(i: usize) -> serde_json::Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{i:012}"),
        "displayName": format!("Person {i}"),
        "email": format!("p{i}@example.com"),
        "status": 4,
        "activationStatus": 2,
        "isCollaborator": true
    })
}

/// Answers a page of `total` generated items, honouring `count` and `startIndex`.
fn page(
    req: &Seen,
    total: usize,
    item: fn(usize) -> serde_json::Value,
    with_total: bool,
) -> axum::response::Response {
    let count: usize = req.param("count").unwrap().parse().unwrap();
    let start: usize = req.param("startIndex").unwrap().parse().unwrap();
    let items: Vec<_> = (start..total.min(start + count)).map(item).collect();
    let mut body = json!({"response": items, "count": items.len(), "status": 0, "statusCode": 200});
    if with_total {
        body["total"] = json!(total);
    }
    json(200, &body.to_string())
}

#[tokio::test]
async fn people_pages_until_total_with_the_filter() {
    let mock = Mock::start(|req, _| page(req, 250, person, true)).await;
    let c = client(&mock.url);
    let people: Vec<Person> = c
        .people(PeopleFilter::pending())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(people.len(), 250);
    assert_eq!(people[0].email.as_deref(), Some("p0@example.com"));
    assert_eq!(people[249].email.as_deref(), Some("p249@example.com"));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    for (req, start) in reqs.iter().zip(["0", "100", "200"]) {
        assert_eq!(req.path, "/api/2.0/people/filter");
        assert_eq!(req.param("count").as_deref(), Some("100"));
        assert_eq!(req.param("startIndex").as_deref(), Some(start));
        assert_eq!(req.param("activationStatus").as_deref(), Some("2"));
        assert_eq!(req.param("employeeStatus"), None);
    }
}

#[tokio::test]
async fn an_exact_multiple_of_the_page_size_stops_without_an_empty_page() {
    let mock = Mock::start(|req, _| page(req, 200, person, true)).await;
    let n = client(&mock.url)
        .people(PeopleFilter {
            activation_status: None,
            employee_status: Some(1),
        })
        .count()
        .await;
    assert_eq!(n, 200);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].param("employeeStatus").as_deref(), Some("1"));
}

#[tokio::test]
async fn without_total_a_short_page_ends_the_listing() {
    let mock = Mock::start(|req, _| page(req, 130, person, false)).await;
    let n = client(&mock.url).people(PeopleFilter::all()).count().await;
    assert_eq!(n, 130);
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn the_stream_is_lazy() {
    let mock = Mock::start(|req, _| page(req, 250, person, true)).await;
    let c = client(&mock.url);
    let first: Vec<_> = c.people(PeopleFilter::all()).take(3).collect().await;
    assert_eq!(first.len(), 3);
    assert_eq!(mock.count(), 1);

    // The stream is Unpin: `next()` works without pinning it first, and the
    // room id is not borrowed past the call.
    let mut members = {
        let id = String::from("42");
        c.room_members(&id)
    };
    assert!(members.next().await.is_some());
}

fn member(i: usize) -> serde_json::Value {
    json!({
        "access": if i == 0 { 9 } else { 10 },
        "sharedToUser": {"id": format!("00000000-0000-4000-8000-{i:012}"), "email": format!("m{i}@example.com")},
        "isOwner": i == 0,
        "subjectType": 0
    })
}

#[tokio::test]
async fn room_members_page_until_total() {
    let mock = Mock::start(|req, _| page(req, 150, member, true)).await;
    let members: Vec<RoomMember> = client(&mock.url)
        .room_members("42")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 150);
    assert!(members[0].is_owner);
    assert_eq!(members[0].access, Some(Access::RoomManager));
    assert_eq!(members[149].access, Some(Access::Editing));
    assert_eq!(members[149].email.as_deref(), Some("m149@example.com"));
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].path, "/api/2.0/files/rooms/42/share");
    assert_eq!(reqs[1].param("startIndex").as_deref(), Some("100"));
}

#[tokio::test]
async fn a_failing_page_ends_the_stream_with_the_error() {
    let mock = Mock::start(|req, n| {
        if n == 0 {
            page(req, 150, member, true)
        } else {
            json(403, r#"{"error":{"message":"Access denied"},"status":1}"#)
        }
    })
    .await;
    let results: Vec<_> = client(&mock.url).room_members("42").collect().await;
    assert_eq!(results.len(), 101);
    assert!(results[..100].iter().all(Result::is_ok));
    assert_eq!(results[100].as_ref().unwrap_err().status(), Some(403));
}

#[tokio::test]
async fn a_bad_room_id_is_the_first_and_only_item() {
    let mock = Mock::start(|req, _| page(req, 1, member, true)).await;
    let results: Vec<_> = client(&mock.url).room_members("x").collect().await;
    assert!(
        matches!(results[..], [Err(Error::InvalidInput(_))]),
        "{results:?}"
    );
    assert_eq!(mock.count(), 0);
}
