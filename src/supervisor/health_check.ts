/**
 * HTTP health checks (the pool option `healthCheck`): every `interval`, each
 * serving worker gets a GET of `path`, straight to it; a worker whose answer is
 * not 2xx, or comes not within `timeout`, `retries` times in a row is replaced
 * as a stuck one is.
 *
 * @module
 */

import type { HealthCheck } from "../pool_options.ts";

export type { HealthCheck };

/** One worker's checks so far. */
export interface HealthState {
  /** When the next check is due. */
  nextAt: number;
  /** Whether a check is in flight. */
  checking: boolean;
  /** Failed checks in a row. */
  failures: number;
  /** What the last failed check got: a status, or `timeout`. */
  last: string;
}

/** A worker's health state, first check one interval after it became ready. */
export function healthState(readyAt: number, check: HealthCheck): HealthState {
  return { nextAt: readyAt + check.interval, checking: false, failures: 0, last: "" };
}

/** Whether a check of a worker in `state` is due at `now`. */
export function checkDue(state: HealthState, now: number): boolean {
  return !state.checking && now >= state.nextAt;
}

/**
 * Records a check's outcome (`status`, 504 for a timeout) at `now`; returns why the worker is to be replaced, or
 * `null`.
 */
export function checked(state: HealthState, check: HealthCheck, status: number, now: number): string | null {
  state.checking = false;
  state.nextAt = now + check.interval;
  if (status >= 200 && status < 300) {
    state.failures = 0;
    return null;
  }
  state.failures++;
  state.last = status === 504 ? "timeout" : `status ${status}`;
  if (state.failures < check.retries) return null;
  return `failed its health check ${state.failures} times in a row (GET ${check.path}: ${state.last})`;
}
