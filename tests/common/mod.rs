//! Test harness: a real gateway on loopback (in this process, or a child process in
//! `process`), real receivers that record what arrives and answer as a test scripts
//! them, the one HTTP client every test calls a gateway with (`client`), the keyed
//! gateway's keys (`keys`), an event-stream reader (`sse`) and the raw-socket probes and
//! envelope checks of the input suites (`input`), which store this run uses
//! (`store`), a TCP proxy a test can cut (`proxy`), a receiver on a bare socket
//! (`raw`), receivers over TLS that may demand client certificates (`https`), and a
//! forward proxy that records what it is asked (`forward_proxy`), and an OpenTelemetry
//! collector that keeps the spans exported to it (`otlp`).
#![allow(dead_code)]

pub mod brokers;
pub mod client;
pub mod forward_proxy;
pub mod https;
pub mod input;
pub mod keys;
pub mod otlp;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod sse;
pub mod store;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use tokio::sync::mpsc;
use watchwire::config::ServeArgs;
use watchwire::server::RunningServer;

pub use client::{Api, Reply};

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The HTTP version the request came in (HTTP/2 only over TLS with ALPN `h2`).
    pub version: axum::http::Version,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is ASCII"))
    }

    pub fn number(&self) -> u64 {
        self.header("x-goog-message-number")
            .expect("message number")
            .parse()
            .expect("numeric message number")
    }

    pub fn state(&self) -> &str {
        self.header("x-goog-resource-state")
            .expect("resource state")
    }

    /// The body as JSON, if it is some.
    pub fn body_json_opt(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// What a receiver answers: status and extra headers.
/// A status and headers to answer with; an entry named [`BODY`] is the body instead.
pub type Answer = (u16, Vec<(&'static str, String)>);
/// The name of an [`Answer`] entry that is its body, not a header.
pub const BODY: &str = "body";
pub type Responder = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Received>,
    responder: Arc<Mutex<Responder>>,
}

/// A webhook receiver on 127.0.0.1:0.
pub struct Receiver {
    pub addr: SocketAddr,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    responder: Arc<Mutex<Responder>>,
}

impl Receiver {
    /// A receiver that answers 204 to everything.
    pub async fn start() -> Receiver {
        let (app, rx, responder) = Receiver::unbound();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            rx: tokio::sync::Mutex::new(rx),
            responder,
        }
    }

    /// Its app, which records into a new queue, and the receiver reading that queue.
    fn unbound() -> (
        axum::Router,
        mpsc::UnboundedReceiver<Received>,
        Arc<Mutex<Responder>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let responder: Arc<Mutex<Responder>> =
            Arc::new(Mutex::new(Arc::new(|_: &Received| (204, vec![]))));
        let state = ReceiverState {
            tx,
            responder: responder.clone(),
        };
        (
            axum::Router::new().fallback(receive).with_state(state),
            rx,
            responder,
        )
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Decides every later answer.
    pub fn respond(&self, responder: impl Fn(&Received) -> Answer + Send + Sync + 'static) {
        *self.responder.lock().unwrap() = Arc::new(responder);
    }

    /// Answers 503 until the returned switch is turned on, 204 from then on.
    pub fn unavailable_until_up(&self) -> Arc<AtomicBool> {
        let up = Arc::new(AtomicBool::new(false));
        let gate = up.clone();
        self.respond(move |_| {
            if gate.load(Ordering::SeqCst) {
                (204, vec![])
            } else {
                (503, vec![])
            }
        });
        up
    }

    /// Answers with these statuses in turn, then 204.
    pub fn script(&self, statuses: &[u16]) {
        let queue = Mutex::new(statuses.iter().copied().collect::<VecDeque<u16>>());
        self.respond(move |_| (queue.lock().unwrap().pop_front().unwrap_or(204), vec![]));
    }

    /// The next request, or a panic after `PATIENCE`.
    pub async fn next(&self) -> Received {
        next_in_time(&self.rx).await
    }

    /// The next request, waiting as long as it takes; `None` once the receiver is gone.
    pub async fn next_quietly(&self) -> Option<Received> {
        self.rx.lock().await.recv().await
    }

    /// The next `n` requests.
    pub async fn take(&self, n: usize) -> Vec<Received> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// The next `n` notifications, each once: a retry repeats the number it follows
    /// and is skipped. Each as (message number, the event's resource or `sync`).
    pub async fn first_receipts(&self, n: usize) -> Vec<(u64, String)> {
        let mut got: Vec<(u64, String)> = Vec::with_capacity(n);
        while got.len() < n {
            let r = self.next().await;
            if got.last().is_some_and(|(number, _)| *number == r.number()) {
                continue;
            }
            let resource = match r.state() {
                "sync" => "sync",
                _ => r
                    .header("x-watchwire-event-resource")
                    .expect("event resource"),
            };
            got.push((r.number(), resource.to_string()));
        }
        got
    }

    /// Asserts nothing arrives within `window` (used only to show an absence).
    pub async fn expect_silence(&self, window: Duration) {
        let mut rx = self.rx.lock().await;
        if let Ok(Some(got)) = tokio::time::timeout(window, rx.recv()).await {
            panic!(
                "expected no notification, got {:?} #{}",
                got.header("x-goog-resource-state"),
                got.header("x-goog-message-number").unwrap_or("?")
            );
        }
    }
}

/// What a receiver got next, or a panic after `PATIENCE`.
pub async fn next_in_time<T>(rx: &tokio::sync::Mutex<mpsc::UnboundedReceiver<T>>) -> T {
    let mut rx = rx.lock().await;
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("nothing arrived in time")
        .expect("receiver closed")
}

async fn receive(
    State(state): State<ReceiverState>,
    peer: Option<axum::Extension<https::PeerCertificate>>,
    version: axum::http::Version,
    mut headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if let Some(axum::Extension(peer)) = peer {
        headers.insert(https::CLIENT_CERTIFICATE, peer.0.parse().unwrap());
    }
    let got = Received {
        headers,
        body,
        at: Instant::now(),
        version,
    };
    let responder = state.responder.lock().unwrap().clone();
    let (status, extra) = responder(&got);
    let _ = state.tx.send(got);
    let body = extra
        .iter()
        .find(|(name, _)| *name == BODY)
        .map(|(_, b)| b.clone());
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        body.unwrap_or_default(),
    )
        .into_response();
    for (name, value) in extra.into_iter().filter(|(name, _)| *name != BODY) {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A gateway running in this process on 127.0.0.1:0 with its own data directory. It
/// derefs to its `Api`, the client every test calls it with.
pub struct Gateway {
    pub server: Option<RunningServer>,
    pub api: Api,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Gateway {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Test defaults: `--dev`, quick retries and sweeps, quiet logs.
pub fn test_args(dir: &std::path::Path) -> ServeArgs {
    let mut args = ServeArgs::for_data_dir(dir);
    args.listen = "127.0.0.1:0".parse().unwrap();
    args.dev = true;
    args.retry_schedule = vec![Duration::from_millis(20), Duration::from_millis(40)];
    args.expiry_sweep = Duration::from_millis(100);
    args.log = "warn".into();
    args.database_url = store::database_url(dir);
    args.node_id = args.database_url.as_ref().map(|_| store::node_id(dir));
    args
}

impl Gateway {
    pub async fn start() -> Gateway {
        Gateway::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ServeArgs)) -> Gateway {
        let mut gateway = Gateway {
            server: None,
            api: Api::new(""),
            dir: tempfile::tempdir().unwrap(),
        };
        gateway.start_again(configure).await;
        gateway
    }

    /// Starts a gateway that was shut down again on the same data, configured as
    /// `start_with` does. Its address changes.
    pub async fn start_again(&mut self, configure: impl FnOnce(&mut ServeArgs)) {
        let mut args = test_args(self.dir.path());
        configure(&mut args);
        let server = watchwire::server::start(args)
            .await
            .expect("gateway starts");
        self.api = Api::new(server.url());
        self.server = Some(server);
    }

    /// A gateway as production runs it, hardened: without `--dev`, with the keys of
    /// `keys` (two `--api-key` keys and the named keys of a `--config` file), and the
    /// allow-list `keys::ALLOW_TARGETS` that lets deliveries reach the tests'
    /// receivers. `configure` changes anything else (`allow_targets.clear()` for a
    /// gateway without an allow-list).
    pub async fn keyed(configure: impl FnOnce(&mut ServeArgs)) -> Gateway {
        Gateway::start_with(|a| {
            a.dev = false;
            a.api_keys = vec![keys::ROOT.into(), keys::OTHER_ROOT.into()];
            a.config = Some(keys::write_config(&a.data_dir));
            a.allow_targets = vec![keys::ALLOW_TARGETS.into()];
            configure(a);
        })
        .await
    }

    pub async fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }
}

/// The value of a Prometheus series in `/metrics` text: `name` with every label of
/// `labels` (`outcome="delivered"`), whatever other labels it has (a node's `node`).
pub fn metric_sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap();
            let series_name = series.split('{').next().unwrap();
            series_name == name && labels.iter().all(|label| series.contains(label))
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
}

/// Asserts a Google error envelope with this status and reason.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_reason: &str) {
    assert_eq!(status, want_status, "unexpected status; body: {body}");
    assert_eq!(body["error"]["code"], want_status, "envelope code: {body}");
    assert_eq!(body["error"]["errors"][0]["domain"], "global", "{body}");
    assert_eq!(body["error"]["errors"][0]["reason"], want_reason, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.len() > 10,
        "message should explain the problem: {body}"
    );
}
