// Duplicates, out-of-order numbers and gaps per channel (docs/api.md §11).

import assert from 'node:assert/strict';
import test from 'node:test';

import { Arrival, Notification, Tracker } from '../src/index.js';
import { eventHeaders } from './support/headers.js';

const arrivals = (tracker, numbers) => numbers.map((n) => tracker.observeNumber('ch', n).arrival);
const { NEW, DUPLICATE, OUT_OF_ORDER } = Arrival;

test('classifies new, duplicate and out of order', () => {
  assert.deepEqual(arrivals(new Tracker(), [1, 3, 3, 7, 5, 5, 1, 8]), [NEW, NEW, DUPLICATE, NEW, OUT_OF_ORDER, DUPLICATE, DUPLICATE, NEW]);
});

test('channels are independent', () => {
  const tracker = new Tracker();
  assert.ok(tracker.observeNumber('a', 5).isNew);
  assert.ok(tracker.observeNumber('b', 1).isNew);
  assert.ok(tracker.observeNumber('b', 5).isNew);
  assert.ok(tracker.observeNumber('a', 5).isDuplicate);
});

test('flags a gap when the previous number is not the last seen', () => {
  const tracker = new Tracker();
  assert.equal(tracker.observeNumber('ch', 1).gap, null);
  assert.equal(tracker.observeNumber('ch', 4, 1).gap, null);
  const skipped = tracker.observeNumber('ch', 9, 6);
  assert.ok(skipped.isNew);
  assert.deepEqual(skipped.gap, { previousNumber: 6n, lastSeen: 4n });
  // The late one is out of order, and no gap is reported for it.
  const late = tracker.observeNumber('ch', 6, 4);
  assert.deepEqual([late.arrival, late.gap, late.isOutOfOrder], [OUT_OF_ORDER, null, true]);
});

test('no gap without history', () => {
  const first = new Tracker().observeNumber('ch', 9, 6);
  assert.deepEqual([first.arrival, first.gap], [NEW, null]);
});

test('observes notifications, with numbers beyond 2^53 kept exact', () => {
  const tracker = new Tracker();
  const n = Notification.fromHeaders(eventHeaders());
  assert.ok(tracker.observe(n).isNew);
  assert.ok(tracker.observe(n).isDuplicate);
  const big = 2n ** 64n - 2n;
  assert.ok(tracker.observeNumber('x', big).isNew);
  assert.ok(tracker.observeNumber('x', big + 1n, big).isNew);
  assert.ok(tracker.observeNumber('x', big).isDuplicate);
  assert.deepEqual(tracker.observeNumber('y', 2n ** 53n + 1n).arrival, NEW);
  assert.deepEqual(tracker.observeNumber('y', 2n ** 53n).arrival, OUT_OF_ORDER);
  assert.throws(() => tracker.observeNumber('y', 1.5), TypeError);
});

test('remembers a bounded window per channel', () => {
  const tracker = new Tracker({ window: 3, maxChannels: 10 });
  arrivals(tracker, [1, 2, 3, 4]);
  assert.ok(tracker.observeNumber('ch', 2).isDuplicate);
  // 1 fell out of the window: it can only be reported as out of order.
  assert.ok(tracker.observeNumber('ch', 1).isOutOfOrder);
  assert.deepEqual(tracker.recent('ch'), [2n, 3n, 4n]);
});

test('forgets the least recently seen channel first', () => {
  const tracker = new Tracker({ window: 8, maxChannels: 2 });
  tracker.observeNumber('a', 1);
  tracker.observeNumber('b', 1);
  tracker.observeNumber('a', 2);
  tracker.observeNumber('c', 1); // evicts b
  assert.equal(tracker.channelCount, 2);
  assert.ok(tracker.observeNumber('a', 2).isDuplicate);
  assert.ok(tracker.observeNumber('b', 1).isNew, 'b was forgotten');
  // The duplicate of a counted as seeing a, so b's return evicted c.
  assert.deepEqual([tracker.recent('a'), tracker.recent('c')], [[1n, 2n], []]);
});

test('a duplicate refreshes its channel', () => {
  const tracker = new Tracker({ maxChannels: 2 });
  tracker.observeNumber('a', 1);
  tracker.observeNumber('b', 1);
  assert.ok(tracker.observeNumber('a', 1).isDuplicate);
  tracker.observeNumber('c', 1); // evicts b, not a
  assert.ok(tracker.observeNumber('a', 1).isDuplicate);
  assert.ok(tracker.observeNumber('b', 1).isNew);
});

test('forget starts a channel over', () => {
  const tracker = new Tracker();
  tracker.observeNumber('ch', 5);
  tracker.forget('ch');
  assert.ok(tracker.observeNumber('ch', 1).isNew);
  assert.equal(tracker.channelCount, 1);
});

test('retract makes the retry of an unhandled notification new again', () => {
  const tracker = new Tracker();
  tracker.observeNumber('ch', 1);
  assert.ok(tracker.observeNumber('ch', 2, 1).isNew);
  tracker.retract('ch', 2);
  const retry = tracker.observeNumber('ch', 2, 1);
  assert.deepEqual([retry.arrival, retry.gap], [NEW, null]);
  tracker.retract('nobody', 1);
  tracker.retract('ch', 99);
  assert.deepEqual(tracker.recent('ch'), [1n, 2n]);
});

test('limits are at least 1', () => {
  const tracker = new Tracker({ window: 0, maxChannels: 0 });
  tracker.observeNumber('a', 1);
  tracker.observeNumber('a', 2);
  assert.deepEqual(tracker.recent('a'), [2n]);
  tracker.observeNumber('b', 1);
  assert.equal(tracker.channelCount, 1);
});

test('observations serialise to JSON', () => {
  const tracker = new Tracker();
  tracker.observeNumber('ch', 1);
  assert.deepEqual(JSON.parse(JSON.stringify(tracker.observeNumber('ch', 5, 3))), {
    arrival: 'new',
    gap: { previousNumber: 3, lastSeen: 1 },
  });
});
