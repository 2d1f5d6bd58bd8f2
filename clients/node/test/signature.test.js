// Standard Webhooks verification on its own (docs/api.md §10).

import assert from 'node:assert/strict';
import test from 'node:test';
import { inspect } from 'node:util';

import { SignatureError, SigningSecret, verifySignature } from '../src/index.js';
import { SECRET } from './support/headers.js';

const MSG_ID = 'ch-1-2';
const TS = 1_700_000_000;
const BODY = '{"k":1}';
const secret = SigningSecret.parse(SECRET);
const sig = () => secret.sign(MSG_ID, TS, BODY);
const headers = (signature, ts = String(TS)) => [
  ['webhook-id', MSG_ID],
  ['webhook-timestamp', ts],
  ['webhook-signature', signature],
];
/** The reason `verifySignature` gives, or 'ok'. */
function verify(hs, nowSecs, options = {}) {
  try {
    verifySignature(options.secret ?? SECRET, hs, options.body ?? BODY, { now: nowSecs * 1000, ...options });
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof SignatureError, String(e));
    return e.reason;
  }
}

test('matches the published Standard Webhooks vector', () => {
  const s = SigningSecret.parse('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  const signature = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
  assert.equal(s.sign('msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'), signature);
  assert.ok(s.verify('msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, Buffer.from('{"test": 2432232314}'), signature));
  assert.ok(!s.verify('msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331, '{"test": 2432232314}', signature));
  assert.ok(!s.verify('msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{}', signature));
});

test('accepts a valid signature, as a secret or its text', () => {
  assert.equal(verify(headers(sig()), TS), 'ok');
  assert.equal(verify(headers(sig()), TS, { secret }), 'ok');
});

test('accepts any of several signatures during a key rotation', () => {
  const other = SigningSecret.parse('whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA').sign(MSG_ID, TS, BODY);
  assert.equal(verify(headers(`${other} ${sig()}`), TS), 'ok');
  assert.equal(verify(headers(`${sig()} ${other}`), TS), 'ok');
  assert.equal(verify(headers(`v0,abc ${sig()}`), TS), 'ok');
  assert.equal(verify(headers(`v1,not-base64! ${sig()}`), TS), 'ok');
  assert.equal(verify(headers(other), TS), 'signatureMismatch');
});

test('rejects a changed body or id, an unknown scheme, and sloppy base64', () => {
  assert.equal(verify(headers(sig()), TS, { body: '{}' }), 'signatureMismatch');
  assert.equal(verify([['webhook-id', 'msg_other'], ...headers(sig()).slice(1)], TS), 'signatureMismatch');
  assert.equal(verify(headers(sig().replace('v1,', 'v2,')), TS), 'signatureMismatch');
  assert.equal(verify(headers('v1,not base64!'), TS), 'signatureMismatch');
  // Node's own base64 decoder would take these; the Rust library does not. (The
  // published vector's signature has a `+`, a `/` and padding.)
  const s = SigningSecret.parse('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  const args = ['msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'];
  const b64 = 'g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
  assert.ok(s.verify(...args, `v1,${b64}`));
  for (const sloppy of [b64.replace(/=$/, ''), b64.replace('+', '-').replace('/', '_'), ` ${b64}`, `${b64}==`, b64.replace('E=', 'F=')]) {
    assert.ok(!s.verify(...args, `v1,${sloppy}`), sloppy);
  }
});

test('enforces the timestamp tolerance both ways', () => {
  assert.equal(verify(headers(sig()), TS + 300), 'ok');
  assert.equal(verify(headers(sig()), TS - 300), 'ok');
  assert.equal(verify(headers(sig()), TS + 301), 'signatureTimestampTooOld');
  assert.equal(verify(headers(sig()), TS - 301), 'signatureTimestampInFuture');
  assert.equal(verify(headers(sig()), TS + 3600, { toleranceSeconds: 3600 }), 'ok');
  assert.equal(verify(headers(sig()), TS + 1, { toleranceSeconds: 0 }), 'signatureTimestampTooOld');
  // Milliseconds are floored to the second: 300.999 s is within 300 s.
  assert.equal(verify(headers(sig()), TS + 300.999), 'ok');
  try {
    verifySignature(SECRET, headers(sig()), BODY, { now: (TS + 301) * 1000 });
    assert.fail('no error');
  } catch (e) {
    assert.deepEqual([e.header, e.timestamp, e.now, e.toleranceSeconds], ['webhook-timestamp', TS, TS + 301, 300]);
  }
});

test('names missing, repeated and malformed headers', () => {
  for (let i = 0; i < 3; i++) {
    const hs = headers(sig());
    const [[name]] = hs.splice(i, 1);
    assert.equal(verify(hs, TS), 'missingSignatureHeader', name);
  }
  assert.equal(verify([...headers(sig()), ['Webhook-Signature', sig()]], TS), 'malformedSignatureHeader');
  for (const bad of ['', '-1614265330', '1614265330.0', 'soon', '99999999999999999999', '9223372036854775808']) {
    try {
      verifySignature(SECRET, headers(sig(), bad), BODY, { now: TS * 1000 });
      assert.fail('no error');
    } catch (e) {
      assert.deepEqual([e.reason, e.header], ['malformedSignatureHeader', 'webhook-timestamp'], bad);
    }
  }
});

test('a timestamp with leading zeros is signed as its number, as the Rust library does', () => {
  // The HMAC covers the timestamp as a number, not as the header's text.
  assert.equal(verify(headers(sig(), `000${TS}`), TS), 'ok');
});

test('header names are case-insensitive', () => {
  assert.equal(verify(headers(sig()).map(([k, v]) => [k.toUpperCase(), v]), TS), 'ok');
});

test('extreme clocks and timestamps do not overflow', () => {
  assert.equal(verify(headers(sig(), '9223372036854775807'), TS), 'signatureTimestampInFuture');
  assert.equal(verify(headers(sig()), -8.64e12), 'signatureTimestampInFuture');
  assert.equal(verify(headers(sig()), 8.64e12, { toleranceSeconds: Number.MAX_SAFE_INTEGER }), 'ok');
});

test('parses secrets strictly and never shows them', () => {
  for (const bad of ['MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_!!!', 'whsec_AAAA', `whsec_${'A'.repeat(88)}`, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=']) {
    assert.throws(() => SigningSecret.parse(bad), TypeError, bad);
  }
  assert.ok(SigningSecret.parse(`whsec_${Buffer.alloc(64, 7).toString('base64')}`));
  assert.ok(!inspect(secret).includes('MfKQ'));
  assert.ok(!JSON.stringify({ secret }).includes('MfKQ'));
});

test('a parsed body is refused, not stringified', () => {
  assert.throws(() => verifySignature(SECRET, headers(sig()), { k: 1 }, { now: TS * 1000 }), TypeError);
});
