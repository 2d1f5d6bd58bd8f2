//! How a channel is shown (docs/api.md §8.2): the `Channel` resource of a watch answer,
//! its owner, the path it watches, its filter, and its `auth` without the secrets.
//! Shared by the API's channel endpoints and the operational events about channels
//! (docs/api.md §18), which carry the channel as `GET /v1/channels/{id}` shows it.

use serde_json::{json, Value};

use crate::model::{ChannelKind, ChannelSpec, Failure};
use crate::protocol::watch::WatchResponse;

/// The `Channel` resource a watch answers with.
pub fn channel_resource(spec: &ChannelSpec, channel_type: String) -> WatchResponse {
    WatchResponse {
        kind: "api#channel".into(),
        id: spec.id.to_string(),
        resource_id: spec.resource_id.to_string(),
        resource_uri: spec.resource_uri.to_string(),
        token: spec.token.as_deref().map(str::to_string),
        expiration: spec
            .expiration_ms
            .map(|ms| ms.to_string())
            .unwrap_or_default(),
        channel_type,
        address: spec.address.to_string(),
        params: spec.params.as_deref().cloned(),
    }
}

/// The `Channel` resource with its owner (and a watcher's kind).
pub fn spec_view(spec: &ChannelSpec) -> Value {
    // A broker channel's type follows from its address (docs/api.md §20).
    let channel_type = crate::delivery::brokers::address::broker_kind(&spec.address)
        .map_or("web_hook", |kind| kind.channel_type());
    let mut view = serde_json::to_value(channel_resource(spec, channel_type.into()))
        .expect("a channel always serialises");
    if spec.kind == ChannelKind::Watcher {
        view["kind"] = json!("watchwire#watcher");
    }
    view["owner"] = json!(spec.owner);
    view
}

/// A live channel as the channel endpoints show it: [`spec_view`] plus the canonical
/// path it watches (what to publish to), its filter, and its `auth` without secrets.
pub fn channel_view(spec: &ChannelSpec) -> Value {
    let mut view = spec_view(spec);
    view["resource"] = json!(spec.resource);
    if let Some(filter) = &spec.filter {
        view["filter"] = filter.to_value();
    }
    if let Some(auth) = &spec.auth {
        view["auth"] = auth.view();
    }
    view
}

/// A failure as the API shows it: `{reason, detail, status?}`.
pub fn failure_view(failure: &Failure) -> Value {
    let mut view = json!({"reason": failure.reason.as_str(), "detail": failure.detail});
    if let Some(status) = failure.status {
        view["status"] = json!(status);
    }
    view
}
