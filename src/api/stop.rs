//! `POST …/channels/stop` (docs/api.md §3).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use serde_json::Value;

use super::auth::Subscriber;
use super::body::{parse_json, type_name, RawBody, Shortened};
use super::error::ApiError;
use super::removal;
use super::AppState;
use crate::protocol::watch::is_valid_channel_id;
use crate::store::{Removal, StoreError};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "channel {:?} with that resourceId was not found",
        Shortened(id)
    ))
}

/// A stop request body, validated: both fields present and non-empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub id: String,
    pub resource_id: String,
}

impl StopRequest {
    /// Reads `{"id": …, "resourceId": …}` (other Channel fields ignored). Pure.
    pub fn parse(body: &[u8]) -> Result<StopRequest, ApiError> {
        let body: Value = parse_json(body)?;
        let Value::Object(fields) = &body else {
            return Err(ApiError::invalid(format!(
                "the request body must be a JSON object with id and resourceId, not {}",
                type_name(&body)
            )));
        };
        let field = |name: &str| match fields.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) => Err(ApiError::required(format!(
                "{name} is required to stop a channel"
            ))),
            Some(other) => Err(ApiError::invalid(format!(
                "{name} must be a non-empty string, not {}",
                type_name(other)
            ))),
        };
        Ok(StopRequest {
            id: field("id")?,
            resource_id: field("resourceId")?,
        })
    }
}

/// `?owner=NAME`, the one query parameter a stop reads (the others are Google's
/// clients' and ignored): an operator stopping a channel another key owns.
fn owner_parameter(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(name, _)| name == "owner")
        .map(|(_, owner)| owner.into_owned())
}

pub async fn stop(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let owner = caller.acting_for(owner_parameter(&uri).as_deref())?;
    let StopRequest { id, resource_id } = StopRequest::parse(&body)?;
    if !is_valid_channel_id(&id) {
        // No channel can have it; the store is not asked.
        return Err(not_found(&id));
    }
    let removal = Removal::Stop {
        owner,
        id: id.clone(),
        resource_id,
    };
    match app.store.remove_channels(removal).await {
        Ok(removed) => {
            // The 204 only once no attempt on the channel can start on any node.
            removal::in_force(&app, &removed).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => Err(not_found(&id)),
        Err(e) => Err(e.into()),
    }
}
