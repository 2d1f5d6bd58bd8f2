//! The receiver's errors: one variant per way a notification can fail, so a caller can
//! match on exactly what went wrong. `reason()` gives a stable camelCase code for each
//! (used in `watchwire receive`'s `400` answers and in the test vectors under
//! `fixtures/notifications/`).

use chrono::{DateTime, Utc};

/// Why a request is not a valid notification for a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// A header every notification carries (or the token the channel expects) is absent.
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    /// A header is present but unusable: repeated, not text, or not in its format.
    #[error("header {header} {reason}")]
    MalformedHeader {
        header: &'static str,
        reason: &'static str,
    },
    /// `X-Goog-Message-Number` is not a decimal number from 1 to 2^64-1.
    #[error("message number {0:?} is not a positive decimal integer")]
    InvalidMessageNumber(String),
    /// `X-Goog-Resource-State` is none of the states docs/api.md §4 allows.
    #[error("resource state {0:?} is not a known state")]
    UnknownState(String),
    #[error("notification is for channel {received:?}, not {expected:?}")]
    ChannelIdMismatch { expected: String, received: String },
    /// The token differs from the channel's (compared in constant time; neither value is
    /// repeated here).
    #[error("channel token does not match")]
    TokenMismatch,
    #[error("notification is for resource id {received:?}, not {expected:?}")]
    ResourceIdMismatch { expected: String, received: String },
    #[error("channel expired at {expiration}")]
    ChannelExpired { expiration: DateTime<Utc> },
    /// The signed `webhook-id` is not `<channel id>-<message number>` of these headers,
    /// so the signature does not vouch for them (a signed body replayed under other
    /// headers).
    #[error("webhook-id {received:?} does not name this notification ({expected:?})")]
    WebhookIdMismatch { expected: String, received: String },
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl NotificationError {
    /// A stable camelCase code for the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            NotificationError::MissingHeader(_) => "missingHeader",
            NotificationError::MalformedHeader { .. } => "malformedHeader",
            NotificationError::InvalidMessageNumber(_) => "invalidMessageNumber",
            NotificationError::UnknownState(_) => "unknownState",
            NotificationError::ChannelIdMismatch { .. } => "channelIdMismatch",
            NotificationError::TokenMismatch => "tokenMismatch",
            NotificationError::ResourceIdMismatch { .. } => "resourceIdMismatch",
            NotificationError::ChannelExpired { .. } => "channelExpired",
            NotificationError::WebhookIdMismatch { .. } => "webhookIdMismatch",
            NotificationError::Signature(e) => e.reason(),
        }
    }

    /// The header the failure is about, where there is one.
    pub fn header(&self) -> Option<&'static str> {
        use crate::protocol::headers as h;
        match self {
            NotificationError::MissingHeader(header)
            | NotificationError::MalformedHeader { header, .. } => Some(header),
            NotificationError::InvalidMessageNumber(_) => Some(h::MESSAGE_NUMBER),
            NotificationError::UnknownState(_) => Some(h::RESOURCE_STATE),
            NotificationError::ChannelIdMismatch { .. } => Some(h::CHANNEL_ID),
            NotificationError::TokenMismatch => Some(h::CHANNEL_TOKEN),
            NotificationError::ResourceIdMismatch { .. } => Some(h::RESOURCE_ID),
            NotificationError::ChannelExpired { .. } => None,
            NotificationError::WebhookIdMismatch { .. } => Some(h::WEBHOOK_ID),
            NotificationError::Signature(e) => e.header(),
        }
    }
}

/// Why Standard Webhooks signature headers do not authenticate a body (docs/api.md §10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header {0} is missing")]
    MissingHeader(&'static str),
    #[error("signature header {header} {reason}")]
    MalformedHeader {
        header: &'static str,
        reason: &'static str,
    },
    /// `webhook-timestamp` is further in the past than the tolerance (a replay, or a
    /// very slow delivery).
    #[error("webhook-timestamp {timestamp} is more than {tolerance_secs} s before now ({now})")]
    TimestampTooOld {
        timestamp: i64,
        now: i64,
        tolerance_secs: u64,
    },
    #[error("webhook-timestamp {timestamp} is more than {tolerance_secs} s after now ({now})")]
    TimestampInFuture {
        timestamp: i64,
        now: i64,
        tolerance_secs: u64,
    },
    /// No `v1,` entry of `webhook-signature` is the HMAC of this id, timestamp and body.
    #[error("no signature in webhook-signature matches the body")]
    Mismatch,
}

impl SignatureError {
    /// A stable camelCase code for the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missingSignatureHeader",
            SignatureError::MalformedHeader { .. } => "malformedSignatureHeader",
            SignatureError::TimestampTooOld { .. } => "signatureTimestampTooOld",
            SignatureError::TimestampInFuture { .. } => "signatureTimestampInFuture",
            SignatureError::Mismatch => "signatureMismatch",
        }
    }

    /// The header the failure is about.
    pub fn header(&self) -> Option<&'static str> {
        use crate::protocol::headers as h;
        match self {
            SignatureError::MissingHeader(header)
            | SignatureError::MalformedHeader { header, .. } => Some(header),
            SignatureError::TimestampTooOld { .. } | SignatureError::TimestampInFuture { .. } => {
                Some(h::WEBHOOK_TIMESTAMP)
            }
            SignatureError::Mismatch => Some(h::WEBHOOK_SIGNATURE),
        }
    }
}

/// Why a `Channel` could not be configured or updated from a watch response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid signing secret: {0}")]
    InvalidSigningSecret(String),
    #[error("watch response is not a JSON object")]
    ResponseNotAnObject,
    #[error("watch response field {field:?}: {reason}")]
    InvalidResponseField { field: &'static str, reason: String },
}
