//! The operator's console (docs/api.md §15): a few static files, compiled into the
//! binary so it works offline and needs no setup. The page calls the same API as
//! everyone else, with the key the operator gives it; the files themselves hold no
//! data, so they are served without a key.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The console's files: name, content type, content.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/dom.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/chart.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    ),
];

/// Only the console's own files, and calls to its own origin; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /console`: the page.
pub async fn page() -> Response {
    serve("index.html")
}

/// `GET /console/{file}`: one of its files.
pub async fn asset(file: Result<Path<String>, PathRejection>) -> Response {
    match file {
        Ok(Path(file)) => serve(&file),
        // Not UTF-8: no such file either.
        Err(_) => ApiError::not_found("the console has no such file").into_response(),
    }
}

fn serve(name: &str) -> Response {
    let Some((_, content_type, content)) = ASSETS.iter().find(|(file, _, _)| *file == name) else {
        return ApiError::not_found(format!("the console has no file {name:?}")).into_response();
    };
    (
        [
            (CONTENT_TYPE, *content_type),
            // Small files that change with the binary: always revalidated.
            (CACHE_CONTROL, "no-cache"),
            (
                HeaderName::from_static("content-security-policy"),
                CONTENT_SECURITY_POLICY,
            ),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
        ],
        *content,
    )
        .into_response()
}
