// The subscriber's record of a channel, and the one call that turns a request into a
// trusted notification.

import { timingSafeEqual } from 'node:crypto';

import { ChannelError, NotificationError } from './errors.js';
import { Picked } from './headers.js';
import { daysFromCivil } from './httpdate.js';
import * as h from './names.js';
import { Notification } from './notification.js';
import {
  DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
  SigningSecret,
  bodyBytes,
  checkTolerance,
  toMs,
  verifyPicked,
} from './signature.js';

const I64_MIN = -(2 ** 63);
const I64_MAX_EXCLUSIVE = 2 ** 63;
// The instants the Rust library can hold: years -262144 to 262143 (chrono's range).
const MIN_MS = daysFromCivil(-262144, 1, 1) * 86400000;
const MAX_MS = daysFromCivil(262144, 1, 1) * 86400000 - 1;
const INSPECT = Symbol.for('nodejs.util.inspect.custom');
// Rust's `str::trim` (Unicode White_Space).
const BLANKS = '[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const TRIM = new RegExp(`^${BLANKS}+|${BLANKS}+$`, 'gu');
const INTEGER = /^[+-]?[0-9]+$/;
const FLOAT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** Constant-time comparison of two strings' UTF-8 bytes (length is not hidden). */
function sameText(a, b) {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // timingSafeEqual needs equal lengths; compare x with itself so the work is the same.
  return x.length === y.length ? timingSafeEqual(x, y) : !timingSafeEqual(x, x);
}

/**
 * Reads a watch response's `expiration`: ms since the epoch as a string, integer or float
 * (clients differ), as the gateway reads one. Returns ms, or a string saying why not.
 */
function parseExpiration(value) {
  const tooBig = 'expiration does not fit a signed 64-bit number of milliseconds';
  let ms;
  if (typeof value === 'string') {
    const t = value.replace(TRIM, '');
    if (INTEGER.test(t)) {
      const n = BigInt(t);
      if (n < -(2n ** 63n) || n >= 2n ** 63n) {
        // Too large for an integer: read as a float, like Rust's `f64` fallback.
        ms = Number(t);
        if (!(ms >= I64_MIN && ms < I64_MAX_EXCLUSIVE)) return tooBig;
        ms = Math.trunc(ms);
      } else {
        ms = Number(n);
      }
    } else if (FLOAT.test(t) && Number.isFinite(Number(t))) {
      ms = Number(t);
      if (!(ms >= I64_MIN && ms < I64_MAX_EXCLUSIVE)) return tooBig;
      ms = Math.trunc(ms);
    } else {
      return `expiration ${JSON.stringify(value)} is not a number of milliseconds since the Unix epoch`;
    }
  } else if (typeof value === 'number' && Number.isFinite(value)) {
    if (!(value >= I64_MIN && value < I64_MAX_EXCLUSIVE)) return tooBig;
    ms = Math.trunc(value);
  } else if (typeof value === 'bigint') {
    if (value < -(2n ** 63n) || value >= 2n ** 63n) return tooBig;
    ms = Number(value);
  } else {
    return 'expiration must be a number of milliseconds since the Unix epoch, as a string or a number';
  }
  if (ms < MIN_MS || ms > MAX_MS) return `${ms} ms is out of range`;
  return ms;
}

/** A `Date` from a `Date` or ms since the epoch; null stays null. */
function toDate(value, what) {
  if (value === null || value === undefined) return null;
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new TypeError(`${what} must be a Date or a number of milliseconds since the epoch`);
  }
  return new Date(ms);
}

/**
 * A watch channel as its subscriber keeps it: what to send in the watch request, and
 * what every notification on it must match.
 *
 * Fields left null are not checked: a channel without a token accepts any token, and
 * the resource id is only compared once known (the sync message may arrive before the
 * watch response that carries it).
 */
export class Channel {
  #secret = null; // { text, key }

  /**
   * @param {string} id
   * @param {object} [options] `token`, `address`, `resourceId`, `resourceUri`,
   *   `expiration` (Date or ms), `params` (object of strings), `signingSecret`
   *   (`whsec_…`), `signatureToleranceSeconds` (default 300)
   */
  constructor(id, options = {}) {
    if (typeof id !== 'string') throw new TypeError('a channel id is a string');
    this.id = id;
    this.token = options.token ?? null;
    /** Where notifications are sent; needed only to build a watch body. */
    this.address = options.address ?? null;
    this.resourceId = options.resourceId ?? null;
    this.resourceUri = options.resourceUri ?? null;
    /** @type {Date | null} */
    this.expiration = toDate(options.expiration, 'expiration');
    /** Extra `params` for the watch body, such as `ttl` (the signing secret is added). */
    this.params = { ...(options.params ?? {}) };
    /** How far a signature's timestamp may be from the receiver's clock, in seconds. */
    this.signatureToleranceSeconds = checkTolerance(
      options.signatureToleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
    );
    this.setSigningSecret(options.signingSecret ?? null);
  }

  /** A web-hook channel to be created at `address` (like `channel.py`'s `new_webhook_channel`). */
  static webhook(id, address, options = {}) {
    return new Channel(id, { ...options, address });
  }

  /**
   * Sets or clears (null) the `whsec_…` secret notifications must be signed with
   * (docs/api.md §10). With one, every notification must carry a valid signature.
   * Throws a `ChannelError` (`invalidSigningSecret`).
   */
  setSigningSecret(secret) {
    if (secret === null || secret === undefined) {
      this.#secret = null;
      return;
    }
    try {
      this.#secret = { text: secret, key: SigningSecret.parse(secret) };
    } catch (e) {
      throw new ChannelError('invalidSigningSecret', `invalid signing secret: ${e.message}`);
    }
  }

  /** The signing secret, or null. */
  get signingSecret() {
    return this.#secret?.key ?? null;
  }

  /**
   * The JSON body of a watch request for this channel (like `channel.py`'s `body()`):
   * `id`, `type`, and whichever of `address`, `token`, `expiration` (ms as a string),
   * `resourceId`, `resourceUri`, `params` (with `signingSecret`) are set.
   */
  body() {
    const body = { id: this.id, type: 'web_hook' };
    if (this.address !== null) body.address = this.address;
    if (this.token !== null) body.token = this.token;
    if (this.expiration !== null) body.expiration = String(this.expiration.getTime());
    if (this.resourceId !== null) body.resourceId = this.resourceId;
    if (this.resourceUri !== null) body.resourceUri = this.resourceUri;
    const params = {};
    for (const [key, value] of Object.entries(this.params)) {
      if (typeof value !== 'string') throw new TypeError(`params.${key} must be a string`);
      params[key] = value;
    }
    if (this.#secret !== null) params.signingSecret = this.#secret.text;
    if (Object.keys(params).length > 0) body.params = params;
    return body;
  }

  /**
   * Takes what the gateway assigned from a watch response (a parsed JSON object, like
   * `channel.py`'s `update()`): `id`, `token`, `address`, `resourceId`, `resourceUri`
   * and `expiration` (ms since the epoch as a string or a number). Absent and null
   * fields leave the channel as it was. Throws a `ChannelError`; then nothing changes.
   */
  update(response) {
    if (response === null || typeof response !== 'object' || Array.isArray(response)) {
      throw new ChannelError('responseNotAnObject', 'watch response is not a JSON object');
    }
    const present = (field) => (Object.hasOwn(response, field) ? response[field] ?? null : null);
    const text = (field) => {
      const value = present(field);
      if (value !== null && typeof value !== 'string') {
        throw new ChannelError(
          'invalidResponseField',
          `watch response field "${field}": must be a string`,
          field,
        );
      }
      return value;
    };
    const id = text('id');
    const token = text('token');
    const address = text('address');
    const resourceId = text('resourceId');
    const resourceUri = text('resourceUri');
    let expiration = null;
    const rawExpiration = present('expiration');
    if (rawExpiration !== null) {
      const ms = parseExpiration(rawExpiration);
      if (typeof ms === 'string') {
        throw new ChannelError('invalidResponseField', `watch response field "expiration": ${ms}`, 'expiration');
      }
      expiration = new Date(ms);
    }
    if (id !== null) this.id = id;
    if (token !== null) this.token = token;
    if (address !== null) this.address = address;
    if (resourceId !== null) this.resourceId = resourceId;
    if (resourceUri !== null) this.resourceUri = resourceUri;
    if (expiration !== null) this.expiration = expiration;
  }

  /** Whether the channel's known expiration has passed at `now` (Date or ms; default now). */
  isExpiredAt(now) {
    return this.expiration !== null && toMs(now) > this.expiration.getTime();
  }

  /**
   * Validates a request (headers in any letter case, and the raw body bytes) as a
   * notification on this channel, in this order: the headers parse
   * (`Notification.fromHeaders`); the channel id is this one; the token matches when
   * the channel has one (constant time); the resource id matches when known; neither
   * the notification's nor the channel's expiration has passed; and, when the channel
   * has a signing secret, the signature verifies within the tolerance and its
   * `webhook-id` is `<channel id>-<message number>`.
   *
   * Returns the `Notification`; throws a `NotificationError` (a `SignatureError` for
   * the signature's own failures).
   *
   * @param headers `req.rawHeaders`, `[name, value]` pairs, a `Map`, or an object of
   *   `name: value | value[]`. Repeated notification headers are rejected, so pass a
   *   source that keeps repeats (not `IncomingMessage.headers`, which merges or drops them).
   * @param body the raw body: `Buffer`, `Uint8Array`, `ArrayBuffer` or string (UTF-8)
   * @param {{ now?: Date | number }} [options] the receiver's clock (default: now)
   */
  receive(headers, body, options = {}) {
    const nowMs = toMs(options.now);
    const bytes = bodyBytes(body);
    // One pass picks the notification's and the signature's headers.
    const picked = new Picked(h.NOTIFICATION_HEADERS, headers);
    const notification = Notification.fromPicked(picked);
    this.#check(notification, nowMs);
    if (this.#secret !== null) {
      const tolerance = checkTolerance(this.signatureToleranceSeconds);
      const webhookId = verifyPicked(this.#secret.key, picked, bytes, nowMs, tolerance);
      const expected = `${notification.channelId}-${notification.messageNumber}`;
      if (webhookId !== expected) throw NotificationError.webhookIdMismatch(expected, webhookId);
    }
    return notification;
  }

  #check(notification, nowMs) {
    if (notification.channelId !== this.id) {
      throw NotificationError.channelIdMismatch(this.id, notification.channelId);
    }
    if (this.token !== null) {
      if (notification.token === null) throw NotificationError.missingHeader(h.CHANNEL_TOKEN);
      if (!sameText(notification.token, this.token)) throw NotificationError.tokenMismatch();
    }
    if (this.resourceId !== null && notification.resourceId !== this.resourceId) {
      throw NotificationError.resourceIdMismatch(this.resourceId, notification.resourceId);
    }
    const expirations = [notification.channelExpiration, this.expiration]
      .filter((e) => e !== null)
      .map((e) => e.getTime());
    if (expirations.length > 0) {
      const earliest = Math.min(...expirations);
      if (nowMs > earliest) throw NotificationError.channelExpired(new Date(earliest));
    }
  }

  /** Like the Rust library's `Debug`: the token and the secret are not shown. */
  [INSPECT]() {
    const shown = {
      id: this.id,
      token: this.token === null ? null : '<redacted>',
      address: this.address,
      resourceId: this.resourceId,
      resourceUri: this.resourceUri,
      expiration: this.expiration,
      params: this.params,
      signatureToleranceSeconds: this.signatureToleranceSeconds,
      signingSecret: this.#secret === null ? null : '<redacted>',
    };
    return `Channel ${JSON.stringify(shown)}`;
  }

  toJSON() {
    return JSON.parse(this[INSPECT]().slice('Channel '.length));
  }
}
