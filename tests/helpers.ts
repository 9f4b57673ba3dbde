// Shared test helpers: start fixture programs as real processes and talk to them.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { loadRuntime } from "../src/detect.ts";
import type { ChildProcess, ExitStatus, Runtime } from "../src/runtime.ts";

export const runtime: Runtime = await loadRuntime();

/** The HTTP servers a dispatcher can serve with here: node:http everywhere, and Deno.serve or Bun.serve. */
export const HTTP_SERVERS: readonly ("node" | "native")[] = runtime.name === "node" ? ["node"] : ["node", "native"];

/** Absolute path of a file under tests/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** A running fixture process with its output collected. */
export interface Proc {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line that parses as JSON and passes `test`. */
  line<T = Record<string, unknown>>(test?: (v: T) => boolean, timeoutMs?: number): Promise<T>;
  /** Resolves when stderr matches `re`. */
  waitStderr(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when stdout matches `re`. */
  waitStdout(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<ExitStatus>;
}

export function start(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
  cmd: string[] = runtime.selfCommand(script),
): Proc {
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  const decoder = new TextDecoder();
  const child = runtime.spawn({
    cmd: [...cmd, ...args],
    env: { NO_COLOR: "1", ...env },
    onStdout: (chunk) => {
      out += decoder.decode(chunk);
      wake();
    },
    onStderr: (chunk) => {
      err += decoder.decode(chunk);
      wake();
    },
  });
  let ended = false;
  const exited = child.exited.then((status) => {
    ended = true;
    wake();
    return status;
  });
  function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(poll);
        reject(new Error(`Timed out waiting for ${what}\nstdout: ${out}\nstderr: ${err}`));
      }, timeoutMs);
      const poll = () => {
        const value = check();
        if (value !== undefined) {
          clearTimeout(timer);
          waiters.delete(poll);
          resolve(value);
        } else if (ended) {
          clearTimeout(timer);
          waiters.delete(poll);
          reject(new Error(`Process exited while waiting for ${what}\nstdout: ${out}\nstderr: ${err}`));
        }
      };
      waiters.add(poll);
      poll();
    });
  }
  return {
    child,
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    line<T>(test: (v: T) => boolean = () => true, timeoutMs = 20_000) {
      return waitFor(
        () => {
          for (const l of out.split("\n")) {
            if (!l.startsWith("{")) continue;
            try {
              const v = JSON.parse(l) as T;
              if (test(v)) return v;
            } catch {
              // not JSON
            }
          }
          return undefined;
        },
        timeoutMs,
        "a JSON line on stdout",
      );
    },
    waitStderr(re, timeoutMs = 20_000) {
      return waitFor(() => re.exec(err)?.[0], timeoutMs, `stderr matching ${re}`);
    },
    waitStdout(re, timeoutMs = 20_000) {
      return waitFor(() => re.exec(out)?.[0], timeoutMs, `stdout matching ${re}`);
    },
    exited,
  };
}

/** A dispatcher fixture started on a free port. */
export interface App extends Proc {
  port: number;
  url: string;
  /** Sends SIGTERM and waits for the exit status. */
  stop(): Promise<ExitStatus>;
}

/**
 * The command that runs `script` with its channels over pipes: on Deno with fewer than all permissions (no write,
 * ffi or import), which rules out the socket channel; Bun and Node always use pipes.
 */
export function pipesCommand(script: string): string[] {
  if (runtime.name !== "deno") return runtime.selfCommand(script);
  const allow = ["read", "env", "run", "net", "sys"].map((p) => `--allow-${p}`);
  return [runtime.selfCommand(script)[0], "run", ...allow, script];
}

/**
 * Starts a dispatcher fixture. `pipes`: on Deno, with fewer than all permissions, so that the channel runs over
 * the worker's stdin and stdout instead of a socket (Bun and Node: the same start either way).
 */
export async function startApp(
  name: string,
  env: Record<string, string> = {},
  { pipes = false }: { pipes?: boolean } = {},
): Promise<App> {
  const script = fixture(name);
  const proc = start(script, [], { PORT: "0", ...env }, pipes ? pipesCommand(script) : runtime.selfCommand(script));
  const { port } = await proc.line<{ port: number }>((v) => typeof v.port === "number");
  return {
    ...proc,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      proc.child.kill("SIGTERM");
      return await proc.exited;
    },
  };
}

/** GET on a new connection each time (so that the kernel picks a listener anew): status and the body as text. */
export function getFresh(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, headers: { connection: "close" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/**
 * Bytes with a pattern that shows any shift, loss or reordering: no two parts of a body share it, and `seed` tells
 * bodies apart.
 */
export function pattern(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/** Whether a process with this pid exists and is not a zombie (exited, waiting to be reaped). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The spill directories and files of process `pid` in /dev/shm (none where there is no /dev/shm). */
export function spillsOf(pid: number): string[] {
  if (!existsSync("/dev/shm")) return [];
  return readdirSync("/dev/shm").filter((name) => name.startsWith(`forkyard-${pid}-`));
}

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GET over HTTPS trusting `ca`. */
export function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** fetch + JSON body. */
export async function getJson(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, headers: res.headers };
}

/**
 * GETs `url`, which must time out: 504 `{"error":"Request timeout"}` after between `atLeast` and `below` ms.
 */
export async function assertTimesOut(url: string, atLeast: number, below: number): Promise<void> {
  const t0 = Date.now();
  const res = await getJson(url);
  const took = Date.now() - t0;
  assert.equal(res.status, 504);
  assert.deepEqual(res.body, { error: "Request timeout" });
  assert.ok(took >= atLeast && took < below, `504 after ${took} ms, expected ${atLeast}-${below} ms`);
}

/** What a load run saw. */
export interface Accounting {
  sent: number;
  answered: number;
  /** Requests that got no HTTP answer (connection refused or reset). */
  refused: number;
  byStatus: Record<string, number>;
  /** Every request: when it was sent (ms since the run began) and its status (0: no answer). */
  log: { t: number; status: number; path: string }[];
}

/** How a load run sends: on a new connection each time (`fresh`), and who sees each answer's body. */
export interface LoadOptions {
  /** A new connection per request, so that the kernel picks a listener anew (several dispatchers). */
  fresh?: boolean;
  /** Sees each answer's status and body text. */
  answered?: (status: number, text: string) => void;
}

/**
 * Steady load from this process: `concurrency` loops each sending one request
 * after another until `stop()` is called. `path` may vary per request.
 */
export function load(
  base: string,
  concurrency: number,
  path: string | (() => string),
  options: LoadOptions = {},
) {
  const t0 = Date.now();
  const acc: Accounting = { sent: 0, answered: 0, refused: 0, byStatus: {}, log: [] };
  let running = true;
  const loop = async () => {
    while (running) {
      const p = typeof path === "string" ? path : path();
      const t = Date.now() - t0;
      acc.sent++;
      let status = 0;
      try {
        let text: string;
        if (options.fresh) ({ status, text } = await getFresh(base + p));
        else {
          const res = await fetch(base + p);
          text = await res.text();
          status = res.status;
        }
        options.answered?.(status, text);
        acc.answered++;
        acc.byStatus[status] = (acc.byStatus[status] ?? 0) + 1;
      } catch {
        acc.refused++;
        if (running) await new Promise((r) => setTimeout(r, 10));
      }
      acc.log.push({ t, status, path: p });
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    acc,
    elapsed: () => Date.now() - t0,
    async stop(label = "load"): Promise<Accounting> {
      running = false;
      await Promise.all(loops);
      console.log(
        `[${runtime.name}] ${label}: sent ${acc.sent}, answered ${acc.answered}, no answer ${acc.refused}, by status ${
          JSON.stringify(acc.byStatus)
        }`,
      );
      return acc;
    },
  };
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One worker as `/sync/status` of the app fixture reports it. */
export type WorkerInfo = {
  id: number;
  pid: number;
  alive: boolean;
  restarts: number;
  lastExitReason: string | null;
  served: number;
};

/** The workers of a pool of the app fixture (through its `/sync/status` route). */
export async function poolWorkers(url: string, pool = "main"): Promise<WorkerInfo[]> {
  const res = await getJson(`${url}/sync/status`);
  return res.body.pools.find((p: { name: string }) => p.name === pool).workers;
}

/**
 * Writes GETs of `paths` to `/names/query?x=N` of tests/fixtures/app.ts on one connection at once; resolves with the
 * `x` of each answer, in the order they came.
 */
export function pipelined(port: number, paths: string[]): Promise<string[]> {
  return new Promise<string[]>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    const bodies = () => [...data.matchAll(/\{"query":\{"x":"(\d+)"\}/g)].map((m) => m[1]);
    socket.on("data", (chunk: Buffer) => {
      data += chunk.toString("latin1");
      if (bodies().length === paths.length) socket.destroy();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(bodies()));
    socket.on("connect", () => socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join("")));
  });
}
