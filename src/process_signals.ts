/**
 * The signals a serving process answers, as gunicorn's master does: SIGTERM and SIGINT stop it gracefully, SIGHUP
 * reloads every worker, SIGTTIN and SIGTTOU add or remove one worker in every local pool (never under one; a remote
 * pool's worker hosts answer their own). SIGUSR1 (log files reopened) is the log output's.
 *
 * @module
 */

import type { WorkerPool } from "./pool.ts";
import type { Runtime } from "./runtime.ts";
import { plural } from "./logging/plural.ts";

/** What the signals act on. */
export interface SignalTarget {
  readonly pools: readonly WorkerPool[];
  stop(): unknown;
  reload(): unknown;
}

/**
 * Listens for the serving signals; returns what stops listening. `resizes`: whether TTIN and TTOU resize `target`'s
 * pools (a primary's dispatchers leave it to the primary, but still take the signals, which would stop them).
 */
export function onServingSignals(
  runtime: Runtime,
  target: SignalTarget,
  resizes: boolean,
  log: { info(message: string, properties?: Record<string, unknown>): void },
): (() => void)[] {
  const resize = (delta: 1 | -1) => () => {
    if (!resizes) return;
    for (const pool of target.pools) {
      if (pool.options.remote) continue;
      const workers = Math.max(1, pool.status().workers.length + delta);
      pool.scale(workers);
      log.info("Scaling pool {pool} to {workers} ({signal})", {
        pool: pool.name,
        workers: plural(workers, "worker"),
        signal: delta > 0 ? "SIGTTIN" : "SIGTTOU",
      });
    }
  };
  return [
    runtime.onSignal("SIGTERM", () => void target.stop()),
    runtime.onSignal("SIGINT", () => void target.stop()),
    runtime.onSignal("SIGHUP", () => void target.reload()),
    runtime.onSignal("SIGTTIN", resize(1)),
    runtime.onSignal("SIGTTOU", resize(-1)),
  ];
}
