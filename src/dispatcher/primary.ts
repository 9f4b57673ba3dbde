/**
 * Several dispatchers per host (option `dispatchers`): a small primary process
 * starts that many dispatcher processes, which bind the same port with
 * SO_REUSEPORT, each with its share of every pool's workers. The primary
 * restarts a dispatcher that dies, with backoff, rolls a reload through them
 * one at a time, stops them on SIGTERM, and answers for all of them: status,
 * `sendConfig`, `reload()`, `scale()`, the control socket and the admin
 * listener. WebSocket messages published in one dispatcher pass through it to
 * the others.
 *
 * Between the primary and each dispatcher runs a channel of its own, in
 * forkyard's frames: commands one way, readiness, statuses and results the
 * other.
 *
 * @module
 */

import { createServer } from "node:net";
import type { PoolRequest, PoolRunner, PoolStatus, WorkerPool } from "../pool.ts";
import { type AnyFrames, FrameDecoder, FrameWriter } from "../protocol/codec.ts";
import type { ChildProcess, HttpServer, Runtime } from "../runtime.ts";
import { Backoff } from "../supervisor/restart_policy.ts";
import { firstLine } from "../error_text.ts";
import { flushLogs } from "../logging/line_buffer.ts";
import type { ResolvedDispatcherOptions } from "./options.ts";
import type { Metrics, MetricsDelta, PoolSnapshot } from "./metrics.ts";
import type { AdminListener } from "./admin.ts";

/** Where the primary logs. */
export interface PrimaryLog {
  /** Logs an error. */
  error(message: string, properties?: Record<string, unknown>): void;
  /** Logs a warning. */
  warning(message: string, properties?: Record<string, unknown>): void;
}

/** Set in a dispatcher process the primary started: `index/count:port`. */
export const DISPATCHER_ENV = "FORKYARD_DISPATCHER";

/** Frames between the primary and its dispatchers. */
export const P = {
  /** Primary to dispatcher: {@linkcode Command}. */
  COMMAND: 1,
  /** Dispatcher to primary: listening, `{ port }`. */
  READY: 32,
  /** Dispatcher to primary, once a second: a {@linkcode Report}. */
  STATUS: 33,
  /** Dispatcher to primary: a command's result, `{ id, r }` or `{ id, e }`. */
  DONE: 34,
  /** Both ways: a WebSocket message published to a topic, {@linkcode Published}, the message as body. */
  PUBLISH: 35,
} as const;

/** What a dispatcher reports to the primary once a second. */
export interface Report {
  /** Its pools' status. */
  pools: PoolStatus[];
  /** Per pool, in the same order: workers replaced so far, by why. */
  replaced: Record<string, number>[];
  /** Its pending requests. */
  pending: number;
  /** With the `admin` option: the answers it counted since its last report. */
  metrics?: MetricsDelta;
}

/** The header of a {@linkcode P.PUBLISH} frame: the topic, and whether the message is binary (1) or text (0). */
export interface Published {
  t: string;
  b: 0 | 1;
}

/** What the primary asks a dispatcher to do. */
export type CommandBody =
  | { c: "reload"; pool?: string }
  | { c: "scale"; pool: string; n: number }
  | { c: "config"; pool: string; config: unknown }
  | { c: "send"; pool: string; request: PoolRequest }
  | { c: "stop" };

/** A command with its id, which the dispatcher's answer names. */
export type Command = CommandBody & { id: number };

/** Where a dispatcher process stands among its siblings. */
export interface DispatcherSlot {
  /** From 0. */
  index: number;
  /** How many dispatchers there are. */
  count: number;
  /** The port they share. */
  port: number;
}

/** The slot of this process when a primary started it, else `null`. */
export function dispatcherSlot(runtime: Runtime): DispatcherSlot | null {
  const spec = runtime.env(DISPATCHER_ENV);
  const m = spec ? /^(\d+)\/(\d+):(\d+)$/.exec(spec) : null;
  return m ? { index: Number(m[1]), count: Number(m[2]), port: Number(m[3]) } : null;
}

/**
 * Dispatcher `index`'s share of `total` workers among `count` dispatchers: the total divided, the first ones taking
 * one more when it does not divide, and at least one each.
 */
export function share(total: number, index: number, count: number): number {
  return Math.max(1, Math.floor(total / count) + (index < total % count ? 1 : 0));
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
      scale: (n) => void this.#askAll((c) => ({ c: "scale", pool: pool.name, n: share(n, c.index, count) })),
      reload: () => this.#rolling({ c: "reload", pool: pool.name }),
    };
  }

  /** A pool's status across dispatchers: every dispatcher's workers, with ids numbered on. */
  #poolStatus(name: string): PoolStatus {
    const merged: PoolStatus = { name, workers: [], queueSize: 0, degraded: false, spares: [] };
    for (const child of this.#children) {
      const s = child.statuses.find((p) => p.name === name);
      if (s === undefined) continue;
      for (const w of s.workers) merged.workers.push({ ...w, id: merged.workers.length });
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

/** What {@linkcode runPrimary} needs of the `Dispatcher` it runs as the primary. */
export interface RunPrimaryHost {
  runtime: Runtime;
  dispatcher: {
    readonly pools: readonly WorkerPool[];
    readonly options: ResolvedDispatcherOptions;
    reload(): Promise<number>;
    stop(): Promise<void>;
  };
  log: PrimaryLog;
  /** Resolves once the dispatcher has stopped. */
  finished: Promise<void>;
  /** Hands the primary to the dispatcher, whose `reload()` and `stop()` then go to it. */
  adopt(primary: Primary): void;
  /** Calls `onListen` once every dispatcher listens. */
  listening(info: {
    port: number;
    hostname: string;
    protocol: "http" | "https";
    admin?: { port: number; hostname: string };
  }): void;
}

/**
 * Runs this process as the primary of `options.dispatchers` dispatchers until it is stopped. When SO_REUSEPORT is
 * missing, or a dispatcher cannot start at all, it says why in one line and exits (status 1, or the dispatcher's).
 */
export async function runPrimary(host: RunPrimaryHost): Promise<void> {
  const { runtime, dispatcher, log } = host;
  const options = dispatcher.options;
  const missing = runtime.reusePortMissing;
  if (missing !== null) {
    log.error("Cannot run {count} dispatchers: {reason}; run with dispatchers 1", {
      count: options.dispatchers,
      reason: missing,
    });
    flushLogs();
    runtime.exit(1);
  }
  const admin: AdminListener | null = options.admin === null ? null : new (await import("./admin.ts")).AdminListener({
    pid: runtime.pid,
    pending: (): number => primary.pending,
    pools: (): PoolSnapshot[] => primary.snapshots(),
  });
  const primary = new Primary({
    runtime,
    pools: dispatcher.pools,
    dispatchers: options.dispatchers,
    port: options.port,
    hostname: options.hostname,
    stopGrace: options.shutdownTimeout + 5000,
    log,
    metrics: admin?.metrics ?? null,
  });
  host.adopt(primary);
  const unlisten = [
    runtime.onSignal("SIGTERM", () => void dispatcher.stop()),
    runtime.onSignal("SIGINT", () => void dispatcher.stop()),
    runtime.onSignal("SIGHUP", () => void dispatcher.reload()),
  ];
  let closeControl: (() => Promise<void>) | undefined;
  let adminServer: HttpServer | undefined;
  const second = admin === null ? undefined : setInterval(() => admin.second(Date.now()), 1000);
  try {
    const port = await primary.start();
    if (admin !== null) {
      adminServer = await runtime.serve({
        port: options.admin!.port,
        hostname: options.admin!.hostname,
        headersTimeout: options.headersTimeout,
        idleTimeout: options.idleTimeout,
        maxConnections: 0,
        fetch: (request) => admin.answer(request),
      });
    }
    if (options.control !== false) {
      const { listenControl, runCommand } = await import("./control.ts");
      closeControl = await listenControl(options.control, (command) =>
        runCommand(command, {
          pid: runtime.pid,
          port,
          pending: () => primary.pending,
          pools: dispatcher.pools,
          statuses: () => primary.statuses(),
          reload: () => dispatcher.reload(),
          stop: () => dispatcher.stop(),
        }));
    }
    host.listening({
      port,
      hostname: options.hostname,
      protocol: options.tls ? "https" : "http",
      ...(adminServer ? { admin: { port: adminServer.port, hostname: adminServer.hostname } } : {}),
    });
  } catch (error) {
    log.error("Cannot start {count} dispatchers: {reason}", { count: options.dispatchers, reason: firstLine(error) });
    clearInterval(second);
    await adminServer?.close(0).catch(() => {});
    await dispatcher.stop();
    flushLogs();
    runtime.exit(error instanceof DispatcherFailed ? error.status : 1);
  }
  await host.finished;
  clearInterval(second);
  admin?.closeStreams();
  await adminServer?.close(0).catch(() => {});
  await closeControl?.();
  for (const off of unlisten) off();
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
