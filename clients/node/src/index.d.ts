// Type declarations for watchwire-receiver (hand-written; the package is plain ESM).

/** Where headers come from. Repeats must be kept for a repeated header to be caught. */
export type HeaderValue = string | Uint8Array;
export type HeaderSource =
  /** A flat list of names and values, as Node's `req.rawHeaders`. */
  | readonly string[]
  /** `[name, value]` pairs, in order; a name may repeat. */
  | ReadonlyArray<readonly [string, HeaderValue]>
  /** Any iterable of pairs, such as a `Map` (which cannot hold repeats). */
  | Iterable<readonly [string, HeaderValue]>
  /** `name: value`, or `name: [value, ...]` for repeats (Node's `req.headersDistinct`). */
  | Readonly<Record<string, HeaderValue | readonly HeaderValue[] | undefined>>;

/** The raw request body: signatures are over these exact bytes. */
export type Body = Uint8Array | ArrayBuffer | string | null | undefined;

/** A moment: a `Date` or milliseconds since the Unix epoch. */
export type Instant = Date | number;

/** A resource state (docs/api.md §4): the known ones, or an Admin-style `CREATE_USER`. */
export type ResourceState =
  | 'sync'
  | 'exists'
  | 'not_exists'
  | 'add'
  | 'remove'
  | 'update'
  | 'trash'
  | 'untrash'
  | 'change'
  | (string & {});

export type NotificationReason =
  | 'missingHeader'
  | 'malformedHeader'
  | 'invalidMessageNumber'
  | 'unknownState'
  | 'channelIdMismatch'
  | 'tokenMismatch'
  | 'resourceIdMismatch'
  | 'channelExpired'
  | 'webhookIdMismatch'
  | SignatureReason;

export type SignatureReason =
  | 'missingSignatureHeader'
  | 'malformedSignatureHeader'
  | 'signatureTimestampTooOld'
  | 'signatureTimestampInFuture'
  | 'signatureMismatch';

/** Why a request is not a valid notification for a channel. */
export class NotificationError extends Error {
  /** The stable code, the same as the Rust library's `NotificationError::reason()`. */
  readonly reason: NotificationReason;
  /** The lower-case header the failure is about; null for `channelExpired`. */
  readonly header: string | null;
  /** `malformedHeader`: what is wrong with the header (`appears more than once`, ...). */
  readonly problem?: string;
  /** `invalidMessageNumber`, `unknownState`: the value as received. */
  readonly value?: string;
  /** `channelIdMismatch` (null: no channel of the receiver has the id), `resourceIdMismatch`, `webhookIdMismatch`. */
  readonly expected?: string | null;
  readonly received?: string;
  /** `channelExpired`: the expiration that passed. */
  readonly expiration?: Date;
  constructor(reason: string, header: string | null, message: string, details?: object);
}

/** Why signature headers do not authenticate a body (docs/api.md §10). */
export class SignatureError extends NotificationError {
  readonly reason: SignatureReason;
  /** `signatureTimestampTooOld`, `signatureTimestampInFuture`: seconds since the epoch. */
  readonly timestamp?: number;
  readonly now?: number;
  readonly toleranceSeconds?: number;
}

/** Why a `Channel` could not be configured or updated from a watch response. */
export class ChannelError extends Error {
  readonly reason: 'invalidSigningSecret' | 'responseNotAnObject' | 'invalidResponseField';
  /** `invalidResponseField`: the field of the watch response. */
  readonly field: string | null;
  constructor(reason: string, message: string, field?: string | null);
}

/** One notification, as its headers describe it. */
export class Notification {
  /** `X-Goog-Channel-ID`. */
  channelId: string;
  /** `X-Goog-Message-Number`: 1 for sync, larger afterwards, kept on retries; up to 2^64-1. */
  messageNumber: bigint;
  /** `X-Goog-Resource-State`, as on the wire. */
  state: ResourceState;
  /** `X-Goog-Resource-ID`. */
  resourceId: string;
  /** `X-Goog-Resource-URI`. */
  resourceUri: string;
  /** `X-Goog-Channel-Expiration`; null for channels that never expire. */
  channelExpiration: Date | null;
  /** `X-Goog-Channel-Token`. */
  token: string | null;
  /** `X-Goog-Changed`, split at commas; empty when absent. */
  changed: string[];
  /** `X-Watchwire-Event-Resource`: the path the event was published on. */
  eventResource: string | null;
  /** `X-Watchwire-Cursor`: the event's position in the gateway's log. */
  cursor: string | null;
  /** `X-Watchwire-Previous-Number`: the number sent before this one; null on sync. */
  previousNumber: bigint | null;
  /** `X-Watchwire-Metadata`: the publisher's metadata object. */
  metadata: Record<string, unknown> | null;
  /** Whether this is the sync message that opens a channel. */
  readonly isSync: boolean;

  constructor(fields: Partial<Notification> & Pick<Notification, 'channelId' | 'messageNumber' | 'state' | 'resourceId' | 'resourceUri'>);

  /**
   * Parses notification headers (names in any letter case) without checking them
   * against a channel. Throws a `NotificationError`.
   */
  static fromHeaders(headers: HeaderSource): Notification;

  /** JSON-safe: numbers as numbers (decimal strings above 2^53-1), no token. */
  toJSON(): Record<string, unknown>;
}

/** Whether `state` is one docs/api.md §4 allows. */
export function isKnownState(state: string): boolean;

export interface ChannelOptions {
  token?: string | null;
  /** Where notifications are sent; needed only to build a watch body. */
  address?: string | null;
  resourceId?: string | null;
  resourceUri?: string | null;
  expiration?: Instant | null;
  /** Extra `params` for the watch body, such as `ttl` (strings only). */
  params?: Record<string, string>;
  /** A `whsec_…` secret: every notification must then be signed with it. */
  signingSecret?: string | null;
  /** How far a signature's timestamp may be from the receiver's clock (default 300). */
  signatureToleranceSeconds?: number;
}

/** The JSON body of a watch request. */
export interface WatchBody {
  id: string;
  type: 'web_hook';
  address?: string;
  token?: string;
  expiration?: string;
  resourceId?: string;
  resourceUri?: string;
  params?: Record<string, string>;
}

/**
 * A watch channel as its subscriber keeps it. Fields left null are not checked.
 */
export class Channel {
  id: string;
  token: string | null;
  address: string | null;
  resourceId: string | null;
  resourceUri: string | null;
  expiration: Date | null;
  params: Record<string, string>;
  signatureToleranceSeconds: number;

  constructor(id: string, options?: ChannelOptions);
  /** A web-hook channel to be created at `address`. */
  static webhook(id: string, address: string, options?: ChannelOptions): Channel;

  /** Sets or clears the signing secret. Throws a `ChannelError`. */
  setSigningSecret(secret: string | null): void;
  /** The signing secret, or null. */
  readonly signingSecret: SigningSecret | null;

  /** The JSON body of a watch request for this channel. */
  body(): WatchBody;
  /**
   * Takes `id`, `token`, `address`, `resourceId`, `resourceUri` and `expiration` from a
   * (parsed) watch response. Throws a `ChannelError`; then nothing changes.
   */
  update(response: unknown): void;
  /** Whether the channel's known expiration has passed at `now` (default: now). */
  isExpiredAt(now?: Instant): boolean;
  /**
   * Validates a request as a notification on this channel: the headers parse; the
   * channel id is this one; the token matches (constant time); the resource id matches
   * once known; no expiration has passed; and with a signing secret, the signature
   * verifies within the tolerance and `webhook-id` is `<channel id>-<message number>`.
   * Throws a `NotificationError` (a `SignatureError` for the signature's own failures).
   */
  receive(headers: HeaderSource, body: Body, options?: { now?: Instant }): Notification;
  toJSON(): Record<string, unknown>;
}

/** A decoded Standard Webhooks key. It never shows its bytes. */
export class SigningSecret {
  constructor(key: Uint8Array);
  /** Parses `whsec_<base64 of 24 to 64 bytes>`; throws a `TypeError`. */
  static parse(text: string): SigningSecret;
  /** The `v1,<base64>` signature of one message (`timestamp` in seconds). */
  sign(msgId: string, timestamp: number | bigint, body: Body): string;
  /** Whether any `v1,` entry of a space-separated signature header matches. */
  verify(msgId: string, timestamp: number | bigint, body: Body, header: string): boolean;
}

/** How far `webhook-timestamp` may be from the receiver's clock: 300 s. */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS: number;

/**
 * Checks Standard Webhooks signature headers (any sender): a `v1,` HMAC-SHA256 of
 * `webhook-id.webhook-timestamp.body`, any of several entries, within the tolerance.
 * Throws a `SignatureError`.
 */
export function verifySignature(
  secret: SigningSecret | string,
  headers: HeaderSource,
  body: Body,
  options?: { now?: Instant; toleranceSeconds?: number },
): void;

export const Arrival: {
  readonly NEW: 'new';
  readonly DUPLICATE: 'duplicate';
  readonly OUT_OF_ORDER: 'outOfOrder';
};
export type Arrival = 'new' | 'duplicate' | 'outOfOrder';

/** A new notification whose previous number is not the last one seen. */
export interface Gap {
  /** What the sender says came before this notification. */
  previousNumber: bigint;
  /** What the tracker saw last on the channel. */
  lastSeen: bigint;
}

/** The tracker's verdict on one notification. */
export class Observation {
  readonly arrival: Arrival;
  readonly gap: Gap | null;
  readonly isNew: boolean;
  readonly isDuplicate: boolean;
  readonly isOutOfOrder: boolean;
  constructor(arrival: Arrival, gap?: Gap | null);
  toJSON(): Record<string, unknown>;
}

export const DEFAULT_WINDOW: number;
export const DEFAULT_MAX_CHANNELS: number;

/**
 * Classifies notifications per channel as new, duplicate or out of order, and flags
 * gaps, in bounded memory.
 */
export class Tracker {
  constructor(limits?: { window?: number; maxChannels?: number });
  observe(notification: Notification): Observation;
  observeNumber(channelId: string, number: bigint | number, previousNumber?: bigint | number | null): Observation;
  /** Takes back a new or out-of-order number whose handling failed (never a duplicate's). */
  retract(channelId: string, number: bigint | number): void;
  forget(channelId: string): void;
  readonly channelCount: number;
  /** The remembered numbers of a channel, ascending. */
  recent(channelId: string): bigint[];
}

/** What a request was, as the adapters pass it on. */
export interface ReceivedRequest {
  method: string;
  headers: HeaderSource;
  body?: Body;
  /** The framework's request object, when an adapter made this. */
  req?: unknown;
}

/** What the app's handler may return: nothing (204), a status, or a whole answer. */
export type HandlerAnswer =
  | void
  | undefined
  | null
  | number
  | { status: number; headers?: Record<string, string>; body?: string | object };

export interface ReceiverOptions {
  /** The one channel to accept. Give this or `channels`. */
  channel?: Channel;
  /** Several channels, or a lookup from channel id. */
  channels?: Iterable<Channel> | Map<string, Channel> | ((channelId: string) => Channel | null | undefined);
  /** Default: a new `Tracker()`. */
  tracker?: Tracker;
  /** Called for every valid notification, new or flagged. Throwing answers 500. */
  onNotification?: (notification: Notification, observation: Observation, request: ReceivedRequest) => HandlerAnswer | Promise<HandlerAnswer>;
  /** Called for every invalid one (answered 400). */
  onRejected?: (error: NotificationError, request: ReceivedRequest) => void;
  /** Called with what the app's handler threw. Default: `console.error`. */
  onError?: (error: unknown) => void;
  /** The receiver's clock. Default: `Date.now`. */
  clock?: () => Instant;
  /** Larger bodies are answered 413. Default: 1 MiB. */
  maxBodyBytes?: number;
}

/** The answer to one request, and what it was. */
export interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: string;
  notification: Notification | null;
  observation: Observation | null;
  error: NotificationError | null;
}

/**
 * Decides the answer as `watchwire receive` does: 405 to anything but POST, 400 with the
 * reason to an invalid notification, 204 to a valid one (flagged or not) unless the
 * app returns a status, 500 when the app throws.
 */
export class Receiver {
  constructor(options: ReceiverOptions);
  channel: Channel | null;
  tracker: Tracker;
  onNotification: ReceiverOptions['onNotification'] | null;
  onRejected: ReceiverOptions['onRejected'] | null;
  onError: (error: unknown) => void;
  clock: () => Instant;
  maxBodyBytes: number;
  /** Validates one request against the right channel. Throws a `NotificationError`. */
  receive(headers: HeaderSource, body: Body, now?: Instant): Notification;
  handle(request: ReceivedRequest): Promise<Outcome>;
}

export const DEFAULT_MAX_BODY_BYTES: number;

/** Google's error envelope. */
export function errorEnvelope(
  status: number,
  reason: string,
  message: string,
): { error: { code: number; message: string; errors: { domain: 'global'; reason: string; message: string }[] } };

export { nodeHttpHandler } from './node-http.js';
export { expressHandler, RawBodyUnavailableError } from './express.js';

/** Header names, lower case. */
export namespace headers {
  const CHANNEL_ID: 'x-goog-channel-id';
  const CHANNEL_TOKEN: 'x-goog-channel-token';
  const CHANNEL_EXPIRATION: 'x-goog-channel-expiration';
  const RESOURCE_ID: 'x-goog-resource-id';
  const RESOURCE_URI: 'x-goog-resource-uri';
  const RESOURCE_STATE: 'x-goog-resource-state';
  const MESSAGE_NUMBER: 'x-goog-message-number';
  const CHANGED: 'x-goog-changed';
  const EVENT_RESOURCE: 'x-watchwire-event-resource';
  const CURSOR: 'x-watchwire-cursor';
  const PREVIOUS_NUMBER: 'x-watchwire-previous-number';
  const METADATA: 'x-watchwire-metadata';
  const WEBHOOK_ID: 'webhook-id';
  const WEBHOOK_TIMESTAMP: 'webhook-timestamp';
  const WEBHOOK_SIGNATURE: 'webhook-signature';
  const NOTIFICATION_HEADERS: readonly string[];
  const SIGNATURE_HEADERS: readonly string[];
}
