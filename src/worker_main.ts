/**
 * Entry point of worker processes for pools with a `module` option: loads the
 * worker class from that module, without the dispatcher's code.
 *
 * @module
 */

import { runWorkerProcess } from "./worker_loop.ts";
import type { WorkerClass } from "./worker.ts";

await runWorkerProcess(async (init) => {
  if (!init.module || !init.export) throw new Error(`Pool "${init.pool}" has no worker module`);
  const mod = await import(init.module) as Record<string, unknown>;
  const cls = mod[init.export] ?? (mod.default as { name?: string } | undefined);
  if (typeof cls !== "function" || (mod[init.export] === undefined && cls.name !== init.export)) {
    throw new Error(`Cannot start pool "${init.pool}": worker module "${init.module}" does not export "${init.export}"`);
  }
  return cls as WorkerClass;
});
