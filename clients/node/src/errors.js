// The receiver's errors. Every failure has a stable camelCase `reason` (the same codes
// as the Rust library's `NotificationError::reason()`, used in the test vectors under
// fixtures/notifications) and `header`, the lower-case header it is about, or null.

import * as h from './names.js';

/** JSON-style quoting for messages (values are shown, never secrets). */
function quote(value) {
  return JSON.stringify(String(value));
}

/** Why a request is not a valid notification for a channel. */
export class NotificationError extends Error {
  /**
   * @param {string} reason stable code, e.g. `tokenMismatch`
   * @param {string | null} header lower-case header name, or null
   * @param {string} message
   * @param {object} [details] extra fields set on the error (`expected`, `received`, ...)
   */
  constructor(reason, header, message, details = {}) {
    super(message);
    this.reason = reason;
    this.header = header;
    Object.assign(this, details);
  }

  get name() {
    return 'NotificationError';
  }

  static missingHeader(header) {
    return new NotificationError('missingHeader', header, `header ${header} is missing`);
  }

  static malformedHeader(header, problem) {
    return new NotificationError('malformedHeader', header, `header ${header} ${problem}`, {
      problem,
    });
  }

  static invalidMessageNumber(value) {
    return new NotificationError(
      'invalidMessageNumber',
      h.MESSAGE_NUMBER,
      `message number ${quote(value)} is not a positive decimal integer`,
      { value },
    );
  }

  static unknownState(value) {
    return new NotificationError(
      'unknownState',
      h.RESOURCE_STATE,
      `resource state ${quote(value)} is not a known state`,
      { value },
    );
  }

  static channelIdMismatch(expected, received) {
    const message =
      expected === null
        ? `notification is for channel ${quote(received)}, which this receiver does not know`
        : `notification is for channel ${quote(received)}, not ${quote(expected)}`;
    return new NotificationError('channelIdMismatch', h.CHANNEL_ID, message, {
      expected,
      received,
    });
  }

  static tokenMismatch() {
    // Neither token is repeated here.
    return new NotificationError('tokenMismatch', h.CHANNEL_TOKEN, 'channel token does not match');
  }

  static resourceIdMismatch(expected, received) {
    return new NotificationError(
      'resourceIdMismatch',
      h.RESOURCE_ID,
      `notification is for resource id ${quote(received)}, not ${quote(expected)}`,
      { expected, received },
    );
  }

  static channelExpired(expiration) {
    return new NotificationError(
      'channelExpired',
      null,
      `channel expired at ${expiration.toISOString()}`,
      { expiration },
    );
  }

  static webhookIdMismatch(expected, received) {
    return new NotificationError(
      'webhookIdMismatch',
      h.WEBHOOK_ID,
      `webhook-id ${quote(received)} does not name this notification (${quote(expected)})`,
      { expected, received },
    );
  }
}

/**
 * Why Standard Webhooks signature headers do not authenticate a body (docs/api.md §10).
 * A `NotificationError` too, so `Channel.receive` throws only `NotificationError`s.
 */
export class SignatureError extends NotificationError {
  get name() {
    return 'SignatureError';
  }

  static missingHeader(header) {
    return new SignatureError(
      'missingSignatureHeader',
      header,
      `signature header ${header} is missing`,
    );
  }

  static malformedHeader(header, problem) {
    return new SignatureError(
      'malformedSignatureHeader',
      header,
      `signature header ${header} ${problem}`,
      { problem },
    );
  }

  static timestampTooOld(timestamp, now, toleranceSeconds) {
    return new SignatureError(
      'signatureTimestampTooOld',
      h.WEBHOOK_TIMESTAMP,
      `webhook-timestamp ${timestamp} is more than ${toleranceSeconds} s before now (${now})`,
      { timestamp, now, toleranceSeconds },
    );
  }

  static timestampInFuture(timestamp, now, toleranceSeconds) {
    return new SignatureError(
      'signatureTimestampInFuture',
      h.WEBHOOK_TIMESTAMP,
      `webhook-timestamp ${timestamp} is more than ${toleranceSeconds} s after now (${now})`,
      { timestamp, now, toleranceSeconds },
    );
  }

  static mismatch() {
    return new SignatureError(
      'signatureMismatch',
      h.WEBHOOK_SIGNATURE,
      'no signature in webhook-signature matches the body',
    );
  }
}

/** Why a `Channel` could not be configured or updated from a watch response. */
export class ChannelError extends Error {
  /**
   * @param {'invalidSigningSecret' | 'responseNotAnObject' | 'invalidResponseField'} reason
   * @param {string} message
   * @param {string | null} [field] the watch response field, for `invalidResponseField`
   */
  constructor(reason, message, field = null) {
    super(message);
    this.reason = reason;
    this.field = field;
  }

  get name() {
    return 'ChannelError';
  }
}
