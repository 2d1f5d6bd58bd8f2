// The `node:http` adapter: a request listener for `http.createServer` (or `https`).
//
// Headers are read from `req.rawHeaders`, which keeps every header line as sent: its
// name's letter case, and each repeat. `req.headers` would not do: Node joins repeats
// of most headers with ", " and keeps only the first of some, so a repeated
// `X-Goog-Channel-ID` could no longer be told from one value. Values are passed on as
// their bytes, so one that is not UTF-8 is rejected as the Rust library rejects it.

import { Receiver, rawHeaderPairs, readBody, tooLargeAnswer, writeAnswer } from './receiver.js';

/**
 * A `(req, res)` listener that answers notifications (see `Receiver` for what it
 * answers). `options` are `Receiver`'s, or a `Receiver`.
 *
 * ```js
 * http.createServer(nodeHttpHandler({ channel, onNotification })).listen(8000);
 * ```
 */
export function nodeHttpHandler(options) {
  const receiver = options instanceof Receiver ? options : new Receiver(options);
  const handler = async (req, res) => {
    try {
      let outcome;
      if (req.method !== 'POST') {
        outcome = await receiver.handle({ method: req.method, headers: [], body: null });
      } else {
        const body = await readBody(req, receiver.maxBodyBytes);
        outcome =
          body === null
            ? tooLargeAnswer(receiver.maxBodyBytes)
            : await receiver.handle({ method: req.method, headers: rawHeaderPairs(req.rawHeaders), body, req });
      }
      writeAnswer(res, outcome);
    } catch (error) {
      receiver.onError(error);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
      }
      res.end();
    }
  };
  handler.receiver = receiver;
  return handler;
}
