use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn harness_round_trip() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let ch = gw.watch("/calendars/primary/events", "c1", &rx.url()).await;
    let sync = rx.next().await;
    assert_eq!(sync.state(), "sync");
    gw.publish(
        json!({"resource": "/calendars/primary/events", "state": "exists", "data": {"a": 1}}),
    )
    .await;
    let n = rx.next().await;
    assert_eq!(n.state(), "exists");
    assert_eq!(gw.stop("c1", ch["resourceId"].as_str().unwrap()).await, 204);
}
