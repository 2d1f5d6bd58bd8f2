//! docs/api.md §9 watchers: pattern channels that never expire, with the three de-duplication
//! rules per endpoint and their exact messages.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

async fn create(gw: &Gateway, pattern: &str, endpoint: &str) -> (u16, serde_json::Value) {
    let reply = gw
        .post(
            "/v1/watchers",
            &json!({"pattern": pattern, "endpoint": endpoint}),
        )
        .await;
    (reply.status, reply.json)
}

/// A `409` with the rule's message, naming the watcher it conflicts with.
fn assert_conflict(status: u16, body: &serde_json::Value, message: &str, existing: (&str, &str)) {
    assert_error(status, body, 409, "conflict");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(text.starts_with(message), "{text}");
    let (id, pattern) = existing;
    assert!(
        text.contains(&format!("watcher {id} with pattern {pattern} ")),
        "the conflict names the existing watcher: {text}"
    );
}

#[tokio::test]
async fn endpoints_are_checked_like_channel_addresses() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let long = format!("{}/?pad={}", rx.url(), "p".repeat(2048));
    for (what, endpoint, reason) in [
        // Stored and echoed as given: a NUL is more than PostgreSQL can store (a 503).
        ("a NUL", format!("{}/a\u{0}b", rx.url()), "invalid"),
        ("a tab", format!("{}/a\tb", rx.url()), "invalid"),
        ("DEL", format!("{}/a\u{7f}", rx.url()), "invalid"),
        ("over 2048 bytes", long, "invalid"),
        ("no scheme", "example.com/hook".into(), "invalid"),
        (
            "ftp",
            "ftp://example.com/hook".into(),
            "pushWebhookBadDomain",
        ),
    ] {
        let (status, body) = create(&gw, "/checked", &endpoint).await;
        assert_error(status, &body, 400, reason);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("endpoint "), "{what}: {message}");
        assert!(message.len() < 300, "{what}: a short message: {message}");
    }
    let (status, body) = create(&gw, "/checked", &format!("{}/a b", rx.url())).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_three_rules_with_their_messages() {
    let gw = Gateway::start().await;
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let (status, watcher) = create(&gw, "/apps", &a.url()).await;
    assert_eq!(status, 201, "{watcher}");
    let id = watcher["id"].as_str().unwrap().to_string();
    assert!(id.len() <= 64 && watchwire::protocol::watch::is_valid_channel_id(&id));
    assert!(!id.contains("apps"), "opaque");
    assert_eq!(watcher["pattern"], "/apps");

    let (status, body) = create(&gw, "/apps", &a.url()).await;
    assert_conflict(status, &body, "Record already exists", (&id, "/apps"));
    let (status, body) = create(&gw, "/apps/x", &a.url()).await;
    assert_conflict(status, &body, "Pattern is already provided", (&id, "/apps"));
    let (status, body) = create(&gw, "/apps2", &a.url()).await;
    assert_eq!(
        status, 201,
        "a string-prefix sibling is not covered: {body}"
    );
    let (status, narrow) = create(&gw, "/apps/x", &b.url()).await;
    assert_eq!(status, 201, "the rules are per endpoint");
    // The whole namespace covers every pattern.
    let (status, body) = create(&gw, "/", &b.url()).await;
    assert_conflict(
        status,
        &body,
        "Pattern would overwrite existing",
        (narrow["id"].as_str().unwrap(), "/apps/x"),
    );
    let (status, body) = create(&gw, "/apps", &b.url()).await;
    assert_conflict(
        status,
        &body,
        "Pattern would overwrite existing",
        (narrow["id"].as_str().unwrap(), "/apps/x"),
    );

    // Patterns are path prefixes; a glob would be taken literally, so it is refused.
    for glob in ["/x/*", "/x/**", "/x/file?.txt", "/x/[ab]", "/x/{a,b}"] {
        let (status, body) = create(&gw, glob, &a.url()).await;
        assert_error(status, &body, 400, "invalid");
        assert!(body.to_string().contains("prefix"), "{body}");
    }
    // A watcher never expires, so it shows no expiration.
    let shown = gw.get(&format!("/v1/channels/{id}")).await.expect(200).json;
    assert_eq!(shown["kind"], "watchwire#watcher");
    assert!(shown.get("expiration").is_none(), "{shown}");

    // Deterministic: deleting and re-creating gives the same id.
    gw.delete(&format!("/v1/watchers/{id}")).await.expect(204);
    let (status, again) = create(&gw, "/apps", &a.url()).await;
    assert_eq!(status, 201);
    assert_eq!(again["id"], id.as_str());
}

#[tokio::test]
async fn watchers_deliver_once_per_endpoint_never_expire_and_survive_deletes() {
    let gw = Gateway::start().await;
    let endpoint = Receiver::start().await;
    let (_, watcher) = create(&gw, "/apps/mail", &endpoint.url()).await;
    create(&gw, "/apps/chat", &endpoint.url()).await;
    let syncs = endpoint.take(2).await;
    assert!(syncs.iter().all(|s| s.state() == "sync"));
    assert!(
        syncs
            .iter()
            .all(|s| s.header("x-goog-channel-expiration").is_none()),
        "watchers never expire"
    );

    gw.publish(json!([
        {"resource": "/apps/mail/inbox/1", "state": "exists"},
        {"resource": "/apps/mail/inbox/1", "state": "not_exists"},
        {"resource": "/apps/mail/inbox/1", "state": "exists"},
        {"resource": "/apps/chat/room", "state": "exists"},
    ]))
    .await;
    let got = endpoint.take(4).await;
    let mail = watcher["id"].as_str().unwrap();
    // Order holds per watcher; the two watchers deliver independently.
    let mail_states: Vec<&str> = got
        .iter()
        .filter(|r| r.header("x-goog-channel-id") == Some(mail))
        .map(|r| r.state())
        .collect();
    assert_eq!(
        mail_states,
        ["exists", "not_exists", "exists"],
        "deleting the resource keeps the watcher"
    );
    assert_eq!(
        got.iter()
            .filter(|r| r.header("x-goog-channel-id") != Some(mail))
            .count(),
        1,
        "each event once per endpoint"
    );
    endpoint.expect_silence(Duration::from_millis(100)).await;

    let list = gw.get("/v1/watchers").await.expect(200).json;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    for watcher in list["items"].as_array().unwrap() {
        assert_eq!(watcher["delivery"]["pendingCount"], 0, "{watcher}");
        assert_eq!(watcher["delivery"]["enabled"], true, "{watcher}");
    }

    // Every delivery of a watcher is a listable record of it.
    let log = gw
        .get(&format!("/v1/channels/{mail}/notifications"))
        .await
        .json;
    assert_eq!(log["items"].as_array().unwrap().len(), 4, "{log}");

    gw.delete(&format!("/v1/watchers/{mail}")).await.expect(204);
    gw.publish(json!({"resource": "/apps/mail/x", "state": "exists"}))
        .await;
    endpoint.expect_silence(Duration::from_millis(100)).await;
    gw.delete(&format!("/v1/watchers/{mail}")).await.expect(404);
}

/// A watcher on `/` covers the whole namespace (docs/api.md §1, §9): it gets every
/// event, and for its endpoint it covers every other pattern, both ways round.
#[tokio::test]
async fn a_watcher_on_the_whole_namespace_gets_everything_and_covers_every_pattern() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let (status, all) = create(&gw, "/", &rx.url()).await;
    assert_eq!(status, 201, "{all}");
    assert_eq!(all["pattern"], "/");
    let id = all["id"].as_str().unwrap();
    assert_eq!(rx.next().await.state(), "sync");
    for (pattern, rule) in [
        ("/", "Record already exists"),
        ("/apps", "Pattern is already provided"),
        ("/storage/v1", "Record already exists"),
    ] {
        let (status, body) = create(&gw, pattern, &rx.url()).await;
        assert_conflict(status, &body, rule, (id, "/"));
    }
    gw.publish(json!([
        {"resource": "/apps/x/1", "state": "exists"},
        {"resource": "/other", "state": "not_exists"},
    ]))
    .await;
    let got: Vec<String> = rx
        .take(2)
        .await
        .iter()
        .map(|r| r.header("x-watchwire-event-resource").unwrap().to_string())
        .collect();
    assert_eq!(got, ["/apps/x/1", "/other"]);
    let listed = gw.get("/v1/watchers").await.json;
    assert_eq!(listed["items"][0]["pattern"], "/");
}

/// The rules compare endpoints in their normal form: every spelling of one address is
/// one endpoint (scheme and host case, default and zero-padded ports, percent-encoding,
/// an empty path), so none of them gets an event twice. A fragment is refused: it is
/// never sent, so it cannot tell endpoints apart.
#[tokio::test]
async fn every_spelling_of_an_endpoint_is_one_endpoint() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    let endpoint = format!("http://127.0.0.1:{port}/w");
    let (status, watcher) = create(&gw, "/apps", &endpoint).await;
    assert_eq!(status, 201, "{watcher}");
    let id = watcher["id"].as_str().unwrap().to_string();
    assert_eq!(rx.next().await.state(), "sync");

    for spelling in [
        format!("HTTP://127.0.0.1:{port}/w"),
        format!("http://127.0.0.1:0{port}/%77"),
        format!("http://127.0.0.1:{port}/x/../w"),
    ] {
        let (status, body) = create(&gw, "/apps/x", &spelling).await;
        assert_conflict(status, &body, "Pattern is already provided", (&id, "/apps"));
        let (status, body) = create(&gw, "/apps", &spelling).await;
        assert_conflict(status, &body, "Record already exists", (&id, "/apps"));
    }
    let (status, body) = create(&gw, "/apps/x", &format!("{endpoint}#f")).await;
    assert_error(status, &body, 400, "invalid");
    assert!(body.to_string().contains("fragment"), "{body}");

    gw.publish(json!({"resource": "/apps/x/1", "state": "exists"}))
        .await;
    assert_eq!(rx.next().await.header("x-goog-channel-id"), Some(&*id));
    rx.expect_silence(Duration::from_millis(150)).await;

    // Kept and shown in the normal form; any spelling of the triple gets the same id.
    gw.delete(&format!("/v1/watchers/{id}")).await.expect(204);
    let (status, again) = create(&gw, "/apps", &format!("HTTP://127.0.0.1:{port}/%77")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["endpoint"], endpoint.as_str());
    let (status, https) = create(&gw, "/secure", "HTTPS://Example.COM:443").await;
    assert_eq!(status, 201, "{https}");
    assert_eq!(https["endpoint"], "https://example.com/");
}

/// Watchers stored by a version that compared endpoints as written are brought up to
/// the rules when the gateway starts: their endpoints take the normal form, and of
/// watchers that would send an event twice to one endpoint, the one covering the others
/// stays and they are removed, saying why. From then on the database itself refuses a
/// second watcher with the same owner, pattern and endpoint.
#[tokio::test]
async fn an_upgrade_brings_stored_watchers_up_to_the_rules() {
    let mut gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    let endpoint = format!("http://127.0.0.1:{port}/w");
    let mut ids = Vec::new();
    for (pattern, to) in [
        ("/apps", endpoint.clone()),
        ("/elsewhere", endpoint.clone()),
        ("/dup", format!("{endpoint}/dup")),
        ("/solo", endpoint.clone()),
    ] {
        let (status, watcher) = create(&gw, pattern, &to).await;
        assert_eq!(status, 201, "{watcher}");
        ids.push(watcher["id"].as_str().unwrap().to_string());
    }
    let [apps, covered, dup, solo] = &ids[..] else {
        unreachable!()
    };
    rx.take(4).await;
    gw.shutdown().await;

    // What an older version let in: spellings the rules did not recognise.
    let older = if store::is_postgres() {
        "DELETE FROM watchwire_migrations WHERE version = 4;"
    } else {
        // What came after that version, undone, so that its step runs again too.
        "PRAGMA user_version = 3; DROP VIEW log_head; ALTER TABLE channels DROP COLUMN owner_node;
         DROP VIEW visible_events; DROP VIEW polling_index; ALTER TABLE channels DROP COLUMN filter;
         ALTER TABLE channels DROP COLUMN sent_seq; ALTER TABLE channels DROP COLUMN auth;
         ALTER TABLE events DROP COLUMN trace_context; ALTER TABLE channels DROP COLUMN expiring_told_ms;"
    };
    store::execute(
        gw.dir.path(),
        &format!(
            "DROP INDEX watchers_by_endpoint;
             UPDATE channels SET resource = '/apps/x', address = 'HTTP://127.0.0.1:{port}/w' WHERE id = '{covered}';
             UPDATE channels SET address = 'http://127.0.0.1:0{port}/%77' WHERE id = '{solo}';
             INSERT INTO channels (kind, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms,
                                   params, payload, signing_secret, created_ms, start_seq, progress_seq, synced)
               SELECT kind, owner, 'w-copy', resource, resource_id, resource_uri, address || '#f', token, expiration_ms,
                      params, payload, signing_secret, created_ms, start_seq, progress_seq, synced
               FROM channels WHERE id = '{dup}';
             UPDATE owner_counts SET channels = channels + 1;
             {older}"
        ),
    )
    .unwrap();
    gw.start_again(|_| {}).await;

    for (removed, kept, pattern) in [(&**covered, apps, "/apps"), ("w-copy", dup, "/dup")] {
        let shown = gw
            .get(&format!("/v1/channels/{removed}"))
            .await
            .expect(200)
            .json;
        assert_eq!(shown["state"], "stopped", "{shown}");
        let reason = shown["removedReason"].as_str().unwrap();
        assert!(
            reason.contains("upgrade")
                && reason.contains(&format!("watcher {kept} with pattern {pattern} ")),
            "{reason}"
        );
    }
    let listed = gw.get("/v1/watchers").await.expect(200).json;
    let mut endpoints: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap(), w["endpoint"].as_str().unwrap()))
        .collect();
    endpoints.sort_unstable();
    let dup_endpoint = format!("{endpoint}/dup");
    let mut expected = vec![
        (apps.as_str(), endpoint.as_str()),
        (dup.as_str(), dup_endpoint.as_str()),
        (solo.as_str(), endpoint.as_str()),
    ];
    expected.sort_unstable();
    assert_eq!(endpoints, expected, "the rest in the normal form");

    gw.publish(json!({"resource": "/apps/x/1", "state": "exists"}))
        .await;
    assert_eq!(rx.next().await.header("x-goog-channel-id"), Some(&**apps));
    rx.expect_silence(Duration::from_millis(150)).await;
    let (status, body) = create(&gw, "/apps/x", &endpoint).await;
    assert_conflict(
        status,
        &body,
        "Pattern is already provided",
        (apps, "/apps"),
    );

    gw.shutdown().await;
    let refused = store::execute(
        gw.dir.path(),
        &format!(
            "INSERT INTO channels (kind, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms,
                                   params, payload, signing_secret, created_ms, start_seq, progress_seq, synced)
               SELECT kind, owner, 'w-again', resource, resource_id, resource_uri, address, token, expiration_ms,
                      params, payload, signing_secret, created_ms, start_seq, progress_seq, synced
               FROM channels WHERE id = '{apps}';"
        ),
    );
    let refused =
        refused.expect_err("the database refuses a second watcher on one pattern and endpoint");
    assert!(refused.to_lowercase().contains("unique"), "{refused}");
}
