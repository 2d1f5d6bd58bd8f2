// The notification test vectors (fixtures/notifications, format in its README.md), read
// from the repository at test time, and what a result must look like to match one.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Channel, NotificationError, SigningSecret } from '../../src/index.js';

export const VECTOR_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../../fixtures/notifications',
);

const BIG = '\u0000bigint:';

/**
 * JSON.parse, but integers that a double cannot hold exactly (a message number of
 * 2^64-1) become bigints instead of being rounded.
 */
export function parseJsonExact(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      // Copy a string literal as it is.
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const number = /^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (number && (c === '-' || (c >= '0' && c <= '9'))) {
      const literal = number[0];
      const exact = /^-?[0-9]+$/.test(literal) && !Number.isSafeInteger(Number(literal));
      out += exact ? JSON.stringify(BIG + literal) : literal;
      i += literal.length;
      continue;
    }
    out += c;
    i += 1;
  }
  return JSON.parse(out, (_key, value) =>
    typeof value === 'string' && value.startsWith(BIG) ? BigInt(value.slice(BIG.length)) : value,
  );
}

/** Every vector, `{ file, ...vector }`, sorted by file name. */
export function loadVectors() {
  const files = readdirSync(VECTOR_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
  return files.map((file) => ({ file, ...parseJsonExact(readFileSync(path.join(VECTOR_DIR, file), 'utf8')) }));
}

/** The subscriber's channel of a vector, set up as the Rust test sets it up. */
export function channelOf(vector) {
  const c = vector.channel;
  const channel = new Channel(c.id, { token: c.token, resourceId: c.resourceId });
  channel.update({ expiration: c.expiration ?? null });
  channel.setSigningSecret(c.signingSecret ?? null);
  return channel;
}

const toBig = (n) => (n === null ? null : BigInt(n));

/** A notification in the vectors' `expect.notification` shape (numbers as bigints). */
export function asExpected(n) {
  return {
    channelId: n.channelId,
    messageNumber: n.messageNumber,
    state: n.state,
    resourceId: n.resourceId,
    resourceUri: n.resourceUri,
    channelExpirationMs: n.channelExpiration === null ? null : n.channelExpiration.getTime(),
    token: n.token,
    changed: n.changed,
    eventResource: n.eventResource,
    cursor: n.cursor,
    previousNumber: n.previousNumber,
    metadata: n.metadata,
  };
}

/** A vector's `expect.notification` with its numbers as bigints, to compare with `asExpected`. */
export function expectedNotification(vector) {
  const n = vector.expect.notification;
  return { ...n, messageNumber: toBig(n.messageNumber), previousNumber: toBig(n.previousNumber) };
}

/**
 * What went wrong with one vector, or null when `result` (`{ notification }` or
 * `{ error }`) is what it expects. `deepEqual` is node:assert's `isDeepStrictEqual`.
 */
export function problemWith(vector, result, deepEqual) {
  const { expect } = vector;
  if (expect.notification && result.notification) {
    const got = asExpected(result.notification);
    return deepEqual(got, expectedNotification(vector))
      ? null
      : `expected ${show(expectedNotification(vector))}, got ${show(got)}`;
  }
  if (expect.error && result.error instanceof NotificationError) {
    const { reason, header } = result.error;
    if (reason === expect.error.reason && header === expect.error.header) return null;
  }
  if (result.error?.reason === 'signatureMismatch' && vector.channel.signingSecret) {
    // Say what the signature should be, so an edited vector is easy to fix.
    const get = (name) => vector.headers.find(([k]) => k.toLowerCase() === name)?.[1];
    const signature = SigningSecret.parse(vector.channel.signingSecret).sign(
      get('webhook-id'),
      BigInt(get('webhook-timestamp').trim()),
      vector.body,
    );
    return `signatureMismatch; the body signs as ${signature}`;
  }
  const got = result.error
    ? `error ${result.error.reason} (${result.error.header}): ${result.error.message}`
    : `notification ${show(asExpected(result.notification))}`;
  return `expected ${show(expect)}, got ${got}`;
}

function show(value) {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** Runs `fn` and returns `{ notification }` or `{ error }` (a NotificationError). */
export function outcome(fn) {
  try {
    return { notification: fn() };
  } catch (error) {
    if (error instanceof NotificationError) return { error };
    throw error;
  }
}
