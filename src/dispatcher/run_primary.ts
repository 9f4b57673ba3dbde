/**
 * Running this process as the primary of several dispatchers (option
 * `dispatchers`): it checks that SO_REUSEPORT is there, starts the
 * dispatchers, and serves the control socket and the admin listener for all
 * of them, until it is stopped.
 *
 * @module
 */

import type { WorkerPool } from "../pool.ts";
import type { HttpServer, Runtime } from "../runtime.ts";
import { firstLine } from "../error_text.ts";
import { flushLogs } from "../logging/line_buffer.ts";
import type { AdminListener } from "./admin.ts";
import type { PoolSnapshot } from "./metrics.ts";
import type { ResolvedDispatcherOptions } from "./options.ts";
import { DispatcherFailed, Primary, type PrimaryLog } from "./primary.ts";
import { ADMIN_CONNECTIONS } from "./admin_address.ts";
import { onServingSignals } from "../process_signals.ts";

/** What {@linkcode runPrimary} needs of the `Dispatcher` it runs as the primary. */
export interface RunPrimaryHost {
  runtime: Runtime;
  dispatcher: {
    readonly pools: readonly WorkerPool[];
    readonly options: ResolvedDispatcherOptions;
    reload(): Promise<number>;
    stop(): Promise<void>;
  };
  log: PrimaryLog;
  /** Resolves once the dispatcher has stopped. */
  finished: Promise<void>;
  /** Hands the primary to the dispatcher, whose `reload()` and `stop()` then go to it. */
  adopt(primary: Primary): void;
  /** Calls `onListen` once every dispatcher listens. */
  listening(info: {
    port: number;
    hostname: string;
    protocol: "http" | "https";
    admin?: { port: number; hostname: string };
  }): void;
}

/**
 * Runs this process as the primary of `options.dispatchers` dispatchers until it is stopped. When SO_REUSEPORT is
 * missing, or a dispatcher cannot start at all, it says why in one line and exits (status 1, or the dispatcher's).
 */
export async function runPrimary(host: RunPrimaryHost): Promise<void> {
  const { runtime, dispatcher, log } = host;
  const options = dispatcher.options;
  const missing = runtime.reusePortMissing(options.httpServer);
  if (missing !== null) {
    log.error("Cannot run {count} dispatchers: {reason}; run with dispatchers 1", {
      count: options.dispatchers,
      reason: missing,
    });
    await flushLogs();
    runtime.exit(1);
  }
  const admin: AdminListener | null = options.admin === null ? null : new (await import("./admin.ts")).AdminListener({
    pid: runtime.pid,
    pending: (): number => primary.pending,
    pools: (): PoolSnapshot[] => primary.snapshots(),
  }, options.admin);
  const primary = new Primary({
    runtime,
    pools: dispatcher.pools,
    dispatchers: options.dispatchers,
    port: options.port,
    hostname: options.hostname,
    stopGrace: options.shutdownTimeout + 5000,
    log,
    metrics: admin?.metrics ?? null,
  });
  host.adopt(primary);
  const unlisten = onServingSignals(runtime, dispatcher, true, log);
  let closeControl: (() => Promise<void>) | undefined;
  let adminServer: HttpServer | undefined;
  const second = admin === null ? undefined : setInterval(() => admin.second(Date.now()), 1000);
  try {
    const port = await primary.start();
    if (admin !== null) {
      adminServer = await runtime.serve({
        port: options.admin!.port,
        hostname: options.admin!.hostname,
        headersTimeout: options.headersTimeout,
        idleTimeout: options.idleTimeout,
        maxConnections: ADMIN_CONNECTIONS,
        httpServer: options.httpServer,
        fetch: (request) => admin.answer(request),
      });
    }
    if (options.control !== false) {
      const { listenControl, runCommand } = await import("../control_socket.ts");
      closeControl = await listenControl(options.control, (command) =>
        runCommand(command, {
          pid: runtime.pid,
          port,
          pending: () => primary.pending,
          pools: dispatcher.pools,
          statuses: () => primary.statuses(),
          reload: () => dispatcher.reload(),
          stop: () => dispatcher.stop(),
        }));
    }
    host.listening({
      port,
      hostname: options.hostname,
      protocol: options.tls ? "https" : "http",
      ...(adminServer ? { admin: { port: adminServer.port, hostname: adminServer.hostname } } : {}),
    });
  } catch (error) {
    log.error("Cannot start {count} dispatchers: {reason}", { count: options.dispatchers, reason: firstLine(error) });
    clearInterval(second);
    await adminServer?.close(0).catch(() => {});
    await dispatcher.stop();
    await flushLogs();
    runtime.exit(error instanceof DispatcherFailed ? error.status : 1);
  }
  await host.finished;
  clearInterval(second);
  admin?.closeStreams();
  await adminServer?.close(0).catch(() => {});
  await closeControl?.();
  for (const off of unlisten) off();
}
