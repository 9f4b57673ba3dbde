/**
 * A worker process as its supervisor sees it, and the slot it fills.
 *
 * @module
 */

import type { FrameWriter } from "../protocol/codec.ts";
import { IdTable } from "../id_table.ts";
import type { ChildProcess, ExitStatus } from "../runtime.ts";
import type { HealthState } from "./health_check.ts";
import type { Pending } from "../requests/pending.ts";
import type { CloseSocket } from "../requests/socket_link.ts";

/**
 * Where a worker process is in its life:
 * - `starting`: spawned and given its INIT; `setup()` runs.
 * - `ready`: takes requests.
 * - `retiring`: at its `maxRequests` or over `maxMemoryMb`: finishes what it has but takes no new request while its
 *   replacement starts (if that fails to start, it is `ready` again).
 * - `draining`: replaced or no longer wanted: finishes its requests, then is told to stop.
 * - `killed`: sent a signal; its requests have failed; SIGKILL follows at `killAt` until it exits.
 * - `down`: exited.
 */
export type WorkerState = "starting" | "ready" | "retiring" | "draining" | "killed" | "down";

/** Why a worker was replaced: a restart (`crash`, `stuck`, `startup`, `garbage`, `health`) or a recycle. */
export type ReplacementKind =
  | "crash"
  | "stuck"
  | "startup"
  | "garbage"
  | "health"
  | "max_requests"
  | "max_memory"
  | "reload";

/** Whether a worker in `state` has finished starting and has not been replaced, stopped or killed. */
export function isServing(state: WorkerState): boolean {
  return state === "ready" || state === "retiring";
}

/** A slot of a pool: one worker process wanted, and the processes that fill it over time. */
export interface Slot {
  /** Slot id, from 0; `WorkerStatus.id` and `Worker.workerId`. */
  readonly id: number;
  /** The process serving the slot. */
  worker: WorkerProcess | null;
  /** A process starting to take over from `worker` (recycling, reload); it takes the slot once ready. */
  standby: WorkerProcess | null;
  /** Waiting for the standby to take over (true) or fail (false). */
  swapWaiters: ((ok: boolean) => void)[];
  /** Processes of this slot that crashed, stalled or failed to start. */
  restarts: number;
  /** When the slot's next process may start after a crash; 0: no restart waiting. */
  respawnAt: number;
  /** Why the slot's previous process ended. */
  lastExitReason: string | null;
  /** Whether a process of this slot ever became ready. */
  everReady: boolean;
  /** The error a process of this slot failed to start with, as one line, when it said. */
  bootError: string | null;
}

/** Slot `id`, before its first process. */
export function emptySlot(id: number): Slot {
  return {
    id,
    worker: null,
    standby: null,
    swapWaiters: [],
    restarts: 0,
    respawnAt: 0,
    lastExitReason: null,
    everReady: false,
    bootError: null,
  };
}

/**
 * Resolves once every slot's first process is serving or has failed (the pool's start is settled), after
 * `timeoutMs`, or once `stopped()`.
 */
export function slotsSettled(slots: () => readonly Slot[], timeoutMs: number, stopped: () => boolean): Promise<void> {
  const check = () => slots().every((s) => s.restarts > 0 || (s.worker !== null && isServing(s.worker.state)));
  if (check()) return Promise.resolve();
  return new Promise((resolve) => {
    const deadline = Date.now() + timeoutMs;
    const timer = setInterval(() => {
      if (check() || Date.now() >= deadline || stopped()) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
}

/**
 * Why no worker of the pool could start, when none ever became ready and every slot's first process failed (its
 * setup() threw, its program did not load); `null` otherwise.
 */
export function bootFailure(slots: readonly Slot[]): string | null {
  if (slots.length === 0 || slots.some((s) => s.everReady || s.restarts === 0)) return null;
  const slot = slots.find((s) => s.bootError !== null) ?? slots[0];
  return slot.bootError ?? slot.lastExitReason ?? "no worker started";
}

/** A running worker process. */
export class WorkerProcess {
  readonly slot: Slot;
  readonly child: ChildProcess;
  readonly writer: FrameWriter;
  state: WorkerState = "starting";
  /** Requests dispatched and not yet answered, by request id. */
  readonly inflight: IdTable<Pending<WorkerProcess>> = new IdTable();
  /** WebSockets pinned to this process, by socket id: how to close each. */
  readonly sockets: Map<number, CloseSocket> = new Map();
  /** While draining with open sockets: when they are closed with 1012 (clock time). */
  socketsUntil = 0;
  /** Requests in flight whose answer has not begun (streams no longer count): what `concurrency` limits. */
  busy = 0;
  /** The worker asked for no new requests for now (`Worker.pause()`); flow control, not a state. */
  paused = false;
  /** Heartbeats overdue: probably blocked; routed to only when no other worker can take a request. */
  late = false;
  readonly startedAt: number;
  readyAt = 0;
  /** When the worker last sent a frame. */
  lastSeen: number;
  /** Resident memory in bytes, from the last heartbeat. */
  rss = 0;
  /** Requests answered. */
  served = 0;
  /** Requests handed to this process so far, answered or not. */
  assigned = 0;
  /** Requests after which this process is replaced (`maxRequests` plus its jitter); 0 never. */
  maxServed = 0;
  /** When SIGKILL follows, in state `killed`. */
  killAt = 0;
  /** When the process last had nothing to do, for elastic shrinking; 0 while it has. */
  idleSince: number;
  /** Its health checks, when the pool has them and it is ready. */
  health: HealthState | null = null;
  /** Why it was killed. */
  reason: string | null = null;
  /** Why it was killed, as a kind. */
  killedFor: ReplacementKind | null = null;
  /** The unfinished last line of stderr, and of stdout when the channel has its own pipe. */
  readonly tails = { stderr: "", stdout: "" };

  constructor(slot: Slot, child: ChildProcess, writer: FrameWriter, now: number) {
    this.slot = slot;
    this.child = child;
    this.writer = writer;
    this.startedAt = now;
    this.lastSeen = now;
    this.idleSince = now;
  }
}

/** Closes the WebSockets pinned to `worker`; `tell`: whether it hears of it (not when it is gone). */
export function closeSockets(worker: WorkerProcess, code: number, reason: string, tell: boolean): void {
  if (worker.sockets.size === 0) return;
  for (const close of [...worker.sockets.values()]) close(code, reason, tell);
  worker.sockets.clear();
}

/** `code 1` or `signal SIGKILL`. */
export function howItEnded(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}
