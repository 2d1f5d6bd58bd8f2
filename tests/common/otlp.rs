//! An OpenTelemetry collector on 127.0.0.1:0 that keeps every span exported to it over
//! OTLP/HTTP, decoded with the `opentelemetry-proto` types, with the resource it came
//! with.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::PATIENCE;

/// A span as the collector got it, and its resource's attributes.
#[derive(Clone, Debug)]
pub struct Exported {
    pub span: Span,
    pub resource: Vec<KeyValue>,
}

impl Exported {
    /// An attribute as text (integers written out).
    pub fn attribute(&self, key: &str) -> Option<String> {
        text(&self.span.attributes, key)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<String> {
        text(&self.resource, key)
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct OtlpSink {
    pub addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Exported>>>,
}

impl OtlpSink {
    pub async fn start() -> OtlpSink {
        let spans: Arc<Mutex<Vec<Exported>>> = Arc::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(collect))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        OtlpSink { addr, spans }
    }

    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span of trace `trace_id` once `wanted` of them arrived; panics after
    /// `PATIENCE` with what did.
    pub async fn trace(&self, trace_id: &str, wanted: usize) -> Vec<Exported> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let got: Vec<Exported> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id() == trace_id)
                .cloned()
                .collect();
            if got.len() >= wanted {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{wanted} spans of trace {trace_id} never arrived; got {got:#?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

async fn collect(State(spans): State<Arc<Mutex<Vec<Exported>>>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut kept = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push(Exported {
                    span,
                    resource: resource.clone(),
                });
            }
        }
    }
    StatusCode::OK
}
