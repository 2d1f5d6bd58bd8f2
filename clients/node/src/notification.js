// The typed notification and the parsing of its headers (docs/api.md §4).

import { NotificationError } from './errors.js';
import { Picked, HeaderProblem } from './headers.js';
import { parseHttpDate } from './httpdate.js';
import * as h from './names.js';

const U64_MAX = (1n << 64n) - 1n;
const STATES = new Set(['sync', 'exists', 'not_exists', 'add', 'remove', 'update', 'trash', 'untrash', 'change']);
const EVENT_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
const CHANGED_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
// serde_json's nesting limit, which the Rust library's metadata parsing has.
const MAX_JSON_DEPTH = 127;

/**
 * Whether `state` is a resource state docs/api.md §4 allows: `sync`, `exists`,
 * `not_exists`, Drive's `add`/`remove`/`update`/`trash`/`untrash`/`change`, or an
 * Admin-style event name (`[A-Z][A-Z0-9_]{0,63}`).
 */
export function isKnownState(state) {
  return STATES.has(state) || EVENT_NAME.test(state);
}

/** A message number: decimal digits only (no sign), from 1 to 2^64-1; else null. */
export function parseNumber(text) {
  if (!/^[0-9]+$/.test(text)) return null;
  const n = BigInt(text);
  return n >= 1n && n <= U64_MAX ? n : null;
}

/** `content,properties` → `['content', 'properties']`; an empty value is an empty list. */
function parseChanged(text) {
  if (text === '') return [];
  const items = text.split(',').map((item) => item.replace(/^[ \t]+|[ \t]+$/g, ''));
  return items.every((item) => CHANGED_TOKEN.test(item)) ? items : null;
}

/**
 * Whether a parsed JSON value is one the Rust library would have read too: no lone
 * surrogate in a string or key, no number too large for a double, and nested at most
 * 127 levels.
 */
function rustReadsJson(value, depth) {
  if (typeof value === 'string') return value.isWellFormed();
  if (typeof value === 'number') return Number.isFinite(value);
  if (value === null || typeof value !== 'object') return true;
  if (depth > MAX_JSON_DEPTH) return false;
  if (Array.isArray(value)) return value.every((v) => rustReadsJson(v, depth + 1));
  return Object.entries(value).every(([k, v]) => k.isWellFormed() && rustReadsJson(v, depth + 1));
}

/** `X-Watchwire-Metadata`: a JSON object, or null when it is not one. */
function parseMetadata(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  return rustReadsJson(value, 1) ? value : null;
}

/** `n` as a JSON number when exact, else as a decimal string. */
function jsonNumber(n) {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : String(n);
}

/** One notification, as its headers describe it. */
export class Notification {
  /** @param {object} fields every field, as `Notification.fromHeaders` sets them */
  constructor(fields) {
    /** `X-Goog-Channel-ID`. */
    this.channelId = fields.channelId;
    /** `X-Goog-Message-Number`, a bigint: 1 for sync, larger afterwards, kept on retries. */
    this.messageNumber = fields.messageNumber;
    /** `X-Goog-Resource-State`, as on the wire (`sync`, `exists`, `CREATE_USER`, ...). */
    this.state = fields.state;
    /** `X-Goog-Resource-ID`: opaque, the same for every channel on one resource. */
    this.resourceId = fields.resourceId;
    /** `X-Goog-Resource-URI`. */
    this.resourceUri = fields.resourceUri;
    /** `X-Goog-Channel-Expiration` as a `Date`; null for channels that never expire. */
    this.channelExpiration = fields.channelExpiration ?? null;
    /** `X-Goog-Channel-Token`, when the channel has one. */
    this.token = fields.token ?? null;
    /** `X-Goog-Changed`, split at commas; empty when absent. */
    this.changed = fields.changed ?? [];
    /** `X-Watchwire-Event-Resource`: the path the event was published on. */
    this.eventResource = fields.eventResource ?? null;
    /** `X-Watchwire-Cursor`: the event's position in the gateway's log. */
    this.cursor = fields.cursor ?? null;
    /** `X-Watchwire-Previous-Number` (bigint): the number sent before this one on the channel. */
    this.previousNumber = fields.previousNumber ?? null;
    /** `X-Watchwire-Metadata`: the publisher's metadata object. */
    this.metadata = fields.metadata ?? null;
  }

  /**
   * Parses notification headers (names in any letter case) without checking them
   * against a channel: every required header present, number and state well formed,
   * the optional ones in their formats. `Channel.receive` is the call that also
   * authenticates. Throws a `NotificationError`.
   */
  static fromHeaders(headers) {
    return Notification.fromPicked(new Picked(h.NOTIFICATION_HEADERS, headers));
  }

  /** @internal */
  static fromPicked(picked) {
    const optional = (name) => {
      try {
        return picked.text(name);
      } catch (e) {
        if (e instanceof HeaderProblem) throw NotificationError.malformedHeader(name, e.reason);
        throw e;
      }
    };
    const required = (name) => {
      const value = optional(name);
      if (value === null) throw NotificationError.missingHeader(name);
      return value;
    };

    const channelId = required(h.CHANNEL_ID);
    const numberText = required(h.MESSAGE_NUMBER);
    const messageNumber = parseNumber(numberText);
    if (messageNumber === null) throw NotificationError.invalidMessageNumber(numberText);
    const state = required(h.RESOURCE_STATE);
    if (!isKnownState(state)) throw NotificationError.unknownState(state);
    const resourceId = required(h.RESOURCE_ID);
    const resourceUri = required(h.RESOURCE_URI);

    const token = optional(h.CHANNEL_TOKEN);
    const expirationText = optional(h.CHANNEL_EXPIRATION);
    let channelExpiration = null;
    if (expirationText !== null) {
      const ms = parseHttpDate(expirationText);
      if (ms === null) {
        throw NotificationError.malformedHeader(h.CHANNEL_EXPIRATION, 'is not an IMF-fixdate');
      }
      channelExpiration = new Date(ms);
    }
    const changedText = optional(h.CHANGED);
    let changed = [];
    if (changedText !== null) {
      changed = parseChanged(changedText);
      if (changed === null) {
        throw NotificationError.malformedHeader(
          h.CHANGED,
          'is not a comma-separated list of [A-Za-z0-9_-]{1,64}',
        );
      }
    }
    const eventResource = optional(h.EVENT_RESOURCE);
    const cursor = optional(h.CURSOR);
    const previousText = optional(h.PREVIOUS_NUMBER);
    let previousNumber = null;
    if (previousText !== null) {
      previousNumber = parseNumber(previousText);
      if (previousNumber === null || previousNumber >= messageNumber) {
        throw NotificationError.malformedHeader(
          h.PREVIOUS_NUMBER,
          'is not a positive decimal integer below the message number',
        );
      }
    }
    const metadataText = optional(h.METADATA);
    let metadata = null;
    if (metadataText !== null) {
      metadata = parseMetadata(metadataText);
      if (metadata === null) throw NotificationError.malformedHeader(h.METADATA, 'is not a JSON object');
    }

    return new Notification({
      channelId,
      messageNumber,
      state,
      resourceId,
      resourceUri,
      channelExpiration,
      token,
      changed,
      eventResource,
      cursor,
      previousNumber,
      metadata,
    });
  }

  /** Whether this is the sync message that opens a channel. */
  get isSync() {
    return this.state === 'sync';
  }

  /**
   * A JSON-safe view (what `JSON.stringify` uses): message numbers as numbers (as
   * decimal strings above 2^53-1), the expiration as an ISO string, and no token.
   */
  toJSON() {
    return {
      channelId: this.channelId,
      messageNumber: jsonNumber(this.messageNumber),
      state: this.state,
      resourceId: this.resourceId,
      resourceUri: this.resourceUri,
      channelExpiration: this.channelExpiration?.toISOString() ?? null,
      changed: this.changed,
      eventResource: this.eventResource,
      cursor: this.cursor,
      previousNumber: this.previousNumber === null ? null : jsonNumber(this.previousNumber),
      metadata: this.metadata,
    };
  }
}
