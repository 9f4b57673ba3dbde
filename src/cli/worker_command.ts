/**
 * `forkyard worker --nats URL module[:export]`: runs a remote pool's workers on
 * this host (see `src/remote/worker_host.ts`).
 *
 * @module
 */

import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { loadFailure } from "../dispatcher/startup_errors.ts";
import { AppPool, WorkerPool } from "../pool.ts";
import type { WorkerPoolOptions } from "../pool_options.ts";
import { resolveRemote } from "../remote_options.ts";
import type { Runtime } from "../runtime.ts";
import { Worker, type WorkerClass } from "../worker/worker.ts";
import type { CliArgs } from "./args.ts";
import { appOf } from "../app_kind.ts";
import { importCapturing } from "../listen_capture.ts";
import { UsageError } from "./usage_error.ts";

/** The pool `target` names (a Worker class, a fetch app or a request listener), with the command line's pool flags. */
async function poolFor(target: string, args: CliArgs, runtime: Runtime): Promise<WorkerPool> {
  const colon = target.lastIndexOf(":");
  const hasExport = colon > 1 && !target.slice(colon).includes("/");
  const modulePath = hasExport ? target.slice(0, colon) : target;
  const file = resolve(modulePath);
  if (!existsSync(file)) throw new UsageError(`cannot find module "${modulePath}"`);
  const url = pathToFileURL(file);
  let loaded: Awaited<ReturnType<typeof importCapturing>>;
  try {
    // An app that calls listen() itself is served through its server, here as in the workers (listen_capture.ts).
    loaded = await importCapturing(url.href);
  } catch (error) {
    throw new UsageError(loadFailure(error, modulePath, runtime.loadHint(error, modulePath)));
  }
  const exportName = hasExport ? target.slice(colon + 1) : "default";
  const found = loaded.value[exportName];
  const app = appOf(found, loaded.captured?.server ?? null);
  if (found === undefined && app === null) {
    throw new UsageError(`module "${modulePath}" has no export "${exportName}"`);
  }
  const options = args.pool as WorkerPoolOptions;
  try {
    if (typeof found === "function" && found.prototype instanceof Worker) {
      return new WorkerPool((found as WorkerClass).name, { ...options, module: url, export: exportName });
    }
    if (app !== null) {
      return new AppPool("/", url, { ...options, export: exportName });
    }
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  throw new UsageError(
    `export "${exportName}" of "${modulePath}" is neither a Worker class, an app with fetch() nor a request listener`,
  );
}

/** Runs `forkyard worker`; resolves with the exit status. */
export async function runWorkerCommand(args: CliArgs, runtime: Runtime): Promise<number> {
  const pool = await poolFor(args.target!, args, runtime);
  const { nats, subject, name, ca, insecure } = args.worker ?? {};
  let remote;
  try {
    remote = resolveRemote(
      {
        nats,
        ...(subject !== undefined ? { subject } : {}),
        ...(ca !== undefined ? { tls: { caFile: ca } } : {}),
        ...(insecure ? { insecure } : {}),
      },
      pool.name,
      "forkyard worker",
    );
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { WorkerHost } = await import("../remote/worker_host.ts");
  const host = new WorkerHost({
    runtime,
    pool,
    remote,
    name: name ?? hostname(),
    shutdownTimeout: (args.dispatcher.shutdownTimeout as number | undefined) ?? 10_000,
    ...(typeof args.dispatcher.control === "string" ? { control: args.dispatcher.control } : {}),
  });
  return await host.run();
}
