// The Express adapter on a real socket: every vector, with and without express.raw(),
// and a loud error when a JSON parser took the body first.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import express from 'express';

import { Channel, RawBodyUnavailableError, expressHandler } from '../src/index.js';
import { expressHandler as fromSubpath } from 'watchwire-receiver/express';
import { NOW, SECRET, syncHeaders, withHeader } from './support/headers.js';
import { close, listen, rawRequest } from './support/http.js';
import { channelOf, loadVectors, problemWith } from './support/vectors.js';

let current = null;
let seen = null;
let bodyWasBuffer = null;
const errors = [];

/** An app with the handler on three routes: alone, after express.raw(), after express.json(). */
function app() {
  const a = express();
  const handler = (req, res, next) => {
    bodyWasBuffer = Buffer.isBuffer(req.body);
    return current(req, res, next);
  };
  a.post('/alone', handler);
  a.post('/raw', express.raw({ type: '*/*' }), handler);
  a.post('/json', express.json({ type: '*/*' }), handler);
  a.all('/alone', handler);
  a.use((err, req, res, next) => {
    errors.push(err);
    res.status(500).json({ error: err.name });
  });
  return a;
}

const server = app().listen(0, '127.0.0.1');
let port;
before(async () => {
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
  port = server.address().port;
});
after(() => close(server));

function serve(options) {
  seen = { notifications: [], rejected: [] };
  current = expressHandler({
    onNotification: (n, o, request) => {
      seen.notifications.push([n, o, request.body]);
    },
    onRejected: (e) => seen.rejected.push(e),
    onError: (e) => errors.push(e),
    ...options,
  });
}

test('the subpath export is the same handler factory, and express is not a dependency', async () => {
  assert.equal(fromSubpath, expressHandler);
  const pkg = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(new URL('../package.json', import.meta.url))));
  assert.equal(pkg.dependencies, undefined);
  assert.ok(pkg.devDependencies.express);
});

for (const path of ['/alone', '/raw']) {
  test(`every vector gives its expected result and status on ${path}`, async () => {
    for (const vector of loadVectors()) {
      serve({ channel: channelOf(vector), clock: () => vector.nowMs });
      // As the gateway sends them: a Content-Type when there is a body.
      const type = vector.body === '' ? [] : [['Content-Type', 'application/json; charset="utf-8"']];
      const answer = await rawRequest(port, { path, headers: [...vector.headers, ...type], body: vector.body });
      assert.equal(bodyWasBuffer, path === '/raw' && vector.body !== '', `${vector.file}: express.raw() ran`);
      const result = { notification: seen.notifications[0]?.[0], error: seen.rejected[0] };
      assert.equal(problemWith(vector, result, isDeepStrictEqual), null, vector.file);
      assert.equal(answer.status, vector.expect.notification ? 204 : 400, vector.file);
      if (vector.expect.notification) {
        assert.ok(Buffer.from(vector.body).equals(seen.notifications[0][2]), `${vector.file}: the app gets the bytes`);
      }
    }
    assert.deepEqual(errors, []);
  });
}

test('after express.json() the handler refuses to guess and passes an error to next', async () => {
  serve({ channel: new Channel('ch-1', { signingSecret: SECRET }), clock: () => NOW });
  const answer = await rawRequest(port, {
    path: '/json',
    headers: [...withHeader(syncHeaders(), 'content-type', 'application/json')],
    body: '{"k": 1}',
  });
  assert.equal(answer.status, 500);
  assert.equal(JSON.parse(answer.body).error, 'RawBodyUnavailableError');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof RawBodyUnavailableError);
  assert.match(errors[0].message, /express\.raw/);
  assert.deepEqual(seen.notifications, []);
  errors.length = 0;
});

test('answers 405 to other methods and 413 over the limit', async () => {
  serve({ channel: new Channel('ch-1'), clock: () => NOW, maxBodyBytes: 4 });
  const get = await rawRequest(port, { method: 'PUT', path: '/alone', headers: syncHeaders() });
  assert.deepEqual([get.status, get.headers.allow], [405, 'POST']);
  for (const path of ['/alone', '/raw']) {
    const big = await rawRequest(port, { path, headers: syncHeaders(), body: '12345' });
    assert.equal(big.status, 413, path);
  }
  assert.deepEqual(errors, []);
});
