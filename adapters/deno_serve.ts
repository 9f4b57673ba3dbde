/**
 * `Deno.serve` for the dispatcher (`httpServer: "native"`): requests, WebSocket
 * upgrades, and a listener that listens again after it failed or stopped accepting.
 *
 * @module
 */

import type {
  AdapterRequest,
  HttpServer,
  ServeOptions,
  ServerWebSocket,
  WebSocketEvents,
  WebSocketLimits,
} from "../src/runtime.ts";
import { CLOSE } from "../src/protocol/close_codes.ts";
import { probeAccepting } from "./accept_probe.ts";
import { badHost, countHeaders, MAX_HEADERS, tooManyHeaders, validHost } from "./request_head.ts";

/** The peer of one request, read only when asked for. */
class DenoRequest implements AdapterRequest {
  #info: Deno.ServeHandlerInfo;
  upgrade?: (events: WebSocketEvents, protocol: string | null) => Response;

  constructor(info: Deno.ServeHandlerInfo, request: Request, limits: WebSocketLimits | undefined) {
    this.#info = info;
    if (
      limits !== undefined && request.method === "GET" && request.headers.get("upgrade")?.toLowerCase() === "websocket"
    ) {
      this.upgrade = (events, protocol) => upgradeDeno(request, limits, events, protocol);
    }
  }

  remoteAddress(): string {
    return (this.#info.remoteAddr as Deno.NetAddr).hostname;
  }

  afterResponse(listener: () => void): void {
    // Deno's Response copied its body when it was made (the fetch standard's "copy of the bytes").
    listener();
  }

  onClose(): void {
    // Never called: Deno.serve tells of a client that left only through `request.signal`, which, once read, makes
    // Deno print a warning that it aborts on successful answers too (its legacy behavior); `info.completed` settles
    // only after the answer. A request whose client left ends at its answer or its timeout.
  }
}

/** Accepts a WebSocket handshake with `Deno.upgradeWebSocket`; Deno pings an idle socket itself. */
function upgradeDeno(
  request: Request,
  limits: WebSocketLimits,
  events: WebSocketEvents,
  protocol: string | null,
): Response {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: limits.idleTimeout > 0 ? Math.max(1, Math.round(limits.idleTimeout / 1000)) : 0,
    ...(protocol !== null ? { protocol } : {}),
  });
  socket.binaryType = "arraybuffer";
  const server: ServerWebSocket = {
    send: (data) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(data);
    },
    close: (code, reason) => {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        socket.close(code, reason);
      }
    },
    bufferedAmount: () => socket.bufferedAmount,
  };
  socket.onopen = () => events.open(server);
  socket.onmessage = (event) => {
    const data = event.data;
    events.message(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
  };
  // Deno reports 0 for a connection that broke without a close frame: 1006, as the web's WebSocket says.
  socket.onclose = (event) => events.close(event.code >= 1000 ? event.code : CLOSE.ABNORMAL, event.reason);
  return response;
}

/** How long after its listener failed (out of descriptors) the server listens again, doubling to the last. */
const RELISTEN_MS = [250, 500, 1000, 2000, 5000];

/**
 * Deno.serve, kept listening. When its accept loop fails while serving (EMFILE: no descriptor free for a new
 * connection), Deno either ends the server or, as often, stops accepting and says nothing (a probe notices). Either
 * way it listens again on the same port after a backoff, once descriptors may be free; a server that stopped
 * accepting serves the connections it holds to their end.
 */
export function serveNative(options: ServeOptions): Promise<HttpServer> {
  const maxHeaders = options.maxHeaders ?? MAX_HEADERS;
  let server: Deno.HttpServer<Deno.NetAddr>;
  let abort: AbortController;
  // Servers that stopped accepting, with how to close their connections.
  const stalled: { server: Deno.HttpServer<Deno.NetAddr>; abort: AbortController }[] = [];
  let closing = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let watch: ReturnType<typeof probeAccepting> | undefined = undefined;
  const again = (port: number) => {
    retry = undefined;
    if (closing) return;
    try {
      listen(port);
    } catch (error) {
      const delay = RELISTEN_MS[Math.min(failures++, RELISTEN_MS.length - 1)];
      options.onListenerFailed?.(error, delay);
      retry = setTimeout(() => again(port), delay);
    }
  };
  const listen = (port: number) => {
    // Aborting closes every connection: what close() does once its grace time is over.
    abort = new AbortController();
    server = Deno.serve(
      {
        signal: abort.signal,
        port,
        ...(options.reusePort ? { reusePort: true } : {}),
        hostname: options.hostname,
        ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
        onListen: () => {},
        onError: () => Response.json({ error: "Internal server error" }, { status: 500 }),
      },
      (request, info) => {
        failures = 0;
        watch?.accepted();
        if (!validHost(request.headers.get("host"))) return badHost();
        if (countHeaders(request.headers, maxHeaders) > maxHeaders) return tooManyHeaders();
        return options.fetch(request, new DenoRequest(info, request, options.websocket));
      },
    );
    const current = server;
    current.finished.catch((error) => {
      if (closing || current !== server) return;
      const delay = RELISTEN_MS[Math.min(failures++, RELISTEN_MS.length - 1)];
      options.onListenerFailed?.(error, delay);
      // The port bound, not the one asked for: 0 would pick another.
      retry = setTimeout(() => again(current.addr.port), delay);
    });
  };
  try {
    listen(options.port);
  } catch (error) {
    return Promise.reject(error);
  }
  const port = server!.addr.port;
  watch = probeAccepting(port, options.hostname, () => {
    if (closing || retry !== undefined) return;
    options.onListenerFailed?.(new Error("it stopped accepting connections (out of descriptors?)"), 0);
    stalled.push({ server, abort });
    server.shutdown().catch(() => {});
    again(port);
  });
  return Promise.resolve({
    port,
    hostname: options.hostname,
    close: async (graceMs?: number) => {
      closing = true;
      clearTimeout(retry);
      watch!.stop();
      const all = [...stalled, { server, abort }];
      const force = graceMs === undefined ? undefined : setTimeout(() => all.forEach((s) => s.abort.abort()), graceMs);
      await Promise.all(all.map((s) => Promise.race([s.server.shutdown(), s.server.finished]).catch(() => {})));
      clearTimeout(force);
    },
  });
}
