//! docs/api.md §17 endpoint authentication: fixed headers and HTTP Basic on every
//! notification of a channel or watcher; the secrets never shown back; the headers the
//! gateway sets itself refused by name.

use crate::common::process::GatewayProcess;
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

/// A token endpoint (a receiver) that hands out `t-1`, `t-2`, … in turn.
fn token_endpoint(tokens: &Receiver) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = issued.clone();
    tokens.respond(move |_| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let body =
            json!({"access_token": format!("t-{n}"), "token_type": "Bearer", "expires_in": 3600});
        (200, vec![(BODY, body.to_string())])
    });
    issued
}

fn oauth(tokens: &Receiver) -> serde_json::Value {
    json!({"type": "oauth2", "tokenUrl": format!("{}/token", tokens.url()),
           "clientId": "gateway", "clientSecret": "cs-1618", "scope": "notify write"})
}

/// Ten channels with the same credentials share one token, fetched once with the
/// client-credentials grant; the client secret is never shown back.
#[tokio::test]
async fn channels_with_the_same_client_credentials_share_one_token() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let tokens = Receiver::start().await;
    let issued = token_endpoint(&tokens);
    for i in 0..10 {
        let watch = json!({"id": format!("o{i}"), "type": "web_hook", "address": rx.url(),
                           "auth": oauth(&tokens)});
        gw.watch_with("/oauth", watch).await;
    }
    for got in rx.take(10).await {
        assert_eq!(got.header("authorization"), Some("Bearer t-1"));
    }
    assert_eq!(
        issued.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one token request"
    );
    let request = tokens.next().await;
    assert_eq!(
        request.header("authorization"),
        Some("Basic Z2F0ZXdheTpjcy0xNjE4"),
        "client_secret_basic"
    );
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        "grant_type=client_credentials&scope=notify+write"
    );
    let shown = gw.get("/v1/channels/o0").await.expect(200).json;
    assert_eq!(shown["auth"]["type"], "oauth2");
    assert_eq!(shown["auth"]["clientId"], "gateway");
    assert!(!shown.to_string().contains("cs-1618"), "{shown}");
}

/// A `401` from the endpoint fetches a token again, once, and the notification goes
/// with it; a token endpoint that fails makes the attempt fail with `authFailed`,
/// retried like any failure.
#[tokio::test]
async fn a_refused_token_is_fetched_again_and_a_failing_token_endpoint_is_auth_failed() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let tokens = Receiver::start().await;
    token_endpoint(&tokens);
    rx.respond(|r| match r.header("authorization") {
        Some("Bearer t-1") => (401, vec![]),
        _ => (204, vec![]),
    });
    let watch =
        json!({"id": "refreshed", "type": "web_hook", "address": rx.url(), "auth": oauth(&tokens)});
    gw.watch_with("/oauth", watch).await;
    let (first, second) = (rx.next().await, rx.next().await);
    assert_eq!(first.header("authorization"), Some("Bearer t-1"));
    assert_eq!(second.header("authorization"), Some("Bearer t-2"));
    assert_eq!(first.state(), "sync");
    assert_eq!(second.state(), "sync");

    let broken = Receiver::start().await;
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = healthy.clone();
    broken.respond(
        move |_| match gate.load(std::sync::atomic::Ordering::SeqCst) {
            false => (500, vec![(BODY, "down".to_string())]),
            true => (
                200,
                vec![(
                    BODY,
                    r#"{"access_token": "late", "expires_in": 60}"#.to_string(),
                )],
            ),
        },
    );
    let auth =
        json!({"type": "oauth2", "tokenUrl": broken.url(), "clientId": "c", "clientSecret": "s"});
    let other = Receiver::start().await;
    gw.watch_with(
        "/oauth2",
        json!({"id": "no-token", "type": "web_hook", "address": other.url(), "auth": auth}),
    )
    .await;
    broken.next().await;
    assert_eq!(gw.await_last_error("no-token").await, "authFailed");
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let delivered = other.next().await;
    assert_eq!(delivered.header("authorization"), Some("Bearer late"));
}

/// The secrets of every kind of `auth` (and the token the gateway obtained) appear in no
/// response, listing, console page or metric, and in none of the gateway's log lines at
/// its most talkative, while deliveries with them succeed and fail in every way that
/// logs something: a `401`, a token endpoint that fails, one that hands out a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_response_a_listing_the_console_or_the_log() {
    use nix::sys::signal::Signal::SIGTERM;
    const SECRETS: [&str; 7] = [
        "hv-secret-1",
        "basic-pw-2",
        "cs-secret-3",
        "at-secret-4",
        "cs-secret-5",
        "broker-pw-6",
        "broker-pw-7",
    ];
    let dir = tempfile::tempdir().unwrap();
    // Brokers with passwords, where nothing answers: their failures are logged.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let redis = format!("redis://:broker-pw-6@{down}/0");
    let amqp = format!("amqp://watchwire:broker-pw-7@{down}/%2f");
    let (gateway, mut log) = GatewayProcess::start_logged(
        dir.path(),
        &[
            "--log",
            "debug,watchwire=trace",
            "--retry-schedule",
            "50ms",
            "--broker",
            &redis,
            "--broker",
            &amqp,
        ],
    );
    let refusing = Receiver::start().await;
    refusing.respond(|_| (401, vec![(BODY, "who are you".to_string())]));
    let accepting = Receiver::start().await;
    let tokens = Receiver::start().await;
    tokens.respond(|_| {
        let body = json!({"access_token": "at-secret-4", "expires_in": 3600});
        (200, vec![(BODY, body.to_string())])
    });
    let failing_tokens = Receiver::start().await;
    failing_tokens.respond(|_| (500, vec![(BODY, "token service down".to_string())]));
    let watches = [
        (
            "headers",
            refusing.url(),
            json!({"type": "header", "name": "Authorization", "value": "hv-secret-1"}),
        ),
        (
            "basic",
            refusing.url(),
            json!({"type": "basic", "username": "u", "password": "basic-pw-2"}),
        ),
        (
            "oauth",
            accepting.url(),
            json!({"type": "oauth2", "tokenUrl": tokens.url(), "clientId": "c", "clientSecret": "cs-secret-3"}),
        ),
        (
            "no-token",
            accepting.url(),
            json!({"type": "oauth2", "tokenUrl": failing_tokens.url(), "clientId": "c", "clientSecret": "cs-secret-5"}),
        ),
    ];
    let mut answers = Vec::new();
    for (id, address, auth) in watches {
        let body = json!({"id": id, "type": "web_hook", "address": address, "auth": auth});
        answers.push(gateway.watch_with("/secretive", body).await.to_string());
    }
    for (id, channel_type, address) in [
        (
            "to-redis",
            "redis_stream",
            format!("redis://{down}/0?key=k"),
        ),
        (
            "to-amqp",
            "amqp",
            format!("amqp://{down}/%2f?routing_key=q"),
        ),
    ] {
        let body = json!({"id": id, "type": channel_type, "address": address});
        answers.push(gateway.watch_with("/secretive", body).await.to_string());
    }
    let watcher = json!({"pattern": "/secretive", "endpoint": refusing.url(),
                         "auth": {"type": "basic", "username": "w", "password": "basic-pw-2"}});
    answers.push(
        gateway
            .post("/v1/watchers", &watcher)
            .await
            .expect(201)
            .text,
    );
    assert_eq!(
        accepting.next().await.header("authorization"),
        Some("Bearer at-secret-4")
    );
    for id in ["headers", "basic"] {
        assert_eq!(gateway.await_last_error(id).await, "httpStatus");
    }
    assert_eq!(gateway.await_last_error("no-token").await, "authFailed");
    for id in ["to-redis", "to-amqp"] {
        assert_eq!(gateway.await_last_error(id).await, "brokerUnavailable");
    }
    gateway
        .publish(json!({"resource": "/secretive", "state": "exists"}))
        .await;
    for path in [
        "/v1/channels",
        "/v1/channels/headers",
        "/v1/channels/basic",
        "/v1/channels/oauth",
        "/v1/channels/no-token",
        "/v1/channels/no-token/notifications",
        "/v1/channels/headers/notifications",
        "/v1/channels/to-redis",
        "/v1/channels/to-amqp/notifications",
        "/v1/watchers",
        "/console",
        "/metrics",
        "/v1/openapi.json",
    ] {
        answers.push(gateway.get(path).await.text);
    }
    gateway.signal(SIGTERM);
    gateway.exited_within(PATIENCE).await;
    let mut lines = Vec::new();
    while let Some(line) = log.recv().await {
        lines.push(line);
    }
    for id in ["no-token", "to-redis", "to-amqp"] {
        assert!(
            lines.iter().any(|l| l.contains(id)),
            "the log says nothing of the failing channel {id}, so it proves nothing"
        );
    }
    for text in answers.iter().chain(&lines) {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
    }
}
