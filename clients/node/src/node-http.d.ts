import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Receiver, ReceiverOptions } from './index.js';

/**
 * A `(req, res)` listener for `http.createServer` that answers notifications. Headers
 * are read from `req.rawHeaders` (repeats and letter case kept), the body from the
 * stream, as bytes.
 */
export function nodeHttpHandler(
  options: ReceiverOptions | Receiver,
): ((req: IncomingMessage, res: ServerResponse) => Promise<void>) & { receiver: Receiver };
