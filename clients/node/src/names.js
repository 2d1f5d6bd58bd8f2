// Header names of a notification (docs/api.md §4, §10), lower case.

export const CHANNEL_ID = 'x-goog-channel-id';
export const CHANNEL_TOKEN = 'x-goog-channel-token';
export const CHANNEL_EXPIRATION = 'x-goog-channel-expiration';
export const RESOURCE_ID = 'x-goog-resource-id';
export const RESOURCE_URI = 'x-goog-resource-uri';
export const RESOURCE_STATE = 'x-goog-resource-state';
export const MESSAGE_NUMBER = 'x-goog-message-number';
export const CHANGED = 'x-goog-changed';
export const EVENT_RESOURCE = 'x-watchwire-event-resource';
export const CURSOR = 'x-watchwire-cursor';
export const PREVIOUS_NUMBER = 'x-watchwire-previous-number';
export const METADATA = 'x-watchwire-metadata';
export const WEBHOOK_ID = 'webhook-id';
export const WEBHOOK_TIMESTAMP = 'webhook-timestamp';
export const WEBHOOK_SIGNATURE = 'webhook-signature';

/** Every header a notification may carry, in the order of the §4 table. */
export const NOTIFICATION_HEADERS = Object.freeze([
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
]);

/** The Standard Webhooks signature headers. */
export const SIGNATURE_HEADERS = Object.freeze([WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE]);
