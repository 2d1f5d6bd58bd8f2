//! The counting receiver: a bare hyper HTTP/1 server on loopback that answers `204` to
//! every request and counts what arrives.
//!
//! It is both the target of the raw loopback ceiling (plain POSTs, no watchwire headers)
//! and the webhook endpoint of every channel the benchmark creates. For notifications it
//! also checks per-channel order (message numbers only grow), spots duplicates, and,
//! when asked, records publish→delivery latency from the timestamp the payload carries.
//!
//! A broker consumer counts what it reads through a [`Sink`], into the same counters.
//!
//! Waiting is event-driven: a waiter sets a target count and the request that reaches it
//! wakes the waiter, so no waiter polls.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http_body_util::{BodyExt, Empty};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::clock;
use crate::load::payload_timestamp;
use watchwire::protocol::headers as h;

/// Counters of one receiver.
#[derive(Default)]
pub struct Counts {
    /// Every request, notification or not.
    pub requests: AtomicU64,
    /// Sync notifications (message number 1).
    pub syncs: AtomicU64,
    /// Event notifications (every state but `sync`), duplicates included.
    pub events: AtomicU64,
    /// Event notifications whose message number was new on their channel.
    pub distinct: AtomicU64,
    /// Event notifications whose message number the channel had already delivered.
    pub duplicates: AtomicU64,
    /// Notifications whose message number is below one already seen on the channel.
    pub out_of_order: AtomicU64,
    /// `clock::now_us` of the first and the latest event notification (0: none yet).
    pub first_event_us: AtomicU64,
    pub last_event_us: AtomicU64,
    /// Notifications, sync and event, duplicates included, that carried the header
    /// [`Receiver::expect_header`] names, with its value.
    pub authenticated: AtomicU64,
}

/// One event notification as it arrived, while [`Receiver::trace`] is on.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub channel: Box<str>,
    pub number: u64,
    /// `clock::now_us` on arrival.
    pub at_us: u64,
    /// Which connection it came on, numbered in the order they were accepted: a
    /// connection belongs to one sending process, so this tells which process sent it.
    /// 0: not a request (a [`Sink`] counted it).
    pub connection: u64,
    pub body: Bytes,
}

/// What the connection tasks share.
struct Inner {
    counts: Counts,
    /// Every event notification, while `tracing` is on.
    tracing: AtomicBool,
    trace: Mutex<Vec<Receipt>>,
    /// Highest message number seen per channel id.
    channels: DashMap<Box<str>, u64>,
    /// A header (name, value) every notification should carry: counted in
    /// `counts.authenticated` where it does.
    expected_header: OnceLock<(String, String)>,
    record_latency: AtomicBool,
    /// Publish→delivery latencies in µs, while `record_latency` is on.
    latencies: Mutex<Vec<u32>>,
    /// Wake the waiter once `syncs` or `events` reach these.
    want_syncs: AtomicU64,
    want_events: AtomicU64,
    reached: Notify,
}

/// A running counting receiver. Dropping it stops accepting connections.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _stop: DropGuard,
}

/// What the per-channel order check found for one notification.
enum Seen {
    New,
    Duplicate,
    OutOfOrder,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            counts: Counts::default(),
            tracing: AtomicBool::new(false),
            trace: Mutex::new(Vec::new()),
            channels: DashMap::new(),
            expected_header: OnceLock::new(),
            record_latency: AtomicBool::new(false),
            latencies: Mutex::new(Vec::new()),
            want_syncs: AtomicU64::new(u64::MAX),
            want_events: AtomicU64::new(u64::MAX),
            reached: Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, inner.clone(), stop.clone()));
        Ok(Receiver {
            addr,
            inner,
            _stop: stop.drop_guard(),
        })
    }

    /// The URL channels deliver to.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn counts(&self) -> &Counts {
        &self.inner.counts
    }

    /// Counts, from now on, the notifications that carry header `name` with `value`
    /// (`counts().authenticated`); the first expectation set is kept.
    pub fn expect_header(&self, name: &str, value: &str) {
        let _ = self
            .inner
            .expected_header
            .set((name.to_string(), value.to_string()));
    }

    /// Starts (or stops) recording latencies; starting clears earlier samples.
    pub fn record_latency(&self, on: bool) {
        if on {
            self.inner.latencies.lock().unwrap().clear();
        }
        self.inner.record_latency.store(on, Relaxed);
    }

    /// Starts (or stops) recording every event notification ([`Receipt`]); starting
    /// clears earlier ones.
    pub fn trace(&self, on: bool) {
        if on {
            self.inner.trace.lock().unwrap().clear();
        }
        self.inner.tracing.store(on, Relaxed);
    }

    /// The notifications recorded since [`Receiver::trace`] was turned on, in arrival
    /// order, from the `from`th on (a copy: recording goes on).
    pub fn receipts(&self, from: usize) -> Vec<Receipt> {
        let trace = self.inner.trace.lock().unwrap();
        trace.get(from..).unwrap_or_default().to_vec()
    }

    /// How many notifications [`Receiver::trace`] recorded so far.
    pub fn recorded(&self) -> usize {
        self.inner.trace.lock().unwrap().len()
    }

    /// The latencies recorded so far, in µs.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *self.inner.latencies.lock().unwrap())
    }

    /// Waits until `n` sync notifications have arrived. Fails if none arrives for
    /// `stall` (the gateway stopped making progress).
    pub async fn wait_syncs(&self, n: u64, stall: Duration) -> anyhow::Result<()> {
        let counts = &self.inner.counts;
        self.wait(
            &self.inner.want_syncs,
            &counts.syncs,
            n,
            stall,
            "sync notifications",
        )
        .await
    }

    /// Waits until `n` distinct event notifications have arrived (duplicates, which
    /// at-least-once delivery allows, do not count); see [`Receiver::wait_syncs`].
    pub async fn wait_events(&self, n: u64, stall: Duration) -> anyhow::Result<()> {
        let counts = &self.inner.counts;
        self.wait(
            &self.inner.want_events,
            &counts.distinct,
            n,
            stall,
            "event notifications",
        )
        .await
    }

    async fn wait(
        &self,
        want: &AtomicU64,
        have: &AtomicU64,
        n: u64,
        stall: Duration,
        what: &str,
    ) -> anyhow::Result<()> {
        want.store(n, Relaxed);
        let mut last = (have.load(Relaxed), clock::now_us());
        loop {
            let reached = self.inner.reached.notified();
            tokio::pin!(reached);
            reached.as_mut().enable();
            let now = have.load(Relaxed);
            if now >= n {
                want.store(u64::MAX, Relaxed);
                return Ok(());
            }
            if now != last.0 {
                last = (now, clock::now_us());
            } else if clock::now_us() - last.1 > stall.as_micros() as u64 {
                want.store(u64::MAX, Relaxed);
                anyhow::bail!(
                    "stalled: {now} of {n} {what} arrived and none for {:.0?}",
                    stall
                );
            }
            // The timeout only bounds how long a stall goes unnoticed; the wake-up
            // comes from the request that reaches the target.
            let _ = tokio::time::timeout(Duration::from_millis(500), reached).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, stop: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    let mut accepted_connections = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors: back off briefly rather than spin.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        accepted_connections += 1;
        let number = accepted_connections;
        let inner = inner.clone();
        let connection =
            builder.serve_connection(
                TokioIo::new(stream),
                service_fn(move |request| {
                    let inner = inner.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(handle(&inner, request, number).await)
                    }
                }),
            );
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

async fn handle(
    inner: &Inner,
    request: Request<hyper::body::Incoming>,
    connection: u64,
) -> Response<Empty<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let counts = &inner.counts;
    counts.requests.fetch_add(1, Relaxed);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(channel), Some(number)) = (header(h::CHANNEL_ID), header(h::MESSAGE_NUMBER)) {
        if let Some((name, value)) = inner.expected_header.get() {
            if header(name) == Some(value.as_str()) {
                counts.authenticated.fetch_add(1, Relaxed);
            }
        }
        let number: u64 = number.parse().unwrap_or(0);
        let sync = header(h::RESOURCE_STATE) == Some("sync");
        inner.notification(channel, number, sync, body, connection);
    }
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A handle that counts notifications which reach the benchmark another way than as a
/// request: a broker consumer reads them. Each is counted, checked for order and
/// duplicates, timed and traced as the receiver does a request with the same headers;
/// its [`Receipt::connection`] is 0.
#[derive(Clone)]
pub struct Sink(Arc<Inner>);

impl Receiver {
    /// A [`Sink`] counting into this receiver.
    pub fn sink(&self) -> Sink {
        Sink(self.inner.clone())
    }
}

impl Sink {
    /// One notification of `channel` with message `number`, its resource state and
    /// its body (the headers the gateway gives it, `X-Goog-Channel-ID`,
    /// `X-Goog-Message-Number` and `X-Goog-Resource-State`, and the body it would POST).
    pub fn notification(&self, channel: &str, number: u64, state: &str, body: Bytes) {
        self.0
            .notification(channel, number, state == "sync", body, 0);
    }
}

impl Inner {
    /// Counts a notification: a sync, or an event checked for order and duplicates.
    fn notification(&self, channel: &str, number: u64, sync: bool, body: Bytes, connection: u64) {
        let seen = self.observe(channel, number);
        if sync {
            let n = self.counts.syncs.fetch_add(1, Relaxed) + 1;
            if n >= self.want_syncs.load(Relaxed) {
                self.reached.notify_waiters();
            }
            return;
        }
        if self.tracing.load(Relaxed) {
            self.trace.lock().unwrap().push(Receipt {
                channel: channel.into(),
                number,
                at_us: clock::now_us(),
                connection,
                body: body.clone(),
            });
        }
        self.count_event(seen, &body);
    }

    fn observe(&self, channel: &str, number: u64) -> Seen {
        let mut last = self.channels.entry(channel.into()).or_insert(0);
        let seen = match number.cmp(&*last) {
            std::cmp::Ordering::Greater => Seen::New,
            std::cmp::Ordering::Equal => Seen::Duplicate,
            std::cmp::Ordering::Less => Seen::OutOfOrder,
        };
        *last = (*last).max(number);
        seen
    }

    fn count_event(&self, seen: Seen, body: &Bytes) {
        let counts = &self.counts;
        let now = clock::now_us();
        counts.events.fetch_add(1, Relaxed);
        match seen {
            Seen::New => {}
            Seen::Duplicate => {
                counts.duplicates.fetch_add(1, Relaxed);
                return;
            }
            Seen::OutOfOrder => {
                counts.out_of_order.fetch_add(1, Relaxed);
                return;
            }
        }
        if self.record_latency.load(Relaxed) {
            if let Some(sent) = payload_timestamp(body) {
                let micros = now.saturating_sub(sent).min(u32::MAX as u64) as u32;
                self.latencies.lock().unwrap().push(micros);
            }
        }
        let _ = counts
            .first_event_us
            .compare_exchange(0, now, Relaxed, Relaxed);
        counts.last_event_us.fetch_max(now, Relaxed);
        let n = counts.distinct.fetch_add(1, Relaxed) + 1;
        if n >= self.want_events.load(Relaxed) {
            self.reached.notify_waiters();
        }
    }
}
