//! docs/api.md §7 polling: `/v1/changes` (every collection in one answer, newest first) and
//! `/v1/changeset` (events under a path, `_since`, `_limit`, `_expected`, ETag/304,
//! Cache-Control).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn get(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let (status, headers, text) = gw.get_raw(path, headers).await;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, headers, body)
}

#[tokio::test]
async fn changes_lists_every_collection_newest_first() {
    let gw = Gateway::start().await;
    gw.publish(json!({"resource": "/b/photos/o/cat.jpg", "state": "exists"}))
        .await;
    gw.publish(json!({"resource": "/b/docs/o/a.txt", "state": "exists"}))
        .await;
    let last = gw
        .publish(json!({"resource": "/b/photos/o/dog.jpg", "state": "not_exists"}))
        .await;

    let (status, _, body) = get(&gw, "/v1/changes", &[]).await;
    assert_eq!(status, 200);
    let collections = body["collections"].as_array().unwrap();
    let names: Vec<&str> = collections
        .iter()
        .map(|c| c["collection"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["/b/photos/o", "/b/docs/o"],
        "newest first, one entry per collection"
    );
    assert_eq!(collections[0]["cursor"], last["cursor"]);
    assert!(collections[0]["last_modified"].as_i64().unwrap() > 1_600_000_000_000);

    let (_, _, filtered) = get(&gw, "/v1/changes?prefix=/b/docs", &[]).await;
    assert_eq!(filtered["collections"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["collections"][0]["collection"], "/b/docs/o");
    let (_, _, sibling) = get(&gw, "/v1/changes?prefix=/b/doc", &[]).await;
    assert_eq!(
        sibling["collections"].as_array().unwrap().len(),
        0,
        "prefixes match whole segments"
    );
}

#[tokio::test]
async fn changeset_pages_with_since_and_limit_and_carries_metadata() {
    let gw = Gateway::start().await;
    let first = gw
        .publish(json!({"resource": "/p/o/x", "state": "exists", "data": {"i": 0}}))
        .await;
    let batch: Vec<_> = (1..6).map(|i| json!({"resource": "/p/o/x", "state": "exists", "data": {"i": i}, "metadata": {"n": i}})).collect();
    let last = gw.publish(json!(batch)).await;
    gw.publish(json!({"resource": "/q", "state": "exists"}))
        .await;

    let since = first["cursor"].as_str().unwrap();
    let (status, headers, page) = get(
        &gw,
        &format!("/v1/changeset?resource=/p&_expected=0&_since={since}&_limit=3"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<i64> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "oldest first, strictly after _since");
    assert_eq!(page["changes"][0]["metadata"], json!({"n": 1}));
    assert_eq!(
        page["timestamp"], last["cursor"],
        "the latest cursor under the path"
    );
    assert_eq!(
        headers["etag"].to_str().unwrap(),
        format!("\"{}\"", last["cursor"].as_str().unwrap())
    );
    let next = page["next"].as_str().expect("_limit cut the list");
    let (_, _, rest) = get(
        &gw,
        &format!("/v1/changeset?resource=/p&_expected=0&_since={next}&_limit=3"),
        &[],
    )
    .await;
    let ids: Vec<i64> = rest["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 5]);
    assert!(rest.get("next").is_none(), "no next once the list is whole");

    let (_, _, all) = get(&gw, "/v1/changeset?resource=/p/o/x&_expected=0", &[]).await;
    assert_eq!(
        all["changes"].as_array().unwrap().len(),
        6,
        "without _since: everything retained"
    );
}

#[tokio::test]
async fn changeset_etag_304_and_cache_control() {
    let gw = Gateway::start_with(|a| {
        a.changes_max_age = Duration::from_secs(0);
        a.changes_expected_max_age = Duration::from_secs(60);
    })
    .await;
    let published = gw
        .publish(json!({"resource": "/e/o/1", "state": "exists"}))
        .await;
    let latest = published["cursor"].as_str().unwrap();
    let url = "/v1/changeset?resource=/e&_expected=anything";
    let (status, headers, _) = get(&gw, url, &[]).await;
    assert_eq!(status, 200);
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert_eq!(headers["cache-control"], "max-age=0");

    let (status, headers, body) = get(&gw, url, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    assert_eq!(body, Value::Null);
    assert_eq!(headers["etag"].to_str().unwrap(), etag);
    let (status, _, _) = get(&gw, url, &[("if-none-match", &format!("W/{etag}"))]).await;
    assert_eq!(status, 304, "weak validators match too");

    // `_expected` already reached: this URL's answer is final, cache it longer.
    let (_, headers, _) = get(
        &gw,
        &format!("/v1/changeset?resource=/e&_expected={latest}"),
        &[],
    )
    .await;
    assert_eq!(headers["cache-control"], "max-age=60");

    gw.publish(json!({"resource": "/e/o/2", "state": "exists"}))
        .await;
    let (status, headers, _) = get(&gw, url, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 200, "a new event changes the ETag");
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn changeset_needs_expected_and_a_resource_and_rejects_expired_cursors() {
    let gw = Gateway::start_with(|a| {
        a.retention = Duration::ZERO;
        a.prune_interval = Duration::from_millis(20);
    })
    .await;
    let (status, _, body) = get(&gw, "/v1/changeset?resource=/a", &[]).await;
    assert_error(status, &body, 400, "required");
    let (status, _, body) = get(&gw, "/v1/changeset?_expected=1", &[]).await;
    assert_error(status, &body, 400, "required");
    let (status, _, body) = get(&gw, "/v1/changeset?resource=/a&_expected=1&_limit=0", &[]).await;
    assert_error(status, &body, 400, "invalidParameter");

    let first = gw
        .publish(json!({"resource": "/a", "state": "exists"}))
        .await;
    gw.publish(json!({"resource": "/a", "state": "exists"}))
        .await;
    let url = format!(
        "/v1/changeset?resource=/a&_expected=1&_since={}",
        first["cursor"].as_str().unwrap()
    );
    // Pruning runs on its interval in the background; wait for it to pass the cursor.
    for _ in 0..200 {
        let (status, _, body) = get(&gw, &url, &[]).await;
        if status == 410 {
            assert_error(status, &body, 410, "cursorExpired");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the expired _since was never refused");
}

/// `/v1/changes` polls like Kinto's monitor endpoint: `_since`, `_limit`, an `ETag` of
/// its latest cursor with `304`, the changeset's cache rules, and each entry's `host`.
#[tokio::test]
async fn changes_takes_since_and_limit_and_answers_304_to_its_etag() {
    let gw = Gateway::start_with(|a| {
        a.public_url = Some("https://push.example.com".into());
        a.changes_max_age = Duration::from_secs(5);
        a.changes_expected_max_age = Duration::from_secs(300);
    })
    .await;
    let first = gw
        .publish(json!({"resource": "/k/a/1", "state": "exists"}))
        .await;
    gw.publish(json!({"resource": "/k/b/1", "state": "exists"}))
        .await;
    let last = gw
        .publish(json!({"resource": "/k/c/1", "state": "exists"}))
        .await;
    let last = last["cursor"].as_str().unwrap();

    let (status, headers, body) = get(&gw, "/v1/changes", &[]).await;
    assert_eq!(status, 200);
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{last}\""));
    assert_eq!(headers["cache-control"], "max-age=5");
    assert!(body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["host"] == "https://push.example.com"));

    let since = format!("/v1/changes?_since={}", first["cursor"].as_str().unwrap());
    let (_, _, body) = get(&gw, &since, &[]).await;
    let names: Vec<&str> = body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["collection"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/k/c", "/k/b"], "only what changed after _since");
    let (_, _, body) = get(&gw, "/v1/changes?_limit=1", &[]).await;
    assert_eq!(body["collections"].as_array().unwrap().len(), 1);

    let (status, headers, body) = get(&gw, "/v1/changes", &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    assert!(body.is_null());
    assert_eq!(headers["etag"].to_str().unwrap(), etag);
    let (_, headers, _) = get(&gw, &format!("/v1/changes?_expected={last}"), &[]).await;
    assert_eq!(
        headers["cache-control"], "max-age=300",
        "_expected reached: settled"
    );

    gw.publish(json!({"resource": "/k/a/2", "state": "exists"}))
        .await;
    let (status, _, _) = get(&gw, "/v1/changes", &[("if-none-match", &etag)]).await;
    assert_eq!(status, 200, "a new change breaks the ETag");
    for bad in [
        "/v1/changes?_since=zzz",
        "/v1/changes?_limit=0",
        "/v1/changes?since=1",
    ] {
        let (status, _, body) = get(&gw, bad, &[]).await;
        assert!(status == 400, "{bad}: {body}");
    }
}

/// Retention keeps up with the log whatever its rate (docs/api.md §7): one prune pass
/// removes everything past retention, however many chunks that takes, and the polling
/// index goes with its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_everything_past_retention_in_one_pass() {
    let gw = Gateway::start_with(|a| {
        a.retention = Duration::ZERO;
        a.log_retention = Duration::ZERO;
        a.prune_interval = Duration::from_millis(200);
    })
    .await;
    let rx = Receiver::start().await;
    gw.watch("/ret", "kept", &rx.url()).await;
    rx.next().await;
    // More than one prune chunk (10 000) of events, polling entries and log entries.
    for b in 0..11 {
        let batch: Vec<Value> = (0..1000)
            .map(|i| json!({"resource": format!("/ret/c{b}-{i}/x"), "state": "exists"}))
            .collect();
        gw.publish(json!(batch)).await;
    }
    for _ in 0..11_000 {
        rx.next().await;
    }
    let mut left = (Value::Null, Value::Null);
    for _ in 0..100 {
        let (_, _, changes) = get(&gw, "/v1/changes", &[]).await;
        let (_, _, log) = get(&gw, "/v1/channels/kept/notifications", &[]).await;
        left = (changes["collections"].clone(), log["items"].clone());
        if left == (json!([]), json!([])) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (collections, log) = left;
    assert_eq!(
        collections.as_array().map(Vec::len),
        Some(0),
        "polling entries outlive their events"
    );
    assert_eq!(
        log.as_array().map(Vec::len),
        Some(0),
        "delivery-log entries outlive retention"
    );
}
