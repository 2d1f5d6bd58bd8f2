// Every vector in fixtures/notifications gives its expected result through
// `Channel.receive`, from every header shape the package takes. The Rust library runs
// the same files (tests/it/receiver_fixtures.rs), so the two cannot drift apart.

import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import test from 'node:test';

import { Notification } from '../src/index.js';
import { channelOf, loadVectors, outcome, problemWith } from './support/vectors.js';

const vectors = loadVectors();

/** The vector's headers in each shape `Channel.receive` accepts. */
function shapes(vector) {
  const pairs = vector.headers;
  const grouped = {};
  for (const [name, value] of pairs) (grouped[name] ??= []).push(value);
  return {
    pairs,
    'flat rawHeaders': pairs.flat(),
    'pairs of bytes': pairs.map(([k, v]) => [k, Buffer.from(v, 'utf8')]),
    'object of arrays': grouped,
  };
}

test('the full set of vectors is there', () => {
  assert.ok(vectors.length >= 46, `only ${vectors.length} vectors`);
  assert.ok(vectors.some((v) => v.expect.error) && vectors.some((v) => v.expect.notification));
});

for (const vector of vectors) {
  test(`${vector.file}: ${vector.description}`, () => {
    const channel = channelOf(vector);
    for (const [shape, headers] of Object.entries(shapes(vector))) {
      const result = outcome(() => channel.receive(headers, Buffer.from(vector.body, 'utf8'), { now: vector.nowMs }));
      const problem = problemWith(vector, result, isDeepStrictEqual);
      assert.equal(problem, null, `${shape}: ${problem}`);
    }
  });
}

test('vectors that parse also parse without a channel, and the same way', () => {
  let parsed = 0;
  for (const vector of vectors) {
    const viaChannel = outcome(() => channelOf(vector).receive(vector.headers, vector.body, { now: vector.nowMs }));
    if (!viaChannel.notification) continue;
    assert.deepEqual(Notification.fromHeaders(vector.headers), viaChannel.notification, vector.file);
    parsed += 1;
  }
  assert.ok(parsed >= 19, `${parsed} valid vectors`);
});

test('vectors cover every reason code and every state', () => {
  const reasons = new Set(vectors.filter((v) => v.expect.error).map((v) => v.expect.error.reason));
  assert.deepEqual(
    [...reasons].sort(),
    [
      'channelExpired',
      'channelIdMismatch',
      'invalidMessageNumber',
      'malformedHeader',
      'malformedSignatureHeader',
      'missingHeader',
      'missingSignatureHeader',
      'resourceIdMismatch',
      'signatureMismatch',
      'signatureTimestampInFuture',
      'signatureTimestampTooOld',
      'tokenMismatch',
      'unknownState',
      'webhookIdMismatch',
    ],
  );
  const states = new Set(vectors.filter((v) => v.expect.notification).map((v) => v.expect.notification.state));
  for (const state of 'sync exists not_exists add remove update trash untrash change CREATE_USER'.split(' ')) {
    assert.ok(states.has(state), `no valid vector has state ${state}`);
  }
});
