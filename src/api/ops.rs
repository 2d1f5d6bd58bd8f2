//! Operations endpoints: `/healthz`, `/metrics`, the answers for unknown routes, and
//! the request metrics and panic answer every route shares.

use std::any::Any;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::protocol::watch::is_valid_channel_id;
use crate::telemetry;

/// `200` while the node can use its store; `503 backendError` while it cannot write
/// (a full disk, a lost database) or a write failed in the last few seconds, so a
/// load balancer takes it out of rotation.
pub async fn healthz(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    app.store.probe().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backendError",
            format!("the store cannot write: {e}"),
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    ))
}

/// Prometheus text. An operator's call: with keys configured it needs the admin scope.
pub async fn metrics(State(app): State<AppState>, _: super::auth::Operator) -> impl IntoResponse {
    let mut text = app.metrics.render();
    text.push_str(&telemetry::process_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// `GET /v1/cluster` (docs/api.md §13): every node, with its address, last heartbeat
/// and the channels it delivers. A gateway on the embedded store is a cluster of one.
pub async fn cluster(
    State(app): State<AppState>,
    _: super::auth::Operator,
    uri: Uri,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    super::query::Query::parse(&uri, &[])?;
    use crate::model::rfc3339_ms;
    let nodes = match app.membership.as_deref() {
        Some(membership) => membership
            .nodes()
            .await?
            .into_iter()
            .map(|n| {
                serde_json::json!({
                    "id": n.id,
                    "address": n.address,
                    "startedAt": rfc3339_ms(n.started_ms),
                    "lastHeartbeat": rfc3339_ms(n.heartbeat_ms),
                    "leaseUntil": rfc3339_ms(n.lease_until_ms),
                    "leaving": n.leaving,
                    "channels": n.channels,
                    "self": n.id == membership.node_id(),
                })
            })
            .collect(),
        None => vec![serde_json::json!({
            "id": "embedded",
            "address": app.public_url,
            "channels": app.dispatcher.local_pks().len(),
            "self": true,
        })],
    };
    let store = if app.membership.as_deref().is_some() {
        "postgres"
    } else {
        "embedded"
    };
    Ok(axum::Json(
        serde_json::json!({ "store": store, "nodes": nodes }),
    ))
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    let hint = trailing_slash_hint(path)
        .or_else(|| encoded_id_hint(path))
        .unwrap_or_default();
    ApiError::not_found(format!("no such endpoint: {method} {path}{hint}"))
}

/// A path that is an endpoint but for a trailing `/`: the answer says so, since the
/// path looks right at a glance.
fn trailing_slash_hint(path: &str) -> Option<String> {
    let bare = path.strip_suffix('/').filter(|bare| !bare.is_empty())?;
    let google_style = bare.ends_with("/watch") || bare.ends_with("/channels/stop");
    (google_style || super::names_route(bare)).then(|| {
        format!("; the trailing slash is the problem: paths take none here, so use {bare}")
    })
}

/// A path that names a channel or watcher once the `/` in its id is encoded as `%2F`
/// (ids may hold `/`, docs/api.md §2): the answer gives the path to use instead.
fn encoded_id_hint(path: &str) -> Option<String> {
    const PATHS: [(&str, &[&str]); 2] = [
        (
            "/v1/channels/",
            &["/notifications", "/replay", "/enable", ""],
        ),
        ("/v1/watchers/", &[""]),
    ];
    PATHS.iter().find_map(|(prefix, suffixes)| {
        let rest = path.strip_prefix(prefix)?;
        suffixes.iter().find_map(|suffix| {
            let id = rest.strip_suffix(suffix)?;
            (id.contains('/') && is_valid_channel_id(id)).then(|| {
                format!(
                    "; an id that holds '/' goes in the path with each '/' written as %2F: {prefix}{}{suffix}",
                    id.replace('/', "%2F")
                )
            })
        })
    })
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "httpMethodNotAllowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// `route` labels of requests no route template matched: Google-style watch and stop
/// paths (open-ended, see `google_style`) and everything else. Never the raw path: any
/// client could then create series without bound.
pub const FALLBACK_ROUTES: [&str; 3] = ["watch", "stop", "other"];

/// The `route` label of a request: its route template, or one of [`FALLBACK_ROUTES`].
fn route_label(request: &Request) -> String {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        return matched.as_str().to_string();
    }
    let path = request.uri().path();
    let label = if path.ends_with("/channels/stop") {
        "stop"
    } else if path.ends_with("/watch") {
        "watch"
    } else {
        "other"
    };
    label.to_string()
}

/// Counts each answered request by route and status class, and times it up to its
/// response head (a stream's body may last hours; its start is what callers wait on).
pub async fn record_request(request: Request, next: Next) -> Response {
    let route = route_label(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let status = telemetry::status_class(response.status().as_u16());
    metrics::counter!("watchwire_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("watchwire_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The answer to a request whose handler panicked: `500` in the envelope, and the
/// panic in the log. Without it hyper drops the connection, and a client cannot tell
/// whether its publish was stored. The panic's text stays in the log: it may hold
/// internals a caller has no use for.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = %detail, "a request handler panicked; answered 500");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "backendError",
        "the gateway failed while handling this request; it may or may not have taken effect: \
         try again (a publish with the same Idempotency-Key is safe to repeat)",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn envelope(response: Response) -> (u16, serde_json::Value) {
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_panic_answers_500_in_the_envelope() {
        for panic in [
            Box::new("index out of bounds") as Box<dyn Any + Send>,
            Box::new(String::from("formatted: 42")),
            Box::new(42u8),
        ] {
            let response = panic_response(panic);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json; charset=UTF-8"
            );
            let (status, body) = envelope(response).await;
            assert_eq!(status, 500);
            assert_eq!(body["error"]["code"], 500);
            assert_eq!(body["error"]["errors"][0]["domain"], "global");
            assert_eq!(body["error"]["errors"][0]["reason"], "backendError");
            let message = body["error"]["message"].as_str().unwrap();
            assert_eq!(body["error"]["errors"][0]["message"], message);
            assert!(
                message.contains("try again") && !message.contains("42"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_panicking_route_answers_instead_of_dropping_the_connection() {
        let router = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("boom");
                    }
                    ""
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let answer = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/boom"))
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(answer.status(), 500);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["errors"][0]["reason"], "backendError");
    }

    #[test]
    fn not_found_names_a_trailing_slash_and_an_unencoded_id() {
        assert!(trailing_slash_hint("/v1/channels/").is_some());
        assert!(trailing_slash_hint("/v1/channels/c-1/").is_some());
        assert!(trailing_slash_hint("/b/o/watch/").is_some());
        assert!(trailing_slash_hint("/v1/nope/").is_none());
        assert!(trailing_slash_hint("/").is_none());
        assert!(trailing_slash_hint("/v1/channels").is_none());
        assert_eq!(
            encoded_id_hint("/v1/channels/team/a+b=/replay").as_deref(),
            Some("; an id that holds '/' goes in the path with each '/' written as %2F: /v1/channels/team%2Fa+b=/replay")
        );
        assert!(encoded_id_hint("/v1/watchers/a/b").is_some());
        assert!(encoded_id_hint("/v1/channels/a/b%zz").is_none());
        assert!(encoded_id_hint("/v1/channels/abc").is_none());
    }

    #[test]
    fn route_labels_never_hold_the_raw_path() {
        let label = |path: &str| {
            route_label(
                &Request::builder()
                    .uri(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
        };
        assert_eq!(label("/drive/v3/files/abc/watch"), "watch");
        assert_eq!(label("/calendar/v3/channels/stop"), "stop");
        assert_eq!(label("/random/1234"), "other");
    }
}
