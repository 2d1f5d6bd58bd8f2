//! docs/api.md §8 (channel management, delivery log, replay, enable) and §5 endpoint health.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::process::GatewayProcess;
use crate::common::*;
use axum::http::Method;
use serde_json::{json, Value};

/// Asserts an RFC 3339 UTC time with milliseconds, as every JSON time is.
fn assert_rfc3339(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(text.ends_with('Z') && text.len() == 24, "{text}");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .to_utc()
}

#[tokio::test]
async fn the_log_shows_retried_and_failed_notifications_with_metadata() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/log", "logged", &rx.url()).await;
    rx.next().await;
    rx.script(&[503]);
    gw.publish(
        json!({"resource": "/log/a", "state": "exists", "metadata": {"request_id": "12345"}}),
    )
    .await;
    let retried = rx.take(2).await; // 503, then success (204 after the script's first 503)
    assert_eq!(retried[0].number(), retried[1].number());
    rx.script(&[404]);
    gw.publish(json!([{"resource": "/log/b", "state": "not_exists"}, {"resource": "/log/c", "state": "exists"}])).await;
    let failed = rx.next().await;
    // The next delivery proves the worker finished with the failed one.
    let after = rx.next().await;
    assert_eq!(after.header("x-watchwire-event-resource"), Some("/log/c"));

    let log = gw
        .get("/v1/channels/logged/notifications")
        .await
        .expect(200)
        .json;
    let items = log["items"].as_array().unwrap();
    let by_number = |n: u64| {
        items
            .iter()
            .find(|i| i["messageNumber"].as_str() == Some(n.to_string().as_str()))
            .unwrap_or_else(|| panic!("no entry #{n}: {log}"))
    };
    assert_eq!(by_number(1)["state"], "sync");
    let first = by_number(retried[0].number());
    assert_eq!(first["status"], "delivered");
    assert_eq!(first["attempts"], 2);
    assert_eq!(first["lastStatus"], 204);
    assert_eq!(
        first["metadata"],
        json!({"request_id": "12345"}),
        "metadata reaches the delivery log"
    );
    assert_eq!(first["resource"], "/log/a");
    assert_rfc3339(&first["deliveredAt"]);
    assert_rfc3339(&first["lastAttemptAt"]);
    // Each attempt is kept: when, how long, and what the receiver answered.
    let attempts = first["recentAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{first}");
    assert_eq!(
        (
            attempts[0]["status"].as_u64(),
            attempts[1]["status"].as_u64()
        ),
        (Some(503), Some(204))
    );
    assert_eq!(attempts[0]["reason"], "httpStatus");
    assert_rfc3339(&attempts[0]["at"]);
    assert!(attempts[0]["durationMs"].is_u64());
    let gone = by_number(failed.number());
    assert_eq!(gone["status"], "failed");
    assert_eq!(gone["lastStatus"], 404);
    assert_eq!(gone["lastError"]["reason"], "httpStatus", "{gone}");
    assert_eq!(gone["lastError"]["status"], 404, "{gone}");
    assert!(gone["lastError"]["detail"]
        .as_str()
        .unwrap()
        .contains("404"));
    assert!(gone["deliveredAt"].is_null());

    let only_failed = gw
        .get("/v1/channels/logged/notifications?status=failed")
        .await
        .json;
    let numbers: Vec<&str> = only_failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["messageNumber"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, [failed.number().to_string()]);
    let paged = gw
        .get("/v1/channels/logged/notifications?maxResults=2")
        .await
        .json;
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    let token = paged["nextPageToken"].as_str().unwrap();
    let rest = gw
        .get(&format!(
            "/v1/channels/logged/notifications?maxResults=10&pageToken={token}"
        ))
        .await
        .json;
    assert_eq!(rest["items"].as_array().unwrap().len(), items.len() - 2);
}

#[tokio::test]
async fn a_channel_shows_its_delivery_state_and_lists_are_paged() {
    let gw = Gateway::start_with(|a| a.retry_schedule = vec![Duration::from_secs(30)]).await;
    let rx = Receiver::start().await;
    let channel = gw.watch("/st", "state", &rx.url()).await;
    rx.next().await;
    rx.respond(|_| (503, vec![]));
    gw.publish(
        json!([{"resource": "/st", "state": "exists"}, {"resource": "/st", "state": "exists"}]),
    )
    .await;
    rx.next().await; // the first attempt failed; the next one is 30 s away

    let shown = gw.get("/v1/channels/state").await.expect(200).json;
    assert_eq!(shown["id"], "state");
    assert_eq!(shown["resourceId"], channel["resourceId"]);
    let delivery = &shown["delivery"];
    assert_eq!(delivery["enabled"], true);
    assert_eq!(delivery["pendingCount"], 2);
    assert_eq!(shown["state"], "active");
    assert_eq!(delivery["lastError"]["reason"], "httpStatus", "{shown}");
    assert_eq!(delivery["lastError"]["status"], 503, "{shown}");
    let next_retry = assert_rfc3339(&delivery["nextRetry"]);
    assert!(next_retry > chrono::Utc::now());
    assert_rfc3339(&delivery["failingSince"]);
    assert!(shown.to_string().find("signingSecret").is_none());

    for i in 0..3 {
        gw.watch("/st", &format!("more-{i}"), &rx.url()).await;
    }
    let page = gw.get("/v1/channels?maxResults=3").await.json;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    // Listings carry each channel's delivery state, as one channel shows it.
    let listed = &page["items"][0];
    assert_eq!(listed["id"], shown["id"]);
    assert_eq!(
        listed["delivery"]["lastError"], delivery["lastError"],
        "{listed}"
    );
    assert_eq!(listed["delivery"]["host"]["state"], "open", "{listed}");
    let token = page["nextPageToken"].as_str().unwrap();
    let rest = gw
        .get(&format!("/v1/channels?maxResults=3&pageToken={token}"))
        .await
        .json;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    gw.get("/v1/channels/nope")
        .await
        .assert_error(404, "notFound");
}

#[tokio::test]
async fn replay_resends_with_the_original_numbers_then_carries_on() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/rp", "replayed", &rx.url()).await;
    let sync = rx.next().await;
    let start = sync.header("x-watchwire-cursor").unwrap().to_string();
    gw.publish(json!([{"resource": "/rp", "state": "exists", "data": {"i": 1}}, {"resource": "/rp/x", "state": "exists", "data": {"i": 2}}, {"resource": "/other", "state": "exists"}, {"resource": "/rp", "state": "not_exists"}])).await;
    let original: Vec<(u64, String)> = rx
        .take(3)
        .await
        .iter()
        .map(|r| (r.number(), r.state().to_string()))
        .collect();
    // A replay re-sends up to what the gateway has recorded as delivered: the last
    // notification reached the receiver before its answer reached the gateway.
    gw.await_pending("replayed", 0).await;

    let answer = gw
        .post("/v1/channels/replayed/replay", &json!({"since": start}))
        .await
        .expect(202)
        .json;
    assert_eq!(answer["replaying"], true);
    let replayed: Vec<(u64, String)> = rx
        .take(3)
        .await
        .iter()
        .map(|r| (r.number(), r.state().to_string()))
        .collect();
    assert_eq!(
        replayed, original,
        "same notifications, same numbers, same order"
    );

    gw.publish(json!({"resource": "/rp", "state": "exists"}))
        .await;
    let next = rx.next().await;
    assert!(next.number() > original[2].0);
    assert_eq!(
        next.header("x-watchwire-previous-number"),
        Some(original[2].0.to_string().as_str())
    );

    gw.post("/v1/channels/replayed/replay", &json!({"since": "garbage"}))
        .await
        .assert_error(400, "invalidCursor");
    let ahead = gw
        .post(
            "/v1/channels/replayed/replay",
            &json!({"since": "00000000000f0000"}),
        )
        .await;
    ahead.assert_error(400, "invalidCursor");
    let body = ahead.json;
    assert!(body.to_string().contains("ahead of the log"), "{body}");
    gw.post("/v1/channels/replayed/replay", &json!({}))
        .await
        .assert_error(400, "required");
}

#[tokio::test]
async fn a_failing_endpoint_is_disabled_and_enable_resumes_where_it_stopped() {
    let gw = Gateway::start_with(|a| {
        a.disable_after = Duration::from_millis(200);
        a.retry_schedule = vec![Duration::from_millis(20)];
    })
    .await;
    let rx = Receiver::start().await;
    gw.watch("/h", "health", &rx.url()).await;
    rx.next().await;
    let up = rx.unavailable_until_up();
    gw.publish(json!({"resource": "/h", "state": "exists", "data": {"i": 1}}))
        .await;

    // Attempts go on until the disable window has passed without a success.
    let first = rx.next().await;
    loop {
        let attempt = rx.next().await;
        if attempt.at.duration_since(first.at) >= Duration::from_millis(200) {
            break;
        }
    }
    // Drain attempts already in flight; then the channel must be disabled and quiet.
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = gw.get("/v1/channels/health").await.json;
        if shown["delivery"]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(shown["delivery"]["enabled"], false, "{shown}");
    while tokio::time::timeout(Duration::from_millis(100), rx.next())
        .await
        .is_ok()
    {}
    rx.expect_silence(Duration::from_millis(150)).await;
    let before = log_entry(&gw, "health", first.number()).await;
    let attempts = before["attempts"].as_u64().unwrap();
    assert!(attempts >= 3, "{before}");
    assert_eq!(before["status"], "pending", "{before}");
    assert!(
        before["nextRetry"].is_null(),
        "no retry while disabled: {before}"
    );

    up.store(true, Ordering::SeqCst);
    let enabled = gw
        .post("/v1/channels/health/enable", &json!({}))
        .await
        .expect(200)
        .json;
    assert_eq!(enabled["delivery"]["enabled"], true);
    let resumed = rx.next().await;
    assert_eq!(
        resumed.body_json()["i"],
        1,
        "delivery resumes with the notification it stopped at"
    );
    assert_eq!(resumed.number(), first.number());

    // Its history goes on: every attempt counts, the first one stays the first.
    let mut after = Value::Null;
    for _ in 0..500 {
        after = log_entry(&gw, "health", first.number()).await;
        if after["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(after["status"], "delivered", "{after}");
    assert_eq!(after["attempts"], attempts + 1, "{before}\n{after}");
    assert_eq!(after["firstAttemptAt"], before["firstAttemptAt"], "{after}");
    let recent = after["recentAttempts"].as_array().unwrap();
    assert_eq!(recent.last().unwrap()["status"], 204, "{after}");
    let earlier = before["recentAttempts"].as_array().unwrap();
    let kept = recent.len() - 1;
    assert_eq!(
        recent[..kept],
        earlier[earlier.len() - kept..],
        "the attempts before enable are still there: {after}"
    );
}

/// One channel's delivery-log entry by message number.
async fn log_entry(gw: &Gateway, id: &str, number: u64) -> Value {
    let log = gw
        .get(&format!("/v1/channels/{id}/notifications"))
        .await
        .expect(200)
        .json;
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["messageNumber"].as_str() == Some(number.to_string().as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("no entry #{number}: {log}"))
}

/// Every list pages as Google's do: `maxResults` and `pageToken`, `nextPageToken` only
/// while there is more; following the tokens visits every item once and ends.
#[tokio::test]
async fn google_paging_visits_every_item_once_and_ends() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/pg", "paged", &rx.url()).await;
    let events: Vec<Value> = (0..6)
        .map(|i| json!({"resource": "/pg", "state": "exists", "data": {"i": i}}))
        .collect();
    gw.publish(json!(events)).await;
    rx.take(7).await;
    for i in 0..4 {
        gw.watch("/pg", &format!("paged-{i}"), &rx.url()).await;
    }

    for (list, total) in [("/v1/channels/paged/notifications", 7), ("/v1/channels", 5)] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10 {
            let path = match &token {
                None => format!("{list}?maxResults=2"),
                Some(t) => format!("{list}?maxResults=2&pageToken={t}"),
            };
            let page = gw.get(&path).await.expect(200).json;
            for item in page["items"].as_array().unwrap() {
                seen.push(item.get("messageNumber").unwrap_or(&item["id"]).to_string());
            }
            match page["nextPageToken"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(
            (seen.len(), distinct.len()),
            (total, total),
            "{list}: {seen:?}"
        );
    }
    // An exact fit has no next page.
    let page = gw.get("/v1/channels?maxResults=5").await.json;
    assert!(page.get("nextPageToken").is_none(), "{page}");

    for bad in [
        "/v1/channels?max_results=2",
        "/v1/channels?maxResults=0",
        "/v1/channels?pageToken=abc",
        "/v1/channels/paged/notifications?status=lost",
        "/v1/channels/paged?verbose=true",
    ] {
        gw.get(bad).await.assert_error(400, "invalidParameter");
    }

    // Only tokens the gateway issued, for the list they came from (docs/api.md §14):
    // a number made up or edited by hand, or another list's token, is refused.
    let channels_token = gw.get("/v1/channels?maxResults=1").await.json["nextPageToken"]
        .as_str()
        .unwrap()
        .to_string();
    let log_token = gw
        .get("/v1/channels/paged/notifications?maxResults=1")
        .await
        .json["nextPageToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut edited = channels_token.clone().into_bytes();
    edited[2] = if edited[2] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for list in [
        "/v1/channels",
        "/v1/watchers",
        "/v1/channels/paged/notifications",
    ] {
        let mut tokens = vec!["999", "-1", "0", "1", "0000000000000001", &edited];
        if list != "/v1/channels" {
            tokens.push(&channels_token);
        }
        if !list.ends_with("notifications") {
            tokens.push(&log_token);
        }
        for token in tokens {
            let reply = gw.get(&format!("{list}?pageToken={token}")).await;
            reply.assert_error(400, "invalidParameter");
            let message = reply.json["error"]["message"].as_str().unwrap();
            assert!(message.contains("pageToken"), "{list} {token}: {message}");
        }
    }
}

/// A removed channel answers with how it ended, for the delivery-log retention window.
#[tokio::test]
async fn removed_channels_say_when_and_why_they_ended() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let stopped = gw.watch("/rm", "stopped", &rx.url()).await;
    rx.next().await;
    assert_eq!(
        gw.stop("stopped", stopped["resourceId"].as_str().unwrap())
            .await,
        204
    );

    let unsubscribing = Receiver::start().await;
    unsubscribing.respond(|_| (410, vec![]));
    gw.watch("/rm", "gone", &unsubscribing.url()).await;
    unsubscribing.next().await;

    gw.watch_with(
        "/rm",
        json!({"id": "expired", "type": "web_hook", "address": rx.url(), "params": {"ttl": "1"}}),
    )
    .await;
    rx.next().await;

    for (id, state, why) in [
        ("stopped", "stopped", "channels.stop"),
        ("gone", "gone", "410"),
        ("expired", "expired", "expiration"),
    ] {
        let mut shown = Value::Null;
        for _ in 0..300 {
            shown = gw.get(&format!("/v1/channels/{id}")).await.json;
            if shown["state"] == state {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(shown["state"], state, "{shown}");
        assert_eq!(shown["id"], id);
        assert_rfc3339(&shown["removedAt"]);
        assert!(
            shown["removedReason"].as_str().unwrap().contains(why),
            "{shown}"
        );
        assert!(shown.get("delivery").is_none(), "{shown}");
        gw.post(&format!("/v1/channels/{id}/enable"), &json!({}))
            .await
            .assert_error(404, "notFound");
    }
    gw.get("/v1/channels/never-existed")
        .await
        .assert_error(404, "notFound");
}

/// "Pending" means one thing: a notification still owed, attempted or not. The
/// channel's pendingCount, `?status=pending` and the gauge agree, on a keyed gateway
/// whose gauge exists before anything failed. A child process, so the gauge is its own.
#[tokio::test]
async fn pending_count_listing_and_gauge_agree() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::keyed(dir.path(), &[]);
    let root = gateway.key(keys::ROOT);
    let gauge = || async {
        let text = root.get("/metrics").await.text;
        metric_sample(&text, "watchwire_pending_notifications", &[])
            .unwrap_or_else(|| panic!("no pending gauge in:\n{text}"))
    };
    assert_eq!(gauge().await, 0.0, "the gauge exists before any failure");

    let rx = Receiver::start().await;
    let up = rx.unavailable_until_up();
    root.watch("/p", "owes", &rx.url()).await;
    rx.next().await; // the sync's first attempt failed
    root.publish(
        json!([{"resource": "/p", "state": "exists"}, {"resource": "/p/x", "state": "exists"}]),
    )
    .await;

    // The publish is answered once committed; the router offers the events to the
    // channel right after.
    root.await_pending("owes", 3).await;
    let shown = root.get("/v1/channels/owes").await.json;
    assert_eq!(
        shown["delivery"]["pendingCount"], 3,
        "the sync and two events: {shown}"
    );
    let pending = root
        .get("/v1/channels/owes/notifications?status=pending")
        .await
        .json;
    let items = pending["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{pending}");
    assert_eq!(items[0]["state"], "sync");
    assert!(items[0]["attempts"].as_u64().unwrap() >= 1, "{pending}");
    assert_eq!(
        items[1]["attempts"], 0,
        "not attempted yet, still pending: {pending}"
    );
    assert!(items.iter().all(|i| i["status"] == "pending"));
    assert_eq!(gauge().await, 3.0);

    up.store(true, Ordering::SeqCst);
    rx.take(3).await;
    for _ in 0..500 {
        if gauge().await == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gauge().await, 0.0);
    let shown = root.get("/v1/channels/owes").await.json;
    assert_eq!(shown["delivery"]["pendingCount"], 0, "{shown}");
    let pending = root
        .get("/v1/channels/owes/notifications?status=pending")
        .await
        .json;
    assert_eq!(pending["items"], json!([]));
}

/// Channel ids may hold `/` (docs/api.md §2's alphabet): such a channel is reached with
/// each `/` written as `%2F`, and the path with a bare `/` is a 404 that says how to
/// write it. A trailing slash is a 404 that names it.
#[tokio::test]
async fn ids_with_a_slash_are_reached_percent_encoded_and_trailing_slashes_are_named() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let created = gw.watch("/slash", "team/a+b=", &rx.url()).await;
    assert_eq!(created["id"], "team/a+b=");
    rx.next().await;
    let cursor = gw
        .publish(json!({"resource": "/slash", "state": "exists"}))
        .await["cursor"]
        .clone();
    assert_eq!(
        rx.next().await.header("x-goog-channel-id"),
        Some("team/a+b=")
    );

    let encoded = "/v1/channels/team%2Fa+b%3D";
    let shown = gw.get(encoded).await.expect(200).json;
    assert_eq!(
        (shown["id"].as_str(), shown["state"].as_str()),
        (Some("team/a+b="), Some("active"))
    );
    let log = gw
        .get(&format!("{encoded}/notifications"))
        .await
        .expect(200)
        .json;
    assert_eq!(log["items"].as_array().unwrap().len(), 2, "{log}");
    let replay = json!({"since": "0000000000000000"});
    gw.post(&format!("{encoded}/replay"), &replay)
        .await
        .expect(202);
    assert_eq!(
        rx.next().await.header("x-watchwire-cursor"),
        cursor.as_str()
    );

    for (bare, hint) in [
        ("/v1/channels/team/a+b=", "/v1/channels/team%2Fa+b="),
        (
            "/v1/channels/team/a+b=/notifications",
            "/v1/channels/team%2Fa+b=/notifications",
        ),
    ] {
        let reply = gw.get(bare).await;
        reply.assert_error(404, "notFound");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("%2F") && message.contains(hint),
            "{bare}: {message}"
        );
    }

    for (method, path, bare) in [
        (Method::GET, "/v1/channels/", "/v1/channels"),
        (Method::GET, "/v1/watchers/", "/v1/watchers"),
        (Method::POST, "/v1/watchers/", "/v1/watchers"),
        (
            Method::GET,
            "/v1/channels/team%2Fa+b%3D/",
            "/v1/channels/team%2Fa+b%3D",
        ),
        (Method::POST, "/slash/watch/", "/slash/watch"),
    ] {
        let reply = gw.send(method.clone(), path, "{}").await;
        reply.assert_error(404, "notFound");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("trailing slash") && message.ends_with(bare),
            "{method} {path}: {message}"
        );
    }
    // No hint where the slash is not the problem.
    let reply = gw.get("/v1/nothing/").await;
    reply.assert_error(404, "notFound");
    assert!(!reply.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("trailing"));
}

/// A channel is expired as soon as its expiration passes, not when the expiry sweep
/// (`--expiry-sweep`) gets to it: `GET /v1/channels/{id}` says so at once, its log,
/// replay and enable answer as for a removed channel, and the record the sweep then
/// leaves reads the same, ended at the expiration.
#[tokio::test]
async fn a_channel_shows_expired_as_soon_as_its_expiration_passes() {
    let expiring = |gw: &Gateway, id: &str, in_ms: i64| {
        let expiration = chrono::Utc::now().timestamp_millis() + in_ms;
        let body = json!({"id": id, "type": "web_hook", "address": "http://127.0.0.1:9/",
                          "expiration": expiration.to_string()});
        let api = gw.api.clone();
        async move {
            api.watch_with("/exp", body).await;
            expiration
        }
    };
    // Until its expiration passes, poll what the channel shows.
    let shown_after = |gw: &Gateway, id: &str, expiration: i64| {
        let api = gw.api.clone();
        let path = format!("/v1/channels/{id}");
        async move {
            let wait = expiration - chrono::Utc::now().timestamp_millis();
            tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 1)).await;
            api.get(&path).await.expect(200).json
        }
    };

    let unswept = Gateway::start_with(|a| a.expiry_sweep = Duration::from_secs(3600)).await;
    // Long enough that it is surely still active when first read.
    let expiration = expiring(&unswept, "soon", 2000).await;
    assert_eq!(
        unswept.get("/v1/channels/soon").await.json["state"],
        "active"
    );
    let shown = shown_after(&unswept, "soon", expiration).await;
    assert_eq!(shown["state"], "expired", "{shown}");
    assert_eq!(
        assert_rfc3339(&shown["removedAt"]).timestamp_millis(),
        expiration,
        "{shown}"
    );
    assert!(shown["removedReason"]
        .as_str()
        .unwrap()
        .contains("expiration"));
    assert!(shown.get("delivery").is_none(), "{shown}");
    for (path, body) in [
        ("/v1/channels/soon/notifications", None),
        ("/v1/channels/soon/enable", Some(json!({}))),
        (
            "/v1/channels/soon/replay",
            Some(json!({"since": "0000000000000000"})),
        ),
    ] {
        let reply = match body {
            None => unswept.get(path).await,
            Some(body) => unswept.post(path, &body).await,
        };
        reply.assert_error(404, "notFound");
    }

    // Where the sweep runs, its record says the same.
    let swept = Gateway::start().await;
    let expiration = expiring(&swept, "soon", 300).await;
    let before = shown_after(&swept, "soon", expiration).await;
    for _ in 0..500 {
        let listed = swept.get("/v1/channels").await.json;
        if listed["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = swept.get("/v1/channels").await.json;
    assert_eq!(listed["items"], json!([]), "the sweep removed it");
    let after = swept.get("/v1/channels/soon").await.expect(200).json;
    assert_eq!(after, before, "the record the sweep left reads the same");
}

/// An https:// receiver whose TLS handshake fails is logged as `tlsError`, whatever
/// the TLS library says about it: here a server that answers the handshake in plain
/// HTTP, as one listening without TLS on the port does. Retried like any failure to
/// connect.
#[tokio::test]
async fn a_failed_tls_handshake_is_logged_as_a_tls_error() {
    let gw = Gateway::start().await;
    let plain = raw::RawReceiver::start(raw::RawAnswer::PlainText).await;
    gw.watch("/tls", "tls", &format!("https://{}/hook", plain.addr))
        .await;
    let mut sync = Value::Null;
    for _ in 0..500 {
        let log = gw.get("/v1/channels/tls/notifications").await.json;
        sync = log["items"][0].clone();
        if sync["attempts"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sync["status"], "pending", "retried: {sync}");
    assert!(sync["attempts"].as_u64().unwrap() >= 2, "{sync}");
    assert_eq!(sync["lastError"]["reason"], "tlsError", "{sync}");
    for attempt in sync["recentAttempts"].as_array().unwrap() {
        assert_eq!(attempt["reason"], "tlsError", "{sync}");
        assert!(
            attempt["detail"].as_str().unwrap().contains("TLS"),
            "{sync}"
        );
    }
}

/// A quiet channel's own cursor stays at its last event while other resources move
/// the log on; `logHead` says how far the log is, and with nothing pending the channel
/// is up to date with it.
#[tokio::test]
async fn a_quiet_channel_is_up_to_date_with_the_log_head() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/quiet", "quiet", &rx.url()).await;
    gw.watch("/busy", "busy", &rx.url()).await;
    rx.take(2).await;
    let events: Vec<Value> = (0..3)
        .map(|i| json!({"resource": "/busy", "state": "exists", "data": {"i": i}}))
        .collect();
    let head = gw.publish(json!(events)).await["cursor"].clone();
    rx.take(3).await;

    let mut busy = Value::Null;
    for _ in 0..500 {
        busy = gw.get("/v1/channels/busy").await.json["delivery"].clone();
        if busy["pendingCount"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        (&busy["cursor"], &busy["logHead"]),
        (&head, &head),
        "{busy}"
    );
    let quiet = gw.get("/v1/channels/quiet").await.json["delivery"].clone();
    assert_eq!(quiet["pendingCount"], 0, "{quiet}");
    assert_eq!(
        quiet["cursor"], "0000000000000000",
        "its own cursor: {quiet}"
    );
    assert_eq!(quiet["logHead"], head, "up to date with the log: {quiet}");
    let listed = gw.get("/v1/channels").await.json;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["delivery"]["logHead"] == head),
        "{listed}"
    );
}
