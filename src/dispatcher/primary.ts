/**
 * Several dispatchers per host (option `dispatchers`): the primary, a small
 * process that starts that many dispatcher processes, which bind the same port
 * with SO_REUSEPORT, each with its share of every pool's workers. It restarts
 * a dispatcher that dies, with backoff, rolls a reload through them one at a
 * time, stops them, and answers for all of them: status, `sendConfig`,
 * `reload()`, `scale()`, and the metrics they report. WebSocket messages
 * published in one dispatcher pass through it to the others. How the process
 * runs as the primary is `run_primary.ts`; the channel's frames are in
 * `primary_protocol.ts`.
 *
 * @module
 */

import { createServer } from "node:net";
import type { PoolRunner, PoolStatus, WorkerPool } from "../pool.ts";
import { type AnyFrames, FrameDecoder, FrameWriter } from "../protocol/codec.ts";
import type { ChildProcess, Runtime } from "../runtime.ts";
import { Backoff } from "../supervisor/restart_policy.ts";
import type { Metrics, PoolSnapshot } from "./metrics.ts";
import { type CommandBody, DISPATCHER_ENV, P, type Report, share } from "./primary_protocol.ts";

/** Where the primary logs. */
export interface PrimaryLog {
  /** Logs an informational line. */
  info(message: string, properties?: Record<string, unknown>): void;
  /** Logs an error. */
  error(message: string, properties?: Record<string, unknown>): void;
  /** Logs a warning. */
  warning(message: string, properties?: Record<string, unknown>): void;
}

/** A free TCP port on `hostname`, for dispatchers that must all bind the same one when the option asks for any. */
function freePort(hostname: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, hostname, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** What the primary needs from its `Dispatcher`. */
export interface PrimaryHost {
  runtime: Runtime;
  pools: readonly WorkerPool[];
  dispatchers: number;
  port: number;
  hostname: string;
  /** Time a dispatcher gets to shut down before it is killed. */
  stopGrace: number;
  log: PrimaryLog;
  /** With the `admin` option: where the answers the dispatchers count are added up. */
  metrics: Metrics | null;
}

/** One dispatcher process as the primary sees it. */
interface Child {
  readonly index: number;
  process: ChildProcess | null;
  writer: FrameWriter<AnyFrames> | null;
  ready: boolean;
  statuses: PoolStatus[];
  /** Per pool name: workers replaced by why, as its current process last said. */
  replaced: Map<string, Record<string, number>>;
  pending: number;
  backoff: Backoff;
  startedAt: number;
  /** Waiting for its next READY. */
  readyWaiters: (() => void)[];
  /** Whether it ever listened. */
  everReady: boolean;
}

/** How long a dispatcher must stay up for its restart delay to start again from the first. */
const MIN_UPTIME = 5000;

/** The primary process: it serves nothing itself. */
export class Primary {
  readonly #host: PrimaryHost;
  readonly #children: Child[] = [];
  #port = 0;
  #stopping = false;
  #nextCommand = 1;
  readonly #waiting = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  /** Per pool name: workers replaced by why, in dispatcher processes that have exited. */
  readonly #retired = new Map<string, Map<string, number>>();
  /** While starting: fails the start, when a dispatcher exits before it ever listened. */
  #failedStart: ((error: Error) => void) | undefined;

  constructor(host: PrimaryHost) {
    this.#host = host;
  }

  /** The port every dispatcher listens on. */
  get port(): number {
    return this.#port;
  }

  /** Requests pending in all dispatchers, as they last said. */
  get pending(): number {
    return this.#children.reduce((n, c) => n + c.pending, 0);
  }

  /** Starts the dispatchers; resolves with the port once every one listens. */
  async start(): Promise<number> {
    const host = this.#host;
    this.#port = host.port !== 0 ? host.port : await freePort(host.hostname);
    for (const pool of host.pools) pool.attach(this.#runner(pool));
    for (let i = 0; i < host.dispatchers; i++) {
      const child: Child = {
        index: i,
        process: null,
        writer: null,
        ready: false,
        statuses: [],
        replaced: new Map(),
        pending: 0,
        backoff: new Backoff(100, 30_000),
        startedAt: 0,
        readyWaiters: [],
        everReady: false,
      };
      this.#children.push(child);
      this.#spawn(child);
    }
    await Promise.race([
      Promise.all(this.#children.map((c) => this.#whenReady(c))),
      new Promise<never>((_, reject) => (this.#failedStart = reject)),
    ]);
    this.#failedStart = undefined;
    return this.#port;
  }

  #whenReady(child: Child): Promise<void> {
    if (child.ready) return Promise.resolve();
    return new Promise((resolve) => child.readyWaiters.push(resolve));
  }

  #spawn(child: Child) {
    const { runtime } = this.#host;
    const decoder = new TextDecoder();
    const frames = new FrameDecoder((type, header, body, lent) => this.#onFrame(child, type, header, body, lent));
    // The program again, with its arguments, and what listening with SO_REUSEPORT needs.
    const command = runtime.selfCommand(runtime.mainModule());
    const script = command.pop()!;
    const proc = runtime.spawn({
      cmd: [...command, ...runtime.reusePortFlags, script, ...runtime.args()],
      env: { [DISPATCHER_ENV]: `${child.index}/${this.#host.dispatchers}:${this.#port}` },
      onStdout: (chunk) => frames.push(chunk),
      // The dispatcher's own output, on a pipe apart from the channel: passed through as it came.
      onText: (chunk) => runtime.writeStdout(decoder.decode(chunk, { stream: true })),
      onStderr: (chunk) => runtime.writeStderr(new TextDecoder().decode(chunk)),
    });
    child.process = proc;
    child.writer = new FrameWriter<AnyFrames>((bytes) => proc.write(bytes));
    child.ready = false;
    child.startedAt = Date.now();
    proc.exited.then((status) => {
      // One that cannot start at all (a program that does not load, a port in use) would only be restarted forever.
      if (!child.everReady && this.#failedStart !== undefined && status.code !== null && status.code !== 0) {
        this.#failedStart(new DispatcherFailed(child.index, status.code));
      }
      this.#onExit(child, proc, status.signal ?? `code ${status.code}`);
    });
  }

  #onFrame(child: Child, type: number, header: unknown, body: Uint8Array, lent: boolean) {
    if (type === P.READY) {
      child.ready = true;
      child.everReady = true;
      for (const done of child.readyWaiters.splice(0)) done();
    } else if (type === P.STATUS) {
      const report = header as Report;
      child.statuses = report.pools;
      child.replaced = new Map(report.pools.map((p, i) => [p.name, report.replaced[i] ?? {}]));
      child.pending = report.pending;
      if (report.metrics !== undefined) this.#host.metrics?.add(report.metrics);
    } else if (type === P.PUBLISH) {
      // The other dispatchers' sockets subscribed to the topic get it too, in the order this one published.
      const message = lent ? body.slice() : body;
      for (const other of this.#children) if (other !== child) other.writer?.send(P.PUBLISH, header, message);
    } else if (type === P.DONE) {
      const h = header as { id: number; r?: unknown; e?: string };
      const waiter = this.#waiting.get(h.id);
      this.#waiting.delete(h.id);
      if (h.e !== undefined) waiter?.reject(new Error(h.e));
      else waiter?.resolve(h.r);
    }
  }

  #onExit(child: Child, proc: ChildProcess, how: string) {
    if (child.process !== proc) return;
    child.process = null;
    child.writer = null;
    child.ready = false;
    child.statuses = [];
    child.pending = 0;
    for (const [pool, reasons] of child.replaced) {
      const total = this.#retired.get(pool) ?? new Map<string, number>();
      for (const [reason, n] of Object.entries(reasons)) total.set(reason, (total.get(reason) ?? 0) + n);
      this.#retired.set(pool, total);
    }
    child.replaced = new Map();
    if (this.#stopping) return;
    if (Date.now() - child.startedAt >= MIN_UPTIME) child.backoff.reset();
    const delay = child.backoff.next();
    this.#host.log.error("Dispatcher {index} (pid {pid}) exited ({how}); restarting in {delay} ms", {
      index: child.index,
      pid: proc.pid,
      how,
      delay,
    });
    setTimeout(() => {
      if (!this.#stopping && child.process === null) this.#spawn(child);
    }, delay);
  }

  /** Sends `command` to one dispatcher; resolves with its result. */
  #ask(child: Child, command: CommandBody): Promise<unknown> {
    if (child.writer === null) return Promise.resolve(undefined);
    const id = this.#nextCommand++;
    child.writer.send(P.COMMAND, { ...command, id });
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  /** Sends `command` to every running dispatcher at once. */
  #askAll(command: (child: Child) => CommandBody): Promise<unknown[]> {
    return Promise.all(this.#children.map((c) => this.#ask(c, command(c))));
  }

  /** What a pool's methods do in the primary: the same in every dispatcher, scaled to each one's share. */
  #runner(pool: WorkerPool): PoolRunner {
    const count = this.#host.dispatchers;
    return {
      status: () => this.#poolStatus(pool.name),
      broadcastConfig: (config) => void this.#askAll(() => ({ c: "config", pool: pool.name, config })),
      // A fire-and-forget request goes to one dispatcher, in turn.
      sendDetached: (request) => {
        const running = this.#children.filter((c) => c.ready);
        const child = running[this.#nextCommand % Math.max(1, running.length)];
        if (child !== undefined) void this.#ask(child, { c: "send", pool: pool.name, request });
      },
      // A remote pool's count is per host, and one dispatcher tells the hosts (`PoolHost.steers`).
      scale: (n) => {
        const remote = pool.options.remote !== null;
        void this.#askAll((c) => ({ c: "scale", pool: pool.name, n: remote ? n : share(n, c.index, count) }));
      },
      reload: () => this.#rolling({ c: "reload", pool: pool.name }),
    };
  }

  /**
   * A pool's status across dispatchers: every dispatcher's workers, with ids numbered on. A worker host's workers are
   * seen by every dispatcher and listed once.
   */
  #poolStatus(name: string): PoolStatus {
    const merged: PoolStatus = { name, workers: [], queueSize: 0, degraded: false, spares: [] };
    const hosted = new Set<string>();
    for (const child of this.#children) {
      const s = child.statuses.find((p) => p.name === name);
      if (s === undefined) continue;
      for (const w of s.workers) {
        if (w.host !== undefined) {
          const key = `${w.host}\0${w.pid}`;
          if (hosted.has(key)) continue;
          hosted.add(key);
        }
        merged.workers.push({ ...w, id: merged.workers.length });
      }
      merged.queueSize += s.queueSize;
      merged.degraded ||= s.degraded;
      merged.spares.push(...s.spares);
    }
    return merged;
  }

  /** Every pool's status across dispatchers. */
  statuses(): PoolStatus[] {
    return this.#host.pools.map((p) => this.#poolStatus(p.name));
  }

  /** Every pool's status and replacements across dispatchers, those that exited included, for the metrics. */
  snapshots(): PoolSnapshot[] {
    return this.#host.pools.map((p) => {
      const replaced = new Map(this.#retired.get(p.name));
      for (const child of this.#children) {
        for (const [reason, n] of Object.entries(child.replaced.get(p.name) ?? {})) {
          replaced.set(reason, (replaced.get(reason) ?? 0) + n);
        }
      }
      return { status: this.#poolStatus(p.name), replaced };
    });
  }

  /** Sends `command` to one dispatcher after another, each done before the next: resolves with the sum of results. */
  async #rolling(command: CommandBody): Promise<number> {
    let replaced = 0;
    for (const child of this.#children) {
      if (this.#stopping) break;
      replaced += Number(await this.#ask(child, command) ?? 0);
    }
    return replaced;
  }

  /** Rolling reload of every dispatcher's workers, one dispatcher at a time. */
  reload(): Promise<number> {
    return this.#rolling({ c: "reload" });
  }

  /** Stops every dispatcher gracefully; those still running after `stopGrace` are killed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const running = this.#children.map((c) => c.process).filter((p) => p !== null);
    for (const p of running) p.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const all = Promise.all(running.map((p) => p.exited));
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, this.#host.stopGrace, true)));
    if (await Promise.race([all.then(() => false), late])) {
      for (const p of running) p.kill("SIGKILL");
      await all;
    }
    clearTimeout(timer);
    for (const w of this.#waiting.values()) w.reject(new Error("Stopped"));
    this.#waiting.clear();
  }
}

/** A dispatcher that exited before it ever listened: the primary gives up with its exit status. */
export class DispatcherFailed extends Error {
  /** The dispatcher's exit status. */
  readonly status: number;

  constructor(index: number, status: number) {
    super(`dispatcher ${index} exited with status ${status} before it listened`);
    this.status = status;
  }
}
