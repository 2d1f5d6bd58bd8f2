// Picks named headers out of any header source, matching names case-insensitively
// (ASCII only, as HTTP does) and keeping repeats visible: a header that appears twice is
// ambiguous, and neither value is trusted.
//
// A source is one of:
// - a flat array of names and values, as Node's `IncomingMessage.rawHeaders`;
// - an array (or any iterable, such as a `Map`) of `[name, value]` pairs;
// - a plain object of `name: value` or `name: [value, ...]` (each array item one
//   occurrence, as Node's `req.headersDistinct`).
// Values are strings or bytes (`Uint8Array`/`Buffer`); bytes must be UTF-8 text.

export const REPEATED = 'appears more than once';
export const NOT_TEXT = 'is not UTF-8 text';

/** Thrown by `Picked.text` for a header that is present but unusable. */
export class HeaderProblem extends Error {
  constructor(name, reason) {
    super(`header ${name} ${reason}`);
    this.header = name;
    this.reason = reason;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `s` with A-Z lowered and nothing else changed (no Unicode case folding). */
export function asciiLower(s) {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Yields `[name, value]` for every header in `headers`, repeats included. */
export function* headerPairs(headers) {
  if (headers == null) {
    return;
  }
  if (Array.isArray(headers)) {
    if (headers.length > 0 && !Array.isArray(headers[0])) {
      if (headers.length % 2 !== 0) {
        throw new TypeError('a flat header array must hold names and values in turn');
      }
      for (let i = 0; i < headers.length; i += 2) {
        yield [headers[i], headers[i + 1]];
      }
      return;
    }
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new TypeError('each header must be a [name, value] pair');
      }
      yield pair;
    }
    return;
  }
  if (typeof headers[Symbol.iterator] === 'function') {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new TypeError('each header must be a [name, value] pair');
      }
      yield pair;
    }
    return;
  }
  if (typeof headers === 'object') {
    for (const name of Object.keys(headers)) {
      const value = headers[name];
      if (Array.isArray(value)) {
        for (const item of value) {
          yield [name, item];
        }
      } else if (value !== undefined) {
        yield [name, value];
      }
    }
    return;
  }
  throw new TypeError('headers must be an array, an iterable of pairs or an object');
}

function nameOf(name) {
  if (typeof name === 'string') {
    return name;
  }
  if (name instanceof Uint8Array) {
    return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('latin1');
  }
  throw new TypeError(`a header name must be a string, not ${typeof name}`);
}

/** The text of a header value, or `null` when it is not text. */
function textOf(value) {
  if (typeof value === 'string') {
    return value.isWellFormed() ? value : null;
  }
  if (value instanceof Uint8Array) {
    try {
      return utf8.decode(value);
    } catch {
      return null;
    }
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    return String(value);
  }
  throw new TypeError(`a header value must be a string or bytes, not ${typeof value}`);
}

/** Removes spaces and tabs at both ends, as HTTP does (and nothing else). */
export function trimBlanks(s) {
  let start = 0;
  let end = s.length;
  while (start < end && (s[start] === ' ' || s[start] === '\t')) start++;
  while (end > start && (s[end - 1] === ' ' || s[end - 1] === '\t')) end--;
  return s.slice(start, end);
}

const ABSENT = 0;
const ONE = 1;
const TWICE = 2;

/** The values of the headers named in `names` (lower case), found in one pass. */
export class Picked {
  #slots = new Map();

  constructor(names, headers) {
    for (const name of names) {
      this.#slots.set(name, { state: ABSENT, value: undefined });
    }
    for (const [rawName, value] of headerPairs(headers)) {
      if (value === undefined || value === null) {
        continue;
      }
      const slot = this.#slots.get(asciiLower(nameOf(rawName)));
      if (slot === undefined) {
        continue;
      }
      if (slot.state === ABSENT) {
        slot.state = ONE;
        slot.value = value;
      } else {
        slot.state = TWICE;
        slot.value = undefined;
      }
    }
  }

  /**
   * The value of `name` with surrounding blanks removed, `null` when absent; throws a
   * `HeaderProblem` when repeated or not text. Problems with headers nobody asks for
   * are never reported.
   */
  text(name) {
    const slot = this.#slots.get(name);
    if (slot === undefined) {
      throw new Error(`${name} was not picked`);
    }
    if (slot.state === ABSENT) {
      return null;
    }
    if (slot.state === TWICE) {
      throw new HeaderProblem(name, REPEATED);
    }
    const text = textOf(slot.value);
    if (text === null) {
      throw new HeaderProblem(name, NOT_TEXT);
    }
    return trimBlanks(text);
  }
}
