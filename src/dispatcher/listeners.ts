/**
 * The dispatcher's listeners: the public server and, when the `admin` option
 * asks for one, the admin listener, opened with the same kind of server (a
 * `node:http` one would change the process's `Response` class). A listener
 * that cannot open is one line naming its address, its option and the fix.
 * They open before the pools start, so that a taken address fails the start
 * before any worker boots; what arrives meanwhile waits at a {@linkcode startGate}.
 *
 * @module
 */

import { firstLine } from "../error_text.ts";
import type { HttpServer, Runtime, ServeOptions } from "../runtime.ts";
import type { ResolvedDispatcherOptions } from "./options.ts";
import { listenFailure, unixListenFailure } from "./startup_errors.ts";
import { clearUnixSocket } from "./unix_socket.ts";
import { ADMIN_CONNECTIONS } from "./admin_address.ts";

/** Where the dispatcher listens, given to {@linkcode Dispatcher.onListen}. */
export interface ListenInfo {
  /** The bound port. */
  port: number;
  /** The address listened on. */
  hostname: string;
  /** The Unix socket listened on instead of a port (`unixSocket`); `port` is then 0. */
  path?: string;
  /** `"http"` or `"https"`. */
  protocol: "http" | "https";
  /** Where the admin listener listens, when the `admin` option asks for one. */
  admin?: { port: number; hostname: string };
}

/** What the dispatcher listens with. */
export interface Listeners {
  server: HttpServer;
  admin: HttpServer | undefined;
}

/** What to open, beside the options. */
export interface ListenPlan {
  /** The admin listener's address and what answers it; `null` for none. */
  admin: { hostname: string; port: number; fetch: (request: Request) => Response | Promise<Response> } | null;
  /** What answers the public port. */
  fetch: ServeOptions["fetch"];
  /** With several dispatchers: the port they share (SO_REUSEPORT); else `null`, for the option's. */
  sharedPort: number | null;
}

type ErrorLog = { error(message: string, properties?: Record<string, unknown>): void };

/** Opens the admin listener, then the server; `null` when one cannot listen (logged; the other closed). */
export async function openListeners(
  runtime: Runtime,
  options: ResolvedDispatcherOptions,
  plan: ListenPlan,
  log: ErrorLog,
): Promise<Listeners | null> {
  let admin: HttpServer | undefined;
  try {
    if (plan.admin !== null) {
      admin = await runtime.serve({
        port: plan.admin.port,
        hostname: plan.admin.hostname,
        headersTimeout: options.headersTimeout,
        idleTimeout: options.idleTimeout,
        maxConnections: ADMIN_CONNECTIONS,
        httpServer: options.httpServer,
        fetch: plan.admin.fetch,
      });
    }
    if (options.unixSocket !== null) {
      // The command line sets options after the constructor checked them: checked again here.
      if (options.httpServer !== "node" || plan.sharedPort !== null) {
        throw new Error('it needs the "node" HTTP server and one dispatcher');
      }
      await clearUnixSocket(options.unixSocket);
    }
    const server = await runtime.serve({
      port: plan.sharedPort ?? options.port,
      ...(options.unixSocket !== null
        ? { unixSocket: { path: options.unixSocket, mode: options.unixSocketMode } }
        : {}),
      reusePort: plan.sharedPort !== null,
      hostname: options.hostname,
      tls: options.tls ?? undefined,
      headersTimeout: options.headersTimeout,
      idleTimeout: options.idleTimeout,
      maxConnections: options.maxConnections,
      maxHeaders: options.maxHeaders,
      httpServer: options.httpServer,
      websocket: { idleTimeout: options.wsIdleTimeout, maxMessageSize: options.wsMaxMessageSize },
      onListenerFailed: (error, retryMs) =>
        log.error("The listener failed ({reason}); listening again in {retryMs} ms", {
          reason: firstLine(error),
          retryMs,
        }),
      fetch: plan.fetch,
    });
    return { server, admin };
  } catch (error) {
    // A server that cannot listen is a failed start, as for gunicorn and uvicorn: one line, exit status 1.
    const [failed, option] = admin === undefined && plan.admin !== null ? [plan.admin, "admin" as const] : [options];
    log.error(
      option === undefined && options.unixSocket !== null
        ? unixListenFailure(error, options.unixSocket)
        : listenFailure(error, failed.hostname, failed.port, option),
    );
    await admin?.close(0).catch(() => {});
    return null;
  }
}

/**
 * `handle` behind a gate: requests wait until `open()` (the pools have started), then go through; after that, the
 * gate costs one call per request.
 */
export function startGate(handle: ServeOptions["fetch"]): { fetch: ServeOptions["fetch"]; open(): void } {
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  let serve: ServeOptions["fetch"] = async (request, extras) => (await open, handle(request, extras));
  return {
    fetch: (request, extras) => serve(request, extras),
    open: () => {
      serve = handle;
      opened();
    },
  };
}
