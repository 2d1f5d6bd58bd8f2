//! The HTTP API: one file per surface, all sharing [`AppState`].

pub mod auth;
pub mod body;
pub mod changes;
pub mod channels;
pub mod error;
pub mod events;
pub mod limits;
pub mod listener;
pub mod ops;
pub mod path;
pub mod query;
pub mod reading;
pub mod stop;
pub mod stream;
pub mod watch;
pub mod watchers;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::ServeArgs;
use crate::delivery::target::TargetPolicy;
use crate::delivery::Dispatcher;
use crate::protocol::resource::ServicePrefixes;
use crate::store::Store;

pub type AppState = Arc<App>;

/// What every handler can reach.
pub struct App {
    pub config: ServeArgs,
    pub store: Arc<dyn Store>,
    pub dispatcher: Dispatcher,
    pub keys: auth::Keys,
    pub prefixes: ServicePrefixes,
    pub target_policy: TargetPolicy,
    /// `--public-url` without a trailing slash.
    pub public_url: String,
    pub metrics: PrometheusHandle,
}

pub fn router(app: AppState) -> Router {
    let max_body = app.config.max_body_bytes;
    let request_limits = limits::RequestLimits {
        max_header_bytes: app.config.max_header_bytes,
        max_headers: app.config.max_headers,
        request_timeout: app.config.request_timeout,
    };
    Router::new()
        .route(
            "/healthz",
            get(ops::healthz).fallback(ops::method_not_allowed),
        )
        .route(
            "/metrics",
            get(ops::metrics).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/events",
            post(events::publish).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/watch",
            get(stream::stream).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/changes",
            get(changes::changes).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/changeset",
            get(changes::changeset).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/channels",
            get(channels::list).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/channels/{id}",
            get(channels::show).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/channels/{id}/notifications",
            get(channels::notifications).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/channels/{id}/replay",
            post(channels::replay).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/channels/{id}/enable",
            post(channels::enable).fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/watchers",
            post(watchers::create)
                .get(watchers::list)
                .fallback(ops::method_not_allowed),
        )
        .route(
            "/v1/watchers/{id}",
            delete(watchers::delete).fallback(ops::method_not_allowed),
        )
        .fallback(google_style)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            request_limits,
            limits::enforce,
        ))
        .with_state(app)
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
