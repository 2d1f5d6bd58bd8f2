//! The `{id}` of `/v1/channels/{id}` and `/v1/watchers/{id}`, read so that a malformed
//! path (`%ff`, which is not UTF-8) is a `400` in Google's envelope like every other
//! error, not axum's plain-text rejection; and an id no channel can have (outside the
//! id alphabet, a NUL among them) is a `404` at once, before any store sees it.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::body::Shortened;
use super::error::ApiError;
use crate::protocol::watch::is_valid_channel_id;

/// A channel or watcher id taken from the request path.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if is_valid_channel_id(&id) => Ok(PathId(id)),
            Ok(Path(id)) => Err(ApiError::not_found(format!(
                "no channel or watcher has the id {:?}; ids are 1 to 64 characters of A-Z a-z 0-9 - _ + / =",
                Shortened(&id)
            ))),
            Err(rejection) => Err(ApiError::invalid(format!(
                "the id in the path {:?} cannot be read: {}; ids are 1 to 64 characters of A-Z a-z 0-9 - _ + / =",
                parts.uri.path(),
                rejection.body_text()
            ))),
        }
    }
}
