// Parsing notification headers without a channel (docs/api.md §4).

import assert from 'node:assert/strict';
import test from 'node:test';

import { Notification, NotificationError, headers as h, isKnownState } from '../src/index.js';
import { parseHttpDate } from '../src/httpdate.js';
import { eventHeaders, syncHeaders, withHeader, withoutHeader } from './support/headers.js';

/** The error `fn` throws (failing when it throws none or another kind). */
function errorOf(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof NotificationError, `not a NotificationError: ${e}`);
    return e;
  }
  assert.fail('no error');
}

test('parses a sync message', () => {
  const n = Notification.fromHeaders(syncHeaders());
  assert.equal(n.channelId, 'ch-1');
  assert.equal(n.messageNumber, 1n);
  assert.equal(n.isSync, true);
  assert.equal(n.resourceId, 'rid-1');
  assert.equal(n.resourceUri, 'http://127.0.0.1:8080/calendars/primary/events');
  assert.equal(n.token, 'tok');
  assert.equal(n.channelExpiration.getTime(), 1_893_456_000_000);
  assert.equal(n.cursor, 'c-0');
  assert.equal(n.previousNumber, null);
  assert.deepEqual(n.changed, []);
  assert.equal(n.metadata, null);
});

test('parses every extension header', () => {
  const n = Notification.fromHeaders(eventHeaders());
  assert.equal(n.messageNumber, 5n);
  assert.equal(n.state, 'update');
  assert.equal(n.isSync, false);
  assert.deepEqual(n.changed, ['content', 'properties']);
  assert.equal(n.eventResource, '/calendars/primary/events/e1');
  assert.equal(n.cursor, 'c-9');
  assert.equal(n.previousNumber, 3n);
  assert.deepEqual(n.metadata, { request_id: 'r-1' });
});

test('keeps Admin-style state names', () => {
  assert.equal(Notification.fromHeaders(withHeader(eventHeaders(), h.RESOURCE_STATE, 'CREATE_USER')).state, 'CREATE_USER');
  for (const s of ['sync', 'exists', 'not_exists', 'add', 'remove', 'update', 'trash', 'untrash', 'change', 'X', 'A1_B2']) {
    assert.ok(isKnownState(s), s);
  }
  for (const s of ['', 'Exists', 'EXISTS ', 'created', '_X', '1ABC', 'a_b', 'A'.repeat(65)]) {
    assert.ok(!isKnownState(s), s);
  }
  assert.ok(isKnownState('A'.repeat(64)));
});

test('names each missing required header', () => {
  for (const name of [h.CHANNEL_ID, h.MESSAGE_NUMBER, h.RESOURCE_STATE, h.RESOURCE_ID, h.RESOURCE_URI]) {
    const e = errorOf(() => Notification.fromHeaders(withoutHeader(syncHeaders(), name)));
    assert.deepEqual([e.reason, e.header], ['missingHeader', name]);
  }
});

test('optional headers may be absent', () => {
  let headers = eventHeaders();
  for (const name of [h.CHANNEL_TOKEN, h.CHANNEL_EXPIRATION, h.CHANGED, h.EVENT_RESOURCE, h.CURSOR, h.PREVIOUS_NUMBER, h.METADATA]) {
    headers = withoutHeader(headers, name);
  }
  const n = Notification.fromHeaders(headers);
  assert.deepEqual([n.token, n.channelExpiration, n.previousNumber, n.metadata, n.eventResource, n.cursor], [null, null, null, null, null, null]);
  assert.deepEqual(n.changed, []);
});

test('rejects unparsable message numbers and keeps 2^64-1 exact', () => {
  for (const bad of ['', '0', '-1', '+2', '1.0', '0x10', 'one', '18446744073709551616', '1 2', '1e3', '٣']) {
    const e = errorOf(() => Notification.fromHeaders(withHeader(syncHeaders(), h.MESSAGE_NUMBER, bad)));
    assert.deepEqual([e.reason, e.header, e.value], ['invalidMessageNumber', h.MESSAGE_NUMBER, bad], bad);
  }
  const max = Notification.fromHeaders(
    withHeader(withHeader(eventHeaders(), h.MESSAGE_NUMBER, '18446744073709551615'), h.PREVIOUS_NUMBER, '18446744073709551614'),
  );
  assert.equal(max.messageNumber, 18446744073709551615n);
  assert.equal(max.previousNumber, 18446744073709551614n);
  assert.equal(Notification.fromHeaders(withHeader(eventHeaders(), h.MESSAGE_NUMBER, '007')).messageNumber, 7n);
  // 2^53 + 1 is where a double would have rounded.
  assert.equal(Notification.fromHeaders(withHeader(eventHeaders(), h.MESSAGE_NUMBER, '9007199254740993')).messageNumber, 9007199254740993n);
});

test('rejects unknown states', () => {
  for (const bad of ['', 'Exists', 'SYNC ING', 'created', 'deleted', 'exists,sync']) {
    const e = errorOf(() => Notification.fromHeaders(withHeader(syncHeaders(), h.RESOURCE_STATE, bad)));
    assert.deepEqual([e.reason, e.value], ['unknownState', bad]);
  }
});

test('rejects malformed optional headers', () => {
  const cases = [
    [h.CHANNEL_EXPIRATION, '1893456000000'],
    [h.CHANNEL_EXPIRATION, '2030-01-01T00:00:00Z'],
    [h.CHANNEL_EXPIRATION, 'Wed, 01 Jan 2030 00:00:00 GMT'], // 2030-01-01 is a Tuesday
    [h.CHANNEL_EXPIRATION, 'Tue, 01 Jan 2030 00:00:00 UTC'],
    [h.CHANGED, 'content,,parents'],
    [h.CHANGED, 'a b'],
    [h.CHANGED, 'x'.repeat(65)],
    [h.PREVIOUS_NUMBER, 'five'],
    [h.PREVIOUS_NUMBER, '0'],
    [h.PREVIOUS_NUMBER, '5'], // not below the message number 5
    [h.METADATA, '[1,2]'],
    [h.METADATA, '{not json'],
    [h.METADATA, 'null'],
    [h.METADATA, '{"a":1e400}'], // too large for a double: serde_json refuses it
    [h.METADATA, '{"a":"\\ud800"}'], // a lone surrogate: serde_json refuses it
    [h.METADATA, '['.repeat(127) + ']'.repeat(127)],
  ];
  for (const [header, value] of cases) {
    const e = errorOf(() => Notification.fromHeaders(withHeader(eventHeaders(), header, value)));
    assert.deepEqual([e.reason, e.header], ['malformedHeader', header], `${header}: ${value}`);
  }
});

test('reads metadata as the Rust library does', () => {
  const meta = (value) => Notification.fromHeaders(withHeader(eventHeaders(), h.METADATA, value)).metadata;
  assert.deepEqual(meta('{"actor":"Ren\\u00e9e","n":[1,2.5,{"deep":null}]}'), { actor: 'Renée', n: [1, 2.5, { deep: null }] });
  assert.deepEqual(meta(' {"a":1,"a":2} '), { a: 2 });
  // 127 levels of nesting is serde_json's limit; 128 is refused.
  const nested = (depth) => `{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
  assert.ok(meta(nested(127)));
  const e = errorOf(() => meta(nested(128)));
  assert.equal(e.header, h.METADATA);
});

test('a previous number on sync is malformed', () => {
  const e = errorOf(() => Notification.fromHeaders(withHeader(syncHeaders(), h.PREVIOUS_NUMBER, '1')));
  assert.deepEqual([e.reason, e.header], ['malformedHeader', h.PREVIOUS_NUMBER]);
});

test('an empty changed header is an empty list, and items are trimmed', () => {
  assert.deepEqual(Notification.fromHeaders(withHeader(eventHeaders(), h.CHANGED, '')).changed, []);
  assert.deepEqual(Notification.fromHeaders(withHeader(eventHeaders(), h.CHANGED, 'a , b\t')).changed, ['a', 'b']);
});

test('a repeated header is malformed, not first-wins, in every header shape', () => {
  const repeated = [...syncHeaders(), ['X-Goog-Channel-ID', 'ch-2']];
  const shapes = [
    repeated,
    repeated.flat(),
    new Map([['x-goog-channel-id', 'a']]).entries(), // an iterable: one value, fine
    { ...Object.fromEntries(syncHeaders()), 'x-goog-channel-id': ['ch-1', 'ch-2'] },
    { ...Object.fromEntries(syncHeaders()), 'x-goog-channel-id': 'ch-1' }, // two names, one header
  ];
  for (const [i, headers] of shapes.entries()) {
    if (i === 2) continue;
    const e = errorOf(() => Notification.fromHeaders(headers));
    assert.deepEqual([e.reason, e.header, e.problem], ['malformedHeader', h.CHANNEL_ID, 'appears more than once'], `shape ${i}`);
  }
  // Only headers that are asked for are reported: an unknown repeat is no problem.
  assert.ok(Notification.fromHeaders([...syncHeaders(), ['x-other', 'a'], ['X-Other', 'b']]));
});

test('a value that is not UTF-8 is malformed', () => {
  const headers = syncHeaders().map(([k, v]) => [k, k === 'X-Goog-Resource-URI' ? Buffer.from([0xc3, 0x28]) : Buffer.from(v)]);
  const e = errorOf(() => Notification.fromHeaders(headers));
  assert.deepEqual([e.reason, e.header, e.problem], ['malformedHeader', h.RESOURCE_URI, 'is not UTF-8 text']);
  // UTF-8 bytes are text, a BOM included; a string with a lone surrogate is not text.
  const uri = Notification.fromHeaders(withHeader(syncHeaders(), h.RESOURCE_URI, Buffer.from('\ufeffhttp://gw/é'))).resourceUri;
  assert.equal(uri, '\ufeffhttp://gw/é');
  const lone = errorOf(() => Notification.fromHeaders(withHeader(syncHeaders(), h.RESOURCE_URI, 'a\ud800')));
  assert.equal(lone.problem, 'is not UTF-8 text');
});

test('header names are matched in any ASCII letter case, and only ASCII', () => {
  const expected = Notification.fromHeaders(eventHeaders());
  const variants = [
    (s) => s.toUpperCase(),
    (s) => s.toLowerCase(),
    (s) => [...s].map((c, i) => (i % 2 ? c.toLowerCase() : c.toUpperCase())).join(''),
  ];
  for (const variant of variants) {
    const renamed = eventHeaders().map(([k, v]) => [variant(k), v]);
    assert.deepEqual(Notification.fromHeaders(renamed), expected);
    assert.deepEqual(Notification.fromHeaders(Object.fromEntries(renamed)), expected);
  }
  // The Kelvin sign lower-cases to "k" in Unicode, but is not the header's name.
  const kelvin = withoutHeader(syncHeaders(), h.CHANNEL_TOKEN).concat([['X-Goog-Channel-To\u212Aen', 'tok']]);
  assert.equal(Notification.fromHeaders(kelvin).token, null);
});

test('values are trimmed of spaces and tabs only', () => {
  const n = Notification.fromHeaders(withHeader(syncHeaders(), h.CHANNEL_ID, ' \tch-1\t '));
  assert.equal(n.channelId, 'ch-1');
  assert.equal(Notification.fromHeaders(withHeader(syncHeaders(), h.CHANNEL_ID, '\u00a0ch-1')).channelId, '\u00a0ch-1');
});

test('JSON.stringify gives numbers, and decimal strings beyond 2^53-1, and no token', () => {
  const json = JSON.parse(JSON.stringify(Notification.fromHeaders(eventHeaders())));
  assert.equal(json.messageNumber, 5);
  assert.equal(json.previousNumber, 3);
  assert.equal(json.channelExpiration, '2030-01-01T00:00:00.000Z');
  assert.equal('token' in json, false);
  const big = Notification.fromHeaders(withHeader(eventHeaders(), h.MESSAGE_NUMBER, '18446744073709551615'));
  assert.equal(JSON.parse(JSON.stringify(big)).messageNumber, '18446744073709551615');
});

test('reads IMF-fixdates as chrono does', () => {
  const ms = Date.UTC(2013, 10, 19, 1, 13, 52);
  assert.equal(parseHttpDate('Tue, 19 Nov 2013 01:13:52 GMT'), ms);
  // Blanks may be missing or repeated, numbers short, names in any case.
  assert.equal(parseHttpDate('TUE,19 nov  2013 1:13:52GMT'), ms);
  assert.equal(parseHttpDate('  Tue, 19 Nov 2013 01:13:52 GMT\n'), ms);
  assert.equal(parseHttpDate('Thu, 01 Jan 1970 00:00:00 GMT'), 0);
  assert.equal(parseHttpDate('Sat, 29 Feb 2020 12:00:00 GMT'), Date.UTC(2020, 1, 29, 12));
  // A leap second counts as the next second, in milliseconds.
  assert.equal(parseHttpDate('Tue, 19 Nov 2013 01:13:60 GMT'), Date.UTC(2013, 10, 19, 1, 14, 0));
  for (const bad of [
    '',
    'Tuesday, 19 Nov 2013 01:13:52 GMT',
    'Mon, 19 Nov 2013 01:13:52 GMT',
    'Tue, 19 Nov 2013 01:13:52 UTC',
    'Tue, 19 Nov 2013 01:13:52 GMT x',
    'Tue, 19 November 2013 01:13:52 GMT',
    'Sun, 29 Feb 2019 00:00:00 GMT',
    'Tue, 19 Nov 2013 24:00:00 GMT',
    'Tue, 19 Nov 2013 01:60:00 GMT',
    'Tue, 19 Nov 2013 01:13:61 GMT',
    'Tue, 00 Nov 2013 01:13:52 GMT',
    'Tue, 19 Nov 20131 01:13:52 GMT',
    '2013-11-19T01:13:52Z',
  ]) {
    assert.equal(parseHttpDate(bad), null, bad);
  }
});

test('agrees with Date across the calendar', () => {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n) => String(n).padStart(2, '0');
  for (let ms = 0; ms < 8_000_000_000_000; ms += 86_400_000 * 3 + 3_723_000) {
    const d = new Date(ms);
    const text = `${days[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} GMT`;
    assert.equal(text, d.toUTCString());
    assert.equal(parseHttpDate(text), ms - (ms % 1000), text);
  }
});
