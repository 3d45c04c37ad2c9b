//! The API key never shows in `Debug`, `Display` or error text.

use docspace_api::{Client, Error};

use crate::support::*;

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(KEY), "{what} leaks the key: {text}");
    assert!(
        !text.contains("SENTINEL"),
        "{what} leaks part of the key: {text}"
    );
}

#[tokio::test]
async fn config_and_client_debug_redact_the_key() {
    let cfg = config("docspace.example.com");
    let text = format!("{cfg:?}");
    assert_clean("Config", &text);
    assert!(text.contains("[redacted]"), "{text}");
    assert!(text.contains("https://docspace.example.com/"), "{text}");

    let client = Client::new(cfg).unwrap();
    let text = format!("{client:?} {:#?}", client.clone());
    assert_clean("Client", &text);
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn every_error_variant_is_clean() {
    // An error page that echoes the request's Authorization header.
    let echo = Mock::start(|req, _| {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        json(
            400,
            &serde_json::json!({"error": {"message": format!("bad header: {auth}")}, "status": 1})
                .to_string(),
        )
    })
    .await;
    let api = client(&echo.url).me().await.unwrap_err();
    assert!(matches!(api, Error::Api { status: 400, .. }), "{api:?}");
    assert!(api.to_string().contains("Bearer [redacted]"), "{api}");

    let decode_mock = Mock::start(|_, _| json(200, r#"{"response":{"id":true}}"#)).await;
    let decode = client(&decode_mock.url).me().await.unwrap_err();
    assert!(matches!(decode, Error::Decode { .. }), "{decode:?}");

    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let transport = client(&format!("http://{addr}"))
        .find_person_by_email("secret.person@example.com")
        .await
        .unwrap_err();
    assert!(matches!(transport, Error::Transport(_)), "{transport:?}");
    let text = transport.to_string();
    assert!(!text.contains("secret.person"), "query string in {text}");
    assert!(!text.contains("email="), "query string in {text}");
    assert!(text.contains("/api/2.0/people/email"), "{text}");

    let invalid = "guest".parse::<docspace_api::UserType>().unwrap_err();

    for err in [api, decode, transport, invalid] {
        assert_clean("Error (Display)", &err.to_string());
        assert_clean("Error (Debug)", &format!("{err:?}"));
    }
}
