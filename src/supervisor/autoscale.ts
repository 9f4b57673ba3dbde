/**
 * Elastic pools (`minWorkers` < `maxWorkers`): grow by one worker while the
 * oldest queued request has waited `scaleUpDelay`, shrink by the last one once
 * it has been idle for `idleTimeout`. One worker at a time either way.
 *
 * @module
 */

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
