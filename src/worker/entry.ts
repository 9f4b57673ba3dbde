/**
 * Whether this process is one of a dispatcher's workers, and if so, running
 * it: the one place that decides. A dispatcher starts its workers with
 * `FORKYARD_WORKER=1`; in such a process `Dispatcher.run()` hands the
 * program's pools to {@linkcode runPoolWorker} instead of serving HTTP.
 *
 * @module
 */

import type { InitHeader } from "../protocol/frames.ts";
import type { Runtime } from "../runtime.ts";
import { importWorkerClass, runWorkerProcess } from "./process.ts";
import type { WorkerClass } from "./worker.ts";

/** Set in a worker's environment by the dispatcher that starts it. */
export const WORKER_ENV = "FORKYARD_WORKER";
/** Set for `module` pools: the module a process imports before its INIT (so that a spare waits with it loaded). */
export const MODULE_ENV = "FORKYARD_MODULE";
/** Set for an app pool's workers: their module is imported with its own listen() taken over. */
export const APP_ENV = "FORKYARD_APP";

/** Whether this process was started by a dispatcher as one of its workers. */
export function isWorkerProcess(runtime: Runtime): boolean {
  return runtime.env(WORKER_ENV) === "1";
}

/** What a worker needs to know of the program's pools to find its worker class. */
export interface PoolEntry {
  /** Pool name, as INIT names it. */
  readonly name: string;
  /** The worker class, or its export name for `module` pools. */
  readonly workerClass: WorkerClass | string;
}

/**
 * Runs this process as a worker of one of `pools` (the program re-run by its dispatcher): INIT names the pool;
 * its class is the program's own, or, for `module` pools and apps, imported from their module. Never returns.
 */
export function runPoolWorker(pools: readonly PoolEntry[]): Promise<never> {
  return runWorkerProcess((init: InitHeader) => {
    const pool = pools.find((p) => p.name === init.pool);
    if (!pool) throw new Error(`This program has no pool named "${init.pool}"`);
    if (typeof pool.workerClass !== "string" && !init.module) return pool.workerClass;
    return importWorkerClass(init);
  });
}
