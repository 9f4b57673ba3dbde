/**
 * The supervisor of a pool: spawns, feeds, watches and replaces its worker
 * processes. Only the dispatcher loads this module.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { Logger, LogRecord } from "@logtape/logtape";
import { errorResponse } from "./client.ts";
import {
  type ChannelError,
  F,
  FrameDecoder,
  FrameWriter,
  recycleBody,
  removeSpills,
  SPILL_THRESHOLD,
  type SpillOptions,
  spillPrefix,
} from "./framing.ts";
import { IdTable } from "./id_table.ts";
import { fromWire, type WireRecord } from "./logging.ts";
import { decodeBody, type WireRequest } from "./request.ts";
import type { ChildProcess, ExitStatus, Runtime } from "./runtime.ts";
import { type InitMessage, KIND } from "./worker_loop.ts";
import {
  MAX_RESTART_DELAY,
  Pending,
  type PoolRequest,
  type PoolStatus,
  type WorkerPool,
  type WorkerResponse,
  type WorkerStatus,
} from "./pool.ts";

/** What a pool needs from its dispatcher. */
export interface PoolHost {
  runtime: Runtime;
  /** A request left the pending set (answered, failed or dropped). */
  finished(pending: Pending): void;
  /** A worker answered; calls `onResponse` when the application has one. */
  answered?: (response: WorkerResponse, pending: Pending) => void;
  /** A worker's log record. */
  log(record: LogRecord): void;
  /** The pool's own logger (LogTape is the dispatcher's to load). */
  logger: Logger;
}

const NULL_BODY = new Set([101, 204, 205, 304]);
const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const BINARY_TYPE = "application/octet-stream";
const EMPTY: Uint8Array = new Uint8Array(0);
const encoder = new TextEncoder();
const KILL_GRACE = 2_000;

const STARTING = "starting";
const READY = "ready";
const DRAINING = "draining";
const DEAD = "down";

/**
 * A started process before and after it is given a slot. A spare waits, with
 * its program loaded, for the INIT frame that makes it a worker.
 */
interface Launched {
  child: ChildProcess;
  /** The worker it became; `null` while it is a spare. */
  worker: WorkerProcess | null;
}

/** A running worker process as its supervisor sees it. */
export class WorkerProcess {
  readonly slot: Slot;
  readonly child: ChildProcess;
  readonly writer: FrameWriter;
  state: string = STARTING;
  readonly inflight: IdTable<Pending> = new IdTable();
  busy = 0;
  paused = false;
  readonly startedAt: number;
  readyAt = 0;
  lastSeen: number;
  rss = 0;
  served = 0;
  killAt = 0;
  /** Heartbeats overdue: probably blocked; routed to only as a last resort. */
  late = false;
  /** Started to replace the slot's current process; takes over once ready. */
  standby = false;
  /** A replacement for this process is starting. */
  replacing = false;
  /** Requests after which this process is replaced; 0 never. */
  maxServed = 0;
  /** Requests handed to this process so far, answered or not. */
  assigned = 0;
  /** At its `maxRequests` or over `maxMemoryMb`: takes no new request while its replacement starts. */
  retiring = false;
  /** When the process last had nothing to do, for elastic shrinking. */
  idleSince: number;
  reason: string | null = null;
  /** The unfinished last line of stderr, and of stdout when the channel has its own pipe. */
  readonly tails = { stderr: "", stdout: "" };

  constructor(slot: Slot, child: ChildProcess, now: number, spill: SpillOptions | undefined) {
    this.slot = slot;
    this.child = child;
    this.writer = new FrameWriter((data) => child.write(data), spill);
    this.startedAt = now;
    this.lastSeen = now;
    this.idleSince = now;
  }
}

interface Slot {
  id: number;
  worker: WorkerProcess | null;
  /** A process starting to take over from `worker` (recycling, reload). */
  standby: WorkerProcess | null;
  /** Waiting for the standby to take over (true) or fail (false). */
  swapWaiters: ((ok: boolean) => void)[];
  restarts: number;
  delay: number;
  respawnAt: number;
  lastExitReason: string | null;
}

/** Where `run()` in a worker process finds the worker entry module for `module` pools. */
const WORKER_MAIN = new URL(import.meta.url.endsWith(".js") ? "./worker_main.js" : "./worker_main.ts", import.meta.url);

/** Runs a pool's processes: spawning, dispatching, timeouts, heartbeats and restarts. */
export class Supervisor {
  readonly pool: WorkerPool;
  degraded = false;
  #host: PoolHost;
  #log: Logger;
  #slots: Slot[] = [];
  #draining = new Set<WorkerProcess>();
  #queue: Pending[] = [];
  #queueHead = 0;
  #restartTimes: number[] = [];
  #queueWarned = false;
  #stopping = false;
  #nextDetachedId = -1;
  #rotor = 0;
  #exits = new Set<Promise<unknown>>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #traceAfter: boolean;
  /** Processes started ahead of need (see `spares`), oldest first. */
  #spares: Launched[] = [];
  /** Wait before replacing a spare that died unused; doubles per death, reset when a worker gets ready. */
  #spareDelay = 0;

  constructor(pool: WorkerPool, host: PoolHost) {
    this.pool = pool;
    this.#host = host;
    // Deno converts a headers record slowly (about 2 µs for two entries); setting the one varying
    // header afterwards is cheaper there. @hono/node-server's light Response wants the record.
    this.#traceAfter = host.runtime.name === "deno";
    this.#log = host.logger;
  }

  start(): void {
    for (let i = 0; i < this.pool.options.workers; i++) this.#addSlot();
  }

  /**
   * Resolves once every slot's first process is ready or has failed (so a pool
   * whose setup always throws does not hold up the server), or after `startupTimeout`.
   */
  settled(): Promise<void> {
    const check = () => this.#slots.every((s) => s.restarts > 0 || s.worker?.state === READY);
    if (check()) return Promise.resolve();
    return new Promise((resolve) => {
      const deadline = Date.now() + this.pool.options.startupTimeout;
      const timer = setInterval(() => {
        if (check() || Date.now() >= deadline || this.#stopping) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
  }

  #addSlot() {
    const slot: Slot = {
      id: this.#slots.length,
      worker: null,
      standby: null,
      swapWaiters: [],
      restarts: 0,
      delay: this.pool.options.restartDelay,
      respawnAt: 0,
      lastExitReason: null,
    };
    this.#slots.push(slot);
    this.#spawn(slot);
  }

  #command(): string[] {
    const runtime = this.#host.runtime;
    if (this.pool.options.module !== null) {
      const main = WORKER_MAIN.protocol === "file:" ? fileURLToPath(WORKER_MAIN) : WORKER_MAIN.href;
      return runtime.selfCommand(main);
    }
    // Workers re-run the main module with the same arguments, as node:cluster does.
    return [...runtime.selfCommand(runtime.mainModule()), ...runtime.args()];
  }

  /** Starts a process; it becomes a worker when {@linkcode #spawn} gives it a slot and sends INIT. */
  #launch(): Launched {
    const decoder = new FrameDecoder(
      (type, header, body, lent) => this.#onFrame(launched.worker!, type, header, body, lent),
      this.#host.runtime.spill(),
      (path) => launched.worker!.writer.send(F.RELEASE, { p: path }),
    );
    // The callbacks run only after spawn() returned, when `launched` exists.
    const child: ChildProcess = this.#host.runtime.spawn({
      cmd: this.#command(),
      // A `module` pool's module is named at spawn, so that a process (a spare above all) loads it before its INIT.
      env: this.pool.options.module === null
        ? { FORKYARD_WORKER: "1" }
        : { FORKYARD_WORKER: "1", FORKYARD_MODULE: this.pool.options.module },
      onStdout: (chunk) => {
        const worker = launched.worker;
        if (worker === null) {
          // A spare has nothing to say before its INIT.
          this.#dropSpare(launched, "wrote to its channel before it was given work");
          return;
        }
        if (worker.state === DEAD) return;
        try {
          decoder.push(chunk);
        } catch (error) {
          this.#kill(worker, `wrote garbage to its channel (${(error as ChannelError).message})`, "SIGKILL");
        }
      },
      onStderr: (chunk) => {
        if (launched.worker !== null) this.#onOutput(launched.worker, chunk, "stderr");
        else this.#log.error("{line}", { line: new TextDecoder().decode(chunk).trimEnd(), pid: child.pid });
      },
      onText: (chunk) => {
        if (launched.worker !== null) this.#onOutput(launched.worker, chunk, "stdout");
        else this.#log.info("{line}", { line: new TextDecoder().decode(chunk).trimEnd(), pid: child.pid });
      },
    });
    const launched: Launched = { child, worker: null };
    const exit = child.exited.then((status) => {
      if (launched.worker !== null) this.#onExit(launched.worker, status);
      else this.#dropSpare(launched, status.signal ? `signal ${status.signal}` : `code ${status.code}`);
    });
    this.#exits.add(exit);
    exit.finally(() => this.#exits.delete(exit));
    return launched;
  }

  /** Keeps `spares` processes waiting; called when a worker became ready, so a broken program does not spawn in a loop. */
  #topUpSpares() {
    while (!this.#stopping && this.#spares.length < this.pool.options.spares) {
      try {
        this.#spares.push(this.#launch());
      } catch (error) {
        this.#log.error("Cannot start a spare process for pool {pool}: {error}", { pool: this.pool.name, error });
        return;
      }
    }
  }

  #dropSpare(launched: Launched, reason: string) {
    const i = this.#spares.indexOf(launched);
    if (i < 0) return;
    this.#spares.splice(i, 1);
    launched.child.kill("SIGKILL");
    if (this.#stopping) return;
    this.#spareDelay = Math.min(Math.max(this.#spareDelay * 2, this.pool.options.restartDelay, 1), MAX_RESTART_DELAY);
    this.#log.warning(
      "A spare process of pool {pool} (pid {pid}) ended before it was needed: {reason}; another in {delay} ms",
      {
        pool: this.pool.name,
        pid: launched.child.pid,
        reason,
        delay: this.#spareDelay,
      },
    );
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#topUpSpares();
    }, this.#spareDelay);
    this.#timers.add(timer);
  }

  #spawn(slot: Slot, standby = false) {
    const now = Date.now();
    const opts = this.pool.options;
    let launched = this.#spares.shift();
    if (launched === undefined) {
      try {
        launched = this.#launch();
      } catch (error) {
        this.#log.error("Cannot start worker {id} of pool {pool}: {error}", {
          id: slot.id,
          pool: this.pool.name,
          error,
        });
        slot.respawnAt = now + slot.delay;
        slot.delay = Math.min(Math.max(slot.delay * 2, 1), MAX_RESTART_DELAY);
        return;
      }
    }
    const child = launched.child;
    const files = this.#host.runtime.spill();
    const spill = files === null
      ? undefined
      : { files, prefix: spillPrefix(this.#host.runtime.pid, child.pid), threshold: SPILL_THRESHOLD };
    const worker = new WorkerProcess(slot, child, now, spill);
    launched.worker = worker;
    if (opts.maxRequests > 0) {
      worker.maxServed = opts.maxRequests + Math.floor(Math.random() * (opts.maxRequestsJitter + 1));
    }
    if (standby) {
      worker.standby = true;
      slot.standby = worker;
    } else {
      slot.worker = worker;
      slot.respawnAt = 0;
    }
    const init: InitMessage = {
      pool: this.pool.name,
      id: slot.id,
      kwargs: opts.kwargs,
      logLevel: opts.logLevel,
      heartbeatInterval: opts.heartbeatInterval,
      ...(opts.module !== null ? { module: opts.module, export: opts.export } : {}),
      ...(this.pool.mount !== null ? { mount: this.pool.mount } : {}),
    };
    worker.writer.send(F.INIT, init);
  }

  /** Lines a worker wrote to stderr (logged as errors), or to stdout when its channel has its own pipe (info). */
  #onOutput(worker: WorkerProcess, chunk: Uint8Array, stream: "stderr" | "stdout") {
    const text = worker.tails[stream] + new TextDecoder().decode(chunk);
    const lines = text.split("\n");
    worker.tails[stream] = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      const properties = { line, workerId: worker.slot.id, pid: worker.child.pid, stream };
      if (stream === "stderr") this.#log.error("{line}", properties);
      else this.#log.info("{line}", properties);
    }
  }

  #onFrame(worker: WorkerProcess, type: number, header: any, body: Uint8Array, lent: boolean) {
    worker.lastSeen = Date.now();
    switch (type) {
      case F.RESPONSE:
        this.#onResponse(worker, header, body, lent);
        return;
      case F.HEARTBEAT:
        worker.rss = header.r;
        if (
          this.pool.options.maxMemoryMb > 0 && worker.rss > this.pool.options.maxMemoryMb * 1024 * 1024 &&
          worker.state === READY
        ) {
          this.#retireAtLimit(worker, `memory ${Math.round(worker.rss / 1048576)} MiB over maxMemoryMb`);
        }
        return;
      case F.LOG:
        this.#onLog(worker, header as WireRecord);
        return;
      case F.START:
        this.#onStart(worker, header);
        return;
      case F.CHUNK: {
        const p = worker.inflight.get(header.i);
        p?.stream?.enqueue(body);
        return;
      }
      case F.END:
        this.#onEnd(worker, header);
        return;
      case F.READY:
        this.#onReady(worker);
        return;
      case F.KEEPALIVE:
        this.#keepAlive(worker);
        return;
      case F.PAUSE:
        worker.paused = true;
        return;
      case F.RELEASED:
        worker.writer.release(header.p);
        return;
      case F.RESUME:
        worker.paused = false;
        this.#drain();
        return;
      default:
        this.#kill(worker, `sent an unknown frame type ${type}`, "SIGKILL");
    }
  }

  #onLog(worker: WorkerProcess, wire: WireRecord) {
    const category = wire.c[0] === "forkyard" ? wire.c : ["forkyard", "worker", this.pool.name, ...wire.c];
    this.#host.log(
      fromWire({ ...wire, c: category }, { pool: this.pool.name, workerId: worker.slot.id, pid: worker.child.pid }),
    );
  }

  #onReady(worker: WorkerProcess) {
    if (worker.state !== STARTING) return;
    worker.state = READY;
    worker.readyAt = Date.now();
    worker.idleSince = worker.readyAt;
    const slot = worker.slot;
    if (worker.standby) {
      // The replacement is ready: it takes the slot, the old process drains.
      worker.standby = false;
      slot.standby = null;
      const old = slot.worker;
      slot.worker = worker;
      slot.respawnAt = 0;
      if (old !== null) this.#retire(old);
      for (const done of slot.swapWaiters.splice(0)) done(true);
    }
    const config = this.pool.lastConfig;
    if (config) worker.writer.send(F.CONFIG, { c: config.value });
    this.#spareDelay = 0;
    this.#topUpSpares();
    this.#log.debug("Worker {id} of pool {pool} ready (pid {pid})", {
      id: worker.slot.id,
      pool: this.pool.name,
      pid: worker.child.pid,
    });
    this.#drain();
  }

  #onResponse(
    worker: WorkerProcess,
    h: { i: number; s: number; k?: number; h?: string[] },
    body: Uint8Array,
    lent: boolean,
  ) {
    const p = worker.inflight.get(h.i);
    if (p === undefined) {
      // timed out or cancelled: the client has its answer
      if (lent) recycleBody(body, this.#host.runtime.spill());
      return;
    }
    worker.inflight.delete(h.i);
    worker.busy--;
    worker.served++;
    const response = buildResponse(h, body, p.wire.x, this.#traceAfter);
    this.#deliver(p, response);
    this.#recycleIfDue(worker);
    if (this.#host.answered && p.client !== null) {
      const info = responseInfo(response.status, response.headers, body);
      queueMicrotask(() => this.#host.answered!(info, p));
    } else if (lent && p.adapter?.afterResponse !== undefined) {
      // Once the runtime no longer reads them, the bytes may take a later body; not when onResponse() sees
      // them: it may keep them.
      const files = this.#host.runtime.spill();
      p.adapter.afterResponse(() => recycleBody(body, files));
    }
    this.#next(worker);
  }

  #onStart(worker: WorkerProcess, h: { i: number; s: number; h: string[] }) {
    const p = worker.inflight.get(h.i);
    if (p === undefined) return;
    worker.busy--;
    p.deadline = Infinity; // a stream has no timeout once it has begun
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        p.stream = controller;
      },
      cancel: () => {
        // The client went away mid-stream.
        if (worker.inflight.delete(p.requestId)) {
          worker.writer.send(F.CANCEL, { i: p.requestId, w: "disconnect" });
          this.#host.finished(p);
        }
      },
    });
    this.#deliver(p, new Response(stream, { status: h.s, headers: headersFrom(h.h, p.wire.x) }), false);
    this.#next(worker);
  }

  #onEnd(worker: WorkerProcess, h: { i: number; e?: number }) {
    const p = worker.inflight.get(h.i);
    if (p === undefined) return;
    worker.inflight.delete(h.i);
    worker.served++;
    try {
      if (h.e) p.stream?.error(new Error("Worker failed while streaming"));
      else p.stream?.close();
    } catch {
      // the client cancelled already
    }
    this.#host.finished(p);
    this.#recycleIfDue(worker);
    this.#next(worker);
  }

  /** Answers a pending request; `finish` false keeps it pending (a stream has begun). */
  #deliver(p: Pending, response: Response, finish = true) {
    const resolve = p.resolve;
    p.resolve = null;
    if (resolve !== null) resolve(response);
    if (finish) this.#host.finished(p);
  }

  #fail(p: Pending, response: Response) {
    p.deadline = Infinity;
    if (p.stream !== null) {
      try {
        p.stream.error(new Error("Request aborted"));
      } catch {
        // already closed
      }
      this.#host.finished(p);
      return;
    }
    this.#deliver(p, response);
  }

  #keepAlive(worker: WorkerProcess) {
    const deadline = Date.now() + this.pool.options.timeout;
    for (const p of worker.inflight.values()) {
      if (p.stream !== null) continue;
      p.deadline = deadline;
    }
  }

  /** Accepts a request from a client. */
  submit(p: Pending): void {
    p.deadline = Date.now() + this.pool.options.timeout;
    const worker = this.#queueHead === this.#queue.length ? this.#pick() : undefined;
    if (worker !== undefined) this.#dispatch(p, worker);
    else this.#enqueue(p);
  }

  sendDetached(request: PoolRequest): void {
    let body = EMPTY;
    let type: string | undefined;
    const data = request.data;
    if (data instanceof Uint8Array) {
      body = data;
      type = "application/octet-stream";
    } else if (typeof data === "string") {
      body = encoder.encode(data);
      type = "text/plain; charset=utf-8";
    } else if (data !== undefined) {
      body = encoder.encode(JSON.stringify(data));
      type = "application/json";
    }
    const headers = { ...(type ? { "content-type": type } : {}), ...request.headers };
    const h: string[] = [];
    for (const [k, v] of Object.entries(headers)) h.push(k.toLowerCase(), v);
    const id = this.#nextDetachedId--;
    const wire: WireRequest = {
      i: id,
      m: (request.method ?? "POST").toUpperCase(),
      p: request.path,
      q: request.query ? new URLSearchParams(request.query).toString() : "",
      h,
      n: 1,
    };
    const ct = headers["content-type"];
    if (ct) wire.t = ct;
    this.submit(new Pending(id, null, this.pool, wire, body, null));
  }

  #enqueue(p: Pending) {
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    this.#queue.push(p);
    const warnAt = this.pool.options.queueWarning;
    if (warnAt > 0 && !this.#queueWarned && this.queueSize > warnAt) {
      this.#queueWarned = true;
      this.#log.warning("Pool {pool} has {size} requests waiting (queueWarning {limit})", {
        pool: this.pool.name,
        size: this.queueSize,
        limit: warnAt,
      });
    }
  }

  get queueSize(): number {
    return this.#queue.length - this.#queueHead;
  }

  /**
   * The ready worker with the fewest requests in progress; ties go round-robin.
   * Workers whose heartbeats are late (probably blocked) are used only when no other can take it.
   */
  #pick(): WorkerProcess | undefined {
    const limit = this.pool.options.concurrency;
    const slots = this.#slots;
    const n = slots.length;
    let best: WorkerProcess | undefined;
    let late: WorkerProcess | undefined;
    const start = this.#rotor = (this.#rotor + 1) % n;
    for (let k = 0; k < n; k++) {
      const w = slots[(start + k) % n].worker;
      if (w === null || w.state !== READY || w.paused || w.retiring || w.busy >= limit) continue;
      if (w.late) {
        if (late === undefined || w.busy < late.busy) late = w;
      } else if (best === undefined || w.busy < best.busy) {
        best = w;
        if (w.busy === 0) break;
      }
    }
    return best ?? late;
  }

  #dispatch(p: Pending, worker: WorkerProcess) {
    worker.idleSince = 0;
    p.worker = worker;
    worker.inflight.set(p.requestId, p);
    worker.busy++;
    worker.writer.send(F.REQUEST, p.wire, p.body);
    if (++worker.assigned === worker.maxServed) {
      this.#retireAtLimit(worker, `took ${worker.assigned} requests (maxRequests)`);
    }
  }

  /**
   * A process at its `maxRequests` or over `maxMemoryMb` takes no new request from now on, so that it never serves
   * more than its limit plus what it already has in flight; others, spares or, failing those, the queue take them.
   */
  #retireAtLimit(worker: WorkerProcess, reason: string) {
    if (worker.retiring || worker.state !== READY) return;
    worker.retiring = true;
    void this.#replace(worker.slot, reason);
  }

  /** Tries again to replace a process at its `maxRequests` whose first replacement failed to start. */
  #recycleIfDue(worker: WorkerProcess) {
    if (worker.maxServed > 0 && worker.served >= worker.maxServed) {
      this.#retireAtLimit(worker, `served ${worker.served} requests (maxRequests)`);
    }
  }

  /** A request left `worker`: give it the next one, or stop it when it is draining and idle. */
  #next(worker: WorkerProcess) {
    if (worker.inflight.size === 0) worker.idleSince = Date.now();
    if (worker.state === READY) {
      if (this.queueSize > 0) this.#drain();
    } else if (worker.state === DRAINING && worker.inflight.size === 0) {
      worker.writer.send(F.STOP);
    }
  }

  #drain() {
    while (this.#queueHead < this.#queue.length) {
      const p = this.#queue[this.#queueHead];
      if (p.deadline === Infinity) {
        // answered already (timed out)
        this.#queue[this.#queueHead++] = undefined as unknown as Pending;
        continue;
      }
      if (p.client !== null && p.client.request.signal.aborted) {
        // The client left while its request waited: never dispatch it, but settle its answer (499, nginx's code
        // for a client that closed the request), so that no server holds a response that would never come.
        this.#queue[this.#queueHead++] = undefined as unknown as Pending;
        this.#deliver(p, failure(p, 499, "Client closed request"));
        continue;
      }
      const worker = this.#pick();
      if (worker === undefined) break;
      this.#queue[this.#queueHead++] = undefined as unknown as Pending;
      this.#dispatch(p, worker);
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    }
    if (this.#queueWarned && this.queueSize <= this.pool.options.queueWarning) this.#queueWarned = false;
  }

  #kill(worker: WorkerProcess, reason: string, signal: "SIGTERM" | "SIGKILL" = "SIGTERM") {
    if (worker.state === DEAD || worker.killAt !== 0) {
      if (signal === "SIGKILL") worker.child.kill("SIGKILL");
      return;
    }
    worker.reason = reason;
    worker.killAt = Date.now() + KILL_GRACE;
    worker.state = worker.state === DRAINING ? DRAINING : DEAD;
    this.#log.error("Killing worker {id} of pool {pool} (pid {pid}): {reason}", {
      id: worker.slot.id,
      pool: this.pool.name,
      pid: worker.child.pid,
      reason,
    });
    worker.child.kill(signal);
    // In-flight requests fail now, not when the process is finally gone.
    this.#failInflight(worker);
  }

  #failInflight(worker: WorkerProcess) {
    if (worker.inflight.size === 0) return;
    const retry = this.pool.options.retryIdempotent && !this.#stopping;
    const requeue: Pending[] = [];
    for (const p of worker.inflight.values()) {
      if (retry && !p.retried && p.stream === null && (p.wire.m === "GET" || p.wire.m === "HEAD")) {
        p.retried = true;
        p.worker = null;
        requeue.push(p);
      } else {
        this.#fail(p, failure(p, 502, "Worker failed"));
      }
    }
    worker.inflight.clear();
    worker.busy = 0;
    if (requeue.length > 0) {
      this.#queue.splice(this.#queueHead, 0, ...requeue);
      this.#drain();
    }
  }

  #onExit(worker: WorkerProcess, status: ExitStatus) {
    const wasState = worker.state;
    worker.state = DEAD;
    worker.writer.close();
    this.#removeSpills(worker.child.pid);
    this.#failInflight(worker);
    const slot = worker.slot;
    if (slot.standby === worker) {
      slot.standby = null;
      if (slot.worker !== null) {
        // The old process goes on serving; it is retired again at its next answer or heartbeat over the limit.
        slot.worker.replacing = false;
        slot.worker.retiring = false;
      }
      for (const done of slot.swapWaiters.splice(0)) done(false);
      if (!this.#stopping) {
        this.#log.error("Replacement for worker {id} of pool {pool} failed to start ({reason}); keeping the old one", {
          id: slot.id,
          pool: this.pool.name,
          reason: worker.reason ?? (status.signal ? `signal ${status.signal}` : `code ${status.code}`),
        });
      }
      if (slot.worker !== null) return;
    }
    const planned = this.#draining.delete(worker) || this.#stopping;
    if (slot.worker === worker) slot.worker = null;
    if (planned) return;
    if (this.#slots[slot.id] !== slot) return; // the pool shrank
    const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
    const reason = worker.reason ?? (wasState === STARTING ? `exited during startup (${how})` : `died (${how})`);
    slot.lastExitReason = reason;
    slot.restarts++;
    const now = Date.now();
    if (worker.readyAt > 0 && now - worker.readyAt >= this.pool.options.minUptime) {
      slot.delay = this.pool.options.restartDelay;
    }
    const window = this.pool.options.restartWindow;
    this.#restartTimes.push(now);
    while (this.#restartTimes.length > 0 && this.#restartTimes[0] <= now - window) this.#restartTimes.shift();
    this.#log.error("Worker {id} of pool {pool} (pid {pid}) {reason}; restarting in {delay} ms", {
      id: slot.id,
      pool: this.pool.name,
      pid: worker.child.pid,
      reason,
      delay: slot.delay,
    });
    if (!this.degraded && this.#restartTimes.length > this.pool.options.maxRestarts) {
      this.degraded = true;
      this.#log.error("Pool {pool} is degraded: {count} restarts within {window} ms", {
        pool: this.pool.name,
        count: this.#restartTimes.length,
        window,
      });
      this.#failQueued(() => errorResponse(503, "Service unavailable"));
    }
    slot.respawnAt = now + slot.delay;
    // A timer (not the 100 ms tick) so that a replacement starts as soon as its backoff allows.
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#stopping && slot.worker === null && slot.standby === null && this.#slots[slot.id] === slot) {
        this.#spawn(slot);
      }
    }, slot.delay);
    this.#timers.add(timer);
    slot.delay = Math.min(Math.max(slot.delay * 2, 1), MAX_RESTART_DELAY);
  }

  /** Removes spill files a dead worker wrote, or that were written for it and never read. */
  #removeSpills(pid: number) {
    const files = this.#host.runtime.spill();
    if (files === null) return;
    try {
      removeSpills(files, [spillPrefix(this.#host.runtime.pid, pid), spillPrefix(pid)]);
    } catch {
      // nothing to clean
    }
  }

  #failQueued(response: () => Response) {
    while (this.#queueHead < this.#queue.length) {
      const p = this.#queue[this.#queueHead];
      this.#queue[this.#queueHead++] = undefined as unknown as Pending;
      if (p.resolve !== null || p.client === null) this.#fail(p, response());
    }
    this.#queue.length = 0;
    this.#queueHead = 0;
  }

  /** Periodic work: timeouts, stalled workers, restarts, recovery. */
  tick(now: number): void {
    this.#expire(now);
    const opts = this.pool.options;
    for (const slot of this.#slots) {
      if (slot.standby !== null) this.#watch(slot.standby, now);
      const w = slot.worker;
      if (w === null) {
        if (!this.#stopping && slot.standby === null && slot.respawnAt !== 0 && slot.respawnAt <= now) {
          this.#spawn(slot);
        }
        continue;
      }
      this.#watch(w, now);
      if (this.degraded && w.state === READY && now - w.readyAt >= opts.minUptime) {
        this.degraded = false;
        this.#restartTimes.length = 0;
        this.#log.info("Pool {pool} recovered", { pool: this.pool.name });
      }
    }
    for (const w of this.#draining) this.#watch(w, now);
    if (opts.maxWorkers > opts.minWorkers && !this.#stopping) this.#autoscale(now);
  }

  /** Elastic pools: grow while requests wait too long, shrink workers idle for `idleTimeout`. */
  #autoscale(now: number) {
    const opts = this.pool.options;
    const slots = this.#slots;
    if (this.queueSize > 0 && slots.length < opts.maxWorkers && !this.degraded) {
      const oldest = this.#queue[this.#queueHead];
      const waited = now - (oldest.deadline - opts.timeout);
      const starting = slots.some((s) => s.worker?.state === STARTING);
      if (waited >= opts.scaleUpDelay && !starting) {
        this.#log.info("Pool {pool} grows to {n} workers: a request waited {waited} ms", {
          pool: this.pool.name,
          n: slots.length + 1,
          waited,
        });
        this.#addSlot();
      }
      return;
    }
    const last = slots[slots.length - 1];
    const w = last?.worker;
    if (
      slots.length > opts.minWorkers && w && w.state === READY && w.inflight.size === 0 && w.idleSince > 0 &&
      now - w.idleSince >= opts.idleTimeout && this.queueSize === 0
    ) {
      this.#log.info("Pool {pool} shrinks to {n} workers: worker {id} idle for {idle} ms", {
        pool: this.pool.name,
        n: slots.length - 1,
        id: last.id,
        idle: now - w.idleSince,
      });
      this.scale(slots.length - 1);
    }
  }

  /**
   * Starts a replacement for the slot's process; once it is ready it takes
   * the slot and the old process drains and stops. Resolves whether it took over.
   */
  #replace(slot: Slot, reason: string): Promise<boolean> {
    const old = slot.worker;
    if (slot.standby === null) {
      if (this.#stopping) return Promise.resolve(false);
      if (old !== null) {
        if (old.replacing) return Promise.resolve(false);
        old.replacing = true;
        this.#log.info("Replacing worker {id} of pool {pool} (pid {pid}): {reason}", {
          id: slot.id,
          pool: this.pool.name,
          pid: old.child.pid,
          reason,
        });
      }
      this.#spawn(slot, old !== null);
      if (old === null) return Promise.resolve(slot.worker !== null);
    }
    return new Promise((resolve) => slot.swapWaiters.push(resolve));
  }

  /**
   * Replaces every worker, one at a time: each new process is ready before the
   * old one stops taking requests. Resolves with how many were replaced.
   */
  async reload(): Promise<number> {
    let replaced = 0;
    for (const slot of [...this.#slots]) {
      if (this.#stopping) break;
      if (this.#slots[slot.id] !== slot) continue;
      if (await this.#replace(slot, "reload")) replaced++;
    }
    return replaced;
  }

  #watch(w: WorkerProcess, now: number) {
    const opts = this.pool.options;
    w.late = now - w.lastSeen > 3 * opts.heartbeatInterval;
    if (w.killAt !== 0) {
      if (now >= w.killAt) {
        w.child.kill("SIGKILL");
        w.killAt = now + KILL_GRACE;
      }
    } else if (w.state === STARTING && now - w.startedAt > opts.startupTimeout) {
      this.#kill(w, `did not become ready within startupTimeout ${opts.startupTimeout} ms`);
    } else if (w.state !== STARTING && now - w.lastSeen > opts.stuckTimeout) {
      this.#kill(w, `stuck: no heartbeat for ${now - w.lastSeen} ms (stuckTimeout ${opts.stuckTimeout} ms)`);
    }
  }

  /**
   * Times out the requests whose deadline has passed: a walk over the queue and the requests in flight, ten
   * times a second, instead of a second table of every request (see {@linkcode IdTable} for what that cost).
   */
  #expire(now: number) {
    for (let k = this.#queueHead; k < this.#queue.length; k++) {
      const p = this.#queue[k];
      if (p !== undefined && p.deadline <= now) this.#timeout(p);
    }
    for (const slot of this.#slots) {
      this.#expireInflight(slot.worker, now);
      this.#expireInflight(slot.standby, now);
    }
    for (const w of this.#draining) this.#expireInflight(w, now);
  }

  #expireInflight(worker: WorkerProcess | null, now: number) {
    if (worker === null || worker.inflight.size === 0) return;
    for (const p of worker.inflight.values()) if (p.deadline <= now) this.#timeout(p);
  }

  #timeout(p: Pending) {
    p.deadline = Infinity;
    const worker = p.worker;
    if (worker !== null) {
      if (!worker.inflight.delete(p.requestId)) return;
      worker.busy--;
      worker.writer.send(F.CANCEL, { i: p.requestId, w: "timeout" });
    }
    this.#log.warning("Request {id} {method} {path} timed out after {timeout} ms", {
      requestId: p.wire.x,
      id: p.requestId,
      method: p.wire.m,
      path: p.wire.p,
      timeout: this.pool.options.timeout,
    });
    if (p.client === null) {
      this.#host.finished(p);
    } else {
      this.#deliver(p, failure(p, 504, "Request timeout"));
    }
    if (worker !== null) this.#next(worker);
  }

  broadcastConfig(config: unknown): void {
    for (const slot of this.#slots) {
      const w = slot.worker;
      if (w !== null && w.state === READY) w.writer.send(F.CONFIG, { c: config });
    }
  }

  scale(workers: number): void {
    if (this.#stopping) return;
    while (this.#slots.length < workers) this.#addSlot();
    for (const slot of this.#slots.slice(workers)) {
      if (slot.standby !== null) this.#retire(slot.standby);
      if (slot.worker !== null) this.#retire(slot.worker);
      for (const done of slot.swapWaiters.splice(0)) done(false);
    }
    this.#slots.length = Math.min(this.#slots.length, workers);
  }

  /** Slots (worker processes wanted) right now. */
  get size(): number {
    return this.#slots.length;
  }

  /** Stops routing to `worker`, lets its requests finish, then stops it. */
  #retire(worker: WorkerProcess) {
    if (worker.state === DEAD) return;
    worker.state = DRAINING;
    this.#draining.add(worker);
    if (worker.slot.worker === worker) worker.slot.worker = null;
    if (worker.slot.standby === worker) worker.slot.standby = null;
    if (worker.inflight.size === 0) worker.writer.send(F.STOP);
  }

  /** Answers every waiting and in-flight request with `response()`. */
  abortAll(response: () => Response): void {
    this.#failQueued(response);
    for (const slot of this.#slots) {
      const w = slot.worker;
      if (w === null) continue;
      for (const p of w.inflight.values()) {
        w.writer.send(F.CANCEL, { i: p.requestId, w: "shutdown" });
        this.#fail(p, response());
      }
      w.inflight.clear();
      w.busy = 0;
    }
  }

  /** Stops every worker: asks nicely, then kills after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const workers = [...this.#slots.flatMap((s) => [s.worker, s.standby]), ...this.#draining].filter((w) => w !== null);
    for (const w of workers) {
      w.writer.send(F.STOP);
    }
    // Spares wait for INIT; end of their channel ends them.
    const spares = this.#spares.splice(0).map((s) => s.child);
    for (const c of spares) c.closeStdin();
    const all = Promise.all([...this.#exits]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, graceMs, true)));
    if (await Promise.race([all.then(() => false), timedOut])) {
      for (const w of workers) w.child.kill("SIGKILL");
      for (const c of spares) c.kill("SIGKILL");
      await all;
    }
    clearTimeout(timer);
    for (const w of workers) w.child.closeStdin();
  }

  status(): PoolStatus {
    const now = Date.now();
    return {
      name: this.pool.name,
      workers: this.#slots.map((slot): WorkerStatus => {
        const w = slot.worker;
        const first = w ? oldest(w.inflight.values()) : null;
        return {
          id: slot.id,
          pid: w?.child.pid ?? null,
          alive: w !== null && w.state === READY,
          state: w?.state ?? DEAD,
          lastSeen: w?.lastSeen ?? null,
          currentRequest: first?.requestId ?? null,
          inflight: w?.inflight.size ?? 0,
          restarts: slot.restarts,
          lastExitReason: slot.lastExitReason,
          uptime: w && w.readyAt > 0 ? now - w.readyAt : 0,
          rss: w?.rss ?? 0,
          served: w?.served ?? 0,
        };
      }),
      queueSize: this.queueSize,
      degraded: this.degraded,
      spares: this.#spares.map((s) => s.child.pid),
    };
  }
}

function headersFrom(flat: string[] | undefined, trace?: string): Headers {
  const headers = new Headers();
  if (flat) { for (let i = 0; i < flat.length; i += 2) headers.append(flat[i], flat[i + 1]); }
  if (trace !== undefined) headers.set("x-request-id", trace);
  return headers;
}

/** A JSON error answer for `p`, carrying its trace id. */
function failure(p: Pending, status: number, message: string): Response {
  return errorResponse(status, message, p.wire.x === undefined ? undefined : { "x-request-id": p.wire.x });
}

/** The request submitted first (the earliest deadline) of those given, or `null`. */
function oldest(pending: Pending[]): Pending | null {
  let first: Pending | null = null;
  for (const p of pending) if (first === null || p.deadline < first.deadline) first = p;
  return first;
}

function buildResponse(
  h: { s: number; k?: number; h?: string[] },
  body: Uint8Array,
  trace: string | undefined,
  traceAfter: boolean,
): Response {
  const status = h.s;
  if (status === 204 && body.length === 0) {
    return new Response(null, { status, headers: trace === undefined ? undefined : { "x-request-id": trace } });
  }
  const kind = h.k ?? KIND.JSON;
  let headers: Record<string, string> | Headers;
  if (kind === KIND.HEADERS) headers = headersFrom(h.h, trace);
  else {
    const type = kind === KIND.JSON ? JSON_TYPE : kind === KIND.TEXT ? TEXT_TYPE : BINARY_TYPE;
    // A literal: cheaper than spreading a shared object into a new one.
    headers = trace !== undefined && !traceAfter
      ? { "content-type": type, "x-request-id": trace }
      : { "content-type": type };
  }
  const response = new Response(NULL_BODY.has(status) ? null : body as BodyInit, { status, headers });
  if (traceAfter && trace !== undefined && kind !== KIND.HEADERS) response.headers.set("x-request-id", trace);
  return response;
}

function responseInfo(status: number, headers: Headers, body: Uint8Array): WorkerResponse {
  let data: unknown;
  let parsed = false;
  return {
    status,
    headers,
    body,
    get data() {
      if (!parsed) {
        parsed = true;
        try {
          data = decodeBody(body, headers.get("content-type"));
        } catch {
          data = body;
        }
      }
      return data;
    },
  };
}
