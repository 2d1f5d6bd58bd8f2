//! The `{id}` of `/v1/channels/{id}` and `/v1/watchers/{id}`, read so that a malformed
//! path (`%ff`, which is not UTF-8) is a `400` in Google's envelope like every other
//! error, not axum's plain-text rejection.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::error::ApiError;

/// A channel or watcher id taken from the request path.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(PathId(id)),
            Err(rejection) => Err(ApiError::invalid(format!(
                "the id in the path {:?} cannot be read: {}; ids are 1 to 64 characters of A-Z a-z 0-9 - _ + / =",
                parts.uri.path(),
                rejection.body_text()
            ))),
        }
    }
}
