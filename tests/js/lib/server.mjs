// The real `trellis` binary for the matrix-js-sdk tests: started on 127.0.0.1 with an OS-chosen
// port, a throwaway database and rate limits off; stopped (killed if it lingers) by `stop()`.
// The binary comes from $TRELLIS_BIN, else $CARGO_TARGET_DIR/debug/trellis (default target dir
// ~/.cache/trellis-target), as for the Python client tests.

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const PASSWORD = "correct horse battery";
const LISTENING = /^trellis: client API listening on (http:\/\/127\.0\.0\.1:\d+)$/;

function binary() {
  if (process.env.TRELLIS_BIN) return process.env.TRELLIS_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), ".cache", "trellis-target");
  return join(target, "debug", "trellis");
}

/** Start a server; resolves to `{ baseUrl, log(), stop() }`. */
export async function startServer(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), "trellis-js-"));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TRELLIS_")));
  Object.assign(env, {
    TRELLIS_SERVER_NAME: "localhost",
    TRELLIS_LISTEN__CLIENT: "127.0.0.1:0",
    TRELLIS_DATABASE__PATH: join(dir, "db"),
    TRELLIS_RATE_LIMITS__ENABLED: "false",
    TRELLIS_METRICS__ENABLED: "false",
    ...extraEnv,
  });
  const logPath = join(dir, "server.log");
  const proc = spawn(binary(), [], { cwd: dir, env, stdio: ["ignore", "pipe", openSync(logPath, "w")] });
  const log = () => readFileSync(logPath, "utf8");
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`trellis did not start in 60 s:\n${log()}`)), 60_000);
    proc.once("exit", (code) => reject(new Error(`trellis exited (${code}):\n${log()}`)));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = LISTENING.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  return { baseUrl, log, stop };
}

/** One JSON request with a deadline; resolves to `{ status, body }`. */
export async function request(baseUrl, method, path, { token, body } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(baseUrl + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** Register `localpart` with the dummy stage; resolves to the login response. */
export async function register(baseUrl, localpart) {
  const body = { username: localpart, password: PASSWORD, auth: { type: "m.login.dummy" } };
  const r = await request(baseUrl, "POST", "/_matrix/client/v3/register", { body });
  if (r.status !== 200) throw new Error(`register ${localpart}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Resolve when `emitter` emits `event` with arguments that `test` accepts; reject after `ms`. */
export function waitFor(emitter, event, test, ms = 30_000, what = event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    function listener(...args) {
      if (test(...args)) {
        clearTimeout(timer);
        emitter.off(event, listener);
        resolve(args);
      }
    }
    emitter.on(event, listener);
  });
}

/** Poll `check` (sync or async) every 100 ms until it is truthy, for at most `ms`. */
export async function eventually(check, ms = 20_000, what = "condition") {
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
