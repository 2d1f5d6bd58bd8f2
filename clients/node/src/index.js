// watchwire-receiver: the receiving end of watchwire's (and Google's) push
// notifications, with no dependency beyond Node's standard library.
//
// - `Channel`: what the subscriber knows about a channel; `body()` for the watch call,
//   `update()` from its response, and `receive(headers, body)` to validate a request.
// - `Notification.fromHeaders`: parsing alone, without a channel to check against.
// - `verifySignature`: Standard Webhooks verification on its own.
// - `Tracker`: duplicates, out-of-order numbers and gaps per channel.
// - `Receiver`: what to answer; `nodeHttpHandler` and `expressHandler` put it on a server.

export { Channel } from './channel.js';
export { ChannelError, NotificationError, SignatureError } from './errors.js';
export { Notification, isKnownState } from './notification.js';
export {
  DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
  SigningSecret,
  verifySignature,
} from './signature.js';
export { Arrival, DEFAULT_MAX_CHANNELS, DEFAULT_WINDOW, Observation, Tracker } from './tracker.js';
export { DEFAULT_MAX_BODY_BYTES, Receiver, errorEnvelope } from './receiver.js';
export { nodeHttpHandler } from './node-http.js';
export { RawBodyUnavailableError, expressHandler } from './express.js';
export * as headers from './names.js';
