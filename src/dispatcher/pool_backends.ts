/**
 * What runs each of a dispatcher's pools: a supervisor of local processes, or,
 * for a pool with the `remote` option, its link to the worker hosts over NATS.
 *
 * @module
 */

import type { PoolBackend, PoolHost } from "../pool_backend.ts";
import type { WorkerPool } from "../pool.ts";

/** A backend for each of `pools`, attached to its pool; `hostFor` gives each what it needs from the dispatcher. */
export async function poolBackends(
  pools: readonly WorkerPool[],
  hostFor: (pool: WorkerPool) => PoolHost,
): Promise<PoolBackend[]> {
  // Loaded here: worker processes re-run the program and supervise nothing; NATS only when some pool is remote.
  const { Supervisor } = await import("../supervisor/supervisor.ts");
  const remote = pools.some((p) => p.options.remote !== null) ? await import("../remote/remote_pool.ts") : undefined;
  return pools.map((pool) => {
    const host = hostFor(pool);
    const backend: PoolBackend = remote !== undefined && pool.options.remote !== null
      ? new remote.RemotePool(pool, host, pool.options.remote)
      : new Supervisor(pool, host);
    pool.attach(backend);
    return backend;
  });
}
