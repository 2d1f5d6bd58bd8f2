//! Header names of a notification (docs/api.md §4, §10). Lower case, as `http` stores them.

pub const CHANNEL_ID: &str = "x-goog-channel-id";
pub const CHANNEL_TOKEN: &str = "x-goog-channel-token";
pub const CHANNEL_EXPIRATION: &str = "x-goog-channel-expiration";
pub const RESOURCE_ID: &str = "x-goog-resource-id";
pub const RESOURCE_URI: &str = "x-goog-resource-uri";
pub const RESOURCE_STATE: &str = "x-goog-resource-state";
pub const MESSAGE_NUMBER: &str = "x-goog-message-number";
pub const CHANGED: &str = "x-goog-changed";

/// The canonical path the event was published on.
pub const EVENT_RESOURCE: &str = "x-watchwire-event-resource";
/// The event's cursor (for sync: the log position the channel's coverage starts after).
pub const CURSOR: &str = "x-watchwire-cursor";
/// Message number of the previous notification on the channel; absent on sync.
pub const PREVIOUS_NUMBER: &str = "x-watchwire-previous-number";
/// The event's metadata as compact JSON, non-ASCII escaped.
pub const METADATA: &str = "x-watchwire-metadata";

/// Standard Webhooks signature headers.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Message number of the sync notification that opens every channel.
pub const SYNC_MESSAGE_NUMBER: u64 = 1;

/// Every header a notification may carry (docs/api.md §4, §10), in the order of the §4 table.
pub const NOTIFICATION_HEADERS: &[&str] = &[
    CHANNEL_ID,
    CHANNEL_TOKEN,
    CHANNEL_EXPIRATION,
    RESOURCE_ID,
    RESOURCE_URI,
    RESOURCE_STATE,
    MESSAGE_NUMBER,
    CHANGED,
    EVENT_RESOURCE,
    CURSOR,
    PREVIOUS_NUMBER,
    METADATA,
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    WEBHOOK_SIGNATURE,
];

/// The headers present on every notification, sync included (docs/api.md §4).
pub const REQUIRED_HEADERS: &[&str] = &[
    CHANNEL_ID,
    MESSAGE_NUMBER,
    RESOURCE_ID,
    RESOURCE_STATE,
    RESOURCE_URI,
];
