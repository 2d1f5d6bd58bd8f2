// The node:http adapter on a real socket: every vector sent as raw header lines, and
// what it answers.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import { Channel, Receiver, nodeHttpHandler } from '../src/index.js';
import { nodeHttpHandler as fromSubpath } from 'watchwire-receiver/node-http';
import { NOW, syncHeaders, withHeader } from './support/headers.js';
import { close, listen, rawRequest } from './support/http.js';
import { channelOf, loadVectors, problemWith } from './support/vectors.js';

let handler = null;
const server = http.createServer((req, res) => handler(req, res));
let port;

before(async () => {
  port = await listen(server);
});
after(() => close(server));

/** Serves with a handler built from `options`; returns what the hooks saw. */
function serve(options) {
  const seen = { notifications: [], rejected: [], errors: [] };
  handler = nodeHttpHandler({
    onNotification: (n, o) => {
      seen.notifications.push([n, o]);
    },
    onRejected: (e) => seen.rejected.push(e),
    onError: (e) => seen.errors.push(e),
    ...options,
  });
  return seen;
}

test('the subpath export is the same handler factory', () => {
  assert.equal(fromSubpath, nodeHttpHandler);
});

test('every vector over a socket gives its expected result and status', async () => {
  const vectors = loadVectors();
  for (const vector of vectors) {
    const seen = serve({ channel: channelOf(vector), clock: () => vector.nowMs });
    const answer = await rawRequest(port, { headers: vector.headers, body: vector.body });
    const result = vector.expect.notification
      ? { notification: seen.notifications[0]?.[0], error: seen.rejected[0] }
      : { error: seen.rejected[0], notification: seen.notifications[0]?.[0] };
    assert.equal(problemWith(vector, result, isDeepStrictEqual), null, vector.file);
    if (vector.expect.notification) {
      assert.equal(answer.status, 204, vector.file);
    } else {
      assert.equal(answer.status, 400, vector.file);
      assert.equal(JSON.parse(answer.body).error.errors[0].reason, vector.expect.error.reason, vector.file);
    }
    assert.deepEqual(seen.errors, [], vector.file);
  }
});

test('a header value that is not UTF-8 is malformed, as the Rust library says', async () => {
  const seen = serve({ channel: new Channel('ch-1'), clock: () => NOW });
  const headers = withHeader(syncHeaders(), 'X-Goog-Resource-URI', Buffer.from([0x68, 0xe9, 0x2f]));
  const answer = await rawRequest(port, { headers });
  assert.equal(answer.status, 400);
  assert.deepEqual([seen.rejected[0].reason, seen.rejected[0].header, seen.rejected[0].problem], ['malformedHeader', 'x-goog-resource-uri', 'is not UTF-8 text']);
  // The same value in UTF-8 is text.
  serve({ channel: new Channel('ch-1'), clock: () => NOW });
  const utf8 = await rawRequest(port, { headers: withHeader(syncHeaders(), 'X-Goog-Resource-URI', Buffer.from('hé/')) });
  assert.equal(utf8.status, 204);
});

test('repeats reach the library even for headers Node would merge or drop', async () => {
  const seen = serve({ channel: new Channel('ch-1', { token: 'tok' }), clock: () => NOW });
  // Node keeps only the first of a repeated Content-Type-like header, and joins x- ones;
  // the token is compared as sent twice.
  const answer = await rawRequest(port, { headers: [...syncHeaders(), ['x-goog-channel-token', 'tok']] });
  assert.equal(answer.status, 400);
  assert.deepEqual([seen.rejected[0].reason, seen.rejected[0].header], ['malformedHeader', 'x-goog-channel-token']);
});

test('answers 405 to GET, 413 to a body over the limit, 500 when the app fails', async () => {
  serve({ channel: new Channel('ch-1'), clock: () => NOW, maxBodyBytes: 10 });
  const get = await rawRequest(port, { method: 'GET', headers: syncHeaders() });
  assert.deepEqual([get.status, get.headers.allow], [405, 'POST']);
  const big = await rawRequest(port, { headers: syncHeaders(), body: 'x'.repeat(11) });
  assert.equal(big.status, 413);
  assert.equal(JSON.parse(big.body).error.errors[0].reason, 'requestTooLarge');
  const fits = await rawRequest(port, { headers: syncHeaders(), body: 'x'.repeat(10) });
  assert.equal(fits.status, 204);

  const seen = serve({
    channel: new Channel('ch-1'),
    clock: () => NOW,
    onNotification: () => {
      throw new Error('boom');
    },
  });
  const failed = await rawRequest(port, { headers: syncHeaders() });
  assert.equal(failed.status, 500);
  assert.deepEqual(seen.errors.map((e) => e.message), ['boom']);
});

test('the app gets the raw body bytes and can answer with its own status', async () => {
  const bodies = [];
  serve({
    channel: new Channel('ch-1'),
    clock: () => NOW,
    onNotification: (n, o, request) => {
      bodies.push(request.body);
      return { status: 503, headers: { 'retry-after': '7' } };
    },
  });
  const body = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]); // not even UTF-8
  const answer = await rawRequest(port, { headers: syncHeaders(), body });
  assert.deepEqual([answer.status, answer.headers['retry-after']], [503, '7']);
  assert.ok(Buffer.isBuffer(bodies[0]) && bodies[0].equals(body));
});

test('a Receiver can be given instead of options', async () => {
  const receiver = new Receiver({ channel: new Channel('ch-1'), clock: () => NOW });
  handler = nodeHttpHandler(receiver);
  assert.equal(handler.receiver, receiver);
  assert.equal((await rawRequest(port, { headers: syncHeaders() })).status, 204);
  assert.equal((await rawRequest(port, { headers: syncHeaders() })).status, 204);
  assert.ok(receiver.tracker.observeNumber('ch-1', 1).isDuplicate);
});
