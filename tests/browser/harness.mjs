// What the browser tests share: a real gateway as a child process, real webhook
// receivers, and Debian's chromium driven by playwright-core.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const BIN = process.env.WATCHWIRE_BIN ?? new URL("../../target/debug/watchwire", import.meta.url).pathname;
const CHROMIUM = process.env.WATCHWIRE_CHROMIUM ?? "/usr/bin/chromium";
/** Where screenshots go when asked for (`WATCHWIRE_SCREENSHOTS=docs`). */
const SHOTS = process.env.WATCHWIRE_SCREENSHOTS;
/** Whether this run takes screenshots. */
export const SCREENSHOTS = Boolean(SHOTS);

/** How long a test waits for something that should happen. */
export const PATIENCE = 15_000;

/** A `watchwire serve` child process on 127.0.0.1 with a data directory of its own. */
export class Gateway {
  static async start(flags = [], { dev = true } = {}) {
    const gateway = new Gateway(mkdtempSync(join(tmpdir(), "watchwire-browser-")), flags, dev);
    await gateway.run("127.0.0.1:0");
    return gateway;
  }

  constructor(dir, flags, dev) {
    this.dir = dir;
    this.flags = flags;
    this.dev = dev;
    this.key = null;
  }

  async run(listen) {
    const args = ["serve", "--listen", listen, "--data-dir", this.dir, "--log", "error", ...this.flags];
    if (this.dev) args.push("--dev");
    this.child = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.exited = exited;
    const lines = createInterface({ input: this.child.stdout });
    this.url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the gateway did not start")), PATIENCE);
      lines.on("line", (line) => {
        const prefix = "watchwire listening on ";
        if (line.startsWith(prefix)) {
          clearTimeout(timer);
          resolve(line.slice(prefix.length).trim());
        }
      });
      exited.then((code) => reject(new Error(`the gateway exited (${code}) before listening`)));
    });
  }

  /** Stops it with SIGTERM (streams get `event: shutdown`) and starts it again on the
   * same address and data directory. */
  async restart() {
    await this.stop();
    await this.run(new URL(this.url).host);
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    await this.exited;
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Calls the API (with the gateway's key, if it has one); answers {status, body}. */
  async call(method, path, body) {
    const headers = body === undefined ? {} : { "content-type": "application/json" };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    const response = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  async ok(method, path, body) {
    const answer = await this.call(method, path, body);
    if (answer.status >= 300) {
      throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }

  watch(resource, id, address, params) {
    const body = { id, type: "web_hook", address };
    if (params) body.params = params;
    return this.ok("POST", `${resource}/watch`, body);
  }

  publish(events) {
    return this.ok("POST", "/v1/events", events);
  }
}

/** A webhook receiver: records every notification; `answer` decides the status. */
export class Receiver {
  static async start() {
    const receiver = new Receiver();
    await new Promise((resolve) => receiver.server.listen(0, "127.0.0.1", resolve));
    receiver.url = `http://127.0.0.1:${receiver.server.address().port}/hook`;
    return receiver;
  }

  constructor() {
    this.got = [];
    this.answer = () => 204;
    this.server = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        this.got.push({
          channel: request.headers["x-goog-channel-id"],
          number: Number(request.headers["x-goog-message-number"]),
          state: request.headers["x-goog-resource-state"],
          body,
        });
        response.writeHead(this.answer(request)).end();
      });
    });
  }

  /** Waits until `test` holds for what arrived. */
  until(test, what) {
    return until(() => test(this.got), `${what} (got ${this.got.length} notifications)`);
  }

  close() {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** Waits until `test` (async) answers something truthy. */
export async function until(test, what) {
  const deadline = Date.now() + PATIENCE;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`never ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A headless chromium from Debian's package. */
export async function browser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** Saves a screenshot of the page as `name.png` when screenshots were asked for. */
export async function screenshot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}
