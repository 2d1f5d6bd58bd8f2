// Standard Webhooks signatures (docs/api.md §10): `webhook-signature: v1,<base64
// HMAC-SHA256 of "id.timestamp.body">`, several space-separated during a key rotation,
// keyed by a `whsec_<base64>` secret.

import { createHmac, timingSafeEqual } from 'node:crypto';

import { SignatureError } from './errors.js';
import { Picked, HeaderProblem } from './headers.js';
import * as h from './names.js';

/** How far `webhook-timestamp` may be from the receiver's clock, either way, in seconds. */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

const SECRET_PREFIX = 'whsec_';
const I64_MAX = (1n << 63n) - 1n;
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_VALUE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Strict standard base64 (padding required, no blanks, no URL alphabet, unused bits
 * zero), or null. Node's own decoder skips what it cannot read, which would let a
 * mangled signature or secret through as something else.
 */
export function decodeBase64(text) {
  if (!CANONICAL_BASE64.test(text)) {
    return null;
  }
  if (text.endsWith('==')) {
    if (BASE64_VALUE.indexOf(text[text.length - 3]) & 0b1111) return null;
  } else if (text.endsWith('=')) {
    if (BASE64_VALUE.indexOf(text[text.length - 2]) & 0b11) return null;
  }
  return Buffer.from(text, 'base64');
}

/** The body as bytes: a `Uint8Array`/`Buffer`, an `ArrayBuffer`, a string (UTF-8) or nothing. */
export function bodyBytes(body) {
  if (body === undefined || body === null) {
    return Buffer.alloc(0);
  }
  if (body instanceof Uint8Array) {
    return body;
  }
  if (body instanceof ArrayBuffer) {
    return new Uint8Array(body);
  }
  if (typeof body === 'string') {
    return Buffer.from(body, 'utf8');
  }
  throw new TypeError(
    'the body must be the raw bytes of the request (a Buffer, Uint8Array, ArrayBuffer or string), ' +
      'not a parsed object: signatures are over bytes',
  );
}

/** A decoded signing key. Its bytes never appear in `inspect`, JSON or messages. */
export class SigningSecret {
  #key;

  /** @param {Uint8Array} key 24 to 64 bytes */
  constructor(key) {
    if (!(key instanceof Uint8Array) || key.length < 24 || key.length > 64) {
      throw new TypeError('a signing key must be 24 to 64 bytes');
    }
    this.#key = Buffer.from(key);
  }

  /** Parses `whsec_<base64 of 24 to 64 bytes>`; throws a `TypeError` saying what is wrong. */
  static parse(text) {
    if (typeof text !== 'string' || !text.startsWith(SECRET_PREFIX)) {
      throw new TypeError('a signing secret must start with "whsec_"');
    }
    const key = decodeBase64(text.slice(SECRET_PREFIX.length));
    if (key === null) {
      throw new TypeError('a signing secret must be "whsec_" followed by base64');
    }
    if (key.length < 24 || key.length > 64) {
      throw new TypeError(`a signing secret must hold 24 to 64 bytes; this one holds ${key.length}`);
    }
    return new SigningSecret(key);
  }

  #mac(msgId, timestamp, body) {
    return createHmac('sha256', this.#key)
      .update(`${msgId}.${BigInt(timestamp)}.`, 'utf8')
      .update(bodyBytes(body))
      .digest();
  }

  /** The `v1,<base64>` signature of one message (`timestamp` in seconds). */
  sign(msgId, timestamp, body) {
    return `v1,${this.#mac(msgId, timestamp, body).toString('base64')}`;
  }

  /**
   * Whether any `v1,` entry of a space-separated signature header matches, each compared
   * in constant time (and every entry looked at).
   */
  verify(msgId, timestamp, body, header) {
    const expected = this.#mac(msgId, timestamp, body);
    let found = false;
    for (const entry of header.split(' ')) {
      if (!entry.startsWith('v1,')) continue;
      const candidate = decodeBase64(entry.slice(3));
      if (candidate === null || candidate.length !== expected.length) continue;
      found = timingSafeEqual(candidate, expected) || found;
    }
    return found;
  }

  toJSON() {
    return 'SigningSecret(<redacted>)';
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return 'SigningSecret(<redacted>)';
  }
}

/** A `SigningSecret` from one or its `whsec_…` text. */
export function toSecret(secret) {
  return secret instanceof SigningSecret ? secret : SigningSecret.parse(secret);
}

/** Milliseconds since the epoch from a `Date`, a number of ms, or nothing (now). */
export function toMs(now) {
  if (now === undefined || now === null) {
    return Date.now();
  }
  const ms = now instanceof Date ? now.getTime() : now;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new TypeError('now must be a Date or a finite number of milliseconds');
  }
  return ms;
}

/** As `verifySignature`, on headers already picked; returns the verified `webhook-id`. */
export function verifyPicked(secret, picked, body, nowMs, toleranceSeconds) {
  const required = (name) => {
    let value;
    try {
      value = picked.text(name);
    } catch (e) {
      if (e instanceof HeaderProblem) throw SignatureError.malformedHeader(name, e.reason);
      throw e;
    }
    if (value === null) throw SignatureError.missingHeader(name);
    return value;
  };
  const msgId = required(h.WEBHOOK_ID);
  const timestampText = required(h.WEBHOOK_TIMESTAMP);
  const signatures = required(h.WEBHOOK_SIGNATURE);

  let timestamp = null;
  if (/^[0-9]+$/.test(timestampText)) {
    timestamp = BigInt(timestampText);
    if (timestamp > I64_MAX) timestamp = null;
  }
  if (timestamp === null) {
    throw SignatureError.malformedHeader(
      h.WEBHOOK_TIMESTAMP,
      'is not a number of seconds since the Unix epoch',
    );
  }
  const nowSecs = BigInt(Math.floor(nowMs / 1000));
  const tolerance = BigInt(toleranceSeconds);
  const age = nowSecs - timestamp;
  if (age > tolerance) {
    throw SignatureError.timestampTooOld(Number(timestamp), Number(nowSecs), toleranceSeconds);
  }
  if (-age > tolerance) {
    throw SignatureError.timestampInFuture(Number(timestamp), Number(nowSecs), toleranceSeconds);
  }
  if (!secret.verify(msgId, timestamp, body, signatures)) {
    throw SignatureError.mismatch();
  }
  return msgId;
}

/** Checks a tolerance: a whole, non-negative number of seconds. */
export function checkTolerance(seconds) {
  if (!Number.isSafeInteger(seconds) || seconds < 0) {
    throw new TypeError('a signature tolerance is a whole number of seconds, at least 0');
  }
  return seconds;
}

/**
 * Checks that `webhook-signature` holds a `v1,` HMAC-SHA256 of
 * `webhook-id.webhook-timestamp.body` under `secret` (any one of several space-separated
 * entries, as during a key rotation), and that `webhook-timestamp` is within the
 * tolerance of `now`. Header names are matched in any letter case. Throws a
 * `SignatureError`; returns nothing.
 *
 * @param {SigningSecret | string} secret
 * @param headers any header source (see `Channel.receive`)
 * @param body the raw body bytes
 * @param {{ now?: Date | number, toleranceSeconds?: number }} [options]
 */
export function verifySignature(secret, headers, body, options = {}) {
  const key = toSecret(secret);
  const tolerance = checkTolerance(options.toleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS);
  verifyPicked(key, new Picked(h.SIGNATURE_HEADERS, headers), bodyBytes(body), toMs(options.now), tolerance);
}
