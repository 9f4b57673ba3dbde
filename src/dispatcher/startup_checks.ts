/**
 * What the dispatcher looks at once as it starts: spill files that dead
 * processes left behind, and `@api` routes that no request can reach.
 *
 * @module
 */

import type { WorkerPool } from "../pool.ts";
import { removeOrphanSpills } from "../protocol/spill.ts";
import { samplePath, workerRoutes } from "../routing.ts";
import type { Runtime } from "../runtime.ts";

/** The logger methods these checks use. */
interface CheckLog {
  info(message: string, properties?: Record<string, unknown>): void;
  warning(message: string, properties?: Record<string, unknown>): void;
  error(message: string, properties?: Record<string, unknown>): void;
}

/** Removes the spill files (memory, in /dev/shm) that a dispatcher killed with SIGKILL, and its workers, left behind. */
export function removeStaleSpills(runtime: Runtime, log: CheckLog): void {
  const files = runtime.spill();
  if (files === null) return;
  try {
    const count = removeOrphanSpills(files, (pid) => runtime.alive(pid));
    if (count > 0) log.info("Removed the spill files of {count} processes that no longer run", { count });
  } catch (error) {
    log.error("Could not look for stale spill files in {dir}: {error}", { dir: files.dir, error });
  }
}

/** One warning per `@api` route that no request can reach, because `findPool` sends its paths to another pool. */
export function warnUnreachableRoutes(
  pools: readonly WorkerPool[],
  findPool: (path: string) => WorkerPool | undefined,
  log: CheckLog,
): void {
  for (const pool of pools) {
    if (typeof pool.workerClass !== "function" || pool.mount !== null) continue;
    for (const { pattern } of workerRoutes(pool.workerClass)) {
      const path = samplePath(pattern);
      const served = findPool(path);
      if (served === pool) continue;
      log.warning(
        'Route "{pattern}" of pool "{pool}" is never reached: {path} goes to {other} (pool routes: {routes})',
        {
          pattern,
          pool: pool.name,
          path,
          other: served === undefined ? "no pool (404)" : `pool "${served.name}"`,
          routes: pool.options.routes?.join(", ") ?? "none",
        },
      );
    }
  }
}
