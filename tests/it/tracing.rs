//! docs/api.md §18 traces: a publish continues its caller's `traceparent`, its events
//! keep the context, and every attempt to deliver them — retries, and attempts after a
//! restart — is a `CLIENT` span of that trace, exported over OTLP/HTTP to a collector
//! in the test (decoded with the `opentelemetry-proto` types), whose context reaches
//! the receiver as `traceparent`.

use serde_json::json;

use crate::common::otlp::OtlpSink;
use crate::common::*;

/// The caller's context (the W3C specification's example).
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// `(trace id, span id)` of a `traceparent` a receiver got.
fn ids(received: &Received) -> (String, String) {
    let header = received.header("traceparent").expect("a traceparent");
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[3]),
        (4, "00", "01"),
        "{header}"
    );
    (parts[1].to_string(), parts[2].to_string())
}

async fn publish_traced(api: &Api, resource: &str, traceparent: &str) {
    let reply = api
        .header("traceparent", traceparent)
        .header("baggage", "user=secret-user")
        .post(
            "/v1/events",
            &json!({"resource": resource, "state": "exists"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_publish_and_every_attempt_it_causes_are_one_trace_through_retries_and_a_restart() {
    let sink = OtlpSink::start().await;
    let rx = Receiver::start().await;
    let mut gw = Gateway::start_with(|a| a.otlp_endpoint = Some(sink.url())).await;
    gw.watch("/traced", "traced", &rx.url()).await;
    assert_eq!(
        rx.next().await.header("traceparent"),
        None,
        "the sync has no trace"
    );

    rx.script(&[503]);
    publish_traced(&gw, "/traced", &traceparent(CALLER_TRACE, CALLER_SPAN)).await;
    let (refused, accepted) = (rx.next().await, rx.next().await);
    assert_eq!(refused.number(), accepted.number());
    for got in [&refused, &accepted] {
        assert_eq!(got.header("baggage"), None, "baggage is never passed on");
    }
    let (first_trace, first_span) = ids(&refused);
    let (second_trace, second_span) = ids(&accepted);
    assert_eq!(
        (&*first_trace, &*second_trace),
        (CALLER_TRACE, CALLER_TRACE)
    );
    assert_ne!(first_span, second_span, "each attempt is a span of its own");

    let spans = sink.trace(CALLER_TRACE, 3).await;
    let publish = spans.iter().find(|s| s.span.name == "publish").unwrap();
    assert_eq!(publish.span.kind, 2, "SERVER: {publish:?}");
    assert_eq!(publish.parent_span_id(), CALLER_SPAN);
    assert_eq!(
        publish.resource_attribute("service.name").as_deref(),
        Some("watchwire")
    );
    let attempt = |span_id: &str| {
        spans
            .iter()
            .find(|s| s.span_id() == span_id)
            .unwrap_or_else(|| panic!("no span {span_id} in {spans:#?}"))
            .clone()
    };
    let (first, second) = (attempt(&first_span), attempt(&second_span));
    let number = refused.number().to_string();
    for (span, status, attempt_no) in [(&first, "503", "1"), (&second, "204", "2")] {
        assert_eq!(span.span.kind, 3, "CLIENT: {span:?}");
        assert_eq!(span.parent_span_id(), publish.span_id());
        assert_eq!(
            span.attribute("watchwire.channel.id").as_deref(),
            Some("traced")
        );
        assert_eq!(
            span.attribute("watchwire.message.number"),
            Some(number.clone())
        );
        assert_eq!(
            span.attribute("server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            span.attribute("server.port"),
            Some(rx.addr.port().to_string())
        );
        assert_eq!(
            span.attribute("http.response.status_code").as_deref(),
            Some(status)
        );
        assert_eq!(
            span.attribute("watchwire.attempt").as_deref(),
            Some(attempt_no)
        );
    }
    assert_eq!(first.attribute("error.type").as_deref(), Some("httpStatus"));
    assert_eq!(first.span.status.as_ref().unwrap().code, 2, "ERROR");
    assert_eq!(second.attribute("error.type"), None);
    assert_eq!(
        second.attribute("http.request.resend_count").as_deref(),
        Some("1")
    );

    // A notification still owed when the gateway stops is attempted after the restart
    // in the trace of its publish.
    let later_trace = "0af7651916cd43dd8448eb211c80319c";
    rx.respond(|_| (503, vec![]));
    publish_traced(
        &gw,
        "/traced",
        &traceparent(later_trace, "b7ad6b7169203331"),
    )
    .await;
    let before = rx.next().await;
    assert_eq!(ids(&before).0, later_trace);
    gw.shutdown().await;
    rx.respond(|_| (204, vec![]));
    let sink_url = sink.url();
    gw.start_again(|a| a.otlp_endpoint = Some(sink_url)).await;
    // The attempt that succeeded is the one after the restart.
    let spans = sink.trace(later_trace, 2).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (publish, resumed) = loop {
        let spans = sink.trace(later_trace, 2).await;
        let publish = spans.iter().find(|s| s.span.name == "publish").cloned();
        let resumed = spans
            .iter()
            .find(|s| s.attribute("http.response.status_code").as_deref() == Some("204"))
            .cloned();
        if let (Some(publish), Some(resumed)) = (publish, resumed) {
            break (publish, resumed);
        }
        assert!(tokio::time::Instant::now() < deadline, "{spans:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    drop(spans);
    assert_eq!(resumed.parent_span_id(), publish.span_id());
    loop {
        let got = rx.next().await;
        if got.number() == before.number() && ids(&got) == (later_trace.into(), resumed.span_id()) {
            break;
        }
    }
    let attempts: u32 = resumed
        .attribute("watchwire.attempt")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        attempts >= 2,
        "the count goes on after the restart: {attempts}"
    );
}

/// Without a collector, the caller's trace still reaches the receiver; with
/// `--no-trace-propagation` nothing does.
#[tokio::test]
async fn the_trace_reaches_receivers_without_a_collector_unless_propagation_is_off() {
    for propagate in [true, false] {
        let rx = Receiver::start().await;
        let gw = Gateway::start_with(|a| a.no_trace_propagation = !propagate).await;
        gw.watch("/untraced", "plain", &rx.url()).await;
        rx.next().await;
        publish_traced(&gw, "/untraced", &traceparent(CALLER_TRACE, CALLER_SPAN)).await;
        let got = rx.next().await;
        assert_eq!(got.header("baggage"), None);
        match propagate {
            true => {
                let (trace, span) = ids(&got);
                assert_eq!(trace, CALLER_TRACE);
                assert_ne!(span, CALLER_SPAN, "the attempt's own span");
            }
            false => assert_eq!(got.header("traceparent"), None),
        }
        // A publish without a context starts none without a collector.
        gw.publish(json!({"resource": "/untraced", "state": "exists"}))
            .await;
        assert_eq!(rx.next().await.header("traceparent"), None);
    }
}

/// A collector that is down costs nothing but the spans, which are counted; a publish
/// without a `traceparent` starts a trace of its own.
#[tokio::test]
async fn a_collector_that_is_down_costs_only_dropped_spans() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let rx = Receiver::start().await;
    let gw = Gateway::start_with(|a| a.otlp_endpoint = Some(dead)).await;
    gw.watch("/lost-spans", "still-delivered", &rx.url()).await;
    rx.next().await;
    gw.publish(json!({"resource": "/lost-spans", "state": "exists"}))
        .await;
    let got = rx.next().await;
    let (trace, _) = ids(&got);
    assert_ne!(trace, CALLER_TRACE);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = gw.get("/metrics").await.text;
        let dropped = metric_sample(
            &metrics,
            "watchwire_trace_spans_dropped_total",
            &["reason=\"export_failed\""],
        );
        if dropped.is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dropped spans counted: {metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// In a cluster, the attempt is a span of the publisher's trace whichever node makes
/// it: the context travels with the event in the database, not in a node's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_that_delivers_continues_the_trace_of_a_publish_through_another() {
    let sink = OtlpSink::start().await;
    let endpoint = format!("--otlp-endpoint={}", sink.url());
    let Some(cluster) =
        crate::cluster::Cluster::start_with(2, "tracing", crate::cluster::LEASE, &[&endpoint])
    else {
        return;
    };
    let rx = Receiver::start().await;
    let trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    for i in 0..2 {
        let id = format!("traced-{i}");
        cluster.node(i).watch("/c/traced", &id, &rx.url()).await;
    }
    rx.take(2).await;
    for i in 0..2 {
        publish_traced(
            &cluster.node(i).api,
            "/c/traced",
            &traceparent(trace, CALLER_SPAN),
        )
        .await;
    }
    // Four notifications (two events, two channels), each from one attempt's span.
    let got = rx.take(4).await;
    let spans = sink.trace(trace, 6).await;
    let publishes: Vec<_> = spans.iter().filter(|s| s.span.name == "publish").collect();
    assert_eq!(publishes.len(), 2, "{spans:#?}");
    for received in got {
        let (trace_id, span_id) = ids(&received);
        assert_eq!(trace_id, trace);
        let attempt = spans
            .iter()
            .find(|s| s.span_id() == span_id)
            .unwrap_or_else(|| panic!("no span {span_id}: {spans:#?}"));
        assert!(
            publishes
                .iter()
                .any(|p| p.span_id() == attempt.parent_span_id()),
            "an attempt's parent is a publish: {attempt:?}"
        );
        assert_eq!(
            attempt.attribute("watchwire.channel.id").as_deref(),
            received.header("x-goog-channel-id")
        );
    }
}
