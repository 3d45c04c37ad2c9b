//! What each method sends, and how answers map to results.

use docspace_api::{Access, Error, Invitation, PersonState, RoomShare, RoomType, UserType};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn lookup_sends_the_email_as_a_query_parameter_with_the_key_as_bearer() {
    let mock = Mock::start(|_, _| json(200, PERSON_ACTIVE)).await;
    let person = client(&mock.url)
        .find_person_by_email("ada+docs@example.com")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(person.state(), PersonState::Active);

    let [req] = &mock.requests()[..] else {
        panic!("one request expected")
    };
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/api/2.0/people/email");
    assert_eq!(req.param("email").as_deref(), Some("ada+docs@example.com"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("accept"), Some("application/json"));
    let ua = req.header("user-agent").unwrap();
    assert!(ua.starts_with("asana-docspace/"), "{ua}");
    assert!(req.body.is_empty());
}

#[tokio::test]
async fn lookup_404_is_none() {
    let mock = Mock::start(|_, _| json(404, NOT_FOUND)).await;
    let found = client(&mock.url)
        .find_person_by_email("nobody@example.com")
        .await
        .unwrap();
    assert_eq!(found, None);
    assert_eq!(mock.count(), 1, "a 404 is an answer, not retried");
}

#[tokio::test]
async fn lookup_of_a_pending_invitee() {
    let mock = Mock::start(|_, _| json(200, PERSON_PENDING)).await;
    let p = client(&mock.url)
        .find_person_by_email("grace@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.state(), PersonState::Pending);
    assert_eq!(p.user_type(), Some(UserType::RoomAdmin));
}

#[tokio::test]
async fn lookup_refuses_a_non_address_without_calling() {
    let mock = Mock::start(|_, _| json(200, PERSON_ACTIVE)).await;
    let err = client(&mock.url)
        .find_person_by_email("not an address")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn invite_posts_integer_types() {
    let mock = Mock::start(|_, _| json(200, INVITE_RESPONSE)).await;
    let summaries = client(&mock.url)
        .invite(&[
            Invitation::new("grace@example.com", UserType::User),
            Invitation::new("alan@example.com", UserType::RoomAdmin),
        ])
        .await
        .unwrap();
    assert_eq!(summaries.len(), 2);
    assert_eq!(
        summaries[0].display_name.as_deref(),
        Some("grace@example.com")
    );

    let [req] = &mock.requests()[..] else {
        panic!("one request expected")
    };
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/api/2.0/people/invite")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"invitations": [
            {"email": "grace@example.com", "type": 4},
            {"email": "alan@example.com", "type": 1}
        ]})
    );
}

#[tokio::test]
async fn invite_of_nobody_sends_nothing() {
    let mock = Mock::start(|_, _| json(200, INVITE_RESPONSE)).await;
    assert_eq!(client(&mock.url).invite(&[]).await.unwrap(), vec![]);
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn validation_errors_inside_response_become_api_errors() {
    let mock = Mock::start(|_, _| json(400, VALIDATION)).await;
    let err = client(&mock.url)
        .invite(&[Invitation::new("x@example.com", UserType::User)])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let Error::Api { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("Invitations[0].Email: The field Email"),
        "{message}"
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn error_message_of_a_disabled_user() {
    let mock = Mock::start(|_, _| {
        json(
            400,
            r#"{"error":{"message":"User disabled: old@example.com"},"status":1,"statusCode":400}"#,
        )
    })
    .await;
    let err = client(&mock.url)
        .invite(&[Invitation::new("old@example.com", UserType::User)])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Api {
            status: 400,
            message: "User disabled: old@example.com".into()
        }
    );
}

#[tokio::test]
async fn get_room_reads_type_and_title() {
    let mock = Mock::start(|_, _| json(200, ROOM)).await;
    let room = client(&mock.url).get_room("123456").await.unwrap();
    assert_eq!(room.id, "123456");
    assert_eq!(room.title, "Project Apollo");
    assert_eq!(room.room_type, Some(RoomType::Custom));
    assert_eq!(mock.requests()[0].path, "/api/2.0/files/rooms/123456");
}

#[tokio::test]
async fn room_ids_must_be_numbers() {
    let mock = Mock::start(|_, _| json(200, ROOM)).await;
    let c = client(&mock.url);
    assert!(matches!(
        c.get_room("../people").await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        c.share_room("abc", &[], true).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn share_room_puts_ids_and_integer_access() {
    let mock = Mock::start(|_, _| json(200, SHARE_RESPONSE)).await;
    let result = client(&mock.url)
        .share_room(
            "123456",
            &[
                RoomShare::new("4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", Access::Editing),
                RoomShare::new("7d6e5f40-3a2b-4c1d-9e8f-112233445566", Access::RoomManager),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(result.members[0].access, Some(Access::Editing));
    assert_eq!(
        result.warning.as_deref(),
        Some("Could not invite guest@example.com")
    );

    let [req] = &mock.requests()[..] else {
        panic!("one request expected")
    };
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("PUT", "/api/2.0/files/rooms/123456/share")
    );
    assert_eq!(
        req.json(),
        json!({
            "invitations": [
                {"id": "4c3f2d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", "access": 10},
                {"id": "7d6e5f40-3a2b-4c1d-9e8f-112233445566", "access": 9}
            ],
            "notify": true
        })
    );
}

#[tokio::test]
async fn share_room_refuses_emails_as_ids() {
    let mock = Mock::start(|_, _| json(200, SHARE_RESPONSE)).await;
    let err = client(&mock.url)
        .share_room(
            "1",
            &[RoomShare::new("ada@example.com", Access::Read)],
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn me_reads_self() {
    let mock = Mock::start(|_, _| json(200, PERSON_ACTIVE)).await;
    let me = client(&mock.url).me().await.unwrap();
    assert_eq!(me.email.as_deref(), Some("ada@example.com"));
    assert_eq!(mock.requests()[0].path, "/api/2.0/people/@self");
}

#[tokio::test]
async fn a_2xx_body_of_the_wrong_shape_is_a_decode_error_with_a_path() {
    let mock = Mock::start(|_, _| json(200, r#"{"response":{"id":"x","status":"active"}}"#)).await;
    let err = client(&mock.url).me().await.unwrap_err();
    match err {
        Error::Decode { path, .. } => assert_eq!(path, "response.status"),
        other => panic!("{other:?}"),
    }
}
