/**
 * A pool's status as `WorkerPool.status()` reports it.
 *
 * @module
 */

import type { PoolStatus, WorkerStatus } from "../pool.ts";
import { oldest } from "../requests/deadlines.ts";
import { isServing, type Slot, type WorkerState } from "./worker_process.ts";

/** The state `WorkerStatus.state` shows: `retiring` is still `ready`, `killed` already `down`. */
function shownState(state: WorkerState): string {
  if (state === "retiring") return "ready";
  if (state === "killed") return "down";
  return state;
}

/** The status of one slot at `now`. */
export function slotStatus(slot: Slot, now: number): WorkerStatus {
  const w = slot.worker;
  const first = w ? oldest(w.inflight.values()) : null;
  return {
    id: slot.id,
    pid: w?.child.pid ?? null,
    alive: w !== null && isServing(w.state),
    state: w === null ? "down" : shownState(w.state),
    lastSeen: w?.lastSeen ?? null,
    currentRequest: first?.requestId ?? null,
    inflight: w?.inflight.size ?? 0,
    restarts: slot.restarts,
    lastExitReason: slot.lastExitReason,
    uptime: w && w.readyAt > 0 ? now - w.readyAt : 0,
    rss: w?.rss ?? 0,
    served: w?.served ?? 0,
    sockets: w?.sockets.size ?? 0,
  };
}

/** A pool's status at `now`. */
export function poolStatus(
  name: string,
  slots: readonly Slot[],
  queueSize: number,
  degraded: boolean,
  spares: number[],
  now: number,
): PoolStatus {
  return { name, workers: slots.map((slot) => slotStatus(slot, now)), queueSize, degraded, spares };
}
