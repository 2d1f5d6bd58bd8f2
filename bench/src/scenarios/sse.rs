//! sse: `sse_streams` Server-Sent Events streams (`GET /v1/watch?resource=…`,
//! docs/api.md §7.1) open on one resource, each read by the benchmark's own SSE parser;
//! then `sse_events` events published there (in batches), which every stream must get,
//! all of them, in order, none twice. Measures the gateway's resident memory per stream
//! (RSS before opening, once every stream is open, once every event is delivered) and
//! the time from the first publish until every stream had every event.
//!
//! Run twice, on a gateway of its own each: with the allocator's defaults (mimalloc keeps
//! freed pages resident, so the RSS after delivery includes memory already free), and
//! with `MIMALLOC_PURGE_DELAY=0 MIMALLOC_PURGE_DECOMMITS=1`, which returns freed pages at
//! once: what the process really holds.
//!
//! Every stream is a connection, so a file descriptor in the gateway and one in the
//! benchmark: the benchmark raises its soft `RLIMIT_NOFILE` to the hard limit at start
//! (the gateway inherits it), and uses fewer streams than asked when that limit is too
//! low, saying so.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::clock;
use crate::gateway::Gateway;
use crate::load;

/// The resource every stream watches; the events are published on it.
pub const RESOURCE: &str = "/bench/sse";
/// A resource no stream watches: an event there gives the cursor the streams start after.
const PRIMER: &str = "/bench/sse-primer";
/// File descriptors kept free for everything else (the store, listeners, logs, pools).
const FD_SPARE: u64 = 1000;
/// Streams opening at once.
const OPENING: usize = 64;
/// The allocator settings of the second run.
pub const PURGE_ENV: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_PURGE_DECOMMITS", "1"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sse {
    /// The streams asked for (`--sse-streams`).
    pub asked_streams: usize,
    /// This process's file-descriptor limit (soft, after raising it to the hard limit;
    /// the gateway inherits it).
    pub fd_limit: u64,
    /// The allocator's defaults, then with [`PURGE_ENV`].
    pub runs: Vec<SseRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SseRun {
    /// The gateway's allocator environment: empty for the defaults.
    pub env: String,
    pub streams: usize,
    pub events: u64,
    /// From the first stream requested until every stream's headers arrived.
    pub open_seconds: f64,
    /// From the first publish until the last stream had every event.
    pub delivered_seconds: f64,
    /// From the first publish until the first stream had every event.
    pub first_complete_seconds: f64,
    pub rss_before_bytes: u64,
    pub rss_open_bytes: u64,
    pub rss_delivered_bytes: u64,
    /// (RSS with every stream open − RSS before) / streams.
    pub bytes_per_stream_open: f64,
    /// (RSS once every event was delivered − RSS before) / streams.
    pub bytes_per_stream_delivered: f64,
    /// Event frames the streams received in all (streams × events when all is well).
    pub frames: u64,
    /// Frames whose cursor was not above the stream's previous one, or whose resource
    /// was not the next one expected.
    pub out_of_order: u64,
    /// Frames beyond the events published.
    pub extra: u64,
    /// The gateway's CPU from the first publish until every event was delivered, per
    /// event frame, µs.
    pub gateway_cpu_us_per_frame: f64,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Sse> {
    let fd_limit = fd_limit();
    let asked = ctx.sizes.sse_streams;
    // One descriptor per stream on either side, plus spares.
    let streams = asked.min(fd_limit.saturating_sub(FD_SPARE).max(1) as usize);
    if streams < asked {
        println!("  sse: the file-descriptor limit is {fd_limit}: {streams} streams, not {asked}");
    }
    let mut runs = Vec::new();
    for env in [&[][..], &PURGE_ENV[..]] {
        let r = one(ctx, streams, env).await?;
        println!(
            "  sse {} streams{}: open in {:.2} s, {:.0} B per stream open, {:.0} B after {} events (delivered in {:.2} s)",
            r.streams,
            if r.env.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.env)
            },
            r.open_seconds,
            r.bytes_per_stream_open,
            r.bytes_per_stream_delivered,
            r.events,
            r.delivered_seconds
        );
        runs.push(r);
    }
    Ok(Sse {
        asked_streams: asked,
        fd_limit,
        runs,
    })
}

/// The soft `RLIMIT_NOFILE` of this process.
pub fn fd_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children inherit it):
/// the sse scenario needs a descriptor per stream. Returns the limit now.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                eprintln!("warning: could not raise the file-descriptor limit to {hard}: {e}");
            }
        }
    }
    fd_limit()
}

/// What the streams count together.
#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    complete: AtomicU64,
    frames: AtomicU64,
    out_of_order: AtomicU64,
    extra: AtomicU64,
    first_complete_us: AtomicU64,
    last_complete_us: AtomicU64,
}

async fn one(ctx: &Ctx, streams: usize, env: &[(&str, &str)]) -> anyhow::Result<SseRun> {
    let events = ctx.sizes.sse_events;
    let label = if env.is_empty() { "sse" } else { "sse-purge" };
    let mut launch = ctx.launch(label).await?;
    for (name, value) in env {
        launch = launch.env(name, value);
    }
    let gateway = Gateway::start(&launch).await?;
    let client = load::client(4)?;
    // The streams start strictly after this cursor: none misses an event published
    // before its subscription took hold, however late it opened.
    let since = publish(&client, &gateway, load::event_json(PRIMER)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = gateway.rss()?;

    // A client of their own: no overall timeout (streams stay open), one connection each.
    let streaming = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .build()?;
    let url = Arc::new(format!(
        "{}/v1/watch?resource={RESOURCE}&since={since}",
        gateway.url
    ));
    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let opening = Arc::new(tokio::sync::Semaphore::new(OPENING));
    let began = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (client, url, tally, stop) =
            (streaming.clone(), url.clone(), tally.clone(), stop.clone());
        let permit = opening.clone().acquire_owned().await?;
        tasks.spawn(async move { read_stream(client, &url, permit, &tally, stop, events).await });
    }
    let stall = ctx.sizes.stall();
    wait_for(
        &tally.opened,
        streams as u64,
        stall,
        &mut tasks,
        "streams open",
    )
    .await?;
    let open_seconds = began.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = gateway.rss()?;

    let cpu_before = gateway.cpu_seconds()?;
    let published = clock::now_us();
    let batch = ctx.sizes.batch.max(1) as u64;
    for first in (0..events).step_by(batch as usize) {
        let resources: Vec<String> = (first..(first + batch).min(events))
            .map(event_resource)
            .collect();
        publish(
            &client,
            &gateway,
            load::batch_json(resources.iter().map(String::as_str)),
        )
        .await?;
    }
    wait_for(
        &tally.complete,
        streams as u64,
        stall,
        &mut tasks,
        "streams with every event",
    )
    .await?;
    let cpu = gateway.cpu_seconds()? - cpu_before;
    // Anything late and extra would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_delivered = gateway.rss()?;
    stop.cancel();
    while let Some(joined) = tasks.join_next().await {
        joined.context("a stream reader panicked")??;
    }
    ctx.finish(gateway).await?;

    let frames = tally.frames.load(Relaxed);
    let out_of_order = tally.out_of_order.load(Relaxed);
    let extra = tally.extra.load(Relaxed);
    anyhow::ensure!(
        out_of_order == 0,
        "{out_of_order} frames arrived out of order"
    );
    anyhow::ensure!(
        extra == 0,
        "{extra} frames arrived beyond the {events} events published"
    );
    anyhow::ensure!(
        frames == streams as u64 * events,
        "{frames} event frames arrived, expected {streams} × {events}"
    );
    let per_stream = |rss: u64| rss.saturating_sub(rss_before) as f64 / streams as f64;
    Ok(SseRun {
        env: env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        streams,
        events,
        open_seconds,
        delivered_seconds: clock::secs_between(published, tally.last_complete_us.load(Relaxed)),
        first_complete_seconds: clock::secs_between(
            published,
            tally.first_complete_us.load(Relaxed),
        ),
        rss_before_bytes: rss_before,
        rss_open_bytes: rss_open,
        rss_delivered_bytes: rss_delivered,
        bytes_per_stream_open: per_stream(rss_open),
        bytes_per_stream_delivered: per_stream(rss_delivered),
        frames,
        out_of_order,
        extra,
        gateway_cpu_us_per_frame: cpu * 1e6 / frames.max(1) as f64,
    })
}

/// The resource of event `k`: what the streams check their order against.
fn event_resource(k: u64) -> String {
    format!("{RESOURCE}/e{k}")
}

/// `POST /v1/events`; the cursor of the last event it accepted.
async fn publish(
    client: &reqwest::Client,
    gateway: &Gateway,
    body: String,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{}/v1/events", gateway.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "publish answered {status}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["cursor"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no cursor in the publish answer {text}"))
}

/// Waits until `counter` reaches `n`, failing when it stands still for `stall` or a
/// stream reader fails meanwhile.
async fn wait_for(
    counter: &AtomicU64,
    n: u64,
    stall: Duration,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    what: &str,
) -> anyhow::Result<()> {
    let mut last = (counter.load(Relaxed), Instant::now());
    loop {
        let now = counter.load(Relaxed);
        if now >= n {
            return Ok(());
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > stall {
            anyhow::bail!("{what}: {now} of {n}, nothing for {stall:?}");
        }
        // A reader that ended early (error or stream closed) is a failure now.
        if let Some(joined) = tasks.try_join_next() {
            joined.context("a stream reader panicked")??;
            anyhow::bail!("{what}: a stream ended early ({now} of {n})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One stream: opens it (holding an opening permit until its headers arrived), then
/// parses its frames until `stop`, checking each event frame against the next expected.
async fn read_stream(
    client: reqwest::Client,
    url: &str,
    permit: tokio::sync::OwnedSemaphorePermit,
    tally: &Tally,
    stop: CancellationToken,
    events: u64,
) -> anyhow::Result<()> {
    let mut response = client
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .context("opening a stream")?;
    anyhow::ensure!(
        response.status() == 200,
        "a stream answered {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(
        content_type.starts_with("text/event-stream"),
        "a stream answered {content_type}"
    );
    drop(permit);
    tally.opened.fetch_add(1, Relaxed);
    let mut parser = Parser::default();
    let mut seen = 0u64;
    let mut last_id = String::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            chunk = response.chunk() => chunk.context("reading a stream")?,
        };
        let Some(chunk) = chunk else {
            anyhow::bail!("a stream ended after {seen} of {events} events");
        };
        for frame in parser.feed(&chunk) {
            match frame.event.as_str() {
                "cutoff" | "shutdown" => {
                    anyhow::bail!("a stream got `{}`: {}", frame.event, frame.data)
                }
                "checkpoint" => continue,
                _ => {}
            }
            tally.frames.fetch_add(1, Relaxed);
            if seen >= events {
                tally.extra.fetch_add(1, Relaxed);
                continue;
            }
            // Cursors are fixed-width: later ones compare greater as strings too.
            let id = frame.id.unwrap_or_default();
            let in_order = (id.len(), id.as_str()) > (last_id.len(), last_id.as_str())
                && resource_of(&frame.data).as_deref() == Some(event_resource(seen).as_str());
            if !in_order {
                tally.out_of_order.fetch_add(1, Relaxed);
            }
            last_id = id;
            seen += 1;
            if seen == events {
                let now = clock::now_us();
                let _ = tally
                    .first_complete_us
                    .compare_exchange(0, now, Relaxed, Relaxed);
                tally.last_complete_us.fetch_max(now, Relaxed);
                tally.complete.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The `resource` of an event frame's data.
fn resource_of(data: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    v["resource"].as_str().map(str::to_string)
}

/// A dispatched SSE message.
#[derive(Debug, Default, PartialEq)]
pub struct Frame {
    /// The `id:` field, if the message had one.
    pub id: Option<String>,
    /// The `event:` field; `message` when absent, as `EventSource` has it.
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// An incremental parser of `text/event-stream` (the WHATWG HTML "server-sent events"
/// interpretation): lines end in LF, CRLF or CR; a blank line dispatches; `:` starts a
/// comment; a field's value loses one leading space.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The last byte fed was a CR (a following LF belongs to it).
    after_cr: bool,
    id: Option<String>,
    event: String,
    data: Option<String>,
}

impl Parser {
    /// Feeds bytes; the messages they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(frame) = self.line_done(&line) {
                        frames.push(frame);
                    }
                }
                _ => self.line.push(b),
            }
        }
        frames
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Frame> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = self.data.take()?;
            return Some(Frame {
                id: self.id.clone(),
                event: if event.is_empty() {
                    "message".to_string()
                } else {
                    event
                },
                data,
            });
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = value.to_string(),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_and_every_line_ending_parse_alike() {
        let text = ": keep-alive\r\nid: 0001\nevent: exists\r\ndata: {\"a\":1}\rdata:two\n\n\
                    event: checkpoint\ndata: {}\n\nid: 0002\ndata: x\n\n";
        let whole = Parser::default().feed(text.as_bytes());
        assert_eq!(
            whole,
            vec![
                Frame {
                    id: Some("0001".into()),
                    event: "exists".into(),
                    data: "{\"a\":1}\ntwo".into()
                },
                Frame {
                    id: Some("0001".into()),
                    event: "checkpoint".into(),
                    data: "{}".into()
                },
                Frame {
                    id: Some("0002".into()),
                    event: "message".into(),
                    data: "x".into()
                },
            ]
        );
        for split in 1..text.len() {
            let mut parser = Parser::default();
            let mut frames = parser.feed(&text.as_bytes()[..split]);
            frames.extend(parser.feed(&text.as_bytes()[split..]));
            assert_eq!(frames, whole, "split at {split}");
        }
    }

    #[test]
    fn a_message_without_data_is_not_dispatched() {
        assert!(Parser::default().feed(b"id: 1\nevent: x\n\n\n").is_empty());
    }
}
