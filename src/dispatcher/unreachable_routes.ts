/**
 * `@api` routes that no request can reach, which the dispatcher warns of once as it starts.
 *
 * @module
 */

import type { WorkerPool } from "../pool.ts";
import { samplePath, workerRoutes } from "../routing.ts";

/** The logger method the warning goes through. */
interface WarningLog {
  warning(message: string, properties?: Record<string, unknown>): void;
}

/** One warning per `@api` route that no request can reach, because `findPool` sends its paths to another pool. */
export function warnUnreachableRoutes(
  pools: readonly WorkerPool[],
  findPool: (path: string) => WorkerPool | undefined,
  log: WarningLog,
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
