// End to end: a real `watchwire serve` (the binary in WATCHWIRE_BIN) delivers signed
// notifications to a small app built on this package's node:http adapter; the app gets
// them validated and in order; a replay then arrives flagged as duplicates and is
// still answered 2xx. Skipped without WATCHWIRE_BIN, except under CI, where it fails.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import test from 'node:test';

import { Channel, Tracker, nodeHttpHandler } from '../src/index.js';
import { Gateway, when } from './support/gateway.js';
import { close, listen } from './support/http.js';

const BIN = process.env.WATCHWIRE_BIN;
const SECRET = 'whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=';
const CHANNEL_ID = 'node-e2e-1';
const RESOURCE = '/calendars/primary/events';

/** The receiving app: what a user of the package would write, plus a record for the test. */
async function startApp() {
  const events = new EventEmitter();
  const arrived = []; // { notification, observation, body }
  const rejected = [];
  const answered = []; // status codes, in order
  const channel = Channel.webhook(CHANNEL_ID, 'set once listening', { token: 'e2e-token', signingSecret: SECRET });
  const handler = nodeHttpHandler({
    channel,
    tracker: new Tracker(),
    onNotification(notification, observation, { body }) {
      arrived.push({ notification, observation, body: Buffer.from(body).toString('utf8') });
    },
    onRejected(error) {
      rejected.push(error);
    },
  });
  const server = http.createServer((req, res) => {
    res.on('finish', () => {
      answered.push(res.statusCode);
      events.emit('answered');
    });
    handler(req, res);
  });
  const port = await listen(server);
  channel.address = `http://127.0.0.1:${port}/notifications`;
  return { server, channel, arrived, rejected, answered, events };
}

test('a real gateway delivers signed notifications in order, and a replay is flagged as duplicates', async (t) => {
  if (!BIN) {
    assert.ok(!process.env.CI, 'CI is set, so the end-to-end test must run: set WATCHWIRE_BIN to the watchwire binary');
    t.skip('WATCHWIRE_BIN is not set (the path of a watchwire binary)');
    return;
  }
  const app = await startApp();
  const gateway = await Gateway.start(BIN);
  t.after(async () => {
    await gateway.stop();
    await close(app.server);
  });

  // Watch: the sync can arrive before this answer, and the channel is ready for it.
  const watch = await gateway.request('POST', `/calendar/v3${RESOURCE}/watch`, app.channel.body());
  assert.equal(watch.status, 200, watch.text);
  app.channel.update(watch.json);
  assert.equal(app.channel.resourceId, watch.json.resourceId);
  assert.ok(app.channel.expiration instanceof Date);

  // Three events in one batch; `data` is kept byte for byte, odd spacing included.
  const datas = ['{"n": 1,  "summary":"Standup"}', '{"n":2}', '[3, "three"]'];
  const batch = `[${datas
    .map((data, i) => `{"resource":"${RESOURCE}/e${i}","state":"exists","data":${data}${i === 1 ? ',"changed":["content"],"metadata":{"request_id":"r-2"}' : ''}}`)
    .join(',')}]`;
  const published = await gateway.request('POST', '/v1/events', batch);
  assert.deepEqual([published.status, published.json?.events], [200, 3], published.text);

  await when(app.events, 'answered', () => app.arrived.length >= 4, 'the sync and three events arriving');
  assert.deepEqual(app.rejected, [], 'every notification validated');
  const [sync, ...firsts] = app.arrived.slice(0, 4);
  assert.equal(sync.notification.isSync, true);
  assert.equal(sync.notification.messageNumber, 1n);
  assert.equal(sync.body, '');
  assert.equal(sync.notification.resourceId, watch.json.resourceId);
  assert.equal(sync.notification.channelExpiration.getTime(), app.channel.expiration.getTime() - (app.channel.expiration.getTime() % 1000));
  let previous = sync.notification.messageNumber;
  for (const [i, { notification, observation, body }] of firsts.entries()) {
    assert.equal(observation.isNew, true, `event ${i}`);
    assert.equal(observation.gap, null, `event ${i}`);
    assert.equal(notification.previousNumber, previous, `event ${i} follows the one before`);
    assert.ok(notification.messageNumber > previous);
    previous = notification.messageNumber;
    assert.equal(notification.state, 'exists');
    assert.equal(notification.eventResource, `${RESOURCE}/e${i}`);
    assert.equal(notification.resourceUri, watch.json.resourceUri);
    assert.equal(notification.token, 'e2e-token');
    assert.equal(body, datas[i], 'the body is the published data, byte for byte');
  }
  assert.deepEqual(firsts[1].notification.changed, ['content']);
  assert.deepEqual(firsts[1].notification.metadata, { request_id: 'r-2' });
  await when(app.events, 'answered', () => app.answered.length >= 4, 'four answers');
  assert.deepEqual(app.answered.slice(0, 4), [204, 204, 204, 204]);

  // Replay everything after the sync's cursor: the same numbers come again.
  const answeredBefore = app.answered.length;
  const arrivedBefore = app.arrived.length;
  const replay = await gateway.request('POST', `/v1/channels/${CHANNEL_ID}/replay`, { since: sync.notification.cursor });
  assert.deepEqual([replay.status, replay.json?.replaying], [202, true], replay.text);
  const numbers = firsts.map((f) => f.notification.messageNumber);
  const replayed = () => app.arrived.slice(arrivedBefore);
  await when(
    app.events,
    'answered',
    () => numbers.every((n) => replayed().some((r) => r.notification.messageNumber === n)),
    'the replayed notifications arriving',
  );
  assert.deepEqual(app.rejected, [], 'replayed notifications are validly signed too');
  for (const { notification, observation, body } of replayed()) {
    assert.equal(observation.isDuplicate, true, `#${notification.messageNumber} is flagged as a duplicate`);
    const first = firsts.find((f) => f.notification.messageNumber === notification.messageNumber);
    if (first) assert.equal(body, first.body, 'the replay carries the same body');
  }
  assert.deepEqual(
    replayed().map((r) => r.notification.messageNumber),
    numbers,
    'replayed in their order',
  );
  await when(app.events, 'answered', () => app.answered.length >= answeredBefore + numbers.length, 'answers to the replay');
  assert.ok(app.answered.slice(answeredBefore).every((s) => s === 204), `answers: ${app.answered}`);
});

test("the README's receiver runs as written against a real gateway", async (t) => {
  if (!BIN) {
    assert.ok(!process.env.CI, 'CI is set, so the README receiver test must run: set WATCHWIRE_BIN');
    t.skip('WATCHWIRE_BIN is not set (the path of a watchwire binary)');
    return;
  }
  // The first js block of README.md, with the package named by its path.
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)[1];
  assert.match(code, /from 'watchwire-receiver'/);
  const dir = mkdtempSync(path.join(tmpdir(), 'watchwire-readme-'));
  const file = path.join(dir, 'receiver.mjs');
  writeFileSync(file, code.replace("'watchwire-receiver'", `'${new URL('../src/index.js', import.meta.url)}'`));

  const gateway = await Gateway.start(BIN);
  const probe = http.createServer();
  const port = await listen(probe); // a free port for the example, which takes PORT
  await close(probe);
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, GATEWAY: gateway.url, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const output = new EventEmitter();
  const lines = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    output.emit('line');
  });
  const stderr = [];
  child.stderr.on('data', (chunk) => stderr.push(chunk));
  const printed = (pattern, what) =>
    when(output, 'line', () => lines.some((l) => pattern.test(l)), `${what} (printed: ${JSON.stringify(lines)}; stderr: ${Buffer.concat(stderr)})`);

  await printed(/^watching http:\/\/127\.0\.0\.1:\d+\/calendars\/primary\/events as channel orders-/, 'the watch');
  await printed(/^#1 sync \/calendars\/primary\/events $/, 'the sync');
  const published = await gateway.request('POST', '/v1/events', '{"resource": "/calendars/primary/events/ev1", "state": "exists", "data": {"summary": "Lunch"}}');
  assert.equal(published.status, 200, published.text);
  await printed(/^#2 exists \/calendars\/primary\/events\/ev1 \{"summary": "Lunch"\}$/, 'the event, as the README says');
});
