/**
 * Watching a worker's heartbeats: late ones make it a last resort for new
 * requests; none for `stuckTimeout` (or no READY within `startupTimeout`) gets
 * it killed; a killed process that has not exited gets SIGKILL.
 *
 * @module
 */

import type { WorkerState } from "./worker_process.ts";

/** How long a killed process gets to exit before SIGKILL (again). */
export const KILL_GRACE = 2_000;

/** What the watchdog looks at in a worker. */
export interface Watched {
  readonly state: WorkerState;
  readonly startedAt: number;
  readonly lastSeen: number;
  readonly killAt: number;
}

/** The options the watchdog follows (a pool's). */
export interface WatchOptions {
  heartbeatInterval: number;
  startupTimeout: number;
  stuckTimeout: number;
}

/** What to do about a worker now. */
export type Verdict =
  | { action: "none"; late: boolean }
  | { action: "sigkill"; late: boolean }
  | { action: "kill"; late: boolean; reason: string };

/** Heartbeats missed for this many intervals make a worker late. */
const LATE_AFTER = 3;

/** The watchdog's verdict on `w` at `now`. */
export function watch(w: Watched, now: number, opts: WatchOptions): Verdict {
  const late = now - w.lastSeen > LATE_AFTER * opts.heartbeatInterval;
  if (w.state === "killed" || w.killAt !== 0) return { action: now >= w.killAt ? "sigkill" : "none", late };
  if (w.state === "starting") {
    if (now - w.startedAt > opts.startupTimeout) {
      return { action: "kill", late, reason: `did not become ready within startupTimeout ${opts.startupTimeout} ms` };
    }
  } else if (now - w.lastSeen > opts.stuckTimeout) {
    return {
      action: "kill",
      late,
      reason: `stuck: no heartbeat for ${now - w.lastSeen} ms (stuckTimeout ${opts.stuckTimeout} ms)`,
    };
  }
  return { action: "none", late };
}
