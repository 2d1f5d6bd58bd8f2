// What to answer (as `watchwire receive` decides it), independent of any framework.

import assert from 'node:assert/strict';
import test from 'node:test';

import { Channel, NotificationError, Receiver, Tracker, errorEnvelope, headers as h } from '../src/index.js';
import { NOW, syncHeaders, withHeader } from './support/headers.js';

const post = (headers, body = '') => ({ method: 'POST', headers, body });
const numbered = (n, previous) => {
  let hs = withHeader(syncHeaders(), h.MESSAGE_NUMBER, String(n));
  if (n > 1) hs = withHeader(withHeader(hs, h.RESOURCE_STATE, 'exists'), h.PREVIOUS_NUMBER, String(previous ?? n - 1));
  return hs;
};

function receiver(options = {}) {
  const seen = [];
  const r = new Receiver({
    channel: new Channel('ch-1', { token: 'tok' }),
    clock: () => NOW,
    onNotification: (n, o) => {
      seen.push([n.messageNumber, o.arrival]);
    },
    ...options,
  });
  return { r, seen };
}

test('answers 204 to valid notifications, flagged or not, and tells the app how each arrived', async () => {
  const { r, seen } = receiver();
  for (const n of [1, 2, 2, 4, 3]) {
    const outcome = await r.handle(post(numbered(n)));
    assert.equal(outcome.status, 204);
    assert.equal(outcome.body, '');
  }
  assert.deepEqual(seen, [
    [1n, 'new'],
    [2n, 'new'],
    [2n, 'duplicate'],
    [4n, 'new'],
    [3n, 'outOfOrder'],
  ]);
  const gap = await r.handle(post(numbered(9, 7)));
  assert.deepEqual(gap.observation.gap, { previousNumber: 7n, lastSeen: 4n });
});

test('answers 400 with the reason in the error envelope, and the app is not called', async () => {
  const rejected = [];
  const { r, seen } = receiver({ onRejected: (e) => rejected.push(e.reason) });
  const outcome = await r.handle(post(withHeader(syncHeaders(), h.CHANNEL_TOKEN, 'wrong')));
  assert.equal(outcome.status, 400);
  assert.equal(outcome.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(outcome.body), errorEnvelope(400, 'tokenMismatch', 'channel token does not match'));
  assert.ok(outcome.error instanceof NotificationError);
  assert.deepEqual([seen, rejected], [[], ['tokenMismatch']]);
  const missing = await r.handle(post([['X-Goog-Channel-ID', 'ch-1']]));
  assert.equal(JSON.parse(missing.body).error.errors[0].reason, 'missingHeader');
  assert.match(JSON.parse(missing.body).error.message, /x-goog-message-number/);
});

test('answers 405 to anything but POST', async () => {
  const { r, seen } = receiver();
  const outcome = await r.handle({ method: 'GET', headers: syncHeaders() });
  assert.deepEqual([outcome.status, outcome.headers.allow], [405, 'POST']);
  assert.equal(JSON.parse(outcome.body).error.errors[0].reason, 'methodNotAllowed');
  assert.deepEqual(seen, []);
});

test("the app's status is the answer, and a handled failure is not a duplicate on its retry", async () => {
  const errors = [];
  let answer = 410;
  const { r } = receiver({
    onNotification: async (n, o) => {
      if (answer instanceof Error) throw answer;
      return typeof answer === 'function' ? answer(n, o) : answer;
    },
    onError: (e) => errors.push(e.message),
  });
  assert.equal((await r.handle(post(numbered(1)))).status, 410);
  // The sync was not handled (410): its retry would be new again.
  answer = { status: 503, headers: { 'retry-after': '5' } };
  const busy = await r.handle(post(numbered(1)));
  assert.deepEqual([busy.status, busy.headers['retry-after'], busy.observation.arrival], [503, '5', 'new']);
  answer = new Error('database down');
  const failed = await r.handle(post(numbered(1)));
  assert.deepEqual([failed.status, JSON.parse(failed.body).error.errors[0].reason], [500, 'backendError']);
  assert.ok(!failed.body.includes('database'), 'the error stays in the receiver');
  assert.deepEqual(errors, ['database down']);
  answer = (n, o) => (o.isNew ? 200 : 299);
  assert.equal((await r.handle(post(numbered(1)))).status, 200);
  // Handled now: the next delivery is a duplicate, and a failure on it takes nothing back.
  answer = new Error('again');
  assert.equal((await r.handle(post(numbered(1)))).observation.arrival, 'duplicate');
  answer = undefined;
  assert.equal((await r.handle(post(numbered(1)))).observation.arrival, 'duplicate');
  answer = 99;
  assert.equal((await r.handle(post(numbered(2)))).status, 500, 'an impossible status is a failure');
});

test('several channels: an array, a Map or a lookup; unknown ids are channelIdMismatch', async () => {
  const a = new Channel('ch-1', { token: 'tok' });
  const b = new Channel('ch-2', { token: 'tok' });
  for (const channels of [[a, b], new Map([['ch-1', a], ['ch-2', b]]), (id) => ({ 'ch-1': a, 'ch-2': b })[id]]) {
    const r = new Receiver({ channels, clock: () => NOW });
    assert.equal((await r.handle(post(syncHeaders()))).status, 204);
    const other = await r.handle(post(withHeader(syncHeaders(), h.CHANNEL_ID, 'ch-2')));
    assert.deepEqual([other.status, other.notification.channelId], [204, 'ch-2']);
    const unknown = await r.handle(post(withHeader(syncHeaders(), h.CHANNEL_ID, 'ch-3')));
    assert.deepEqual([unknown.status, unknown.error.reason, unknown.error.received], [400, 'channelIdMismatch', 'ch-3']);
    // The headers are parsed before the lookup, so a malformed request says so.
    const repeated = await r.handle(post([...syncHeaders(), ['x-goog-channel-id', 'ch-2']]));
    assert.equal(repeated.error.reason, 'malformedHeader');
  }
  // A channel whose id changes after the receiver was made is found by its new id.
  const r = new Receiver({ channels: [a], clock: () => NOW });
  a.update({ id: 'ch-7' });
  assert.equal((await r.handle(post(withHeader(syncHeaders(), h.CHANNEL_ID, 'ch-7')))).status, 204);
});

test('the clock decides expiration and signature age', async () => {
  let now = NOW;
  const { r } = receiver({ clock: () => now });
  assert.equal((await r.handle(post(numbered(1)))).status, 204);
  now = 1_893_456_000_001; // after the header's expiration
  assert.equal((await r.handle(post(numbered(2)))).error.reason, 'channelExpired');
  const real = receiver({ clock: undefined }).r;
  assert.equal((await real.handle(post(numbered(1)))).status, 204, 'the system clock is before 2030');
});

test('a shared tracker sees every receiver', async () => {
  const tracker = new Tracker();
  const one = receiver({ tracker }).r;
  const two = receiver({ tracker }).r;
  await one.handle(post(numbered(1)));
  assert.equal((await two.handle(post(numbered(1)))).observation.arrival, 'duplicate');
});

test('options are checked', () => {
  assert.throws(() => new Receiver({}), TypeError);
  assert.throws(() => new Receiver({ channel: new Channel('a'), channels: [] }), TypeError);
  assert.throws(() => new Receiver({ channel: { id: 'a' } }), TypeError);
  assert.throws(() => new Receiver({ channels: [{ id: 'a' }] }), TypeError);
  assert.throws(() => new Receiver({ channels: 'a' }), TypeError);
});
