//! `POST /v1/channels/{id}/renew` (docs/api.md §8.6): a live channel gets a new
//! expiration, and keeps everything else — id, resourceId, token, message numbers.
//! Google's channels cannot be renewed; their users re-create them before they expire.
//!
//! The body is read by [`RenewRequest::parse`], a pure function of the bytes and the
//! clock, with watch's own rules for `expiration` and a lifetime (`api/watch.rs`). The
//! new expiration is decided as watch decides one, so the same `--max-channel-ttl`
//! caps it; the store moves it only while the channel lives (`store::jobs`), and the
//! router gives it to the channel's delivery in commit order. In a cluster the node
//! delivering the channel, if another, is told and reads it again from the store.

use std::time::Duration;

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::Value;

use super::auth::Subscriber;
use super::body::{optional_object, type_name, RawBody};
use super::channels::{describe, live, not_live, owned, Owned};
use super::error::ApiError;
use super::path::PathId;
use super::watch::{effective_expiration, parse_ttl, requested_expiration};
use super::AppState;
use crate::cluster::ClusterMessage;
use crate::model::{now_ms, ChannelKind};
use crate::store::{Renewed, StoreError};

/// A renewal's body, checked: what it asks for. Neither: the default lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewRequest {
    /// `expiration`: ms since the epoch, after now.
    pub expiration_ms: Option<i64>,
    /// `ttl`: a lifetime from now, at least a second.
    pub ttl: Option<Duration>,
}

impl RenewRequest {
    /// Reads a renewal's body: nothing, `{}`, `{"expiration": …}` (as watch takes it: ms
    /// since the epoch as a JSON string, integer or float, after `now_ms`) or
    /// `{"ttl": "<seconds>"}` (as watch's `params.ttl`), not both. Other fields are
    /// ignored, as in every body. Pure: the answer depends only on the bytes and
    /// `now_ms`.
    pub fn parse(body: &[u8], now_ms: i64) -> Result<RenewRequest, ApiError> {
        let fields = optional_object(body)?;
        let field = |name: &str| fields.get(name).filter(|v| !v.is_null());
        if field("expiration").is_some() && field("ttl").is_some() {
            return Err(ApiError::invalid(
                "expiration and ttl are both given; give one: expiration is when the channel \
                 expires (ms since the Unix epoch), ttl how many seconds from now",
            ));
        }
        let expiration_ms = field("expiration")
            .map(|value| requested_expiration(value, now_ms))
            .transpose()?;
        let ttl = match field("ttl") {
            None => None,
            Some(Value::String(text)) => Some(parse_ttl("ttl", text)?),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "ttl must be a string of whole seconds, such as \"3600\", not {}",
                    type_name(other)
                )))
            }
        };
        Ok(RenewRequest { expiration_ms, ttl })
    }

    /// The channel's new expiration, decided as watch decides one (docs/api.md §2): the
    /// one asked for, capped at `max` from now; `default` from now when none was.
    pub fn expiration(&self, now_ms: i64, default: Duration, max: Duration) -> i64 {
        effective_expiration(now_ms, self.expiration_ms, self.ttl, default, max)
    }
}

pub async fn renew(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    PathId(id): PathId,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let Owned { owner, channel, .. } = owned(&app, &caller, &uri, &id, &[]).await?;
    let now = now_ms();
    let request = RenewRequest::parse(&body, now)?;
    let channel = live(channel, &id)?;
    if channel.spec.kind == ChannelKind::Watcher {
        return Err(ApiError::invalid(format!(
            "{id:?} is a watcher, and watchers never expire: there is nothing to renew; \
             renew applies to channels made by watch"
        )));
    }
    let expiration = request.expiration(
        now,
        app.config.default_channel_ttl,
        app.config.max_channel_ttl,
    );
    let renewed = match app.store.renew_channel(channel.pk, expiration).await {
        Ok(renewed) => renewed,
        // Stopped, or expired, since it was read.
        Err(StoreError::NotFound) => return Err(not_live(&id)),
        Err(e) => return Err(e.into()),
    };
    // Here, delivery has it once the router has applied the renewal.
    app.dispatcher.wait_routed(renewed.feed_no).await;
    tell_the_node_delivering(&app, channel.pk, renewed).await?;
    let channel = live(app.store.find_channel(&owner, &id).await?, &id)?;
    Ok(Json(describe(&app, &channel).await?))
}

/// In a cluster, the node delivering the channel reads the new expiration from the
/// store, unless this node delivers it and has it already. One that takes the channel
/// over later reads it with the channel.
async fn tell_the_node_delivering(
    app: &AppState,
    pk: i64,
    renewed: Renewed,
) -> Result<(), ApiError> {
    let (Some(membership), Some(node)) = (app.membership.as_deref(), renewed.node) else {
        return Ok(());
    };
    let here = app
        .dispatcher
        .handle(pk)
        .is_some_and(|handle| handle.expires_at(renewed.expiration_ms));
    if !here {
        membership
            .tell(&ClusterMessage::Renewed { pk, node })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn parse(body: &str) -> Result<RenewRequest, ApiError> {
        RenewRequest::parse(body.as_bytes(), NOW)
    }

    fn refused(body: &str) -> String {
        let error = parse(body).unwrap_err();
        assert_eq!(error.status, 400, "{body}: {error:?}");
        error.message
    }

    #[test]
    fn every_body_form_asks_for_what_it_says() {
        let none = RenewRequest {
            expiration_ms: None,
            ttl: None,
        };
        for body in ["", "  \n", "{}", r#"{"expiration": null, "ttl": null}"#] {
            assert_eq!(parse(body).unwrap(), none, "{body:?}");
        }
        let later = NOW + 60_000;
        for body in [
            format!(r#"{{"expiration": "{later}"}}"#),
            format!(r#"{{"expiration": {later}}}"#),
            format!(r#"{{"expiration": {later}.0}}"#),
        ] {
            assert_eq!(parse(&body).unwrap().expiration_ms, Some(later), "{body}");
        }
        let asked = parse(r#"{"ttl": "90", "kind": "api#channel"}"#).unwrap();
        assert_eq!(asked.ttl, Some(Duration::from_secs(90)));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(refused(&format!(r#"{{"expiration": "{NOW}"}}"#)).contains("in the past"));
        assert!(refused(r#"{"expiration": "soon"}"#).contains("milliseconds"));
        let both = refused(&format!(r#"{{"expiration": "{}", "ttl": "60"}}"#, NOW + 1));
        assert!(
            both.contains("expiration") && both.contains("ttl"),
            "{both}"
        );
        assert!(refused(r#"{"ttl": 60}"#).contains("string of whole seconds"));
        assert!(refused(r#"{"ttl": "1.5"}"#).contains("whole number of seconds"));
        assert!(refused(r#"{"ttl": "0"}"#).contains("at least 1 second"));
        assert!(refused("[]").contains("JSON object"));
        assert_eq!(parse("{").unwrap_err().reason, "parseError");
    }

    #[test]
    fn the_new_expiration_is_capped_like_a_watch() {
        let (default, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        let ask = |body: &str| parse(body).unwrap().expiration(NOW, default, max);
        assert_eq!(ask("{}"), NOW + 60_000);
        assert_eq!(ask(r#"{"ttl": "120"}"#), NOW + 120_000);
        assert_eq!(ask(r#"{"ttl": "99999999"}"#), NOW + 3_600_000);
        assert_eq!(
            ask(&format!(r#"{{"expiration": {}}}"#, i64::MAX)),
            NOW + 3_600_000
        );
    }
}
