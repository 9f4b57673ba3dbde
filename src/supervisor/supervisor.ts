/**
 * The supervisor of a pool: puts its parts together (launching, the queue and
 * worker choice, deadlines, the watchdog, the restart policy, recycling,
 * autoscaling, answers) and owns the pool's slots. Only the dispatcher loads
 * this module.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { MAX_RESTART_DELAY, type PoolRequest, type PoolStatus, type WorkerPool } from "../pool.ts";
import { CLOSE } from "../dispatcher/socket_hub.ts";
import {
  type CancelReason,
  type EndHeader,
  F,
  type HeartbeatHeader,
  type IdHeader,
  type InitHeader,
  type RequestHeader,
  type ResponseHeader,
  type SpillHeader,
  type StartHeader,
} from "../protocol/frames.ts";
import { fromWire, type WireRecord } from "../protocol/log_record.ts";
import { errorResponse } from "../protocol/results.ts";
import { removeSpills, spillPrefix } from "../protocol/spill.ts";
import type { ExitStatus } from "../runtime.ts";
import { Answers } from "./answers.ts";
import { decideScale } from "./autoscale.ts";
import { type Clock, systemClock } from "./clock.ts";
import { deadlineFor, extendDeadlines } from "./deadlines.ts";
import type { PoolBackend, PoolHost } from "./host.ts";
import { Launcher } from "./launcher.ts";
import { type ClientRequest, Pending } from "./pending.ts";
import { atRequestLimit, dueByMemory, requestLimit } from "./recycling.ts";
import { RequestFlow } from "./request_flow.ts";
import { RestartPolicy } from "./restart_policy.ts";
import { poolStatus } from "./status.ts";
import { checkDue, checked, healthState } from "./health_check.ts";
import { KILL_GRACE, watch } from "./watchdog.ts";
import { isServing, type ReplacementKind, type Slot, type WorkerProcess } from "./worker_process.ts";

export type { PoolHost };

const EMPTY: Uint8Array = new Uint8Array(0);

/** The first line of a fatal record's error (its `error` property, else its message). */
function bootErrorOf(wire: WireRecord): string {
  const error = wire.p.error as { name?: string; message?: string } | undefined;
  if (error?.message !== undefined) return `${error.name ?? "Error"}: ${error.message}`.split("\n")[0];
  return wire.m.split("\n")[0];
}

/** `code 1` or `signal SIGKILL`. */
function howItEnded(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

/** Runs a pool's processes: spawning, dispatching, timeouts, heartbeats and restarts. */
export class Supervisor implements PoolBackend {
  readonly pool: WorkerPool;
  #host: PoolHost;
  #log: Logger;
  #clock: Clock;
  #slots: Slot[] = [];
  #draining = new Set<WorkerProcess>();
  #stopping = false;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #launcher: Launcher;
  /** Workers replaced so far, by why (see `replacements()`). */
  #replaced = new Map<ReplacementKind, number>();
  #restarts: RestartPolicy;
  #answers: Answers;
  #flow: RequestFlow;

  constructor(pool: WorkerPool, host: PoolHost) {
    this.pool = pool;
    this.#host = host;
    this.#log = host.logger;
    this.#clock = host.clock ?? systemClock;
    const opts = pool.options;
    this.#restarts = new RestartPolicy({ ...opts, maxRestartDelay: MAX_RESTART_DELAY }, this.#clock);
    this.#answers = new Answers(host);
    this.#flow = new RequestFlow(pool, {
      host,
      log: this.#log,
      clock: this.#clock,
      answers: this.#answers,
      slots: () => this.#slots,
      draining: () => this.#draining,
      stopping: () => this.#stopping,
      atLimit: (worker) =>
        this.#retireAtLimit(worker, `took ${worker.assigned} requests (maxRequests)`, "max_requests"),
      answeredBy: (worker) => this.#recycleIfDue(worker),
      socketClosed: (worker) => {
        if (worker.state === "draining" && worker.inflight.size === 0 && worker.sockets.size === 0) {
          worker.writer.send(F.STOP);
        }
      },
    });
    this.#launcher = new Launcher(pool, host.runtime, this.#log, {
      frame: (worker, type, header, body, lent) => this.#onFrame(worker, type, header, body, lent),
      garbage: (worker, message) => this.#kill(worker, message, "garbage", "SIGKILL"),
      exit: (worker, status) => this.#onExit(worker, status),
    }, this.#clock);
  }

  /**
   * Why no worker of the pool could start, when none ever became ready and every slot's first process failed (its
   * setup() threw, its program did not load); `null` otherwise.
   */
  bootFailure(): string | null {
    const slots = this.#slots;
    if (slots.length === 0 || slots.some((s) => s.everReady || s.restarts === 0)) return null;
    const slot = slots.find((s) => s.bootError !== null) ?? slots[0];
    return slot.bootError ?? slot.lastExitReason ?? "no worker started";
  }

  /** Workers replaced so far, by why: `crash`, `stuck`, `startup`, `garbage`, `health`, `max_requests`, `max_memory`, `reload`. */
  replacements(): ReadonlyMap<ReplacementKind, number> {
    return this.#replaced;
  }

  #count(kind: ReplacementKind) {
    this.#replaced.set(kind, (this.#replaced.get(kind) ?? 0) + 1);
  }

  /** Accepts a request from a client; its answer goes to `request.resolve`. Returns it pending, to follow it. */
  request(request: ClientRequest): Pending<WorkerProcess> {
    return this.#flow.request(request);
  }

  /** Nobody waits for `pending` any more: its worker is told, and it leaves without an answer. */
  cancel(pending: Pending<WorkerProcess>, why: CancelReason): void {
    this.#flow.cancel(pending, why);
  }

  /** Sends a request nobody waits for (`WorkerPool.send`). */
  sendDetached(request: PoolRequest): void {
    this.#flow.sendDetached(request);
  }

  /** Requests waiting for a worker. */
  get queueSize(): number {
    return this.#flow.queueSize;
  }

  /** Answers every waiting and in-flight request with `response()`. */
  abortAll(response: () => Response): void {
    this.#flow.abortAll(response);
  }

  /** Whether the pool answers 503 because its workers keep failing. */
  get degraded(): boolean {
    return this.#restarts.degraded;
  }

  /** Starts the pool's workers. */
  start(): void {
    for (let i = 0; i < this.pool.options.workers; i++) this.#addSlot();
  }

  /**
   * Resolves once every slot's first process is ready or has failed (so a pool
   * whose setup always throws does not hold up the server), or after `startupTimeout`.
   */
  settled(): Promise<void> {
    const check = () => this.#slots.every((s) => s.restarts > 0 || (s.worker !== null && isServing(s.worker.state)));
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
      respawnAt: 0,
      lastExitReason: null,
      everReady: false,
      bootError: null,
    };
    this.#slots.push(slot);
    this.#spawn(slot);
  }

  /** Gives `slot` a process (as its standby, to take over once ready) and sends its INIT. */
  #spawn(slot: Slot, standby = false) {
    const opts = this.pool.options;
    let worker: WorkerProcess;
    try {
      worker = this.#launcher.assign(slot);
    } catch (error) {
      const delay = this.#restarts.backoff(slot.id).next();
      this.#log.error("Cannot start worker {id} of pool {pool}: {error}", { id: slot.id, pool: this.pool.name, error });
      slot.respawnAt = this.#clock.now() + delay;
      return;
    }
    worker.maxServed = requestLimit(opts);
    if (standby) {
      slot.standby = worker;
    } else {
      slot.worker = worker;
      slot.respawnAt = 0;
    }
    const init: InitHeader = {
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

  #onFrame(worker: WorkerProcess, type: number, header: unknown, body: Uint8Array, lent: boolean) {
    worker.lastSeen = this.#clock.now();
    switch (type) {
      case F.RESPONSE:
        this.#flow.answered(worker, header as ResponseHeader, body, lent);
        return;
      case F.HEARTBEAT: {
        worker.rss = (header as HeartbeatHeader).r;
        const due = dueByMemory(worker.rss, this.pool.options);
        if (due !== null) this.#retireAtLimit(worker, due, "max_memory");
        return;
      }
      case F.LOG:
        this.#onLog(worker, header as WireRecord);
        return;
      case F.START:
        this.#flow.started(worker, header as StartHeader);
        return;
      case F.CHUNK:
        worker.inflight.get((header as IdHeader).i)?.stream?.enqueue(body);
        return;
      case F.END:
        this.#flow.ended(worker, header as EndHeader);
        return;
      case F.READY:
        this.#onReady(worker);
        return;
      case F.KEEPALIVE:
        extendDeadlines(
          worker.inflight.values(),
          this.#clock.now(),
          this.pool.options.timeout,
          (p) => p.stream !== null,
        );
        if (this.#host.keptAlive) {
          for (const p of worker.inflight.values()) if (p.stream === null) this.#host.keptAlive(p);
        }
        return;
      case F.PAUSE:
        worker.paused = true;
        return;
      case F.RELEASED:
        worker.writer.release((header as SpillHeader).p);
        return;
      case F.RESUME:
        worker.paused = false;
        this.#flow.drain();
        return;
      case F.WS_SEND:
      case F.WS_CLOSE:
      case F.SUBSCRIBE:
      case F.UNSUBSCRIBE:
      case F.PUBLISH:
        this.#host.sockets?.fromWorker(type, header, body, lent);
        return;
      default:
        this.#kill(worker, `sent an unknown frame type ${type}`, "garbage", "SIGKILL");
    }
  }

  #onLog(worker: WorkerProcess, wire: WireRecord) {
    if (worker.state === "starting" && wire.l === "fatal") worker.slot.bootError = bootErrorOf(wire);
    const category = wire.c[0] === "forkyard" ? wire.c : ["forkyard", "worker", this.pool.name, ...wire.c];
    this.#host.log(
      fromWire({ ...wire, c: category }, { pool: this.pool.name, workerId: worker.slot.id, pid: worker.child.pid }),
    );
  }

  #onReady(worker: WorkerProcess) {
    if (worker.state !== "starting") return;
    worker.state = "ready";
    worker.slot.everReady = true;
    worker.readyAt = this.#clock.now();
    const check = this.pool.options.healthCheck;
    if (check !== null) worker.health = healthState(worker.readyAt, check);
    worker.idleSince = worker.readyAt;
    const slot = worker.slot;
    if (slot.standby === worker) {
      // The replacement is ready: it takes the slot, the old process drains.
      slot.standby = null;
      const old = slot.worker;
      slot.worker = worker;
      slot.respawnAt = 0;
      if (old !== null) this.#retire(old);
      for (const done of slot.swapWaiters.splice(0)) done(true);
    }
    const config = this.pool.lastConfig;
    if (config) worker.writer.send(F.CONFIG, { c: config.value });
    this.#launcher.workerReady();
    this.#log.debug("Worker {id} of pool {pool} ready (pid {pid})", {
      id: slot.id,
      pool: this.pool.name,
      pid: worker.child.pid,
    });
    this.#flow.drain();
  }

  /**
   * A process at its `maxRequests` or over `maxMemoryMb` takes no new request from now on, so that it never serves
   * more than its limit plus what it already has in flight; others, spares or, failing those, the queue take them.
   */
  #retireAtLimit(worker: WorkerProcess, reason: string, kind: ReplacementKind) {
    if (worker.state !== "ready") return;
    worker.state = "retiring";
    void this.#replace(worker.slot, reason, kind);
  }

  /** Tries again to replace a process at its `maxRequests` whose first replacement failed to start. */
  #recycleIfDue(worker: WorkerProcess) {
    if (atRequestLimit(worker.served, worker.maxServed)) {
      this.#retireAtLimit(worker, `served ${worker.served} requests (maxRequests)`, "max_requests");
    }
  }

  #kill(worker: WorkerProcess, reason: string, kind: ReplacementKind, signal: "SIGTERM" | "SIGKILL" = "SIGTERM") {
    if (worker.state === "down" || worker.state === "killed") {
      if (signal === "SIGKILL") worker.child.kill("SIGKILL");
      return;
    }
    worker.reason = reason;
    worker.killedFor = kind;
    worker.killAt = this.#clock.now() + KILL_GRACE;
    worker.state = "killed";
    this.#log.error("Killing worker {id} of pool {pool} (pid {pid}): {reason}", {
      id: worker.slot.id,
      pool: this.pool.name,
      pid: worker.child.pid,
      reason,
    });
    worker.child.kill(signal);
    // In-flight requests fail now, not when the process is finally gone.
    this.#flow.failInflight(worker);
    this.#closeSockets(worker, CLOSE.WORKER_FAILED, "Worker failed", false);
  }

  #onExit(worker: WorkerProcess, status: ExitStatus) {
    const wasState = worker.state;
    worker.state = "down";
    worker.writer.close();
    this.#removeSpills(worker.child.pid);
    this.#flow.failInflight(worker);
    this.#closeSockets(worker, CLOSE.WORKER_FAILED, "Worker failed", false);
    const slot = worker.slot;
    if (slot.standby === worker) {
      slot.standby = null;
      // The old process goes on serving; it is retired again at its next answer or heartbeat over the limit.
      if (slot.worker?.state === "retiring") slot.worker.state = "ready";
      for (const done of slot.swapWaiters.splice(0)) done(false);
      if (!this.#stopping) {
        this.#log.error("Replacement for worker {id} of pool {pool} failed to start ({reason}); keeping the old one", {
          id: slot.id,
          pool: this.pool.name,
          reason: worker.reason ?? howItEnded(status),
        });
      }
      if (slot.worker !== null) return;
    }
    const planned = this.#draining.delete(worker) || this.#stopping;
    if (slot.worker === worker) slot.worker = null;
    if (planned) return;
    if (this.#slots[slot.id] !== slot) return; // the pool shrank
    const reason = worker.reason ??
      (wasState === "starting" ? `exited during startup (${howItEnded(status)})` : `died (${howItEnded(status)})`);
    slot.lastExitReason = reason;
    slot.restarts++;
    this.#count(worker.killedFor ?? (wasState === "starting" ? "startup" : "crash"));
    const { delay, degradedNow, recent } = this.#restarts.crashed(slot.id, worker.readyAt);
    this.#log.error("Worker {id} of pool {pool} (pid {pid}) {reason}; restarting in {delay} ms", {
      id: slot.id,
      pool: this.pool.name,
      pid: worker.child.pid,
      reason,
      delay,
    });
    if (degradedNow) {
      this.#log.error("Pool {pool} is degraded: {count} restarts within {window} ms", {
        pool: this.pool.name,
        count: recent,
        window: this.pool.options.restartWindow,
      });
      this.#flow.failQueued(() => errorResponse(503, "Service unavailable"));
    }
    slot.respawnAt = this.#clock.now() + delay;
    // A timer (not the 100 ms tick) so that a replacement starts as soon as its backoff allows.
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#stopping && slot.worker === null && slot.standby === null && this.#slots[slot.id] === slot) {
        this.#spawn(slot);
      }
    }, delay);
    this.#timers.add(timer);
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

  /** Periodic work: timeouts, stalled workers, restarts, recovery, autoscaling. */
  tick(now: number): void {
    this.#flow.expire(now);
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
      if (w.health !== null && isServing(w.state) && checkDue(w.health, now)) this.#checkHealth(w, now);
      if (isServing(w.state) && this.#restarts.serving(w.readyAt)) {
        this.#log.info("Pool {pool} recovered", { pool: this.pool.name });
      }
    }
    for (const w of this.#draining) {
      this.#watch(w, now);
      if (w.sockets.size > 0 && now >= w.socketsUntil) this.#closeSockets(w, CLOSE.RESTART, "Service restart", true);
    }
    if (opts.maxWorkers > opts.minWorkers && !this.#stopping) this.#autoscale(now);
  }

  #autoscale(now: number) {
    const opts = this.pool.options;
    const slots = this.#slots;
    const oldest = this.#flow.oldestQueued();
    const last = slots[slots.length - 1]?.worker;
    const decision = decideScale({
      size: slots.length,
      queued: this.#flow.queueSize,
      waited: oldest === undefined ? 0 : now - (oldest.deadline - opts.timeout),
      starting: slots.some((s) => s.worker?.state === "starting"),
      degraded: this.degraded,
      lastIdle: last && isServing(last.state) && last.inflight.size === 0 && last.idleSince > 0
        ? now - last.idleSince
        : null,
    }, opts);
    if (decision.action === "grow") {
      this.#log.info("Pool {pool} grows to {n} workers: a request waited {waited} ms", {
        pool: this.pool.name,
        n: slots.length + 1,
        waited: decision.waited,
      });
      this.#addSlot();
    } else if (decision.action === "shrink") {
      this.#log.info("Pool {pool} shrinks to {n} workers: worker {id} idle for {idle} ms", {
        pool: this.pool.name,
        n: slots.length - 1,
        id: slots.length - 1,
        idle: decision.idle,
      });
      this.scale(slots.length - 1);
    }
  }

  /**
   * Starts a replacement for the slot's process; once it is ready it takes
   * the slot and the old process drains and stops. Resolves whether it took over.
   */
  #replace(slot: Slot, reason: string, kind: ReplacementKind): Promise<boolean> {
    const old = slot.worker;
    if (slot.standby === null) {
      if (this.#stopping) return this.#replaceFailed(slot);
      if (old !== null) {
        this.#log.info("Replacing worker {id} of pool {pool} (pid {pid}): {reason}", {
          id: slot.id,
          pool: this.pool.name,
          pid: old.child.pid,
          reason,
        });
      }
      this.#spawn(slot, old !== null);
      if (old === null) return Promise.resolve(slot.worker !== null);
      if (slot.standby === null) return this.#replaceFailed(slot);
      this.#count(kind);
    }
    return new Promise((resolve) => slot.swapWaiters.push(resolve));
  }

  /** No replacement could start: a retiring process serves again (it is retired again at its next answer). */
  #replaceFailed(slot: Slot): Promise<boolean> {
    if (slot.worker?.state === "retiring") slot.worker.state = "ready";
    return Promise.resolve(false);
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
      if (await this.#replace(slot, "reload", "reload")) replaced++;
    }
    return replaced;
  }

  /** Sends `w` its health check: straight to it, beside its other requests, counted against nothing. */
  #checkHealth(w: WorkerProcess, now: number) {
    const check = this.pool.options.healthCheck!;
    const health = w.health!;
    health.checking = true;
    const id = this.#flow.nextDetachedId();
    const wire: RequestHeader = { i: id, m: "GET", p: (this.pool.mount ?? "") + check.path, q: "", h: [], n: 1 };
    const p = new Pending<WorkerProcess>(id, null, this.pool, wire, EMPTY, (response) => {
      void response.body?.cancel().catch(() => {});
      const reason = checked(health, check, response.status, this.#clock.now());
      if (reason !== null) this.#kill(w, reason, "health");
    });
    p.deadline = deadlineFor(now, check.timeout);
    p.worker = w;
    w.inflight.set(id, p);
    w.busy++;
    w.writer.send(F.REQUEST, wire);
  }

  #watch(w: WorkerProcess, now: number) {
    const verdict = watch(w, now, this.pool.options);
    w.late = verdict.late;
    if (verdict.action === "sigkill") {
      w.child.kill("SIGKILL");
      w.killAt = now + KILL_GRACE;
    } else if (verdict.action === "kill") {
      this.#kill(w, verdict.reason, w.state === "starting" ? "startup" : "stuck");
    }
  }

  /** Sends `config` to every serving worker's `onConfig`. */
  broadcastConfig(config: unknown): void {
    for (const slot of this.#slots) {
      const w = slot.worker;
      if (w !== null && isServing(w.state)) w.writer.send(F.CONFIG, { c: config });
    }
  }

  /** Grows or shrinks the pool to `workers` slots; surplus workers finish their requests, then stop. */
  scale(workers: number): void {
    if (this.#stopping) return;
    while (this.#slots.length < workers) this.#addSlot();
    for (const slot of this.#slots.slice(workers)) {
      if (slot.standby !== null) this.#retire(slot.standby);
      if (slot.worker !== null) this.#retire(slot.worker);
      for (const done of slot.swapWaiters.splice(0)) done(false);
      this.#restarts.forget(slot.id);
    }
    this.#slots.length = Math.min(this.#slots.length, workers);
  }

  /** Slots (worker processes wanted) right now. */
  get size(): number {
    return this.#slots.length;
  }

  /** Workers serving now (a worker host's free slots are counted from it, per request). */
  get serving(): number {
    let n = 0;
    for (const slot of this.#slots) if (slot.worker !== null && isServing(slot.worker.state)) n++;
    return n;
  }

  /** Stops routing to `worker`, lets its requests finish, then stops it. */
  #retire(worker: WorkerProcess) {
    if (worker.state === "down" || worker.state === "killed") return;
    worker.state = "draining";
    this.#draining.add(worker);
    if (worker.slot.worker === worker) worker.slot.worker = null;
    if (worker.slot.standby === worker) worker.slot.standby = null;
    worker.socketsUntil = this.#clock.now() + this.pool.options.wsDrainTimeout;
    if (worker.inflight.size === 0 && worker.sockets.size === 0) worker.writer.send(F.STOP);
  }

  /** Closes the WebSockets pinned to `worker`; `tell`: whether it hears of it (not when it is gone). */
  #closeSockets(worker: WorkerProcess, code: number, reason: string, tell: boolean) {
    if (worker.sockets.size === 0) return;
    for (const close of [...worker.sockets.values()]) close(code, reason, tell);
    worker.sockets.clear();
  }

  /** Stops every worker: asks nicely, then kills after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const workers = [...this.#slots.flatMap((s) => [s.worker, s.standby]), ...this.#draining].filter((w) => w !== null);
    for (const w of workers) w.writer.send(F.STOP);
    // Spares wait for INIT; the end of their channel ends them.
    const spares = this.#launcher.stop();
    const all = this.#launcher.exited();
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

  /** Workers, queue and health of the pool. */
  status(): PoolStatus {
    return poolStatus(
      this.pool.name,
      this.#slots,
      this.#flow.queueSize,
      this.degraded,
      this.#launcher.sparePids(),
      this.#clock.now(),
    );
  }
}
