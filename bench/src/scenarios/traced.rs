//! traced: the fan-out's headline point with OpenTelemetry export on (docs/api.md §18):
//! every publish a `SERVER` span, every attempt a `CLIENT` span, exported over OTLP/HTTP
//! to a collector in this process that takes every batch and answers `200`. Delivered
//! notifications per second and the gateway's CPU per notification against the
//! untraced `fanout` headline of the same run, and how many spans were exported or
//! dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::fanout::{self, Point, Variant};
use super::Ctx;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traced {
    pub point: Point,
    /// Spans the gateway exported, and dropped (its own counters).
    pub spans_exported: f64,
    pub spans_dropped: f64,
    /// Export requests and bytes the collector got.
    pub exports: u64,
    pub export_bytes: u64,
    pub untraced_per_second: Option<f64>,
    pub untraced_cpu_us_per_notification: Option<f64>,
    /// Notifications per second traced ÷ untraced (target ≥ 0.9).
    pub throughput_ratio: Option<f64>,
    pub cpu_ratio: Option<f64>,
}

/// `untraced`: the `fanout` headline point of the same run.
pub async fn run(
    ctx: &Ctx,
    raw_per_second: Option<f64>,
    untraced: Option<&Point>,
) -> anyhow::Result<Traced> {
    let collector = Collector::start().await?;
    let channels = ctx.sizes.fanout_channels;
    let events = fanout::events(&ctx.sizes, channels);
    let variant = Variant {
        args: vec![("--otlp-endpoint", collector.url.clone())],
        metrics: &[
            "watchwire_trace_spans_exported_total",
            "watchwire_trace_spans_dropped_total",
        ],
        // Every attempt's span and every publish's (at least one per batch).
        first_reaches: Some((channels as u64 * events) as f64),
        ..Default::default()
    };
    let (point, spans) =
        fanout::point(ctx, "traced", channels, events, raw_per_second, &variant).await?;
    let base = untraced.filter(|u| u.channels == channels && u.events == events);
    let over = |with: f64, without: f64| (without > 0.0).then(|| with / without);
    Ok(Traced {
        spans_exported: spans[0],
        spans_dropped: spans[1],
        exports: collector.requests.load(Ordering::Relaxed),
        export_bytes: collector.bytes.load(Ordering::Relaxed),
        untraced_per_second: base.map(|u| u.delivered_per_second),
        untraced_cpu_us_per_notification: base.map(|u| u.gateway_cpu_us_per_notification),
        throughput_ratio: base
            .and_then(|u| over(point.delivered_per_second, u.delivered_per_second)),
        cpu_ratio: base.and_then(|u| {
            over(
                point.gateway_cpu_us_per_notification,
                u.gateway_cpu_us_per_notification,
            )
        }),
        point,
    })
}

/// An OTLP/HTTP collector that takes everything: it reads each request whole (by its
/// `Content-Length`), counts it, and answers `200` on the same connection.
struct Collector {
    url: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Collector {
    async fn start() -> anyhow::Result<Collector> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = (requests.clone(), bytes.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (requests, bytes) = (counters.0.clone(), counters.1.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let Some(end) = read_head(&mut socket, &mut buffer).await else {
                            return;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        buffer.drain(..end);
                        while buffer.len() < length {
                            let mut chunk = [0u8; 16 * 1024];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buffer.drain(..length);
                        requests.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(length as u64, Ordering::Relaxed);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Collector {
            url,
            requests,
            bytes,
        })
    }
}

/// Reads until `buffer` holds a whole request head; its length. `None` at the end.
async fn read_head(socket: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}
