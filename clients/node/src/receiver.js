// What to answer, independent of any web framework: one call from (method, headers, raw
// body) to a status, after validating, tracking and handing the notification to the app.
// The adapters (node-http.js, express.js) only read the request and write the answer.

import { Channel } from './channel.js';
import { NotificationError } from './errors.js';
import { Notification } from './notification.js';
import { Tracker } from './tracker.js';

/** The most a notification body may hold, by default: the gateway's own default limit. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * Google's error envelope, as the gateway and `watchwire receive` answer:
 * `{"error":{"code":400,"message":"…","errors":[{"domain":"global","reason":"…","message":"…"}]}}`.
 */
export function errorEnvelope(status, reason, message) {
  return { error: { code: status, message, errors: [{ domain: 'global', reason, message }] } };
}

function errorAnswer(status, reason, message, extraHeaders = {}) {
  return {
    status,
    headers: { 'content-type': 'application/json', ...extraHeaders },
    body: JSON.stringify(errorEnvelope(status, reason, message)),
  };
}

/** A lookup from channel id to `Channel` out of the `channel`/`channels` option. */
function lookupOf(options) {
  const { channel, channels } = options;
  if ((channel === undefined) === (channels === undefined)) {
    throw new TypeError('give exactly one of `channel` (a Channel) and `channels`');
  }
  if (channel !== undefined) {
    if (!(channel instanceof Channel)) throw new TypeError('`channel` must be a Channel');
    return null;
  }
  if (typeof channels === 'function') return channels;
  if (channels instanceof Map) return (id) => channels.get(id);
  if (channels !== null && typeof channels[Symbol.iterator] === 'function') {
    const list = [...channels];
    if (!list.every((c) => c instanceof Channel)) throw new TypeError('`channels` must hold Channels');
    // Looked up on each request, so a channel's id may change (`update`) after this.
    return (id) => list.find((c) => c.id === id);
  }
  throw new TypeError('`channels` must be an array or Map of Channels, or a function from id to Channel');
}

/** What the app's handler returned, as an answer. */
function answerOf(result) {
  if (result === undefined || result === null) return { status: 204, headers: {}, body: '' };
  const answer = typeof result === 'number' ? { status: result } : result;
  const { status, headers = {}, body = '' } = answer;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new TypeError(`the notification handler returned status ${status}; use 200 to 599`);
  }
  return { status, headers, body: typeof body === 'string' ? body : JSON.stringify(body) };
}

/**
 * Validates requests as notifications, tracks them, calls the app, and decides the
 * answer, as `watchwire receive` does:
 *
 * - anything but `POST`: `405` (`Allow: POST`);
 * - an invalid notification: `400` with the reason in the error envelope (the gateway
 *   then fails that notification for good and moves on);
 * - a valid one, new or flagged duplicate / out of order / after a gap: the app's
 *   `onNotification` runs, and the answer is `204` unless it returns a status (say 410
 *   to unsubscribe, 503 to be asked again later);
 * - `onNotification` throws: `500`, so the gateway retries; the tracker takes the
 *   number back so that the retry is not mistaken for a duplicate.
 */
export class Receiver {
  #lookup;

  /**
   * @param {object} options
   * @param {Channel} [options.channel] the one channel to accept
   * @param {Channel[] | Map<string, Channel> | ((id: string) => Channel | null | undefined)} [options.channels]
   *   several channels (say an old and a new one during a renewal), or a lookup
   * @param {Tracker} [options.tracker] default: a new `Tracker()`
   * @param {(n: Notification, o: Observation, request: object) => unknown} [options.onNotification]
   * @param {(error: NotificationError, request: object) => void} [options.onRejected]
   * @param {(error: unknown) => void} [options.onError] default: `console.error`
   * @param {() => Date | number} [options.clock] default: the system clock
   * @param {number} [options.maxBodyBytes] default 1 MiB; larger bodies get `413`
   */
  constructor(options = {}) {
    this.#lookup = lookupOf(options);
    this.channel = options.channel ?? null;
    this.tracker = options.tracker ?? new Tracker();
    if (!(this.tracker instanceof Tracker)) throw new TypeError('`tracker` must be a Tracker');
    this.onNotification = options.onNotification ?? null;
    this.onRejected = options.onRejected ?? null;
    this.onError = options.onError ?? ((error) => console.error('watchwire-receiver:', error));
    this.clock = options.clock ?? Date.now;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  /** Validates one request against the right channel: the `Notification`, or throws. */
  receive(headers, body, now) {
    if (this.#lookup === null) return this.channel.receive(headers, body, { now });
    const { channelId } = Notification.fromHeaders(headers);
    const channel = this.#lookup(channelId);
    if (!channel) throw NotificationError.channelIdMismatch(null, channelId);
    return channel.receive(headers, body, { now });
  }

  /**
   * Decides the answer to one request.
   *
   * @param {{ method: string, headers: unknown, body?: Uint8Array | string | null }} request
   *   `headers` as `Channel.receive` takes them (keep repeats: `req.rawHeaders`)
   * @returns {Promise<Outcome>} `status`, `headers`, `body` (text) to answer with, and
   *   `notification`, `observation`, `error` (a `NotificationError`) where there is one
   */
  async handle(request) {
    const outcome = { notification: null, observation: null, error: null };
    if (request.method !== 'POST') {
      return {
        ...outcome,
        ...errorAnswer(405, 'methodNotAllowed', 'notifications are delivered with POST', { allow: 'POST' }),
      };
    }
    let notification;
    try {
      notification = this.receive(request.headers, request.body, this.clock());
    } catch (error) {
      if (!(error instanceof NotificationError)) throw error;
      this.#report(this.onRejected, error, request);
      return { ...outcome, error, ...errorAnswer(400, error.reason, error.message) };
    }
    const observation = this.tracker.observe(notification);
    Object.assign(outcome, { notification, observation });
    let answer;
    try {
      answer = answerOf(await this.onNotification?.(notification, observation, request));
    } catch (error) {
      this.#takeBack(notification, observation);
      this.onError(error);
      return { ...outcome, ...errorAnswer(500, 'backendError', 'the receiver could not handle the notification') };
    }
    if (answer.status >= 300) this.#takeBack(notification, observation);
    return { ...outcome, ...answer };
  }

  /** A notification that was not handled will come again: do not call it a duplicate then. */
  #takeBack(notification, observation) {
    if (!observation.isDuplicate) this.tracker.retract(notification.channelId, notification.messageNumber);
  }

  #report(hook, error, request) {
    try {
      hook?.(error, request);
    } catch (e) {
      this.onError(e);
    }
  }
}

/**
 * Reads a request stream to its end: the body as a `Buffer`, or null when it is longer
 * than `limit` bytes (the rest is read and dropped, so the connection stays usable).
 */
export async function readBody(stream, limit) {
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > limit) tooLarge = true;
    if (!tooLarge) chunks.push(chunk);
  }
  return tooLarge ? null : Buffer.concat(chunks, size);
}

/** The answer to a body over the limit. */
export function tooLargeAnswer(limit) {
  return {
    notification: null,
    observation: null,
    error: null,
    ...errorAnswer(413, 'requestTooLarge', `the body is larger than ${limit} bytes`),
  };
}

/** Node's `rawHeaders` (values decoded as Latin-1) as pairs of names and the original bytes. */
export function rawHeaderPairs(rawHeaders) {
  const pairs = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    pairs.push([rawHeaders[i], Buffer.from(rawHeaders[i + 1], 'latin1')]);
  }
  return pairs;
}

/** Writes an outcome to a `node:http` (or Express) response. */
export function writeAnswer(res, outcome) {
  const headers = { ...outcome.headers };
  const body = outcome.body ?? '';
  res.writeHead(outcome.status, headers);
  res.end(outcome.status === 204 || outcome.status === 304 ? undefined : body);
}
