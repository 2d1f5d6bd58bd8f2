//! docs/api.md §7 polling: `/v1/changes` (every collection in one answer, newest first) and
//! `/v1/changeset` (events under a path, `_since`, `_limit`, `_expected`, ETag/304,
//! Cache-Control).

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

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

    let body = gw.get("/v1/changes").await.expect(200).json;
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

    let filtered = gw.get("/v1/changes?prefix=/b/docs").await.json;
    assert_eq!(filtered["collections"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["collections"][0]["collection"], "/b/docs/o");
    let sibling = gw.get("/v1/changes?prefix=/b/doc").await.json;
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
    let reply = gw
        .get(&format!(
            "/v1/changeset?resource=/p&_expected=0&_since={since}&_limit=3"
        ))
        .await
        .expect(200);
    let page = &reply.json;
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
        reply.header("etag").unwrap(),
        format!("\"{}\"", last["cursor"].as_str().unwrap())
    );
    let next = page["next"].as_str().expect("_limit cut the list");
    let rest = gw
        .get(&format!(
            "/v1/changeset?resource=/p&_expected=0&_since={next}&_limit=3"
        ))
        .await
        .json;
    let ids: Vec<i64> = rest["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 5]);
    assert!(rest.get("next").is_none(), "no next once the list is whole");

    let all = gw
        .get("/v1/changeset?resource=/p/o/x&_expected=0")
        .await
        .json;
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
    let fresh = gw.get(url).await.expect(200);
    let etag = fresh.header("etag").unwrap().to_string();
    assert_eq!(fresh.headers["cache-control"], "max-age=0");

    let cached = gw.header("if-none-match", &etag).get(url).await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.json, Value::Null);
    assert_eq!(cached.header("etag").unwrap(), etag);
    let status = gw
        .header("if-none-match", &format!("W/{etag}"))
        .get(url)
        .await
        .status;
    assert_eq!(status, 304, "weak validators match too");

    // `_expected` already reached: this URL's answer is final, cache it longer.
    let headers = gw
        .get(&format!("/v1/changeset?resource=/e&_expected={latest}"))
        .await
        .headers;
    assert_eq!(headers["cache-control"], "max-age=60");

    gw.publish(json!({"resource": "/e/o/2", "state": "exists"}))
        .await;
    let changed = gw.header("if-none-match", &etag).get(url).await;
    assert_eq!(changed.status, 200, "a new event changes the ETag");
    assert_ne!(changed.header("etag").unwrap(), etag);
}

#[tokio::test]
async fn changeset_needs_expected_and_a_resource_and_rejects_expired_cursors() {
    let gw = Gateway::start_with(|a| {
        a.retention = Duration::from_millis(1);
        a.prune_interval = Duration::from_millis(20);
    })
    .await;
    gw.get("/v1/changeset?resource=/a")
        .await
        .assert_error(400, "required");
    gw.get("/v1/changeset?_expected=1")
        .await
        .assert_error(400, "required");
    gw.get("/v1/changeset?resource=/a&_expected=1&_limit=0")
        .await
        .assert_error(400, "invalidParameter");

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
        let reply = gw.get(&url).await;
        if reply.status == 410 {
            reply.assert_error(410, "cursorExpired");
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

    let fresh = gw.get("/v1/changes").await.expect(200);
    let etag = fresh.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{last}\""));
    assert_eq!(fresh.headers["cache-control"], "max-age=5");
    assert!(fresh.json["collections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["host"] == "https://push.example.com"));

    let since = format!("/v1/changes?_since={}", first["cursor"].as_str().unwrap());
    let body = gw.get(&since).await.json;
    let names: Vec<&str> = body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["collection"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/k/c", "/k/b"], "only what changed after _since");
    let body = gw.get("/v1/changes?_limit=1").await.json;
    assert_eq!(body["collections"].as_array().unwrap().len(), 1);

    let cached = gw.header("if-none-match", &etag).get("/v1/changes").await;
    assert_eq!(cached.status, 304);
    assert!(cached.json.is_null());
    assert_eq!(cached.header("etag").unwrap(), etag);
    let headers = gw
        .get(&format!("/v1/changes?_expected={last}"))
        .await
        .headers;
    assert_eq!(
        headers["cache-control"], "max-age=300",
        "_expected reached: settled"
    );

    gw.publish(json!({"resource": "/k/a/2", "state": "exists"}))
        .await;
    let status = gw
        .header("if-none-match", &etag)
        .get("/v1/changes")
        .await
        .status;
    assert_eq!(status, 200, "a new change breaks the ETag");
    for bad in [
        "/v1/changes?_since=zzz",
        "/v1/changes?_limit=0",
        "/v1/changes?since=1",
    ] {
        let reply = gw.get(bad).await;
        assert!(reply.status == 400, "{bad}: {}", reply.json);
    }
}

/// Retention keeps up with the log whatever its rate (docs/api.md §7): one prune pass
/// removes everything past retention, however many chunks that takes, and the polling
/// index goes with its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_everything_past_retention_in_one_pass() {
    let gw = Gateway::start_with(|a| {
        a.retention = Duration::from_millis(1);
        a.log_retention = Duration::from_millis(1);
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
        let changes = gw.get("/v1/changes").await.json;
        let log = gw.get("/v1/channels/kept/notifications").await.json;
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

/// The re-sync that `410 cursorExpired` asks for resumes (docs/api.md §14): once every
/// event under a path was pruned, the changeset's `timestamp` and `ETag`, and
/// `/v1/changes`'s `ETag`, are cursors that `_since` and the stream's `since` take,
/// not one below the retained log that expires again.
#[tokio::test]
async fn a_resync_after_cursor_expired_resumes() {
    let gw = Gateway::start_with(|a| {
        a.retention = Duration::from_millis(1);
        a.prune_interval = Duration::from_millis(20);
    })
    .await;
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"resource": format!("/r/{i}"), "state": "exists"}))
        .collect();
    let head = gw.publish(json!(batch)).await["cursor"].clone();
    let head = head.as_str().unwrap();
    // Pruning runs in the background: wait until it has taken every event under /r.
    let mut resync = Value::Null;
    for _ in 0..500 {
        resync = gw
            .get("/v1/changeset?resource=/r&_expected=0")
            .await
            .expect(200)
            .json;
        if resync["changes"] == json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        resync["changes"],
        json!([]),
        "pruning never took the events"
    );
    assert_eq!(resync["timestamp"], head, "the log's head: {resync}");
    let reply = gw.get("/v1/changeset?resource=/r&_expected=0").await;
    assert_eq!(reply.header("etag").unwrap(), format!("\"{head}\""));

    let resumed = gw
        .get(&format!(
            "/v1/changeset?resource=/r&_expected=0&_since={head}"
        ))
        .await
        .expect(200)
        .json;
    assert_eq!(resumed["changes"], json!([]));
    let mut stream = gw
        .stream(&format!("/v1/watch?resource=/r&since={head}"))
        .await;
    let next = gw
        .publish(json!({"resource": "/r/3", "state": "exists"}))
        .await;
    let frame = stream.expect().await;
    assert_eq!(frame.id.as_deref(), next["cursor"].as_str());

    // The monitor endpoint's ETag is as resumable, for a prefix with nothing left too.
    let monitor = gw.get("/v1/changes?prefix=/nothing").await.expect(200);
    let etag = monitor
        .header("etag")
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(etag, next["cursor"].as_str().unwrap());
    gw.get(&format!("/v1/changes?prefix=/nothing&_since={etag}"))
        .await
        .expect(200);
}

/// Polling `/` polls the whole namespace (docs/api.md §7.2, §7.3).
#[tokio::test]
async fn polling_the_whole_namespace() {
    let gw = Gateway::start().await;
    gw.publish(json!({"resource": "/x/1", "state": "exists"}))
        .await;
    let last = gw
        .publish(json!({"resource": "/y/z/2", "state": "exists"}))
        .await["cursor"]
        .clone();
    let all = gw
        .get("/v1/changeset?resource=/&_expected=0")
        .await
        .expect(200);
    let resources: Vec<&str> = all.json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["/x/1", "/y/z/2"]);
    assert_eq!(all.json["timestamp"], last);
    assert_eq!(
        all.header("etag").unwrap(),
        format!("\"{}\"", last.as_str().unwrap())
    );
    let collections = gw.get("/v1/changes?prefix=/").await.expect(200).json;
    let names: Vec<&str> = collections["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["collection"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/y/z", "/x"]);
}
