//! The span exporter: spans are handed to a bounded queue, never waited for; one task
//! batches them (up to [`MAX_BATCH`] or every [`EXPORT_INTERVAL`]) and posts each batch
//! to the collector over OTLP/HTTP as protobuf. When the queue is full or a post fails,
//! spans are dropped and counted (`watchwire_trace_spans_dropped_total`): a collector
//! that is down or slow costs deliveries nothing.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

/// Spans waiting for export at most; more are dropped.
const QUEUE: usize = 16 * 1024;
/// Spans in one export at most.
pub const MAX_BATCH: usize = 1024;
/// How often what is queued is exported, however little.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Where and how spans are exported (docs/api.md §18: the standard `OTEL_*` variables).
#[derive(Clone)]
pub struct ExportOptions {
    /// The traces endpoint, `…/v1/traces`.
    pub url: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`); secret, never shown.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// `service.name` and the other resource attributes.
    pub resource: Vec<(String, String)>,
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

enum Queued {
    Span(Box<Span>),
    /// Export what is queued now, and say when it is done.
    Flush(oneshot::Sender<()>),
}

/// Takes finished spans; cheap to call from any task.
pub struct Exporter {
    queue: mpsc::Sender<Queued>,
}

impl Exporter {
    /// Starts the export task on the current runtime.
    pub fn start(options: ExportOptions) -> anyhow::Result<Arc<Exporter>> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(options.timeout)
            .build()?;
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(export_loop(rx, client, options));
        Ok(Arc::new(Exporter { queue }))
    }

    /// Queues a finished span; drops it when the queue is full.
    pub fn record(&self, span: Span) {
        if self.queue.try_send(Queued::Span(Box::new(span))).is_err() {
            metrics::counter!("watchwire_trace_spans_dropped_total", "reason" => "queue_full")
                .increment(1);
        }
    }

    /// Exports what is queued, waiting at most `within` (at shutdown).
    pub async fn flush(&self, within: Duration) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }
}

async fn export_loop(
    mut rx: mpsc::Receiver<Queued>,
    client: reqwest::Client,
    options: ExportOptions,
) {
    let mut batch: Vec<Span> = Vec::with_capacity(MAX_BATCH);
    let mut tick = tokio::time::interval(EXPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            queued = rx.recv() => match queued {
                Some(Queued::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= MAX_BATCH {
                        export(&client, &options, &mut batch).await;
                    }
                }
                Some(Queued::Flush(done)) => {
                    export(&client, &options, &mut batch).await;
                    let _ = done.send(());
                }
                None => {
                    export(&client, &options, &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => export(&client, &options, &mut batch).await,
        }
    }
}

/// Posts `batch` (emptied) as one `ExportTraceServiceRequest`.
async fn export(client: &reqwest::Client, options: &ExportOptions, batch: &mut Vec<Span>) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let count = spans.len() as u64;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: options
                    .resource
                    .iter()
                    .map(|(k, v)| attribute(k, v.clone()))
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "watchwire".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let mut post = client
        .post(&options.url)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec());
    for (name, value) in &options.headers {
        post = post.header(name, value);
    }
    let outcome = match post.send().await {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(format!(
            "the collector answered {}",
            answer.status().as_u16()
        )),
        Err(e) => Err(format!("the collector could not be reached: {e}")),
    };
    match outcome {
        Ok(()) => metrics::counter!("watchwire_trace_spans_exported_total").increment(count),
        Err(why) => {
            metrics::counter!("watchwire_trace_spans_dropped_total", "reason" => "export_failed")
                .increment(count);
            tracing::debug!(spans = count, %why, "trace export failed");
        }
    }
}

/// A string attribute.
pub fn attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// An integer attribute.
pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    }
}
