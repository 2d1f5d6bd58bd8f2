// Header sets shared by the unit tests, as the gateway sends them.

/** A moment before the test channels expire (2023-11-14T22:13:20Z), in ms. */
export const NOW = 1_700_000_000_000;

export const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** A sync message on channel `ch-1` (token `tok`). */
export function syncHeaders() {
  return [
    ['X-Goog-Channel-ID', 'ch-1'],
    ['X-Goog-Channel-Token', 'tok'],
    ['X-Goog-Channel-Expiration', 'Tue, 01 Jan 2030 00:00:00 GMT'],
    ['X-Goog-Resource-ID', 'rid-1'],
    ['X-Goog-Resource-URI', 'http://127.0.0.1:8080/calendars/primary/events'],
    ['X-Goog-Resource-State', 'sync'],
    ['X-Goog-Message-Number', '1'],
    ['X-Watchwire-Event-Resource', '/calendars/primary/events'],
    ['X-Watchwire-Cursor', 'c-0'],
  ];
}

/** Message 5 (after 3) on channel `ch-1`, with every optional header. */
export function eventHeaders() {
  let headers = withHeader(syncHeaders(), 'x-goog-resource-state', 'update');
  headers = withHeader(headers, 'x-goog-message-number', '5');
  headers = withHeader(headers, 'x-watchwire-previous-number', '3');
  headers = withHeader(headers, 'x-watchwire-cursor', 'c-9');
  headers = withHeader(headers, 'x-watchwire-event-resource', '/calendars/primary/events/e1');
  headers = withHeader(headers, 'x-goog-changed', 'content,properties');
  return withHeader(headers, 'x-watchwire-metadata', '{"request_id":"r-1"}');
}

/** `headers` with `name` (any case) set to `value`, replacing any value it had. */
export function withHeader(headers, name, value) {
  return [...withoutHeader(headers, name), [name, value]];
}

/** `headers` without `name` (any case). */
export function withoutHeader(headers, name) {
  return headers.filter(([k]) => k.toLowerCase() !== name.toLowerCase());
}
