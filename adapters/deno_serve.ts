/**
 * `Deno.serve` for the dispatcher (`httpServer: "native"`): requests, WebSocket
 * upgrades, and a listener that listens again after it failed.
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
 * Deno.serve, kept listening: when its accept loop fails while serving (EMFILE: no descriptor free for a new
 * connection), Deno ends the server; it listens again on the same port after a backoff, once descriptors may be free.
 */
export function serveNative(options: ServeOptions): Promise<HttpServer> {
  const maxHeaders = options.maxHeaders ?? MAX_HEADERS;
  let server: Deno.HttpServer<Deno.NetAddr>;
  let abort: AbortController;
  let closing = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
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
        if (!validHost(request.headers.get("host"))) return badHost();
        if (countHeaders(request.headers, maxHeaders) > maxHeaders) return tooManyHeaders();
        return options.fetch(request, new DenoRequest(info, request, options.websocket));
      },
    );
    server.finished.catch((error) => {
      if (closing) return;
      const delay = RELISTEN_MS[Math.min(failures++, RELISTEN_MS.length - 1)];
      options.onListenerFailed?.(error, delay);
      const again = () => {
        retry = undefined;
        if (closing) return;
        try {
          listen(port);
        } catch (error) {
          options.onListenerFailed?.(error, delay);
          retry = setTimeout(again, delay);
        }
      };
      retry = setTimeout(again, delay);
    });
  };
  try {
    listen(options.port);
  } catch (error) {
    return Promise.reject(error);
  }
  return Promise.resolve({
    port: server!.addr.port,
    hostname: options.hostname,
    close: async (graceMs?: number) => {
      closing = true;
      clearTimeout(retry);
      const force = graceMs === undefined ? undefined : setTimeout(() => abort.abort(), graceMs);
      await Promise.race([server.shutdown(), server.finished]).catch(() => {});
      clearTimeout(force);
    },
  });
}
