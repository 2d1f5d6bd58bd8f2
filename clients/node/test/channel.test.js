// The subscriber's channel: the watch body, the watch response, and `receive`'s checks
// in their order (docs/api.md §11).

import assert from 'node:assert/strict';
import test from 'node:test';
import { inspect } from 'node:util';

import { Channel, ChannelError, NotificationError, SignatureError, SigningSecret, headers as h } from '../src/index.js';
import { NOW, SECRET, eventHeaders, syncHeaders, withHeader, withoutHeader } from './support/headers.js';

const channel = () => new Channel('ch-1', { token: 'tok' });

/** `headers` plus a signature over `body` under SECRET, with the given id. */
function signed(headers, webhookId, body, nowMs = NOW) {
  const ts = Math.floor(nowMs / 1000);
  const signature = SigningSecret.parse(SECRET).sign(webhookId, ts, body);
  let hs = withHeader(headers, 'webhook-id', webhookId);
  hs = withHeader(hs, 'webhook-timestamp', String(ts));
  return withHeader(hs, 'webhook-signature', signature);
}

/** What `receive` makes of a request: the notification, or the error's reason. */
function receive(ch, headers, body = '', now = NOW) {
  try {
    return ch.receive(headers, body, { now });
  } catch (e) {
    assert.ok(e instanceof NotificationError, String(e));
    return e;
  }
}

test('accepts a matching notification', () => {
  const n = receive(channel(), syncHeaders());
  assert.deepEqual([n.channelId, n.messageNumber], ['ch-1', 1n]);
});

test("rejects another channel's notification", () => {
  const e = receive(new Channel('ch-2'), syncHeaders());
  assert.deepEqual([e.reason, e.header, e.expected, e.received], ['channelIdMismatch', h.CHANNEL_ID, 'ch-2', 'ch-1']);
});

test('checks the token only when the channel has one', () => {
  assert.equal(receive(channel(), withHeader(syncHeaders(), h.CHANNEL_TOKEN, 'tok2')).reason, 'tokenMismatch');
  assert.equal(receive(channel(), withHeader(syncHeaders(), h.CHANNEL_TOKEN, 'to')).reason, 'tokenMismatch');
  assert.equal(receive(channel(), withHeader(syncHeaders(), h.CHANNEL_TOKEN, 'tök')).reason, 'tokenMismatch');
  const missing = receive(channel(), withoutHeader(syncHeaders(), h.CHANNEL_TOKEN));
  assert.deepEqual([missing.reason, missing.header], ['missingHeader', h.CHANNEL_TOKEN]);
  // Neither token appears in the error.
  const mismatch = receive(new Channel('ch-1', { token: 'expected-t' }), withHeader(syncHeaders(), h.CHANNEL_TOKEN, 'given-t'));
  assert.equal(mismatch.reason, 'tokenMismatch');
  const shown = JSON.stringify({ ...mismatch, message: mismatch.message });
  assert.ok(!shown.includes('expected-t') && !shown.includes('given-t'), shown);
  assert.equal(receive(new Channel('ch-1'), withHeader(syncHeaders(), h.CHANNEL_TOKEN, 'any')).channelId, 'ch-1');
});

test('checks the resource id only once known', () => {
  assert.equal(receive(channel(), syncHeaders()).resourceId, 'rid-1');
  assert.equal(receive(new Channel('ch-1', { resourceId: 'rid-1' }), syncHeaders()).resourceId, 'rid-1');
  const e = receive(new Channel('ch-1', { resourceId: 'rid-2' }), syncHeaders());
  assert.deepEqual([e.reason, e.expected, e.received], ['resourceIdMismatch', 'rid-2', 'rid-1']);
});

test('rejects notifications after the expiration, the header or the channel record', () => {
  const expiration = 1_893_456_000_000; // in syncHeaders()
  assert.equal(receive(channel(), syncHeaders(), '', expiration).channelId, 'ch-1');
  const late = receive(channel(), syncHeaders(), '', expiration + 1);
  assert.deepEqual([late.reason, late.header, late.expiration.getTime()], ['channelExpired', null, expiration]);
  // The subscriber's own record counts too, even when the header is absent.
  const earlier = new Channel('ch-1', { token: 'tok', expiration: new Date(NOW - 1000) });
  const e = receive(earlier, withoutHeader(syncHeaders(), h.CHANNEL_EXPIRATION));
  assert.deepEqual([e.reason, e.expiration.getTime()], ['channelExpired', NOW - 1000]);
  assert.ok(earlier.isExpiredAt(NOW));
  assert.ok(!channel().isExpiredAt(NOW));
});

test('checks in order: parse, id, token, resource id, expiration, signature', () => {
  const strict = new Channel('ch-1', { token: 'tok', resourceId: 'rid-1', expiration: NOW - 1, signingSecret: SECRET });
  let hs = withoutHeader(syncHeaders(), h.RESOURCE_URI);
  const steps = [
    ['missingHeader', (x) => x],
    ['channelIdMismatch', (x) => withHeader(x, h.RESOURCE_URI, 'http://gw/r')],
    ['tokenMismatch', (x) => withHeader(x, h.CHANNEL_ID, 'ch-2')],
    ['resourceIdMismatch', (x) => withHeader(x, h.CHANNEL_TOKEN, 'nope')],
    ['channelExpired', (x) => withHeader(x, h.RESOURCE_ID, 'rid-9')],
    ['missingSignatureHeader', () => null],
  ];
  // Each request is wrong in the step's way and every later one; fixing one at a time
  // moves the error to the next check.
  hs = withHeader(withHeader(withHeader(hs, h.CHANNEL_ID, 'ch-2'), h.CHANNEL_TOKEN, 'nope'), h.RESOURCE_ID, 'rid-9');
  const fixes = [
    (x) => withHeader(x, h.RESOURCE_URI, 'http://gw/r'),
    (x) => withHeader(x, h.CHANNEL_ID, 'ch-1'),
    (x) => withHeader(x, h.CHANNEL_TOKEN, 'tok'),
    (x) => withHeader(x, h.RESOURCE_ID, 'rid-1'),
  ];
  assert.equal(receive(strict, hs).reason, steps[0][0]);
  for (const [i, fix] of fixes.entries()) {
    hs = fix(hs);
    assert.equal(receive(strict, hs).reason, steps[i + 1][0], `after fix ${i}`);
  }
  strict.expiration = null;
  assert.equal(receive(strict, hs).reason, 'missingSignatureHeader');
});

test('requires a valid signature bound to the notification', () => {
  const signing = new Channel('ch-1', { token: 'tok', signingSecret: SECRET });
  const body = '{"k":1}';
  const good = signed(eventHeaders(), 'ch-1-5', body);
  assert.equal(receive(signing, good, Buffer.from(body)).messageNumber, 5n);
  assert.equal(receive(signing, good, new Uint8Array(Buffer.from(body)).buffer).messageNumber, 5n);
  const changed = receive(signing, good, '{}');
  assert.ok(changed instanceof SignatureError);
  assert.deepEqual([changed.reason, changed.header], ['signatureMismatch', h.WEBHOOK_SIGNATURE]);
  const unsigned = receive(signing, eventHeaders(), body);
  assert.deepEqual([unsigned.reason, unsigned.header], ['missingSignatureHeader', h.WEBHOOK_ID]);
  // A correctly signed body replayed under another message number.
  const replayed = receive(signing, withHeader(good, h.MESSAGE_NUMBER, '6'), body);
  assert.deepEqual([replayed.reason, replayed.expected, replayed.received], ['webhookIdMismatch', 'ch-1-6', 'ch-1-5']);
  // The id names the number, not its spelling in the header.
  assert.equal(receive(signing, withHeader(good, h.MESSAGE_NUMBER, '005'), body).messageNumber, 5n);
  const late = receive(signing, good, body, NOW + 301_000);
  assert.equal(late.reason, 'signatureTimestampTooOld');
  signing.signatureToleranceSeconds = 3600;
  assert.equal(receive(signing, good, body, NOW + 301_000).messageNumber, 5n);
  // Without a secret, signature headers are not checked, even repeated ones.
  const bogus = [...withHeader(eventHeaders(), h.WEBHOOK_SIGNATURE, 'v1,bogus'), ['webhook-id', 'x']];
  assert.equal(receive(channel(), bogus, body).messageNumber, 5n);
});

test('rejects malformed secrets with a ChannelError', () => {
  for (const bad of ['not-a-secret', 'whsec_short', 'whsec_']) {
    assert.throws(() => new Channel('c', { signingSecret: bad }), (e) => e instanceof ChannelError && e.reason === 'invalidSigningSecret');
  }
  const c = new Channel('c', { signingSecret: SECRET });
  assert.ok(c.signingSecret instanceof SigningSecret);
  c.setSigningSecret(null);
  assert.equal(c.signingSecret, null);
});

test('builds a watch body', () => {
  const c = Channel.webhook('ch-1', 'https://example.com/hook', {
    token: 'tok',
    expiration: new Date(1_893_456_000_000),
    signingSecret: SECRET,
    params: { ttl: '3600' },
  });
  assert.deepEqual(c.body(), {
    id: 'ch-1',
    type: 'web_hook',
    address: 'https://example.com/hook',
    token: 'tok',
    expiration: '1893456000000',
    params: { ttl: '3600', signingSecret: SECRET },
  });
  assert.deepEqual(new Channel('c').body(), { id: 'c', type: 'web_hook' });
  assert.throws(() => new Channel('c', { params: { ttl: 3600 } }).body(), TypeError);
});

test('updates from a watch response with the expiration as a string or a number', () => {
  for (const expiration of ['1893456000000', 1893456000000, 1893456000000.0, ' 1893456000000.7 ', '1.893456e12']) {
    const c = Channel.webhook('ch-1', 'https://example.com/hook', { token: 'tok' });
    c.update({
      kind: 'api#channel',
      id: 'ch-1',
      resourceId: 'rid-1',
      resourceUri: 'http://gw/calendars/primary/events',
      expiration,
      token: null,
    });
    assert.equal(c.resourceId, 'rid-1');
    assert.equal(c.resourceUri, 'http://gw/calendars/primary/events');
    assert.equal(c.expiration.getTime(), 1_893_456_000_000, String(expiration));
    assert.equal(c.token, 'tok', 'null leaves the token as it was');
    assert.equal(c.address, 'https://example.com/hook');
  }
});

test('a bad watch response changes nothing', () => {
  const c = new Channel('ch-1');
  const reasonOf = (response) => {
    try {
      c.update(response);
    } catch (e) {
      assert.ok(e instanceof ChannelError);
      return [e.reason, e.field];
    }
    return 'ok';
  };
  assert.deepEqual(reasonOf([]), ['responseNotAnObject', null]);
  assert.deepEqual(reasonOf(null), ['responseNotAnObject', null]);
  assert.deepEqual(reasonOf({ resourceId: 'rid', expiration: 'soon' }), ['invalidResponseField', 'expiration']);
  assert.deepEqual(reasonOf({ resourceId: 'rid', expiration: '9223372036854775808' }), ['invalidResponseField', 'expiration']);
  assert.deepEqual(reasonOf({ resourceId: 'rid', expiration: '0x10' }), ['invalidResponseField', 'expiration']);
  assert.deepEqual(reasonOf({ resourceId: 'rid', expiration: 1e300 }), ['invalidResponseField', 'expiration']);
  // Fits 64 bits, but beyond the dates the Rust library can hold.
  assert.deepEqual(reasonOf({ resourceId: 'rid', expiration: '9000000000000000' }), ['invalidResponseField', 'expiration']);
  assert.deepEqual(reasonOf({ resourceId: 7 }), ['invalidResponseField', 'resourceId']);
  assert.equal(c.resourceId, null);
  assert.equal(c.expiration, null);
  assert.equal(reasonOf({ id: 'ch-9', expiration: '-5' }), 'ok');
  assert.deepEqual([c.id, c.expiration.getTime()], ['ch-9', -5]);
});

test('inspect and JSON hide the token and the secret', () => {
  const c = new Channel('ch-1', { token: 'tok-secret', signingSecret: SECRET });
  for (const shown of [inspect(c), JSON.stringify(c)]) {
    assert.ok(!shown.includes('tok-secret') && !shown.includes('whsec_'), shown);
    assert.ok(shown.includes('ch-1'), shown);
  }
});
