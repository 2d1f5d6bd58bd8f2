// A plain HTTP/1.1 client over a socket, so that tests send header lines exactly as
// given: names in their letter case, repeats, and bytes that are not UTF-8.

import net from 'node:net';

const DEADLINE_MS = 10_000;

/**
 * Sends one request to 127.0.0.1:`port` and reads the answer to the end
 * (`Connection: close`). `headers` are `[name, value]` pairs; a value may be a Buffer.
 *
 * @returns {Promise<{ status: number, headers: Record<string, string>, body: string }>}
 */
export function rawRequest(port, { method = 'POST', path = '/', headers = [], body = '' }) {
  const bodyBytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const head = [Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`, 'latin1')];
  for (const [name, value] of headers) {
    head.push(Buffer.from(`${name}: `, 'latin1'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'), Buffer.from('\r\n'));
  }
  head.push(Buffer.from(`Content-Length: ${bodyBytes.length}\r\nConnection: close\r\n\r\n`, 'latin1'));
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no complete answer within ${DEADLINE_MS} ms`)), DEADLINE_MS);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (e) {
        reject(e);
      }
    });
    socket.end(Buffer.concat([...head, bodyBytes]));
  });
}

function parseResponse(raw) {
  const split = raw.indexOf('\r\n\r\n');
  if (split < 0) throw new Error(`not an HTTP response: ${JSON.stringify(raw.toString('latin1'))}`);
  const [statusLine, ...lines] = raw.subarray(0, split).toString('latin1').split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(split + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts = [];
    let rest = body;
    for (;;) {
      const eol = rest.indexOf('\r\n');
      const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
      if (!size) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  }
  return { status, headers, body: body.toString('utf8') };
}

/** Listens on 127.0.0.1:0; resolves to the port. */
export function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** Closes a server and its idle connections. */
export function close(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}
