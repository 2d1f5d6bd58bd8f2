//! The one HTTP client of the tests: `get`, `post` (JSON or raw bytes), `delete` and
//! any other method against a gateway's URL, with an optional API key and extra
//! headers, answering a `Reply` (status, headers, text and JSON). It serves an
//! in-process `Gateway` and a child-process `GatewayProcess` alike (both deref to an
//! `Api`). Raw-socket probes that must send malformed bytes live in `input`.

use axum::http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use super::sse::SseStream;
use super::PATIENCE;

/// What the gateway answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON; `Null` when empty or not JSON.
    pub json: Value,
}

impl Reply {
    pub fn new(status: u16, headers: HeaderMap, text: String) -> Reply {
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// Asserts the status (the body is in the message); returns the reply.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts Google's error envelope with this status and reason (`assert_error`).
    #[track_caller]
    pub fn assert_error(&self, status: u16, reason: &str) {
        super::assert_error(self.status, &self.json, status, reason);
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is ASCII"))
    }
}

/// A gateway's URL, an HTTP client, and what every request carries: an API key
/// (Bearer) and extra headers. Cheap to clone; `key` and `header` return a new one.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
    key: Option<String>,
    headers: Vec<(String, String)>,
}

impl Api {
    pub fn new(url: impl Into<String>) -> Api {
        Api {
            url: url.into(),
            http: client(),
            key: None,
            headers: Vec::new(),
        }
    }

    /// `host:port`, for probes that write raw bytes on a socket.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The same client, sending `key` as a Bearer token.
    pub fn key(&self, key: &str) -> Api {
        Api {
            key: Some(key.to_string()),
            ..self.clone()
        }
    }

    /// The same client, sending this header too. The value may hold any byte but CR/LF.
    pub fn header(&self, name: &str, value: &str) -> Api {
        let mut api = self.clone();
        api.headers.push((name.to_string(), value.to_string()));
        api
    }

    /// The same client on a new connection per request: no pooled connection outlives
    /// a gateway's idle timeout.
    pub fn fresh_connections(&self) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(PATIENCE)
            .build()
            .unwrap();
        Api {
            http,
            ..self.clone()
        }
    }

    /// A request to `path` (which may carry a query) with the key and headers, for
    /// what `send` does not cover (streams).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        for (name, value) in &self.headers {
            request = request.header(
                name,
                HeaderValue::from_bytes(value.as_bytes()).expect("a header value without CR/LF"),
            );
        }
        request
    }

    /// Sends `body` with `method` to `path`.
    pub async fn send(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let response = self
            .request(method, path)
            .body(body)
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let declared_json = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if declared_json && !text.is_empty() {
            if let Err(e) = serde_json::from_str::<Value>(&text) {
                panic!("not a JSON answer ({e}): {text}");
            }
        }
        Reply::new(status, headers, text)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, "").await
    }

    /// POSTs JSON (`content-type: application/json`).
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.header("content-type", "application/json")
            .send(Method::POST, path, body.to_string())
            .await
    }

    /// POSTs these bytes as they are, with no content type.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, "").await
    }

    /// Opens an event stream (`GET`); panics unless it is a 200 stream.
    pub async fn stream(&self, path: &str) -> SseStream {
        SseStream::open(self.request(Method::GET, path)).await
    }

    /// Creates a channel and asserts it worked.
    pub async fn watch(&self, resource: &str, id: &str, address: &str) -> Value {
        self.watch_with(
            resource,
            json!({"id": id, "type": "web_hook", "address": address}),
        )
        .await
    }

    pub async fn watch_with(&self, resource: &str, body: Value) -> Value {
        self.post(&format!("{resource}/watch"), &body)
            .await
            .expect(200)
            .json
    }

    /// Publishes and asserts it was accepted; returns the answer.
    pub async fn publish(&self, events: Value) -> Value {
        self.post("/v1/events", &events).await.expect(200).json
    }

    /// `GET path` again and again until `ready` holds for what it answers (as JSON);
    /// that answer. Panics after `PATIENCE`, saying `what` never happened and showing
    /// the last answer.
    pub async fn get_until(&self, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let shown = self.get(path).await.json;
            if ready(&shown) {
                return shown;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} never happened: {shown}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// `GET /v1/channels/{id}` once `done` holds for what it shows; panics after
    /// `PATIENCE`, saying the channel never `became` that.
    pub async fn await_channel(
        &self,
        id: &str,
        became: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("channel {id} {became}");
        self.get_until(&format!("/v1/channels/{id}"), &what, done)
            .await
    }

    /// Waits until channel `id` owes `pending` notifications (its `pendingCount`, which
    /// follows publishes as the router offers them); panics after `PATIENCE`.
    pub async fn await_pending(&self, id: &str, pending: u64) {
        let became = format!("owing {pending}");
        self.await_channel(id, &became, |shown| {
            shown["delivery"]["pendingCount"] == pending
        })
        .await;
    }

    /// The reason of channel `id`'s last failed attempt, once it has one; panics after
    /// `PATIENCE`.
    pub async fn await_last_error(&self, id: &str) -> String {
        let shown = self
            .await_channel(id, "failing an attempt", |shown| {
                shown["delivery"]["lastError"]["reason"].is_string()
            })
            .await;
        shown["delivery"]["lastError"]["reason"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// What channel `id`'s delivery log lists with `query` (`?status=pending`, …): each
    /// entry's resource, or `sync`.
    pub async fn logged_resources(&self, id: &str, query: &str) -> Vec<String> {
        let log = self
            .get(&format!("/v1/channels/{id}/notifications{query}"))
            .await
            .expect(200)
            .json;
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["resource"].as_str().unwrap_or("sync").to_string())
            .collect()
    }

    /// Stops a channel; returns the status.
    pub async fn stop(&self, id: &str, resource_id: &str) -> u16 {
        self.post(
            "/channels/stop",
            &json!({"id": id, "resourceId": resource_id}),
        )
        .await
        .status
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}
