//! `watchwire receive`: a ready local receiver for development, in the spirit of
//! `stripe listen`. It validates every request with the [`receiver`](crate::receiver)
//! library, answers `204` when valid (also when the tracker only flags it as a
//! duplicate, out of order or after a gap) and `400` with the reason otherwise, and
//! prints one line per request.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::duration::parse_duration;
use crate::config::switch::parse_switch;
use crate::protocol::ErrorEnvelope;
use crate::receiver::{Channel, Notification, NotificationError, Observation, Tracker};

#[derive(Clone, clap::Args)]
pub struct ReceiveArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(
        long,
        env = "WATCHWIRE_RECEIVE_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    pub listen: String,

    /// Accept only notifications of this channel (default: any channel).
    #[arg(long, env = "WATCHWIRE_RECEIVE_CHANNEL_ID")]
    pub channel_id: Option<String>,

    /// Require this channel token.
    #[arg(long, env = "WATCHWIRE_RECEIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Require a valid Standard Webhooks signature under this `whsec_…` secret.
    #[arg(long, env = "WATCHWIRE_RECEIVE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Require this resource id.
    #[arg(long, env = "WATCHWIRE_RECEIVE_RESOURCE_ID")]
    pub resource_id: Option<String>,

    /// How far a signature's timestamp may be from this machine's clock.
    #[arg(long, env = "WATCHWIRE_RECEIVE_SIGNATURE_TOLERANCE", default_value = "5m", value_parser = parse_duration)]
    pub signature_tolerance: Duration,

    /// Print one JSON object per line instead of readable text.
    #[arg(long, env = "WATCHWIRE_RECEIVE_JSON", value_parser = parse_switch)]
    pub json: bool,
}

/// The receiver's state shared by all requests.
struct Receiver {
    /// Token, secret and resource id to require; its id is used only with `--channel-id`.
    channel: Channel,
    any_channel: bool,
    tracker: Mutex<Tracker>,
    json: bool,
}

impl Receiver {
    fn new(args: &ReceiveArgs) -> anyhow::Result<Receiver> {
        let mut channel = Channel::new(args.channel_id.clone().unwrap_or_default());
        channel.token = args.token.clone();
        channel.resource_id = args.resource_id.clone();
        channel.signature_tolerance = args.signature_tolerance;
        channel
            .set_signing_secret(args.secret.as_deref())
            .map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
        Ok(Receiver {
            channel,
            any_channel: args.channel_id.is_none(),
            tracker: Mutex::new(Tracker::new()),
            json: args.json,
        })
    }

    fn receive(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(Notification, Observation), NotificationError> {
        let notification = if self.any_channel {
            // Adopt whichever channel the notification names; everything else is checked.
            let mut channel = self.channel.clone();
            channel.id = Notification::from_headers(headers)?.channel_id;
            channel.receive_at(headers, body, now)?
        } else {
            self.channel.receive_at(headers, body, now)?
        };
        // Every notification observed is answered 204, so none is retracted: an answer
        // other than 2xx after this point would have to `Tracker::retract` it first.
        let observation = self
            .tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .observe(&notification);
        Ok((notification, observation))
    }
}

/// `watchwire receive`: serve until ctrl-c.
pub async fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    let receiver = Arc::new(Receiver::new(&args)?);
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    // Scripts and tests wait for this line; a closed stdout must not stop the receiver.
    let _ = writeln!(
        std::io::stdout().lock(),
        "watchwire receive listening on http://{}",
        listener.local_addr()?
    );
    let app = Router::new().fallback(handle).with_state(receiver);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn handle(
    State(receiver): State<Arc<Receiver>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "methodNotAllowed",
            "notifications are delivered with POST".into(),
        );
    }
    let now = Utc::now();
    let result = receiver.receive(&headers, &body, now);
    let line = match (&result, receiver.json) {
        (Ok((n, observation)), false) => accepted_text(now, n, observation),
        (Ok((n, observation)), true) => accepted_json(now, n, observation, &body).to_string(),
        (Err(e), false) => rejected_text(now, e),
        (Err(e), true) => rejected_json(now, e).to_string(),
    };
    // A closed stdout (`watchwire receive | head`) must not fail the answer.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(StatusCode::BAD_REQUEST, e.reason(), e.to_string()),
    }
}

fn error_response(status: StatusCode, reason: &str, message: String) -> Response {
    let envelope = ErrorEnvelope::new(status.as_u16(), reason, message);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!(envelope).to_string(),
    )
        .into_response()
}

fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2024-05-01T12:00:00.123Z ch-1 #2 exists /calendars/primary/events [duplicate]`
fn accepted_text(now: DateTime<Utc>, n: &Notification, observation: &Observation) -> String {
    let resource = n.event_resource.as_deref().unwrap_or(&n.resource_uri);
    let mut line = format!(
        "{} {} #{} {} {}",
        timestamp(now),
        n.channel_id,
        n.message_number,
        n.state,
        resource
    );
    if observation.is_duplicate() {
        line.push_str(" [duplicate]");
    }
    if observation.is_out_of_order() {
        line.push_str(" [out of order]");
    }
    if let Some(gap) = observation.gap {
        line.push_str(&format!(
            " [gap: previous {}, last seen {}]",
            gap.previous_number, gap.last_seen
        ));
    }
    line
}

fn rejected_text(now: DateTime<Utc>, error: &NotificationError) -> String {
    format!("{} rejected ({}): {error}", timestamp(now), error.reason())
}

fn accepted_json(
    now: DateTime<Utc>,
    n: &Notification,
    observation: &Observation,
    body: &[u8],
) -> Value {
    json!({
        "time": timestamp(now),
        "valid": true,
        "channelId": n.channel_id,
        "messageNumber": n.message_number,
        "state": n.state.as_str(),
        "resourceId": n.resource_id,
        "resourceUri": n.resource_uri,
        "eventResource": n.event_resource,
        "cursor": n.cursor,
        "previousNumber": n.previous_number,
        "changed": n.changed,
        "channelExpiration": n.channel_expiration.map(timestamp),
        "metadata": n.metadata,
        "duplicate": observation.is_duplicate(),
        "outOfOrder": observation.is_out_of_order(),
        "gap": observation.gap.map(|g| json!({"previousNumber": g.previous_number, "lastSeen": g.last_seen})),
        "body": body_json(body),
    })
}

fn rejected_json(now: DateTime<Utc>, error: &NotificationError) -> Value {
    json!({
        "time": timestamp(now),
        "valid": false,
        "error": {"reason": error.reason(), "header": error.header(), "message": error.to_string()},
    })
}

/// The body as JSON when it is JSON, else as text; `null` when empty.
fn body_json(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::{Arrival, Gap};

    fn args() -> ReceiveArgs {
        ReceiveArgs {
            listen: "127.0.0.1:0".into(),
            channel_id: None,
            token: Some("tok".into()),
            secret: None,
            resource_id: None,
            signature_tolerance: Duration::from_secs(300),
            json: false,
        }
    }

    fn headers(channel: &str, number: u64, state: &str, previous: Option<u64>) -> HeaderMap {
        let mut map = HeaderMap::new();
        let mut put = |k: &'static str, v: String| {
            map.insert(k, v.parse().unwrap());
        };
        put("x-goog-channel-id", channel.into());
        put("x-goog-channel-token", "tok".into());
        put("x-goog-resource-id", "rid".into());
        put(
            "x-goog-resource-uri",
            "http://gw/calendars/primary/events".into(),
        );
        put("x-goog-resource-state", state.into());
        put("x-goog-message-number", number.to_string());
        put(
            "x-watchwire-event-resource",
            "/calendars/primary/events".into(),
        );
        if let Some(p) = previous {
            put("x-watchwire-previous-number", p.to_string());
        }
        map
    }

    #[test]
    fn without_a_channel_id_accepts_any_channel_but_still_checks_the_token() {
        let receiver = Receiver::new(&args()).unwrap();
        assert!(receiver
            .receive(&headers("a", 1, "sync", None), b"", Utc::now())
            .is_ok());
        assert!(receiver
            .receive(&headers("b", 1, "sync", None), b"", Utc::now())
            .is_ok());
        let mut wrong_token = headers("a", 2, "exists", Some(1));
        wrong_token.insert("x-goog-channel-token", "nope".parse().unwrap());
        assert_eq!(
            receiver.receive(&wrong_token, b"", Utc::now()).unwrap_err(),
            NotificationError::TokenMismatch
        );
    }

    #[test]
    fn with_a_channel_id_rejects_other_channels() {
        let receiver = Receiver::new(&ReceiveArgs {
            channel_id: Some("a".into()),
            ..args()
        })
        .unwrap();
        assert!(receiver
            .receive(&headers("a", 1, "sync", None), b"", Utc::now())
            .is_ok());
        let err = receiver
            .receive(&headers("b", 1, "sync", None), b"", Utc::now())
            .unwrap_err();
        assert_eq!(err.reason(), "channelIdMismatch");
    }

    #[test]
    fn tracks_duplicates_and_gaps_across_requests() {
        let receiver = Receiver::new(&args()).unwrap();
        let now = Utc::now();
        receiver
            .receive(&headers("a", 1, "sync", None), b"", now)
            .unwrap();
        let (_, again) = receiver
            .receive(&headers("a", 1, "sync", None), b"", now)
            .unwrap();
        assert_eq!(again.arrival, Arrival::Duplicate);
        let (_, skipped) = receiver
            .receive(&headers("a", 9, "exists", Some(5)), b"", now)
            .unwrap();
        assert_eq!(
            skipped.gap,
            Some(Gap {
                previous_number: 5,
                last_seen: 1
            })
        );
    }

    #[test]
    fn rejects_a_malformed_secret_at_startup() {
        let err = Receiver::new(&ReceiveArgs {
            secret: Some("whsec_short".into()),
            ..args()
        })
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("--secret"), "{err:#}");
    }

    #[test]
    fn prints_readable_lines_with_flags() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let n = Notification::from_headers(&headers("ch-1", 9, "exists", Some(5))).unwrap();
        let flagged = Observation {
            arrival: Arrival::Duplicate,
            gap: Some(Gap {
                previous_number: 5,
                last_seen: 3,
            }),
        };
        assert_eq!(
            accepted_text(now, &n, &flagged),
            "2024-05-01T12:00:00.123Z ch-1 #9 exists /calendars/primary/events [duplicate] [gap: previous 5, last seen 3]"
        );
        let plain = Observation {
            arrival: Arrival::New,
            gap: None,
        };
        assert_eq!(
            accepted_text(now, &n, &plain),
            "2024-05-01T12:00:00.123Z ch-1 #9 exists /calendars/primary/events"
        );
        assert_eq!(
            rejected_text(now, &NotificationError::TokenMismatch),
            "2024-05-01T12:00:00.123Z rejected (tokenMismatch): channel token does not match"
        );
    }

    #[test]
    fn prints_json_lines() {
        let now = Utc::now();
        let n = Notification::from_headers(&headers("ch-1", 9, "exists", Some(5))).unwrap();
        let line = accepted_json(
            now,
            &n,
            &Observation {
                arrival: Arrival::OutOfOrder,
                gap: None,
            },
            br#"{"k":1}"#,
        );
        assert_eq!(line["channelId"], "ch-1");
        assert_eq!(line["messageNumber"], 9);
        assert_eq!(line["previousNumber"], 5);
        assert_eq!(
            (line["duplicate"].as_bool(), line["outOfOrder"].as_bool()),
            (Some(false), Some(true))
        );
        assert_eq!(line["body"], json!({"k": 1}));
        assert_eq!(body_json(b"plain text"), json!("plain text"));
        assert_eq!(body_json(b""), Value::Null);
        let rejected = rejected_json(now, &NotificationError::MissingHeader("x-goog-resource-id"));
        assert_eq!(rejected["error"]["reason"], "missingHeader");
        assert_eq!(rejected["error"]["header"], "x-goog-resource-id");
    }
}
