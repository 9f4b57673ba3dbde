/**
 * The supervisor of a pool: puts its parts together (launching, the queue and
 * worker choice, deadlines, the watchdog, the restart policy, recycling,
 * autoscaling) and owns the pool's slots; a request's life is the
 * {@linkcode RequestLifecycle}'s. Loaded by dispatchers and worker hosts, never
 * by worker processes.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { MAX_RESTART_DELAY, type PoolRequest, type PoolStatus, type WorkerPool } from "../pool.ts";
import type { PoolBackend, PoolHost } from "../pool_backend.ts";
import { CLOSE } from "../protocol/close_codes.ts";
import { type CancelReason, F } from "../protocol/frames.ts";
import { removeWorkerSpills } from "../protocol/spill.ts";
import type { ExitStatus } from "../runtime.ts";
import { type Clock, systemClock } from "../requests/clock.ts";
import type { ClientRequest, Pending } from "../requests/pending.ts";
import { RequestLifecycle } from "../requests/request_lifecycle.ts";
import { decideScale, logScale, scaleInput } from "./autoscale.ts";
import { initHeader, Launcher } from "./launcher.ts";
import { atRequestLimit, requestLimit } from "./recycling.ts";
import { RestartPolicy } from "./restart_policy.ts";
import { poolStatus } from "./status.ts";
import { checkDue, healthState } from "./health_check.ts";
import { KILL_GRACE, watch } from "./watchdog.ts";
import { WorkerDispatch } from "./worker_dispatch.ts";
import { onWorkerFrame } from "./worker_frames.ts";
import {
  bootFailure,
  closeSockets,
  emptySlot,
  howItEnded,
  isServing,
  type ReplacementKind,
  type Slot,
  slotsSettled,
  type WorkerProcess,
} from "./worker_process.ts";

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
  #requests: RequestLifecycle<WorkerProcess>;
  #dispatch!: WorkerDispatch;

  constructor(pool: WorkerPool, host: PoolHost) {
    this.pool = pool;
    this.#host = host;
    this.#log = host.logger;
    this.#clock = host.clock ?? systemClock;
    const [runtime, clock, finished] = [host.runtime, this.#clock, (p: Pending) => host.finished(p)];
    this.#restarts = new RestartPolicy({ ...pool.options, maxRestartDelay: MAX_RESTART_DELAY }, clock);
    this.#requests = new RequestLifecycle(
      { pool, runtime, finished, log: this.#log, clock },
      (requests) =>
        this.#dispatch = new WorkerDispatch(pool, requests, {
          runtime,
          clock,
          slots: () => this.#slots,
          draining: () => this.#draining,
          atLimit: (worker) =>
            this.#retireAtLimit(worker, `took ${worker.assigned} requests (maxRequests)`, "max_requests"),
          answeredBy: (worker) => this.#recycleIfDue(worker),
        }),
    );
    const frames = {
      pool,
      host,
      clock,
      dispatch: this.#dispatch,
      ready: (worker: WorkerProcess) => this.#onReady(worker),
      overMemory: (worker: WorkerProcess, reason: string) => this.#retireAtLimit(worker, reason, "max_memory"),
      garbage: (worker: WorkerProcess, reason: string) => this.#kill(worker, reason, "garbage"),
    };
    this.#launcher = new Launcher(pool, runtime, this.#log, {
      frame: (worker, type, header, body, lent) => onWorkerFrame(frames, worker, type, header, body, lent),
      garbage: (worker, message) => this.#kill(worker, message, "garbage"),
      exit: (worker, status) => this.#onExit(worker, status),
    }, this.#clock);
  }

  /**
   * Why no worker of the pool could start, when none ever became ready and every slot's first process failed (its
   * setup() threw, its program did not load); `null` otherwise.
   */
  bootFailure(): string | null {
    return bootFailure(this.#slots);
  }

  /** Workers replaced so far, by why: `crash`, `stuck`, `startup`, `garbage`, `health`, `max_requests`, `max_memory`, `reload`. */
  replacements(): ReadonlyMap<ReplacementKind, number> {
    return this.#replaced;
  }

  #count(kind: ReplacementKind) {
    this.#replaced.set(kind, (this.#replaced.get(kind) ?? 0) + 1);
  }

  /** Admits a request; its answer goes to `request.resolve` (or its relay). Returns it pending, to follow it. */
  request(request: ClientRequest): Pending<WorkerProcess> {
    return this.#requests.admit(request);
  }

  /** Nobody waits for `pending` any more: its worker is told, and it leaves without an answer. */
  cancel(pending: Pending<WorkerProcess>, why: CancelReason): void {
    this.#requests.cancel(pending, why);
  }

  /** A relayed request's reader took `bytes` more of its streamed answer (a worker host's dispatcher says so). */
  credit(pending: Pending<WorkerProcess>, bytes: number): void {
    this.#requests.credit(pending, bytes);
  }

  /** Sends a request nobody waits for (`WorkerPool.send`). */
  sendDetached(request: PoolRequest): void {
    this.#requests.admitDetached(request);
  }

  /** Answers every waiting and in-flight request with `status` (shutdown). */
  abortAll(status: number, message: string): void {
    this.#requests.abortAll(status, message);
  }

  /** Whether the pool answers 503 because its workers keep failing. */
  get degraded(): boolean {
    return this.#restarts.degraded;
  }

  /** Starts the pool's workers. */
  start(): void {
    for (let i = 0; i < this.pool.options.workers; i++) this.#addSlot();
  }

  /** Resolves once every slot's first process is ready or has failed (a failing setup holds nothing up). */
  settled(): Promise<void> {
    return slotsSettled(() => this.#slots, this.pool.options.startupTimeout, () => this.#stopping);
  }

  #addSlot() {
    const slot = emptySlot(this.#slots.length);
    this.#slots.push(slot);
    this.#spawn(slot);
  }

  /** Gives `slot` a process (as its standby, to take over once ready) and sends its INIT. */
  #spawn(slot: Slot, standby = false) {
    const opts = this.pool.options;
    const worker = this.#launcher.assign(slot);
    if (worker === null) {
      slot.respawnAt = this.#clock.now() + this.#restarts.backoff(slot.id).next();
      return;
    }
    worker.maxServed = requestLimit(opts);
    if (standby) {
      slot.standby = worker;
    } else {
      slot.worker = worker;
      slot.respawnAt = 0;
    }
    worker.writer.send(F.INIT, initHeader(this.pool, slot.id));
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
    this.#requests.pump();
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

  /** Kills `worker` (its requests fail now): SIGKILL, since workers ignore SIGTERM, and one stuck could not heed it. */
  #kill(worker: WorkerProcess, reason: string, kind: ReplacementKind) {
    if (worker.state === "down" || worker.state === "killed") {
      worker.child.kill("SIGKILL");
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
    worker.child.kill("SIGKILL");
    // In-flight requests fail now, not when the process is finally gone.
    this.#dispatch.lost(worker);
    closeSockets(worker, CLOSE.WORKER_FAILED, "Worker failed", false);
  }

  #onExit(worker: WorkerProcess, status: ExitStatus) {
    const wasState = worker.state;
    worker.state = "down";
    worker.writer.close();
    removeWorkerSpills(this.#host.runtime.spill(), this.#host.runtime.pid, worker.child.pid);
    this.#dispatch.lost(worker);
    closeSockets(worker, CLOSE.WORKER_FAILED, "Worker failed", false);
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
    const what = { id: slot.id, pool: this.pool.name, pid: worker.child.pid, reason, delay };
    this.#log.error("Worker {id} of pool {pool} (pid {pid}) {reason}; restarting in {delay} ms", what);
    if (degradedNow) {
      const window = this.pool.options.restartWindow;
      this.#log.error("Pool {pool} is degraded: {count} restarts within {window} ms", {
        ...what,
        count: recent,
        window,
      });
      this.#requests.failQueued(503, "Service unavailable");
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

  /** Periodic work: timeouts, stalled workers, restarts, recovery, autoscaling. */
  tick(now: number): void {
    this.#requests.expire(now);
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
      if (w.health !== null && isServing(w.state) && checkDue(w.health, now)) {
        this.#dispatch.checkHealth(w, w.health, now, (reason) => this.#kill(w, reason, "health"));
      }
      if (isServing(w.state) && this.#restarts.serving(w.readyAt)) {
        this.#log.info("Pool {pool} recovered", { pool: this.pool.name });
      }
    }
    for (const w of this.#draining) {
      this.#watch(w, now);
      if (w.sockets.size > 0 && now >= w.socketsUntil) closeSockets(w, CLOSE.RESTART, "Service restart", true);
    }
    if (opts.maxWorkers > opts.minWorkers && !this.#stopping) this.#autoscale(now);
  }

  #autoscale(now: number) {
    const oldest = this.#requests.oldestQueued();
    const waited = oldest === undefined ? 0 : now - (oldest.deadline - this.pool.options.timeout);
    const input = scaleInput(this.#slots, this.#requests.queued, waited, this.degraded, now);
    const decision = decideScale(input, this.pool.options);
    if (decision.action === "none") return;
    logScale(this.#log, this.pool.name, input.size, decision);
    if (decision.action === "grow") this.#addSlot();
    else this.scale(input.size - 1);
  }

  /** Starts a replacement for the slot's process, which takes the slot once ready; resolves whether it took over. */
  #replace(slot: Slot, reason: string, kind: ReplacementKind): Promise<boolean> {
    const old = slot.worker;
    if (slot.standby === null) {
      if (this.#stopping) return this.#replaceFailed(slot);
      if (old !== null) {
        // A reload has lines of its own (its start and its count): one per worker would repeat them.
        this.#log[kind === "reload" ? "debug" : "info"]("Replacing worker {id} of pool {pool} (pid {pid}): {reason}", {
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

  /** Replaces every worker, one at a time, each new process ready before the old one stops; resolves with how many. */
  async reload(): Promise<number> {
    let replaced = 0;
    for (const slot of [...this.#slots]) {
      if (this.#stopping) break;
      if (this.#slots[slot.id] !== slot) continue;
      if (await this.#replace(slot, "reload", "reload")) replaced++;
    }
    return replaced;
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

  /** Stops every worker: asks nicely, then kills after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#requests.stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const workers = [...this.#slots.flatMap((s) => [s.worker, s.standby]), ...this.#draining].filter((w) => w !== null);
    await this.#launcher.stop(workers, graceMs);
  }

  /** Workers, queue and health of the pool. */
  status(): PoolStatus {
    return poolStatus(
      this.pool.name,
      this.#slots,
      this.#requests.queued,
      this.degraded,
      this.#launcher.sparePids(),
      this.#clock.now(),
    );
  }
}
