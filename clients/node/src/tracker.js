// Per-channel de-duplication and ordering checks (docs/api.md §1, §5, §11): delivery is
// at least once and in order per channel, so a receiver sees a duplicate only after a
// retry or a replay, and a number below the highest only if something went wrong.

/** How a notification's message number relates to those seen before on its channel. */
export const Arrival = Object.freeze({
  /** Higher than every number seen on the channel (or the first one seen). */
  NEW: 'new',
  /** A number already seen: a retry or a replay of a notification already handled. */
  DUPLICATE: 'duplicate',
  /**
   * Lower than the highest number seen, and not remembered as seen. Numbers below the
   * tracker's window are reported here, since whether they were seen is forgotten.
   */
  OUT_OF_ORDER: 'outOfOrder',
});

/** Message numbers remembered per channel, by default. */
export const DEFAULT_WINDOW = 256;
/** Channels remembered, by default. */
export const DEFAULT_MAX_CHANNELS = 4096;

/** The tracker's verdict on one notification. */
export class Observation {
  /**
   * @param {'new' | 'duplicate' | 'outOfOrder'} arrival
   * @param {{ previousNumber: bigint, lastSeen: bigint } | null} gap a new notification
   *   whose `X-Watchwire-Previous-Number` is not the last number seen: the
   *   notifications in between never arrived (yet)
   */
  constructor(arrival, gap = null) {
    this.arrival = arrival;
    this.gap = gap;
    Object.freeze(this);
  }

  get isNew() {
    return this.arrival === Arrival.NEW;
  }

  get isDuplicate() {
    return this.arrival === Arrival.DUPLICATE;
  }

  get isOutOfOrder() {
    return this.arrival === Arrival.OUT_OF_ORDER;
  }

  toJSON() {
    const num = (n) => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : String(n));
    return {
      arrival: this.arrival,
      gap: this.gap && { previousNumber: num(this.gap.previousNumber), lastSeen: num(this.gap.lastSeen) },
    };
  }
}

function toBigInt(n, what) {
  if (typeof n === 'bigint') return n;
  if (Number.isSafeInteger(n)) return BigInt(n);
  throw new TypeError(`${what} must be a bigint or a safe integer`);
}

/** Index of `n` in the ascending `list`, or `-(insertion point) - 1`. */
function search(list, n) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid] < n) lo = mid + 1;
    else if (list[mid] > n) hi = mid;
    else return mid;
  }
  return -lo - 1;
}

/**
 * Classifies notifications per channel as new, duplicate or out of order, and flags
 * gaps. Memory is bounded: per channel the `window` highest message numbers seen, and at
 * most `maxChannels` channels (the least recently seen is forgotten first).
 *
 * A channel id reused for a new channel (after `channels.stop`) starts again at message
 * number 1; call `forget(id)` when creating it.
 */
export class Tracker {
  // Channel id → ascending bigints. A Map iterates in insertion order, and each
  // observation moves its channel to the end, so the first key is the least recently seen.
  #channels = new Map();
  #window;
  #maxChannels;

  /** @param {{ window?: number, maxChannels?: number }} [limits] each at least 1 */
  constructor({ window = DEFAULT_WINDOW, maxChannels = DEFAULT_MAX_CHANNELS } = {}) {
    if (!Number.isSafeInteger(window) || !Number.isSafeInteger(maxChannels)) {
      throw new TypeError('window and maxChannels are whole numbers');
    }
    this.#window = Math.max(window, 1);
    this.#maxChannels = Math.max(maxChannels, 1);
  }

  /** Records a notification and classifies it. */
  observe(notification) {
    return this.observeNumber(notification.channelId, notification.messageNumber, notification.previousNumber);
  }

  /**
   * Records `number` on `channelId`, with the sender's previous number if known.
   * Numbers are bigints or safe integers.
   */
  observeNumber(channelId, number, previousNumber = null) {
    const n = toBigInt(number, 'number');
    const previous = previousNumber === null || previousNumber === undefined ? null : toBigInt(previousNumber, 'previousNumber');
    let recent = this.#channels.get(channelId);
    if (recent === undefined) {
      if (this.#channels.size >= this.#maxChannels) {
        this.#channels.delete(this.#channels.keys().next().value);
      }
      recent = [];
    } else {
      this.#channels.delete(channelId);
    }
    this.#channels.set(channelId, recent);

    let observation;
    if (recent.length === 0) {
      // With no history there is nothing to compare a previous number with.
      observation = new Observation(Arrival.NEW);
    } else {
      const highest = recent[recent.length - 1];
      if (n > highest) {
        const gap = previous !== null && previous !== highest ? { previousNumber: previous, lastSeen: highest } : null;
        observation = new Observation(Arrival.NEW, gap);
      } else if (search(recent, n) >= 0) {
        return new Observation(Arrival.DUPLICATE);
      } else {
        observation = new Observation(Arrival.OUT_OF_ORDER);
      }
    }
    const at = search(recent, n);
    if (at < 0) recent.splice(-at - 1, 0, n);
    if (recent.length > this.#window) recent.shift();
    return observation;
  }

  /**
   * Takes back the record of `number` on `channelId`, after handling a new or
   * out-of-order notification failed and the sender is told to try again (5xx): its
   * retry is then new again instead of a duplicate. Never retract a duplicate: its
   * number was recorded by an earlier delivery. A number that pushed an older one out
   * of the window does not bring it back.
   */
  retract(channelId, number) {
    const recent = this.#channels.get(channelId);
    if (recent === undefined) return;
    const at = search(recent, toBigInt(number, 'number'));
    if (at >= 0) recent.splice(at, 1);
  }

  /** Forgets a channel's history. */
  forget(channelId) {
    this.#channels.delete(channelId);
  }

  /** How many channels are remembered. */
  get channelCount() {
    return this.#channels.size;
  }

  /** The remembered numbers of a channel, ascending (for tests and diagnostics). */
  recent(channelId) {
    return [...(this.#channels.get(channelId) ?? [])];
  }
}
