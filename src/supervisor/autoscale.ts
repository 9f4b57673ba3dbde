/**
 * Elastic pools (`minWorkers` < `maxWorkers`): grow by one worker while the
 * oldest queued request has waited `scaleUpDelay`, shrink by the last one once
 * it has been idle for `idleTimeout`. One worker at a time either way.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { isServing, type Slot } from "./worker_process.ts";

/** What the decision looks at. */
export interface ScaleInput {
  /** Slots now. */
  size: number;
  /** Requests waiting. */
  queued: number;
  /** How long the oldest waiting request has waited. */
  waited: number;
  /** Whether a worker is starting (grow one at a time). */
  starting: boolean;
  /** Whether the pool is degraded (do not grow a failing pool). */
  degraded: boolean;
  /** How long the last slot's worker has been idle; `null` when it is not serving or has requests. */
  lastIdle: number | null;
}

/** The options the decision follows (a pool's). */
export interface ScaleOptions {
  minWorkers: number;
  maxWorkers: number;
  scaleUpDelay: number;
  idleTimeout: number;
}

/** What to do now. */
export type ScaleDecision = { action: "none" } | { action: "grow"; waited: number } | {
  action: "shrink";
  idle: number;
};

/** Whether to add a worker, remove the last, or neither. */
export function decideScale(input: ScaleInput, opts: ScaleOptions): ScaleDecision {
  if (input.queued > 0 && input.size < opts.maxWorkers && !input.degraded) {
    if (input.waited >= opts.scaleUpDelay && !input.starting) return { action: "grow", waited: input.waited };
    return { action: "none" };
  }
  if (
    input.size > opts.minWorkers && input.queued === 0 && input.lastIdle !== null && input.lastIdle >= opts.idleTimeout
  ) {
    return { action: "shrink", idle: input.lastIdle };
  }
  return { action: "none" };
}

/** What the decision looks at in a pool of `slots` with `queued` requests, the oldest `waited` ms ago. */
export function scaleInput(
  slots: readonly Slot[],
  queued: number,
  waited: number,
  degraded: boolean,
  now: number,
): ScaleInput {
  const last = slots[slots.length - 1]?.worker;
  return {
    size: slots.length,
    queued,
    waited,
    starting: slots.some((s) => s.worker?.state === "starting"),
    degraded,
    lastIdle: last && isServing(last.state) && last.inflight.size === 0 && last.idleSince > 0
      ? now - last.idleSince
      : null,
  };
}

/** Logs what pool `pool` of `size` workers does, and why. */
export function logScale(log: Logger, pool: string, size: number, decision: ScaleDecision): void {
  if (decision.action === "grow") {
    log.info("Pool {pool} grows to {n} workers: a request waited {waited} ms", {
      pool,
      n: size + 1,
      waited: decision.waited,
    });
  } else if (decision.action === "shrink") {
    log.info("Pool {pool} shrinks to {n} workers: worker {id} idle for {idle} ms", {
      pool,
      n: size - 1,
      id: size - 1,
      idle: decision.idle,
    });
  }
}
