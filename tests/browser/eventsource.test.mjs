// The browser's own EventSource on /v1/watch: when the gateway cuts the stream (here
// a restart), the browser reconnects by itself with Last-Event-ID and ends up with
// every event exactly once, in order.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { browser, Gateway, PATIENCE } from "./harness.mjs";

/** A page on another origin (the gateway allows any origin with --dev) that follows a
 * resource with EventSource and records what it gets. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>EventSource</title>
<script>
  window.got = [];
  window.opened = 0;
  const source = new EventSource(new URLSearchParams(location.search).get("stream"));
  source.onopen = () => window.opened++;
  source.addEventListener("exists", (e) => window.got.push({ id: e.lastEventId, data: JSON.parse(e.data).data }));
</script>`;

let chromium;
let site;
before(async () => {
  chromium = await browser();
  site = createServer((_, response) => response.writeHead(200, { "content-type": "text/html" }).end(PAGE));
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
});
after(async () => {
  await chromium?.close();
  site?.close();
});

async function follow(gateway, resource) {
  const page = await chromium.newPage();
  page.setDefaultTimeout(PATIENCE);
  const stream = `${gateway.url}/v1/watch?resource=${encodeURIComponent(resource)}`;
  await page.goto(`http://127.0.0.1:${site.address().port}/?stream=${encodeURIComponent(stream)}`);
  await page.waitForFunction(() => window.opened === 1);
  return page;
}

function publish(gateway, resource, from, to) {
  const events = [];
  for (let i = from; i < to; i++) events.push({ resource, state: "exists", data: { i } });
  return gateway.publish(events);
}

/** Every event once, in order: the data counts 0..n-1 and the ids only grow. */
async function expectExactlyOnceInOrder(page, n) {
  await page.waitForFunction((n) => window.got.length >= n, n);
  const got = await page.evaluate(() => window.got);
  assert.deepEqual(
    got.map((e) => e.data.i),
    [...Array(n).keys()],
  );
  for (let k = 1; k < got.length; k++) assert.ok(got[k].id > got[k - 1].id, `ids grow: ${got[k - 1].id}, ${got[k].id}`);
  return got;
}

test("EventSource resumes with Last-Event-ID across a gateway restart, nothing lost or repeated", async () => {
  const gateway = await Gateway.start();
  try {
    const page = await follow(gateway, "/feed");
    await publish(gateway, "/feed", 0, 5);
    await expectExactlyOnceInOrder(page, 5);

    // SIGTERM: the stream ends with `event: shutdown`; the gateway comes back on the
    // same address. Events published before the browser is back are caught up.
    await gateway.restart();
    await publish(gateway, "/feed", 5, 10);
    await page.waitForFunction(() => window.opened === 2);
    await publish(gateway, "/feed", 10, 15);
    await expectExactlyOnceInOrder(page, 15);
    await page.close();
  } finally {
    await gateway.close();
  }
});
