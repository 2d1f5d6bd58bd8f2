// Package receiver is the receiving side of watchwire's watch channels (docs/api.md
// §11), for Go: it turns an incoming push request into a trusted, typed Notification,
// with the checks, the order and the reason codes of the Rust library's receiver
// module, and uses nothing beyond the standard library.
//
//   - Channel: what the subscriber knows about a channel; Body is the watch request,
//     Update takes the watch response, Receive validates a request (headers and raw
//     body) and returns a *Notification or an *Error with a stable Reason and Header.
//   - ParseNotification parses without a channel; VerifySignature checks Standard
//     Webhooks signatures from any sender (tolerance, several signatures during a key
//     rotation, an explicit clock).
//   - Tracker: duplicates, out-of-order numbers and gaps per channel, in bounded memory.
//   - Status and Respond: what to answer the gateway.
//   - Channels and Endpoint: the net/http adapter (Handler, Middleware, Check).
//
// The module path has no domain: use it from a checkout of the watchwire repository
// with a replace directive (see README.md).
package receiver
