// The console at /console, driven in a real browser against a real gateway.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { browser, Gateway, PATIENCE, Receiver, SCREENSHOTS, screenshot, until } from "./harness.mjs";

let chromium;
before(async () => {
  chromium = await browser();
});
after(async () => {
  await chromium?.close();
});

async function open(gateway, hash) {
  const page = await chromium.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(PATIENCE);
  const errors = [];
  // Uncaught exceptions in the console's code; refused calls are expected in places.
  page.on("pageerror", (e) => errors.push(e));
  page.errors = errors;
  await page.goto(`${gateway.url}/console${hash}`);
  return page;
}

test("the console opens on the overview: the last hour charted, the failing channel linking to its page", async () => {
  const gateway = await Gateway.start(["--retry-schedule", "300ms"]);
  const ok = await Receiver.start();
  const bad = await Receiver.start();
  bad.answer = () => 500;
  try {
    await gateway.watch("/shop/orders", "orders-feed", ok.url);
    await gateway.watch("/shop/refunds", "refunds-hook", bad.url);
    await ok.until((got) => got.length === 1, "got the sync");
    const event = (resource, n) => ({ resource, state: "exists", data: { n } });
    await gateway.publish([1, 2, 3, 4, 5].map((n) => event("/shop/orders/o", n)));
    await gateway.publish([1, 2].map((n) => event("/shop/refunds/r", n)));
    await ok.until((got) => got.length === 6, "got the five events");
    await until(async () => (await gateway.ok("GET", "/v1/overview")).failingHostCount === 1, "its host fails");
    // The receiver has its answer before the gateway has recorded it; the page shows what is recorded.
    await until(
      async () => (await gateway.ok("GET", "/v1/channels/orders-feed")).delivery.pendingCount === 0,
      "the five deliveries are recorded",
    );

    // No view asked for: the overview.
    const page = await open(gateway, "");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    assert.equal(await page.getByRole("link", { name: "Overview" }).getAttribute("aria-current"), "page");
    const tile = (label) => page.locator(".tile", { hasText: label }).locator(".value");
    assert.equal(await tile("Backlog").innerText(), "3", "the refunds channel owes its sync and two events");
    assert.equal(await tile("Published").innerText(), "7");
    const notifications = page.locator("figure", { hasText: "Notifications per minute" });
    assert.match(await notifications.locator("figcaption").innerText(), /6 delivered/);
    // Bars of this minute, drawn from the counts: the delivered one as tall as 6.
    const delivered = notifications.locator("rect.delivered");
    assert.equal(await delivered.count(), 1);
    assert.equal(await delivered.getAttribute("data-count"), "6");
    assert.ok(Number(await delivered.getAttribute("height")) > 0);
    assert.ok((await notifications.locator("rect.failed").count()) >= 1, "the failed attempts have a bar");
    const published = page.locator("figure", { hasText: "Events published per minute" });
    assert.equal(await published.locator("rect.published").getAttribute("data-count"), "7");
    const failing = page.locator("section", { has: page.getByRole("heading", { name: "Failing channels" }) });
    const row = failing.locator("tbody tr", { hasText: "refunds-hook" });
    assert.match(await row.innerText(), /httpStatus: the receiver answered 500/);
    assert.doesNotMatch(await failing.innerText(), /orders-feed/);
    const hosts = page.locator("section", { has: page.getByRole("heading", { name: "Receiving hosts in trouble" }) });
    assert.match(await hosts.innerText(), new RegExp(new URL(bad.url).host));

    // It refreshes by itself.
    await gateway.publish([6, 7].map((n) => event("/shop/orders/o", n)));
    await notifications.locator("figcaption", { hasText: "8 delivered" }).waitFor();
    if (SCREENSHOTS) {
      // For the picture only: a few minutes of uneven traffic, some of it to a receiver
      // that refuses one notification in four, so that it shows the bars of a gateway
      // at work rather than one minute's. Paced, not waited on.
      const flaky = await Receiver.start();
      let answered = 0;
      flaky.answer = () => (++answered % 4 === 0 ? 503 : 204);
      await gateway.watch("/shop/stock", "stock-sync", flaky.url);
      const start = Date.now();
      let sent = 8;
      for (let i = 0; Date.now() < start + 4 * 60_000; i++) {
        const minute = Math.floor((Date.now() - start) / 60_000);
        const size = [2, 9, 4, 12][minute % 4] + (i % 3);
        await gateway.publish(Array.from({ length: size }, (_, n) => event("/shop/orders/o", n)));
        await gateway.publish(event("/shop/stock/s", i));
        sent += size;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      await ok.until((got) => got.length === sent, "got every event");
      // Drawn again since.
      const updated = page.locator(".updated");
      await updated.filter({ hasNotText: await updated.innerText() }).waitFor();
      flaky.close();
    }
    await screenshot(page, "console-overview");

    await row.getByRole("link", { name: "refunds-hook" }).click();
    await page.getByRole("heading", { name: "Channel refunds-hook" }).waitFor();
    assert.match(page.url(), /#\/channels\/refunds-hook\?owner=dev$/);
    const delivery = page.locator("section", { has: page.getByRole("heading", { name: "Delivery" }) }).first();
    assert.match(await delivery.innerText(), /httpStatus: the receiver answered 500/);
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    ok.close();
    bad.close();
    await gateway.close();
  }
});

test("the console lists the channels created through the API, with their delivery state", async () => {
  // A channel expiring within `--expiring-notice` (24 h by default) gets a
  // `channel.expiring` event in the log at the next expiry sweep, which would move the
  // log head under the page on a slow run: this one's hour is outside the notice.
  const gateway = await Gateway.start(["--expiring-notice", "10m"]);
  const rx = await Receiver.start();
  try {
    await gateway.watch("/calendars/primary/events", "calendar-sync", rx.url, { ttl: "3600" });
    await gateway.watch("/drive/files/report", "drive-report", rx.url);
    await gateway.watch("/b/photos/o", "photos", rx.url, { maxRate: "20" });
    await rx.until((got) => got.length === 3, "got the three syncs");
    await gateway.publish({ resource: "/calendars/primary/events", state: "exists", data: { summary: "Lunch" } });
    await rx.until((got) => got.length === 4, "got the event");
    // The receiver has its answer before the gateway has recorded it: the page shows
    // what is recorded, so wait for the calendar's outcome to be committed.
    await until(
      async () => (await gateway.ok("GET", "/v1/channels/calendar-sync")).delivery.pendingCount === 0,
      "the event's delivery is recorded",
    );

    const page = await open(gateway, "#/channels");
    const rows = page.locator("main table tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 3);
    const calendar = rows.filter({ hasText: "calendar-sync" });
    assert.match(await calendar.innerText(), /\/calendars\/primary\/events/);
    assert.match(await calendar.innerText(), /0000000000000001/, "the cursor it reached");
    assert.match(await calendar.innerText(), /\bopen\b/, "its host is open");
    // A channel whose resource had no event since it was made owes nothing: it is up to
    // date with the log, not behind it at its own first cursor.
    const drive = rows.filter({ hasText: "drive-report" });
    assert.match(await drive.innerText(), /up to date 0000000000000001/);
    await screenshot(page, "console-channels");

    // One channel in full, reached by its link.
    await calendar.getByRole("link", { name: "calendar-sync" }).click();
    await page.getByRole("heading", { name: "Channel calendar-sync" }).waitFor();
    const log = page.locator("section", { has: page.getByRole("heading", { name: "Delivery log" }) });
    await log.locator("tbody tr").first().waitFor();
    assert.match(await log.innerText(), /sync/);
    assert.match(await log.innerText(), /delivered/);
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    rx.close();
    await gateway.close();
  }
});

test("a failing channel shows its error and when it retries; replay and enable work by clicking", async () => {
  // Disabled after 5 s of failures, so the test can enable it again; long enough that
  // on a loaded machine the page still finds a retry due when it first renders.
  const gateway = await Gateway.start(["--retry-schedule", "300ms", "--disable-after", "5s"]);
  const rx = await Receiver.start();
  try {
    await gateway.watch("/orders", "orders", rx.url);
    await rx.until((got) => got.length === 1, "got the sync");
    await gateway.publish([
      { resource: "/orders/1", state: "exists", data: { n: 1 } },
      { resource: "/orders/2", state: "exists", data: { n: 2 } },
    ]);
    await rx.until((got) => got.length === 3, "got both events");
    rx.answer = () => 503;
    await gateway.publish({ resource: "/orders/3", state: "exists", data: { n: 3 } });
    await rx.until((got) => got.some((n) => n.number === 4), "was sent the third event");
    await until(async () => (await gateway.ok("GET", "/v1/channels/orders")).delivery.nextRetry, "a retry is due");

    const page = await open(gateway, "#/channels/orders");
    const delivery = page.locator("section", { has: page.getByRole("heading", { name: "Delivery" }) }).first();
    await page.getByRole("heading", { name: "Channel orders" }).waitFor();
    assert.match(await delivery.innerText(), /httpStatus: the receiver answered 503/);
    // A retry time (it may just have passed: retries come every 300 ms here).
    const retry = delivery.locator("dt:text('Next retry') + dd time");
    assert.ok(Date.parse(await retry.getAttribute("datetime")) > Date.now() - 60_000);
    // The log filtered to what is pending shows the failing notification's attempts.
    await page.getByLabel("Status").selectOption("pending");
    await page.waitForURL(/status=pending/);
    const log = page.locator("section", { has: page.getByRole("heading", { name: "Delivery log" }) });
    const pending = log.locator("table").first();
    // Until the filtered page replaces the whole log, delivered rows are still shown.
    await until(async () => {
      const shown = await pending.innerText().catch(() => "");
      return /\bpending\b/.test(shown) && !/\bdelivered\b/.test(shown);
    }, "the log shows only what is pending");
    assert.match(await pending.innerText(), /\b4\b.*pending/s);
    await pending.getByRole("button", { name: "Attempts" }).first().click();
    assert.match(await page.locator("tr.detail").first().innerText(), /503/);
    await screenshot(page, "console-channel");

    // Disabled after failing for 5 s: the console says so, and Enable resumes it.
    await until(async () => !(await gateway.ok("GET", "/v1/channels/orders")).delivery.enabled, "disabled");
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.getByText("no (disabled after failing").waitFor();
    rx.answer = () => 204;
    const before = rx.got.length;
    await page.getByRole("button", { name: "Enable" }).click();
    await page.getByText("The channel is enabled.").waitFor();
    await rx.until((got) => got.slice(before).some((n) => n.number === 4), "got the third event after Enable");
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("dd", { hasText: /^yes$/ }).first().waitFor();

    // Replay from the sync's cursor: both earlier events again, same numbers, in order.
    const sent = rx.got.length;
    await page.getByLabel("From after cursor").fill("0000000000000000");
    await page.getByRole("button", { name: "Replay", exact: true }).click();
    await page.getByText(/Replaying after 0000000000000000/).waitFor();
    await rx.until((got) => got.length >= sent + 3, "got the replayed notifications");
    assert.deepEqual(
      rx.got.slice(sent, sent + 3).map((n) => n.number),
      [2, 3, 4],
    );
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    rx.close();
    await gateway.close();
  }
});

test("Renew on a channel's page moves its expiration and shows the new one", async () => {
  const gateway = await Gateway.start();
  const rx = await Receiver.start();
  try {
    // A minute to live; Renew gives it the default lifetime (7 days) from now.
    await gateway.watch("/renewals", "renewable", rx.url, { ttl: "60" });
    await rx.until((got) => got.length === 1, "got the sync");
    const before = Number((await gateway.ok("GET", "/v1/channels/renewable")).expiration);

    const page = await open(gateway, "#/channels/renewable");
    await page.getByRole("heading", { name: "Channel renewable" }).waitFor();
    await page.getByRole("button", { name: "Renew" }).click();
    const notice = page.getByRole("alert").filter({ hasText: "Renewed" });
    await notice.waitFor();
    const after = Number((await gateway.ok("GET", "/v1/channels/renewable")).expiration);
    assert.ok(after > before + 24 * 3600 * 1000, `renewed from ${before} to ${after}`);
    const shown = new Date(after).toISOString();
    assert.match(await notice.innerText(), new RegExp(`now expires ${shown}`));
    // The page was drawn again with it.
    await page.getByText(`It expires ${shown}.`).waitFor();
    // Id, resource id and numbering stay: the next event is delivered as before.
    await gateway.publish({ resource: "/renewals/x", state: "exists" });
    await rx.until((got) => got.length === 2 && got[1].channel === "renewable", "got the event after renewing");
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    rx.close();
    await gateway.close();
  }
});

test("the live view shows an event published through the API; the publish form publishes", async () => {
  const gateway = await Gateway.start();
  try {
    const page = await open(gateway, "#/live");
    await page.getByLabel("Resource (and everything below it)").fill("/calendars/primary");
    await page.getByRole("button", { name: "Follow" }).click();
    await page.getByText("Following /calendars/primary").waitFor();
    await gateway.publish({ resource: "/calendars/primary/events/ev1", state: "exists", data: { summary: "Lunch" } });
    await gateway.publish({ resource: "/elsewhere", state: "exists" });
    await gateway.publish({ resource: "/calendars/primary/events/ev2", state: "not_exists" });
    const events = page.locator("ol.events li");
    await events.nth(1).waitFor();
    assert.equal(await events.count(), 2, "only what is under the resource");
    assert.match(await events.nth(0).innerText(), /0000000000000001 exists \/calendars\/primary\/events\/ev1 \{"summary":"Lunch"\}/);
    assert.match(await events.nth(1).innerText(), /0000000000000003 not_exists/);
    await screenshot(page, "console-live");

    // The publish form, in the same tab: the live view's stream ends when leaving it.
    await page.getByRole("link", { name: "Publish" }).click();
    await page.getByLabel("Resource").fill("/calendars/primary/events/ev3");
    await page.getByLabel("Data (JSON, optional)").fill('{"summary": "Dinner"}');
    await page.getByRole("button", { name: "Publish" }).click();
    await page.getByText("Published.").waitFor();
    const changes = await gateway.ok("GET", "/v1/changeset?resource=/calendars/primary/events/ev3&_expected=0");
    assert.ok(JSON.stringify(changes).includes("Dinner"), JSON.stringify(changes));
    // Bad input: the gateway's own message, as it worded it.
    await page.getByLabel("Resource").fill("no-leading-slash");
    await page.getByRole("button", { name: "Publish" }).click();
    const alert = page.getByRole("alert");
    await alert.filter({ hasText: "400" }).waitFor();
    const { body } = await gateway.call("POST", "/v1/events", { resource: "no-leading-slash", state: "exists" });
    assert.ok((await alert.innerText()).includes(body.error.message), await alert.innerText());

    await page.getByRole("link", { name: "Cluster" }).click();
    await page.getByRole("cell", { name: /embedded \(this one\)/ }).waitFor();
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    await gateway.close();
  }
});

test("a key-protected gateway refuses without the key and works with it", async () => {
  const key = "console-test-key-0123456789";
  const gateway = await Gateway.start(["--api-key", key, "--allow-targets", "127.0.0.0/8"], { dev: false });
  gateway.key = key;
  const rx = await Receiver.start();
  try {
    await gateway.watch("/secured", "secured-channel", rx.url);
    const page = await open(gateway, "#/channels");
    await page.getByRole("heading", { name: "API key" }).waitFor();
    const refusal = await fetch(`${gateway.url}/v1/channels`);
    const message = (await refusal.json()).error.message;
    await page.getByText(message).waitFor();
    await screenshot(page, "console-key");

    await page.getByLabel("Key").fill("not-the-key");
    await page.getByRole("button", { name: "Use this key" }).click();
    await page.getByRole("heading", { name: "API key" }).waitFor();
    await page.getByText(/invalid|not valid|unknown/i).first().waitFor();

    await page.getByLabel("Key").fill(key);
    await page.getByRole("button", { name: "Use this key" }).click();
    await page.getByRole("link", { name: "secured-channel" }).waitFor();
    assert.ok(!page.url().includes(key), "the key is never in a URL");
    // Kept for the tab: a reload still works without asking.
    await page.reload();
    await page.getByRole("link", { name: "secured-channel" }).waitFor();
    // A new tab asks again.
    const other = await open(gateway, "#/channels");
    await other.getByRole("heading", { name: "API key" }).waitFor();
    await other.close();
    await page.getByRole("button", { name: "Forget key" }).click();
    await page.getByRole("heading", { name: "API key" }).waitFor();
    await page.close();
  } finally {
    rx.close();
    await gateway.close();
  }
});
