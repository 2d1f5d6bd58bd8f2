//! Tracing (docs/api.md §18): a publish continues its caller's W3C trace, the context is
//! stored with each event, and every delivery attempt — whenever and wherever it runs —
//! is a `CLIENT` span in that trace, exported over OTLP/HTTP, its context sent to the
//! receiver as `traceparent`.
//!
//! - `context.rs`: the W3C `traceparent`.
//! - `export.rs`: the bounded queue and the task that batches spans to the collector.
//! - here: [`Tracing`], what the API and the delivery pipeline call: the publish span
//!   and the context its events keep, an attempt's span and the header it sends.

pub mod context;
pub mod export;

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};

pub use context::TraceContext;
use export::{attribute, int_attribute, ExportOptions, Exporter};

/// The gateway's tracing: whether spans are exported, and whether notifications carry
/// `traceparent`. Off (the default), a publish's `traceparent` is still kept with its
/// events and passed on, so receivers can join the caller's trace in their logs.
pub struct Tracing {
    exporter: Option<Arc<Exporter>>,
    propagate: bool,
}

impl Tracing {
    /// `export`: where spans go (`None`: nowhere); `propagate`: whether notifications
    /// carry `traceparent` (`--no-trace-propagation` turns it off).
    pub fn start(export: Option<ExportOptions>, propagate: bool) -> anyhow::Result<Tracing> {
        let exporter = export.map(Exporter::start).transpose()?;
        Ok(Tracing {
            exporter,
            propagate,
        })
    }

    pub fn off() -> Tracing {
        Tracing {
            exporter: None,
            propagate: false,
        }
    }

    /// A publish begins: its span continues `traceparent` (or starts a trace when spans
    /// are exported).
    pub fn publish(&self, traceparent: Option<&str>) -> PublishSpan {
        let caller = traceparent.and_then(TraceContext::parse);
        let (context, parent) = match (&self.exporter, caller) {
            (None, caller) => (caller, None),
            (Some(_), Some(caller)) => (Some(caller.child()), Some(caller.span_id)),
            (Some(_), None) => (Some(TraceContext::new_root()), None),
        };
        PublishSpan {
            context,
            parent,
            started: SystemTime::now(),
        }
    }

    /// A publish was answered with `status`, appending `events` events.
    pub fn published(&self, span: PublishSpan, status: u16, events: usize) {
        let (Some(exporter), Some(context)) = (&self.exporter, span.context) else {
            return;
        };
        if !context.sampled() {
            return;
        }
        let attributes = vec![
            attribute("http.request.method", "POST"),
            attribute("http.route", "/v1/events"),
            int_attribute("http.response.status_code", status.into()),
            int_attribute("watchwire.events", events as i64),
        ];
        let error = (status >= 500).then(|| format!("answered {status}"));
        exporter.record(span_of(
            "publish",
            SpanKind::Server,
            context,
            span.parent,
            span.started,
            attributes,
            error,
        ));
    }

    /// An attempt to deliver a notification of an event published with `stored`
    /// begins: its span, and the `traceparent` it sends (`None`: it sends none).
    pub fn attempt(&self, stored: Option<TraceContext>) -> Option<AttemptSpan> {
        let stored = stored?;
        if self.exporter.is_none() && !self.propagate {
            return None;
        }
        Some(AttemptSpan {
            context: stored.child(),
            parent: stored.span_id,
            started: SystemTime::now(),
        })
    }

    /// The `traceparent` an attempt sends, unless propagation is off.
    pub fn traceparent(&self, attempt: &AttemptSpan) -> Option<String> {
        self.propagate.then(|| attempt.context.to_string())
    }

    /// The attempt ended: exported as a `CLIENT` span with what it is about.
    pub fn attempted(&self, span: AttemptSpan, about: Attempted<'_>) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        if !span.context.sampled() {
            return;
        }
        let mut attributes = vec![
            attribute("http.request.method", "POST"),
            attribute("watchwire.channel.id", about.channel_id),
            int_attribute("watchwire.message.number", about.message_number as i64),
            int_attribute("watchwire.attempt", about.attempt.into()),
        ];
        if about.attempt > 1 {
            let resends = i64::from(about.attempt - 1);
            attributes.push(int_attribute("http.request.resend_count", resends));
        }
        if let Ok(url) = url::Url::parse(about.address) {
            if let Some(host) = url.host_str() {
                attributes.push(attribute("server.address", host));
            }
            if let Some(port) = url.port_or_known_default() {
                attributes.push(int_attribute("server.port", port.into()));
            }
        }
        if let Some(status) = about.status {
            attributes.push(int_attribute("http.response.status_code", status.into()));
        }
        if let Some(reason) = about.error_reason {
            attributes.push(attribute("error.type", reason));
        }
        let error = about.error_reason.map(str::to_string);
        exporter.record(span_of(
            "deliver",
            SpanKind::Client,
            span.context,
            Some(span.parent),
            span.started,
            attributes,
            error,
        ));
    }

    /// Exports what is queued (at shutdown), waiting at most a couple of seconds.
    pub async fn flush(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.flush(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// A publish's span while it runs, and the context its events keep.
pub struct PublishSpan {
    context: Option<TraceContext>,
    parent: Option<[u8; 8]>,
    started: SystemTime,
}

impl PublishSpan {
    /// What each event of the publish keeps.
    pub fn context(&self) -> Option<TraceContext> {
        self.context
    }
}

/// An attempt's span while it runs.
pub struct AttemptSpan {
    context: TraceContext,
    parent: [u8; 8],
    started: SystemTime,
}

/// What an attempt span says of its attempt.
pub struct Attempted<'a> {
    pub channel_id: &'a str,
    pub address: &'a str,
    pub message_number: u64,
    /// 1 for the first attempt of the notification.
    pub attempt: u32,
    pub status: Option<u16>,
    /// The failure's reason (`timeout`, `httpStatus`, …); `None` when delivered.
    pub error_reason: Option<&'a str>,
}

fn span_of(
    name: &str,
    kind: SpanKind,
    context: TraceContext,
    parent: Option<[u8; 8]>,
    started: SystemTime,
    attributes: Vec<KeyValue>,
    error: Option<String>,
) -> Span {
    let nanos = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    };
    let status = match error {
        Some(message) => Status {
            message,
            code: StatusCode::Error as i32,
        },
        None => Status::default(),
    };
    Span {
        trace_id: context.trace_id.to_vec(),
        span_id: context.span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: u32::from(context.flags),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: nanos(started),
        end_time_unix_nano: nanos(SystemTime::now()),
        attributes,
        status: Some(status),
        ..Default::default()
    }
}
