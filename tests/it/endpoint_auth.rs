//! docs/api.md §17 endpoint authentication: fixed headers and HTTP Basic on every
//! notification of a channel or watcher; the secrets never shown back; the headers the
//! gateway sets itself refused by name.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn a_channel_sends_its_headers_and_never_shows_their_values() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let watch = json!({"id": "keyed", "type": "web_hook", "address": rx.url(),
                       "auth": {"type": "header", "headers": [
                           {"name": "Authorization", "value": "Bearer tok-3141"},
                           {"name": "X-Api-Key", "value": "key-2718"}]}});
    let answer = gw.watch_with("/guarded", watch).await;
    assert!(!answer.to_string().contains("tok-3141"), "{answer}");
    for got in [rx.next().await, {
        gw.publish(json!({"resource": "/guarded", "state": "exists"}))
            .await;
        rx.next().await
    }] {
        assert_eq!(got.header("authorization"), Some("Bearer tok-3141"));
        assert_eq!(got.header("x-api-key"), Some("key-2718"));
    }
    let shown = gw.get("/v1/channels/keyed").await.expect(200).json;
    assert_eq!(
        shown["auth"],
        json!({"type": "header", "headers": [{"name": "Authorization"}, {"name": "X-Api-Key"}]})
    );
    let listed = gw.get("/v1/channels").await.expect(200).json;
    for text in [shown.to_string(), listed.to_string()] {
        assert!(
            !text.contains("tok-3141") && !text.contains("key-2718"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_watcher_sends_basic_credentials() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let created = gw
        .post("/v1/watchers", &json!({"pattern": "/basic", "endpoint": rx.url(),
                                       "auth": {"type": "basic", "username": "Aladdin", "password": "open sesame"}}))
        .await
        .expect(201)
        .json;
    assert_eq!(
        created["auth"],
        json!({"type": "basic", "username": "Aladdin"})
    );
    let sync = rx.next().await;
    assert_eq!(
        sync.header("authorization"),
        Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    );
    let listed = gw.get("/v1/watchers").await.expect(200).json;
    assert!(!listed.to_string().contains("sesame"), "{listed}");
}

#[tokio::test]
async fn headers_the_gateway_sets_are_refused_by_name() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    for (auth, says) in [
        (
            json!({"type": "header", "name": "X-Goog-Channel-Token", "value": "x"}),
            "X-Goog-Channel-Token is a header the gateway sets",
        ),
        (
            json!({"type": "header", "name": "Content-Type", "value": "text/plain"}),
            "Content-Type is a header the gateway sets",
        ),
        (
            json!({"type": "header", "name": "X-Ok", "value": "secret\u{7}"}),
            "printable ASCII",
        ),
        (json!({"type": "digest"}), "not supported"),
    ] {
        let body = json!({"id": "refused", "type": "web_hook", "address": rx.url(), "auth": auth});
        let reply = gw.post("/guarded/watch", &body).await;
        reply.assert_error(400, "invalid");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(!message.contains("secret"), "no value echoed: {message}");
        let reply = gw
            .post(
                "/v1/watchers",
                &json!({"pattern": "/guarded", "endpoint": rx.url(), "auth": auth}),
            )
            .await;
        reply.assert_error(400, "invalid");
    }
}
