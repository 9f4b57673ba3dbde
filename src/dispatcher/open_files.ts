/**
 * The default of `maxConnections`: below the process's open-files limit, so that idle connections cannot take the
 * descriptors the dispatcher needs to replace a worker, open a spill file or accept its workers' channels.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import type { WorkerPool } from "../pool.ts";

/** Descriptors kept for the dispatcher itself (listeners, log files, the control socket, NATS, spill files). */
const OWN_DESCRIPTORS = 64;
/** Descriptors a worker process costs the dispatcher: its pipes and channel, twice over while it is replaced. */
const PER_WORKER = 8;

/** The soft limit on open files (`ulimit -n`), or `null` where it cannot be read or there is none (not Linux). */
export function openFilesLimit(limits = "/proc/self/limits"): number | null {
  let text: string;
  try {
    text = readFileSync(limits, "utf8");
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const n = soft === undefined ? NaN : Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/**
 * Connections to serve at once when the `maxConnections` option is not given: the open-files limit less what
 * `workers` processes and the dispatcher need, and never less than half the limit; 0 (no limit) without one.
 */
export function defaultMaxConnections(limit: number | null, workers: number): number {
  if (limit === null) return 0;
  return Math.max(Math.floor(limit / 2), limit - OWN_DESCRIPTORS - PER_WORKER * workers);
}

/** The worker processes `pools` may run at once: each pool's most workers and its spares (remote pools run none). */
export function localWorkers(pools: readonly WorkerPool[]): number {
  let n = 0;
  for (const { options } of pools) if (options.remote === null) n += options.maxWorkers + options.spares;
  return n;
}
