import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Receiver, ReceiverOptions } from './index.js';

/** The request body was consumed by another parser (express.json(), ...) first. */
export class RawBodyUnavailableError extends Error {
  constructor();
}

/**
 * An Express route handler `(req, res, next)` that answers notifications. It reads the
 * raw body itself, or takes the Buffer `express.raw()` left; after `express.json()` it
 * passes a `RawBodyUnavailableError` to `next`. Express's types are not needed.
 */
export function expressHandler(
  options: ReceiverOptions | Receiver,
): ((req: IncomingMessage & { body?: unknown }, res: ServerResponse, next: (error?: unknown) => void) => Promise<void>) & {
  receiver: Receiver;
};
