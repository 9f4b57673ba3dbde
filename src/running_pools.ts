/**
 * The pools a process runs, as one: started together, ticked ten times a
 * second (timeouts, heartbeats, restarts), checked for a failed boot, and
 * stopped with one grace. A dispatcher and a worker host both run their pools
 * through it.
 *
 * @module
 */

import type { PoolBackend } from "./pool_backend.ts";

/** How often pools are ticked. */
export const TICK_MS = 100;
/** Ticks in a second. */
const TICKS_PER_SECOND = 1000 / TICK_MS;

/** The exit status of a process whose pool could not start a worker (gunicorn's is 3 too). */
export const BOOT_FAILURE_STATUS = 3;

/** Time workers get to exit after being asked, at shutdown: the shutdown timeout, between 1 and 5 s. */
export function stopGrace(shutdownTimeout: number): number {
  return Math.max(1000, Math.min(shutdownTimeout, 5000));
}

/** Resolves once `done` does (the last request finished), or after `timeoutMs`. */
export async function settledWithin(done: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}

/** Where a failed tick is logged. */
export type ErrorLog = { error(message: string, properties?: Record<string, unknown>): void };

/** What else happens on each tick: `second` is true once a second. */
export type TickHook = (now: number, second: boolean) => void;

/** The pools of one process. */
export class RunningPools {
  readonly backends: readonly PoolBackend[];
  readonly #log: ErrorLog;
  readonly #onTick: TickHook | null;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;

  private constructor(backends: readonly PoolBackend[], log: ErrorLog, onTick: TickHook | null) {
    this.backends = backends;
    this.#log = log;
    this.#onTick = onTick;
  }

  /** Starts `backends` (each pool's workers), and the ticks. */
  static start(backends: readonly PoolBackend[], log: ErrorLog, onTick: TickHook | null = null): RunningPools {
    const running = new RunningPools(backends, log, onTick);
    for (const backend of backends) backend.start();
    running.#ticker = setInterval(() => running.#tick(), TICK_MS);
    return running;
  }

  /** Resolves once every pool's first workers are ready or failed. */
  async settled(): Promise<void> {
    await Promise.all(this.backends.map((b) => b.settled()));
  }

  /** The first pool none of whose workers could start, and why; `null` when every pool has some. */
  bootFailure(): { pool: string; reason: string } | null {
    for (const backend of this.backends) {
      const reason = backend.bootFailure();
      if (reason !== null) return { pool: backend.pool.name, reason };
    }
    return null;
  }

  #tick() {
    const now = Date.now();
    for (const backend of this.backends) {
      try {
        backend.tick(now);
      } catch (error) {
        this.#log.error("Supervising pool {pool} failed: {error}", { pool: backend.pool.name, error });
      }
    }
    try {
      this.#onTick?.(now, ++this.#ticks % TICKS_PER_SECOND === 0);
    } catch (error) {
      this.#log.error("Tick failed: {error}", { error });
    }
  }

  /**
   * Stops every pool: what is still waiting or in flight is answered `status` (`message`), workers get `grace` ms to
   * exit before they are killed, and the ticks stop.
   */
  async stop(grace: number, status = 503, message = "Server shutting down"): Promise<void> {
    for (const backend of this.backends) backend.abortAll(status, message);
    await Promise.all(this.backends.map((b) => b.stop(grace)));
    clearInterval(this.#ticker);
  }
}
