// The gateway's API as the console calls it. The key lives in this tab's
// sessionStorage only and travels in the Authorization header, never in a URL.

const KEY = "watchwire.key";

export function heldKey() {
  return sessionStorage.getItem(KEY);
}

export function holdKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** A refusal, worded as the gateway worded it. */
export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message);
    this.status = status;
    this.reason = reason;
  }

  static from(status, text) {
    let envelope = null;
    try {
      envelope = JSON.parse(text).error;
    } catch {
      // Not the error envelope (a proxy's page, say): show the text as it came.
    }
    if (envelope && typeof envelope.message === "string") {
      const reason = envelope.errors?.[0]?.reason ?? envelope.status ?? "";
      return new ApiError(status, reason, envelope.message);
    }
    return new ApiError(status, "", text.trim() || `HTTP ${status}`);
  }
}

function headers(extra = {}) {
  const out = { ...extra };
  const key = heldKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

/** Calls the API; answers the JSON body (or null), or throws an ApiError. */
export async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `The gateway cannot be reached (${e.message}).`);
  }
  const text = await response.text();
  if (!response.ok) throw ApiError.from(response.status, text);
  return text ? JSON.parse(text) : null;
}

/**
 * Follows `/v1/watch` for a resource: every event once, in order, across cut-offs
 * and restarts (it reconnects with Last-Event-ID, as EventSource would; fetch is used
 * because EventSource cannot send the key in a header). Returns a stop function.
 */
export function follow(resource, filter, { onEvent, onStatus }) {
  const controller = new AbortController();
  let last = null;
  let stopped = false;
  const query = new URLSearchParams({ checkpoints: "true" });
  if (resource) query.set("resource", resource);
  if (filter) query.set("filter", filter);

  async function once() {
    const extra = last ? { "Last-Event-ID": last } : {};
    const response = await fetch(`/v1/watch?${query}`, {
      headers: headers(extra),
      signal: controller.signal,
    });
    if (!response.ok) throw ApiError.from(response.status, await response.text());
    onStatus("following", null);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (frame.id) last = frame.id;
        if (frame.event === "cutoff" || frame.event === "shutdown") {
          onStatus("reconnecting", `The gateway ended the stream (${frame.event}); resuming after ${last}.`);
        } else if (frame.event !== "checkpoint" && frame.data) {
          onEvent(JSON.parse(frame.data));
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
        if (!stopped) onStatus("reconnecting", "The stream ended; resuming.");
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
          onStatus("stopped", e.message);
          return;
        }
        onStatus("reconnecting", `Lost the stream (${e.message}); retrying.`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();

  return () => {
    stopped = true;
    controller.abort();
  };
}

function parseFrame(text) {
  const frame = { id: null, event: "message", data: "" };
  const data = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") frame.id = value;
    else if (field === "event") frame.event = value;
    else if (field === "data") data.push(value);
  }
  frame.data = data.join("\n");
  return frame;
}
