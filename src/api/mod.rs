//! The HTTP API: one file per surface, all sharing [`AppState`].

pub mod auth;
pub mod body;
pub mod changes;
pub mod channels;
pub mod console;
pub mod error;
pub mod events;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod ops;
pub mod overview;
pub mod path;
pub mod query;
pub mod reading;
pub mod removal;
pub mod renew;
pub mod resource_id;
pub mod stop;
pub mod stream;
mod stream_connection;
pub mod watch;
pub mod watchers;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;

use crate::cluster::Membership;
use crate::config::{CorsOrigins, ServeArgs};
use crate::delivery::target::TargetPolicy;
use crate::delivery::Dispatcher;
use crate::protocol::resource::ServicePrefixes;
use crate::store::Store;
use crate::telemetry;

pub type AppState = Arc<App>;

/// What every handler can reach.
pub struct App {
    pub config: ServeArgs,
    pub store: Arc<dyn Store>,
    /// This node of the cluster; `None` on the embedded store, whose one process
    /// delivers every channel.
    pub membership: Option<Arc<dyn Membership>>,
    pub dispatcher: Dispatcher,
    pub keys: auth::Keys,
    pub prefixes: ServicePrefixes,
    pub target_policy: TargetPolicy,
    /// `--public-url` without a trailing slash.
    pub public_url: String,
    /// `resourceId`s under the store's instance secret.
    pub resource_ids: resource_id::ResourceIds,
    pub metrics: PrometheusHandle,
    /// Browser origins that may call `/v1` (`--cors-origins` or its default).
    pub cors: CorsOrigins,
}

/// Every route with its methods; any other method gets the envelope's `405`. The
/// templates double as the `route` label of the request metrics.
fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/healthz", get(ops::healthz)),
        ("/metrics", get(ops::metrics)),
        ("/v1/events", post(events::publish)),
        ("/v1/watch", get(stream::stream)),
        ("/v1/changes", get(changes::changes)),
        ("/v1/changeset", get(changes::changeset)),
        ("/v1/channels", get(channels::list)),
        ("/v1/channels/{id}", get(channels::show)),
        (
            "/v1/channels/{id}/notifications",
            get(channels::notifications),
        ),
        ("/v1/channels/{id}/replay", post(channels::replay)),
        ("/v1/channels/{id}/enable", post(channels::enable)),
        ("/v1/channels/{id}/renew", post(renew::renew)),
        ("/v1/watchers", post(watchers::create).get(watchers::list)),
        ("/v1/watchers/{id}", delete(watchers::delete)),
        ("/v1/cluster", get(ops::cluster)),
        ("/v1/overview", get(overview::overview)),
        ("/v1/openapi.json", get(openapi::document)),
        ("/console", get(console::page)),
        ("/console/{file}", get(console::asset)),
    ]
}

/// The path template of every route (`/v1/channels/{id}`, …), as the router holds them:
/// tests walk each one, so a new route is walked without being listed twice.
pub fn route_templates() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

/// Whether `path` is one of the routes' paths (a `{…}` matches any one segment).
pub fn names_route(path: &str) -> bool {
    route_templates().iter().any(|template| {
        let (mut want, mut got) = (template.split('/'), path.split('/'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w == g || (w.starts_with('{') && !g.is_empty()) => {}
                _ => return false,
            }
        }
    })
}

pub fn router(app: AppState) -> Router {
    let max_body = app.config.max_body_bytes;
    let request_limits = limits::RequestLimits {
        max_header_bytes: app.config.max_header_bytes,
        max_headers: app.config.max_headers,
        request_timeout: app.config.request_timeout,
    };
    let cors = Arc::new(app.cors.clone());
    let gate = app.clone();
    let mut router = Router::new();
    let mut route_labels = ops::FALLBACK_ROUTES.to_vec();
    for (path, methods) in routes() {
        let methods = match path {
            // `POST /console/watch` is a watch call, on a reserved path: refused as such.
            "/console/{file}" => methods.fallback(console_other_method),
            _ => methods.fallback(ops::method_not_allowed),
        };
        router = router.route(path, methods);
        route_labels.push(path);
    }
    telemetry::register_http_series(&route_labels);
    // Layers run outside in: the metrics see every answer (a preflight, a panic's
    // 500), CORS headers go on every answer (a browser can read the error), a panic
    // anywhere below still answers, and a head over the limits is refused before the
    // key in it is looked at.
    router
        .fallback(google_style)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(gate, require_key))
        .layer(axum::middleware::from_fn_with_state(
            request_limits,
            limits::enforce,
        ))
        .layer(CatchPanicLayer::custom(ops::panic_response))
        .layer(axum::middleware::from_fn_with_state(cors, cross_origin))
        .layer(axum::middleware::from_fn(ops::record_request))
        .with_state(app)
}

/// With keys configured, every request but those [`needs_no_key`] names and CORS
/// preflights must carry a valid key (docs/api.md §10.1), and it is checked before
/// anything else about the request: a caller without one learns nothing from the
/// answer (which paths exist, what a body lacks) and makes the gateway read no body.
/// Handlers still check the key's scope and prefixes.
async fn require_key(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let exempt = needs_no_key(request.uri().path()) || is_preflight(&request);
    if !exempt {
        match app.keys.authenticate(request.headers(), request.uri()) {
            // Handlers take it as an argument (`auth::Caller` and its scoped forms).
            Ok(caller) => drop(request.extensions_mut().insert(caller)),
            Err(refusal) => return refusal.into_response(),
        }
    }
    next.run(request).await
}

/// Paths served without a key: the health check, the API description, and the
/// console's files (they hold no data; the page asks for a key and sends it itself).
pub fn needs_no_key(path: &str) -> bool {
    matches!(path, "/healthz" | "/v1/openapi.json" | "/console") || path.starts_with("/console/")
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Request headers a browser app may send cross-origin: its key, JSON, a publish's
/// Idempotency-Key, a stream's resume point, and a poll's `If-None-Match`.
const CORS_ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, last-event-id, if-none-match";
/// Response headers such an app may read beyond the safelisted ones.
const CORS_EXPOSE_HEADERS: &str = "etag, idempotent-replayed, retry-after";
const CORS_ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// How long a browser may reuse a preflight answer (browsers cap it at 2 h or less).
const CORS_MAX_AGE: &str = "7200";

/// CORS for the `/v1` API (`--cors-origins`): a preflight from an allowed origin is
/// answered `204` here; every other `/v1` answer carries `Access-Control-Allow-Origin`
/// when the origin is allowed and never otherwise, whatever a handler set. A preflight
/// from an origin that is not allowed goes on to the routes (a `405` without CORS
/// headers), so the browser refuses the call.
async fn cross_origin(
    State(origins): State<Arc<CorsOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path != "/v1" && !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let allowed = allowed_origin(&origins, request.headers().get(header::ORIGIN));
    let preflight = is_preflight(&request);
    let mut response = match &allowed {
        Some(origin) if preflight => preflight_answer(origin.clone()),
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSE_HEADERS),
        );
    }
    if *origins != CorsOrigins::None {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
fn allowed_origin(origins: &CorsOrigins, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    match origins {
        CorsOrigins::None => None,
        CorsOrigins::Any => Some(HeaderValue::from_static("*")),
        CorsOrigins::List(list) => origin
            .filter(|o| {
                list.iter()
                    .any(|allowed| allowed.as_bytes() == o.as_bytes())
            })
            .cloned(),
    }
}

fn preflight_answer(origin: HeaderValue) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(CORS_ALLOW_METHODS),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(CORS_ALLOW_HEADERS),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(CORS_MAX_AGE),
            ),
        ],
    )
        .into_response()
}

/// A method other than `GET` on a console file's path: a watch call on `/console/watch`
/// (answered like every watch on the reserved `/console`), else `405`.
async fn console_other_method(State(app): State<AppState>, request: Request) -> Response {
    if request.method() == Method::POST && request.uri().path().ends_with("/watch") {
        return google_style(State(app), request).await;
    }
    ops::method_not_allowed(request.method().clone(), request.uri().clone())
        .await
        .into_response()
}

/// Google's paths are open-ended: anything ending in `/watch` creates a channel and
/// anything ending in `/channels/stop` stops one.
async fn google_style(State(app): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    let is_stop = path.ends_with("/channels/stop");
    let is_watch = !is_stop && path.ends_with("/watch");
    if !is_stop && !is_watch {
        return ops::not_found(request.method().clone(), request.uri().clone())
            .await
            .into_response();
    }
    if request.method() != Method::POST {
        // RFC 9110 §15.5.6: a 405 lists the allowed methods.
        let refusal =
            ops::method_not_allowed(request.method().clone(), request.uri().clone()).await;
        return ([(axum::http::header::ALLOW, "POST")], refusal).into_response();
    }
    if is_stop {
        Handler::call(stop::stop, request, app).await
    } else {
        Handler::call(watch::watch, request, app).await
    }
}
