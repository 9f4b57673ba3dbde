/**
 * When a crashed worker comes back, and when a pool gives up: exponential
 * backoff per slot, a count of restarts within `restartWindow` that makes the
 * pool degraded past `maxRestarts`, and recovery once a worker stayed up for
 * `minUptime`.
 *
 * @module
 */

import type { Clock } from "../requests/clock.ts";

/** A delay that doubles at each use, from `initial` up to `max`, until it is reset. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  #delay: number;

  /**
   * @param initial The first delay (0 waits not at all the first time, then 1 ms, 2 ms, ...).
   * @param max The longest delay.
   */
  constructor(initial: number, max: number) {
    this.#initial = initial;
    this.#max = max;
    this.#delay = initial;
  }

  /** The delay to wait now; the next one is twice as long. */
  next(): number {
    const delay = this.#delay;
    this.#delay = Math.min(Math.max(delay * 2, 1), this.#max);
    return delay;
  }

  /** The delay {@linkcode Backoff.next} would give, without using it. */
  peek(): number {
    return this.#delay;
  }

  /** Starts again from the initial delay. */
  reset(): void {
    this.#delay = this.#initial;
  }
}

/** The options a {@linkcode RestartPolicy} follows (a pool's). */
export interface RestartOptions {
  /** First delay before a restart; doubles per crash. */
  restartDelay: number;
  /** Longest delay before a restart. */
  maxRestartDelay: number;
  /** Restarts allowed within `restartWindow` before the pool is degraded. */
  maxRestarts: number;
  /** Window in which restarts are counted. */
  restartWindow: number;
  /** A worker up this long counts as healthy: its slot's backoff resets, a degraded pool recovers. */
  minUptime: number;
}

/** What {@linkcode RestartPolicy.crashed} decides. */
export interface RestartDecision {
  /** Wait this long before starting the slot's next process. */
  delay: number;
  /** The pool became degraded with this crash. */
  degradedNow: boolean;
  /** Restarts within the window, this one included. */
  recent: number;
}

/** A pool's restart policy: one backoff per slot, one restart window and degraded state per pool. */
export class RestartPolicy {
  readonly #options: RestartOptions;
  readonly #clock: Clock;
  readonly #backoff = new Map<number, Backoff>();
  #times: number[] = [];
  #degraded = false;

  constructor(options: RestartOptions, clock: Clock) {
    this.#options = options;
    this.#clock = clock;
  }

  /** Whether the pool answers 503 because its workers keep failing. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** The backoff of slot `id`. */
  backoff(id: number): Backoff {
    let backoff = this.#backoff.get(id);
    if (backoff === undefined) {
      backoff = new Backoff(this.#options.restartDelay, this.#options.maxRestartDelay);
      this.#backoff.set(id, backoff);
    }
    return backoff;
  }

  /**
   * Slot `id`'s process ended unplanned; `readyAt` is when it became ready (0: never). A process that was up for
   * `minUptime` starts its slot's backoff again.
   */
  crashed(id: number, readyAt: number): RestartDecision {
    const now = this.#clock.now();
    const backoff = this.backoff(id);
    if (readyAt > 0 && now - readyAt >= this.#options.minUptime) backoff.reset();
    this.#times.push(now);
    while (this.#times.length > 0 && this.#times[0] <= now - this.#options.restartWindow) this.#times.shift();
    let degradedNow = false;
    if (!this.#degraded && this.#times.length > this.#options.maxRestarts) {
      this.#degraded = true;
      degradedNow = true;
    }
    return { delay: backoff.next(), degradedNow, recent: this.#times.length };
  }

  /**
   * A worker is serving and became ready at `readyAt`: a degraded pool recovers once one has been up for
   * `minUptime`. Returns whether it recovered now.
   */
  serving(readyAt: number): boolean {
    if (!this.#degraded || this.#clock.now() - readyAt < this.#options.minUptime) return false;
    this.#degraded = false;
    this.#times.length = 0;
    return true;
  }

  /** Forgets slot `id` (the pool shrank). */
  forget(id: number): void {
    this.#backoff.delete(id);
  }
}
