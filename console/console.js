// The watchwire console: every view is a function of the URL's hash that calls the
// API and draws the answer. Errors are shown as the gateway words them.

import { ApiError, call, follow, heldKey, holdKey } from "./api.js";
import { minuteChart } from "./chart.js";
import { facts, failure, field, h, table, when } from "./dom.js";

const main = document.querySelector("main");
const notice = document.getElementById("notice");
const keyStatus = document.getElementById("key-status");

/** The current view's clean-up (the live view's stream, the overview's refresh), run
 * when leaving it. */
let leave = () => {};

/** How often the overview asks again. */
const OVERVIEW_REFRESH_MS = 5000;

const views = [
  [/^#\/overview$/, () => overviewView()],
  [/^#\/channels\/([^/?]+)$/, (id, q) => channelView(decodeURIComponent(id), q)],
  [/^#\/channels$/, (q) => channelsView(q)],
  [/^#\/watchers$/, (q) => watchersView(q)],
  [/^#\/live$/, (q) => liveView(q)],
  [/^#\/publish$/, () => publishView()],
  [/^#\/cluster$/, () => clusterView()],
];

async function route() {
  leave();
  leave = () => {};
  say(null);
  const [path, search = ""] = (location.hash || "#/overview").split("?");
  const query = new URLSearchParams(search);
  for (const link of document.querySelectorAll("nav a")) {
    const current = path.startsWith(link.getAttribute("href"));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const match = views.find(([pattern]) => pattern.test(path));
  if (!match) return show(h("h1", {}, "Not found"), h("p", {}, `Nothing is at ${path}.`));
  const [pattern, view] = match;
  const params = path.match(pattern).slice(1);
  try {
    await view(...params, query);
  } catch (e) {
    failed(e);
  }
}

/** Replaces the view's content and moves focus to its heading. */
function show(...content) {
  main.replaceChildren(...content);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** A status line for the user: kind is "ok" or "error"; null clears it. */
function say(text, kind = "ok") {
  notice.replaceChildren();
  notice.className = kind;
  if (text) notice.append(text);
}

function failed(e) {
  if (e instanceof ApiError && e.status === 401) return askForKey(e.message);
  if (e instanceof ApiError) {
    const reason = e.reason ? ` (${e.reason})` : "";
    return say(`${e.status || ""} ${e.message}${reason}`.trim(), "error");
  }
  say(String(e.message ?? e), "error");
}

/** Runs an action's call, says how it went, and redraws the view. */
async function act(button, work, done) {
  button.disabled = true;
  try {
    const answer = await work();
    await route();
    say(done(answer));
  } catch (e) {
    failed(e);
  } finally {
    button.disabled = false;
  }
}

function showKeyStatus() {
  keyStatus.replaceChildren();
  if (heldKey()) {
    keyStatus.append(
      "API key held for this tab. ",
      h("button", { type: "button", onclick: () => (holdKey(null), showKeyStatus(), route()) }, "Forget key"),
    );
  }
}

function askForKey(message) {
  const input = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: (event) => {
        event.preventDefault();
        holdKey(input.value.trim());
        showKeyStatus();
        route();
      },
    },
    h("h1", {}, "API key"),
    h("p", {}, message),
    h("p", {}, "The key is kept for this tab only and sent in the Authorization header."),
    field("Key", input),
    h("button", { type: "submit" }, "Use this key"),
  );
  show(form);
  input.focus();
}

function pager(query, next) {
  const links = [];
  if (query.get("pageToken")) {
    const first = new URLSearchParams(query);
    first.delete("pageToken");
    links.push(h("a", { href: `${location.hash.split("?")[0]}?${first}` }, "First page"));
  }
  if (next) {
    const after = new URLSearchParams(query);
    after.set("pageToken", next);
    links.push(h("a", { href: `${location.hash.split("?")[0]}?${after}` }, "Next page"));
  }
  return h("p", { class: "pager" }, links);
}

function pageQuery(query, extra = {}) {
  const out = new URLSearchParams(extra);
  if (query.get("pageToken")) out.set("pageToken", query.get("pageToken"));
  return out.toString();
}

function hostCell(delivery) {
  if (!delivery.host) return "—";
  const { state, until } = delivery.host;
  // The state holds now; `until` is when it ends, not when it begins.
  const ends = until ? [", ends ", when(until)] : state === "backingOff" ? ", until a probe succeeds" : null;
  return h("span", { class: `host ${state}` }, state, ends);
}

/** How far a channel got: its own cursor lags on a quiet channel, so one owing nothing is up to date with the log. */
function reached(delivery) {
  if (delivery.pendingCount > 0) return h("code", {}, delivery.cursor);
  return h(
    "span",
    { title: `Nothing pending: done with the log up to ${delivery.logHead}; its own last event is at ${delivery.cursor}.` },
    "up to date ",
    h("code", {}, delivery.logHead),
  );
}

function deliveryCells(delivery) {
  return [
    h("td", {}, reached(delivery)),
    h("td", { class: "number" }, delivery.pendingCount),
    h("td", {}, delivery.enabled ? "yes" : h("strong", {}, "disabled")),
    h("td", {}, hostCell(delivery)),
    h("td", {}, failure(delivery.lastError)),
    h("td", {}, when(delivery.nextRetry)),
  ];
}

const DELIVERY_COLUMNS = ["Cursor reached", "Pending", "Enabled", "Host", "Last error", "Next retry"];

/** A channel's page; with its owner for an operator looking at another owner's. */
function channelLink(id, owner) {
  const query = owner ? `?${new URLSearchParams({ owner })}` : "";
  return h("a", { href: `#/channels/${encodeURIComponent(id)}${query}` }, id);
}

function tile(label, value, hint) {
  return h("div", { class: "tile" }, h("span", { class: "label" }, label), h("span", { class: "value" }, value), hint);
}

/** What GET /v1/overview answered, drawn. */
function overviewParts(o) {
  const sum = (key) => o.minutes.reduce((total, minute) => total + minute[key], 0);
  const clustered = o.nodes.length > 1 || o.missing.length > 0 || o.nodes[0] !== "embedded";
  const missing = o.missing.length
    ? h(
        "div",
        { class: "missing", role: "note" },
        h("strong", {}, "Not counted: "),
        o.missing.map((n, i) => [i ? "; " : "", `node ${n.id} (${n.address}): ${n.reason}`]),
        ". The figures below are the other nodes' only.",
      )
    : null;
  const channels = o.failingChannels.length
    ? table(
        o.failingChannelCount > o.failingChannels.length
          ? `The ${o.failingChannels.length} failing the longest of ${o.failingChannelCount}`
          : `${o.failingChannelCount} failing channel${o.failingChannelCount === 1 ? "" : "s"}, failing the longest first`,
        ["Channel", "Owner", "Address", "Last error", "Failing since", "Pending", "Enabled", clustered ? "Node" : null].filter(Boolean),
        o.failingChannels.map((c) =>
          h(
            "tr",
            {},
            h("td", {}, channelLink(c.id, c.owner)),
            h("td", {}, c.owner),
            h("td", { class: "address" }, c.address),
            h("td", {}, failure(c.lastError)),
            h("td", {}, when(c.failingSince)),
            h("td", { class: "number" }, c.pendingCount),
            h("td", {}, c.enabled ? "yes" : h("strong", {}, "disabled")),
            clustered ? h("td", {}, c.node ?? "—") : null,
          ),
        ),
      )
    : h("p", {}, "No channel is failing.");
  const hosts = o.failingHosts.length
    ? table(
        o.failingHostCount > o.failingHosts.length
          ? `The ${o.failingHosts.length} worst of ${o.failingHostCount}`
          : `${o.failingHostCount} host${o.failingHostCount === 1 ? "" : "s"} in trouble, the worst first`,
        ["Host", "State", "Failures in a row", clustered ? "Node" : null].filter(Boolean),
        o.failingHosts.map((host) =>
          h(
            "tr",
            {},
            h("td", { class: "address" }, host.host),
            h("td", {}, hostCell({ host: { state: host.state, until: host.until } })),
            h("td", { class: "number" }, host.failures),
            clustered ? h("td", {}, host.node ?? "—") : null,
          ),
        ),
      )
    : h("p", {}, "Every receiving host answers.");
  return [
    missing,
    h(
      "div",
      { class: "tiles" },
      tile("Backlog", o.backlog, h("small", {}, "notifications owed")),
      tile("Delivered", sum("delivered"), h("small", {}, "in the last hour")),
      tile("Failed attempts", sum("failed"), h("small", {}, "in the last hour")),
      tile("Published", sum("published"), h("small", {}, "events in the last hour")),
    ),
    minuteChart("Notifications per minute", o.minutes, [
      { key: "delivered", label: "delivered" },
      { key: "failed", label: "failed attempts" },
    ]),
    minuteChart("Events published per minute", o.minutes, [{ key: "published", label: "published" }]),
    h("section", { "aria-labelledby": "failing-channels" }, h("h2", { id: "failing-channels" }, "Failing channels"), channels),
    h("section", { "aria-labelledby": "failing-hosts" }, h("h2", { id: "failing-hosts" }, "Receiving hosts in trouble"), hosts),
  ].filter(Boolean);
}

async function overviewView() {
  const openedAs = location.hash;
  let first;
  try {
    first = await call("GET", "/v1/overview");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 403)) throw e;
    return show(
      h("h1", {}, "Overview"),
      h("p", {}, e.message),
      h("p", {}, "The overview needs a key with the admin scope. ", h("a", { href: "#/channels" }, "Channels"), " show this key's own."),
    );
  }
  // Left while the first answer was on its way: nothing to draw or refresh.
  if (location.hash !== openedAs) return;
  const body = h("div", { class: "overview" }, overviewParts(first));
  const updated = h("p", { class: "updated" });
  const stamp = (o) => {
    const nodes = o.nodes.length > 1 ? ` from ${o.nodes.length} nodes` : "";
    updated.textContent = `As of ${new Date(o.at).toLocaleTimeString()}${nodes}; refreshed every ${OVERVIEW_REFRESH_MS / 1000} s.`;
  };
  stamp(first);
  show(h("h1", {}, "Overview"), updated, body);
  // Redrawn in place (focus stays where it is) until the view is left; the next ask
  // goes out once the last is answered.
  let stopped = false;
  let failing = false;
  let timer = null;
  const refresh = async () => {
    try {
      const o = await call("GET", "/v1/overview");
      if (stopped) return;
      body.replaceChildren(...overviewParts(o));
      stamp(o);
      if (failing) say(null);
      failing = false;
    } catch (e) {
      if (stopped) return;
      failing = true;
      if (e instanceof ApiError && e.status === 401) {
        stopped = true;
        return failed(e);
      }
      failed(e);
    }
    if (!stopped) timer = setTimeout(refresh, OVERVIEW_REFRESH_MS);
  };
  timer = setTimeout(refresh, OVERVIEW_REFRESH_MS);
  leave = () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function channelsView(query) {
  const page = await call("GET", `/v1/channels?${pageQuery(query)}`);
  const clustered = page.items.some((c) => "node" in c.delivery);
  const rows = page.items.map((c) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/channels/${encodeURIComponent(c.id)}` }, c.id)),
      h("td", {}, h("code", {}, c.resource)),
      h("td", { class: "address" }, c.address),
      deliveryCells(c.delivery),
      clustered ? h("td", {}, c.delivery.node ?? "—") : null,
    ),
  );
  show(
    h("h1", {}, "Channels"),
    h("p", {}, h("button", { type: "button", onclick: route }, "Refresh")),
    page.items.length
      ? table(
          `${page.items.length} channel${page.items.length === 1 ? "" : "s"} on this page`,
          ["ID", "Resource", "Address", ...DELIVERY_COLUMNS, clustered ? "Node" : null].filter(Boolean),
          rows,
        )
      : h("p", {}, "No channels yet. Create one with a watch call (see docs/api.md)."),
    pager(query, page.nextPageToken),
  );
}

/** A path with `owner=` added when the view acts on another owner's channel. */
function asOwner(path, owner) {
  if (!owner) return path;
  return `${path}${path.includes("?") ? "&" : "?"}${new URLSearchParams({ owner })}`;
}

/** An expiration as the API gives it (ms as a string) in words. */
function expires(expiration) {
  return expiration ? `expires ${new Date(Number(expiration)).toISOString()}` : "never expires";
}

async function channelView(id, query) {
  // An operator reaches another owner's channel with ?owner= (the overview links so).
  const owner = query.get("owner");
  const path = `/v1/channels/${encodeURIComponent(id)}`;
  const channel = await call("GET", asOwner(path, owner));
  if (channel.state !== "active") {
    return show(
      h("h1", {}, `Channel ${id}`),
      facts([
        ["State", channel.state],
        ["Removed", when(channel.removedAt)],
        ["Why", channel.removedReason],
        ["Address", channel.address],
      ]),
    );
  }
  const d = channel.delivery;
  const status = query.get("status") ?? "";
  const logQuery = { ...(status ? { status } : {}), ...(owner ? { owner } : {}) };
  const log = await call("GET", `${path}/notifications?${pageQuery(query, logQuery)}`);
  const watcher = channel.kind === "watchwire#watcher";

  const sinceInput = h("input", {
    name: "since",
    required: true,
    pattern: "[0-9a-f]{16}",
    placeholder: "0000000000000000",
    spellcheck: "false",
    value: "0000000000000000",
  });
  const stateInput = h("input", { name: "state", required: true, value: "exists", list: "states" });
  const dataInput = h("textarea", { name: "data", rows: 3 }, '{"test": true}');
  const eventResource = h("input", { name: "resource", required: true, value: channel.resource });

  const actions = h(
    "section",
    { "aria-labelledby": "actions" },
    h("h2", { id: "actions" }, "Actions"),
    h(
      "div",
      { class: "actions" },
      h(
        "form",
        {
          class: "card",
          onsubmit: (event) => {
            event.preventDefault();
            const button = event.submitter;
            act(button, () => publish(eventResource.value, stateInput.value, dataInput.value), (a) =>
              `Published at cursor ${a.cursor}.`,
            );
          },
        },
        h("h3", {}, "Send a test event"),
        field("Resource", eventResource, watcher ? "A path under the watcher's pattern." : null),
        field("State", stateInput),
        field("Data (JSON, optional)", dataInput),
        h("button", { type: "submit" }, "Send test event"),
      ),
      h(
        "form",
        {
          class: "card",
          onsubmit: (event) => {
            event.preventDefault();
            act(event.submitter, () => call("POST", asOwner(`${path}/replay`, owner), { since: sinceInput.value }), (a) =>
              a.replaying ? `Replaying after ${a.since} up to ${a.upto}.` : "Nothing to replay after that cursor.",
            );
          },
        },
        h("h3", {}, "Replay"),
        field("From after cursor", sinceInput, "Re-sends what the channel matched after it, with the same message numbers."),
        h("button", { type: "submit" }, "Replay"),
      ),
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Enable or stop"),
        h(
          "button",
          {
            type: "button",
            onclick: (event) =>
              act(event.currentTarget, () => call("POST", asOwner(`${path}/enable`, owner)), () => "The channel is enabled."),
          },
          "Enable",
        ),
        " ",
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: (event) => {
              if (!confirm(`Stop ${id}? No notification is sent after this.`)) return;
              const stop = watcher
                ? () => call("DELETE", asOwner(`/v1/watchers/${encodeURIComponent(id)}`, owner))
                : () => call("POST", asOwner("/channels/stop", owner), { id, resourceId: channel.resourceId });
              act(event.currentTarget, stop, () => `${id} is stopped.`);
            },
          },
          watcher ? "Delete watcher" : "Stop channel",
        ),
      ),
      // Watchers never expire.
      watcher
        ? null
        : h(
            "div",
            { class: "card" },
            h("h3", {}, "Renew"),
            h("p", {}, `It ${expires(channel.expiration)}. Renewing gives it the default lifetime from now.`),
            h(
              "button",
              {
                type: "button",
                onclick: (event) =>
                  act(event.currentTarget, () => call("POST", asOwner(`${path}/renew`, owner), {}), (renewed) =>
                    `Renewed: the channel now ${expires(renewed.expiration)}.`,
                  ),
              },
              "Renew",
            ),
          ),
    ),
  );

  const filter = h(
    "select",
    {
      onchange: (event) => {
        const next = new URLSearchParams();
        if (event.target.value) next.set("status", event.target.value);
        if (owner) next.set("owner", owner);
        location.hash = `#/channels/${encodeURIComponent(id)}?${next}`;
      },
    },
    ["", "pending", "delivered", "failed"].map((s) =>
      h("option", { value: s, selected: s === status }, s || "all"),
    ),
  );

  show(
    h("h1", {}, `${watcher ? "Watcher" : "Channel"} ${id}`),
    h("p", {}, h("button", { type: "button", onclick: route }, "Refresh")),
    h(
      "section",
      { "aria-labelledby": "delivery", class: "columns" },
      h("h2", { id: "delivery" }, "Delivery"),
      facts([
        ["Cursor reached", reached(d)],
        ["Pending", d.pendingCount],
        ["Enabled", d.enabled ? "yes" : "no (disabled after failing; Enable resumes it)"],
        ["Replaying", d.replaying ? "yes" : "no"],
        ["Host", hostCell(d)],
        ["Last error", failure(d.lastError)],
        ["Next retry", when(d.nextRetry)],
        ["Failing since", when(d.failingSince)],
        "node" in d ? ["Node", d.node ?? "—"] : null,
      ].filter(Boolean)),
      facts([
        ["Resource", h("code", {}, channel.resource)],
        ["Type", channel.type],
        ["Address", channel.address],
        ["Resource ID", h("code", {}, channel.resourceId)],
        ["Expiration", channel.expiration ? when(new Date(Number(channel.expiration)).toISOString()) : "never"],
        ["Token", channel.token ?? "—"],
        ["Params", channel.params ? h("code", {}, JSON.stringify(channel.params)) : "—"],
        ["Filter", channel.filter ? h("code", {}, JSON.stringify(channel.filter)) : "none: every event"],
        // The API shows only the type and what is not secret.
        ["Endpoint auth", channel.auth ? h("code", {}, JSON.stringify(channel.auth)) : "none"],
      ]),
    ),
    actions,
    h(
      "section",
      { "aria-labelledby": "log" },
      h("h2", { id: "log" }, "Delivery log"),
      field("Status", filter),
      log.items.length
        ? table(
            "Notifications, in message-number order",
            ["Message", "State", "Cursor", "Status", "Attempts", "Last attempt", "Last error", "Next retry", ""],
            log.items.flatMap(logRows),
          )
        : h("p", {}, "No notifications match."),
      pager(query, log.nextPageToken),
    ),
  );
}

function logRows(entry) {
  const detail = h(
    "tr",
    { class: "detail", hidden: true },
    h(
      "td",
      { colspan: 9 },
      table(
        `Recent attempts of message ${entry.messageNumber}`,
        ["At", "Took", "Status", "Reason", "Answer"],
        entry.recentAttempts.map((a) =>
          h(
            "tr",
            {},
            h("td", {}, when(a.at)),
            h("td", { class: "number" }, `${a.durationMs} ms`),
            // A receiver's HTTP status, or a broker's acknowledgement (acked, duplicate).
            h("td", {}, a.status ?? a.brokerStatus ?? "—"),
            h("td", {}, a.reason ? `${a.reason}: ${a.detail}` : "—"),
            h("td", {}, a.response ? h("code", {}, a.response) : "—"),
          ),
        ),
      ),
    ),
  );
  const toggle = h(
    "button",
    {
      type: "button",
      "aria-expanded": "false",
      onclick: () => {
        detail.hidden = !detail.hidden;
        toggle.setAttribute("aria-expanded", String(!detail.hidden));
      },
    },
    "Attempts",
  );
  const row = h(
    "tr",
    { class: `status-${entry.status}` },
    h("td", { class: "number" }, entry.messageNumber),
    h("td", {}, entry.state),
    h("td", {}, h("code", {}, entry.cursor)),
    h("td", {}, entry.status),
    h("td", { class: "number" }, entry.attempts),
    h("td", {}, when(entry.lastAttemptAt)),
    h("td", {}, failure(entry.lastError)),
    h("td", {}, when(entry.nextRetry)),
    h("td", {}, entry.recentAttempts.length ? toggle : null),
  );
  return [row, detail];
}

async function watchersView(query) {
  const page = await call("GET", `/v1/watchers?${pageQuery(query)}`);
  const pattern = h("input", { required: true, placeholder: "/apps/mail", spellcheck: "false" });
  const endpoint = h("input", { type: "url", required: true, placeholder: "https://hooks.example.com/mail" });
  const filter = h("input", { placeholder: '{"data.status": "paid"}', spellcheck: "false" });
  show(
    h("h1", {}, "Watchers"),
    page.items.length
      ? table(
          `${page.items.length} watcher${page.items.length === 1 ? "" : "s"} on this page`,
          ["ID", "Pattern", "Endpoint", ...DELIVERY_COLUMNS],
          page.items.map((w) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `#/channels/${encodeURIComponent(w.id)}` }, w.id)),
              h("td", {}, h("code", {}, w.pattern)),
              h("td", { class: "address" }, w.endpoint),
              deliveryCells(w.delivery),
            ),
          ),
        )
      : h("p", {}, "No watchers yet."),
    pager(query, page.nextPageToken),
    h(
      "form",
      {
        class: "card",
        onsubmit: (event) => {
          event.preventDefault();
          const body = { pattern: pattern.value, endpoint: endpoint.value };
          // As text: the gateway checks it and says where it is wrong.
          if (filter.value.trim()) body.filter = filter.value.trim();
          act(event.submitter, () => call("POST", "/v1/watchers", body), (w) => `Watcher ${w.id} created.`);
        },
      },
      h("h2", {}, "New watcher"),
      field("Path prefix", pattern),
      field("Endpoint", endpoint),
      field("Filter (optional)", filter, "Only events it matches, as JSON."),
      h("button", { type: "submit" }, "Create watcher"),
    ),
  );
}

function publish(resource, state, dataText) {
  const event = { resource, state };
  if (dataText.trim()) {
    try {
      event.data = JSON.parse(dataText);
    } catch (e) {
      return Promise.reject(new Error(`Data is not JSON: ${e.message}`));
    }
  }
  return call("POST", "/v1/events", event);
}

function publishView() {
  const resource = h("input", { required: true, placeholder: "/calendars/primary/events", spellcheck: "false" });
  const state = h("input", { required: true, value: "exists", list: "states" });
  const data = h("textarea", { rows: 6 }, "");
  const answer = h("pre", { class: "answer", "aria-live": "polite" });
  show(
    h("h1", {}, "Publish"),
    h(
      "form",
      {
        class: "card",
        onsubmit: async (event) => {
          event.preventDefault();
          const button = event.submitter;
          button.disabled = true;
          try {
            const published = await publish(resource.value, state.value, data.value);
            answer.textContent = JSON.stringify(published, null, 2);
            say("Published.");
          } catch (e) {
            failed(e);
          } finally {
            button.disabled = false;
          }
        },
      },
      field("Resource", resource),
      field("State", state),
      field("Data (JSON, optional)", data),
      h("button", { type: "submit" }, "Publish"),
    ),
    answer,
  );
}

function liveView(query) {
  const resource = h("input", { value: query.get("resource") ?? "", placeholder: "everything", spellcheck: "false" });
  const filter = h("input", { value: query.get("filter") ?? "", placeholder: '{"state": "exists"}', spellcheck: "false" });
  const status = h("p", { class: "stream-status", role: "status" }, "Not following.");
  const list = h("ol", { class: "events", "aria-label": "Events, newest last" });
  let stop = null;
  const end = () => {
    if (stop) stop();
    stop = null;
  };
  leave = end;
  show(
    h("h1", {}, "Live"),
    h(
      "form",
      {
        class: "card inline",
        onsubmit: (event) => {
          event.preventDefault();
          end();
          list.replaceChildren();
          status.textContent = "Connecting…";
          stop = follow(resource.value.trim(), filter.value.trim(), {
            onEvent: (e) =>
              list.append(
                h(
                  "li",
                  {},
                  h("code", {}, e.cursor),
                  " ",
                  h("strong", {}, e.state),
                  " ",
                  h("code", {}, e.resource),
                  e.data === null || e.data === undefined ? null : [" ", h("code", { class: "data" }, JSON.stringify(e.data))],
                ),
              ),
            onStatus: (state, text) => {
              status.textContent =
                state === "following"
                  ? `Following ${resource.value.trim() || "every resource"}: new events appear below.`
                  : text;
              status.className = `stream-status ${state}`;
            },
          });
        },
      },
      field("Resource (and everything below it)", resource),
      field("Filter (optional)", filter),
      h("button", { type: "submit" }, "Follow"),
      h("button", { type: "button", onclick: () => (end(), (status.textContent = "Stopped.")) }, "Stop"),
    ),
    status,
    list,
  );
}

async function clusterView() {
  const cluster = await call("GET", "/v1/cluster");
  show(
    h("h1", {}, "Cluster"),
    table(
      `${cluster.nodes.length} node${cluster.nodes.length === 1 ? "" : "s"}`,
      ["Node", "Address", "Channels", "Started", "Last heartbeat", "Lease until", "State"],
      cluster.nodes.map((n) =>
        h(
          "tr",
          {},
          h("td", {}, n.id, n.self ? " (this one)" : ""),
          h("td", {}, n.address),
          h("td", { class: "number" }, n.channels),
          h("td", {}, when(n.startedAt)),
          h("td", {}, when(n.lastHeartbeat)),
          h("td", {}, when(n.leaseUntil)),
          h("td", {}, n.leaving ? "leaving" : "serving"),
        ),
      ),
    ),
  );
}

window.addEventListener("hashchange", route);
showKeyStatus();
route();
