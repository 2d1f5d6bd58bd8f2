// IMF-fixdate (RFC 9110 §5.6.7), the format of `X-Goog-Channel-Expiration`:
// `Tue, 19 Nov 2013 01:13:52 GMT`. Read exactly as the Rust library reads it (chrono's
// `%a, %d %b %Y %H:%M:%S GMT`): blanks between fields may be absent or repeated, numbers
// may have fewer digits, names are case-insensitive, and the weekday must be the date's.

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
// Rust's `char::is_whitespace` (Unicode White_Space), which differs from JavaScript's `\s`.
const WHITESPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*/u;
const WHITESPACE_END = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/u;
// chrono's date range: years -262144 to 262143.
const MIN_YEAR = -262144;
const MAX_YEAR = 262143;

/** Days from 1970-01-01 to a proleptic Gregorian date. */
export function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(year, month) {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

class Scanner {
  constructor(s) {
    this.s = s;
  }

  space() {
    this.s = this.s.replace(WHITESPACE, '');
  }

  literal(text) {
    if (!this.s.startsWith(text)) throw new SyntaxError(`expected ${text}`);
    this.s = this.s.slice(text.length);
  }

  /** 1 to `max` ASCII digits, after any blanks. */
  number(max) {
    this.space();
    const m = /^[0-9]+/.exec(this.s.slice(0, max));
    if (!m) throw new SyntaxError('expected a number');
    this.s = this.s.slice(m[0].length);
    return Number(m[0]);
  }

  /** A year: up to 4 digits, or a sign and any number of digits. */
  year() {
    this.space();
    const sign = this.s[0];
    if (sign === '+' || sign === '-') {
      const m = /^[0-9]+/.exec(this.s.slice(1));
      if (!m) throw new SyntaxError('expected a year');
      this.s = this.s.slice(1 + m[0].length);
      const n = BigInt(m[0]);
      if (n > BigInt(MAX_YEAR) + 1n) throw new RangeError('year out of range');
      return sign === '-' ? -Number(n) : Number(n);
    }
    return this.number(4);
  }

  /** One of `names` by its first three letters, in any letter case. */
  name(names) {
    const i = names.indexOf(this.s.slice(0, 3).replace(/[A-Z]/g, (c) => c.toLowerCase()));
    if (i < 0 || this.s.length < 3) throw new SyntaxError('expected a name');
    this.s = this.s.slice(3);
    return i;
  }
}

/** Parses an IMF-fixdate into ms since the Unix epoch, or null. */
export function parseHttpDate(text) {
  const sc = new Scanner(text.replace(WHITESPACE, '').replace(WHITESPACE_END, ''));
  let weekday, day, month, year, hour, minute, second;
  try {
    weekday = sc.name(WEEKDAYS);
    sc.literal(',');
    sc.space();
    day = sc.number(2);
    sc.space();
    month = sc.name(MONTHS) + 1;
    sc.space();
    year = sc.year();
    sc.space();
    hour = sc.number(2);
    sc.literal(':');
    minute = sc.number(2);
    sc.literal(':');
    second = sc.number(2);
    sc.space();
    sc.literal('GMT');
  } catch {
    return null;
  }
  if (sc.s !== '') return null;
  if (year < MIN_YEAR || year > MAX_YEAR) return null;
  if (day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;
  const days = daysFromCivil(year, month, day);
  // 1970-01-01 was a Thursday (index 3 from Monday).
  if ((((days + 3) % 7) + 7) % 7 !== weekday) return null;
  // A leap second (:60) counts as the second after :59, as chrono's milliseconds do.
  return ((days * 24 + hour) * 60 + minute) * 60000 + second * 1000;
}
