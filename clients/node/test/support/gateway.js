// A `watchwire serve` child process for the end-to-end test, started the way the Rust
// tests start one (tests/common/process.rs): on 127.0.0.1:0, in a fresh data
// directory, ready once it prints `watchwire listening on http://…`.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** Long enough for a loaded CI machine; a passing run takes well under a second. */
export const PATIENCE_MS = 30_000;

export class Gateway {
  constructor(child, url, dataDir, stderr) {
    this.child = child;
    this.url = url;
    this.dataDir = dataDir;
    this.stderr = stderr;
  }

  /** Starts `bin serve --dev` with `extra` flags and waits for its listening line. */
  static async start(bin, extra = []) {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'watchwire-node-e2e-'));
    const args = ['serve', '--dev', '--listen', '127.0.0.1:0', '--log', 'warn', '--data-dir', dataDir, '--allow-targets', '127.0.0.0/8', '--retry-schedule', '20ms,40ms', ...extra];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stderr = [];
    child.stderr.on('data', (chunk) => stderr.push(chunk));
    const lines = createInterface({ input: child.stdout });
    let timer;
    try {
      const url = await new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no listening line within ${PATIENCE_MS} ms`)), PATIENCE_MS);
        child.once('error', reject);
        child.once('exit', (code, signal) => reject(new Error(`watchwire exited (${code ?? signal}) before listening`)));
        lines.on('line', (line) => {
          const m = /^watchwire listening on (http:\/\/\S+)/.exec(line);
          if (m) resolve(m[1].replace(/\/$/, ''));
        });
      });
      return new Gateway(child, url, dataDir, stderr);
    } catch (e) {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      throw new Error(`${e.message}; stderr:\n${Buffer.concat(stderr).toString()}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** `method path` with a JSON body (a string is sent as it is); `{ status, json }`. */
  async request(method, urlPath, body) {
    const response = await fetch(this.url + urlPath, {
      method,
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(PATIENCE_MS),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : null, text };
  }

  /** Stops the gateway (SIGTERM, then SIGKILL after the deadline) and removes its data. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), PATIENCE_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * Resolves once `condition()` holds, checking it now and each time `emitter` emits
 * `event`; rejects with `what` after the deadline.
 */
export function when(emitter, event, condition, what, ms = PATIENCE_MS) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!condition()) return;
      clearTimeout(timer);
      emitter.off(event, check);
      resolve();
    };
    const timer = setTimeout(() => {
      emitter.off(event, check);
      reject(new Error(`${what} did not happen within ${ms} ms`));
    }, ms);
    emitter.on(event, check);
    check();
  });
}
