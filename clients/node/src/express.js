// The Express adapter: a route handler. It does not import Express; it works on the
// `req`/`res` Express passes, which are Node's own objects underneath.
//
// Signatures are over the body's exact bytes, so the handler needs the raw body: it
// reads the request stream itself, or takes the `Buffer` that `express.raw()` left in
// `req.body`. A JSON (or text, or urlencoded) parser that ran before it has consumed
// the stream and kept only a re-parsed copy, which can never be verified: then the
// handler passes an error to `next` instead of guessing. Mount it before
// `app.use(express.json())`, or give the JSON parser only to the routes that need it.
//
// Headers are read from `req.rawHeaders`, as in the `node:http` adapter (Express's
// `req.headers` and `req.get()` have lost repeats).

import { Receiver, rawHeaderPairs, readBody, tooLargeAnswer, writeAnswer } from './receiver.js';

/** Why the handler cannot run: another body parser took the bytes first. */
export class RawBodyUnavailableError extends Error {
  constructor() {
    super(
      'watchwire-receiver: the request body was already consumed by another body parser ' +
        '(express.json(), express.text(), ...), so its signature cannot be checked; mount the ' +
        "notification route before it, or use express.raw({ type: '*/*' }) on that route",
    );
  }

  get name() {
    return 'RawBodyUnavailableError';
  }
}

/** The raw body of an Express request: from `express.raw()`, or read from the stream. */
async function rawBody(req, limit) {
  if (Buffer.isBuffer(req.body)) {
    return req.body.length > limit ? null : req.body;
  }
  const parsedBySomeone =
    req._body === true ||
    req.readableEnded ||
    typeof req.body === 'string' ||
    (req.body !== null && typeof req.body === 'object' && Object.keys(req.body).length > 0);
  if (parsedBySomeone) throw new RawBodyUnavailableError();
  return readBody(req, limit);
}

/**
 * An Express handler `(req, res, next)` that answers notifications (see `Receiver` for
 * what it answers). `options` are `Receiver`'s, or a `Receiver`.
 *
 * ```js
 * app.post('/notifications', expressHandler({ channel, onNotification }));
 * ```
 */
export function expressHandler(options) {
  const receiver = options instanceof Receiver ? options : new Receiver(options);
  const handler = async (req, res, next) => {
    try {
      let outcome;
      if (req.method !== 'POST') {
        outcome = await receiver.handle({ method: req.method, headers: [], body: null });
      } else {
        const body = await rawBody(req, receiver.maxBodyBytes);
        outcome =
          body === null
            ? tooLargeAnswer(receiver.maxBodyBytes)
            : await receiver.handle({ method: req.method, headers: rawHeaderPairs(req.rawHeaders), body, req });
      }
      writeAnswer(res, outcome);
    } catch (error) {
      next(error);
    }
  };
  handler.receiver = receiver;
  return handler;
}
