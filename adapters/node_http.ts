/**
 * The dispatcher's HTTP server on `node:http` (through `@hono/node-server`), which Node, Deno and Bun all provide.
 * It is the server that enforces the connection limits (`headersTimeout`, `idleTimeout`, `maxConnections`) on every
 * runtime and answers pipelined requests in order; `Deno.serve` and `Bun.serve` do neither, and are what the
 * `httpServer: "native"` option picks instead.
 *
 * @module
 */

import { MAX_HEADERS, tooManyHeaders } from "./request_head.ts";
import type { IncomingMessage, Server as HttpServerNode, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { chmodSync, rmSync } from "node:fs";
import { ownServer } from "../src/listen_capture.ts";
import { probeAccepting } from "./accept_probe.ts";
import { headersArrived, timeHeaders } from "./headers_timer.ts";
import type { AdapterRequest, HttpServer, ServeOptions } from "../src/runtime.ts";

/**
 * What the dispatcher may read of one request besides its web `Request`, straight from Node's IncomingMessage:
 * the raw header list and the body without building the `Request`'s `Headers` and body stream (reading
 * `request.headers` makes @hono/node-server build a full web Request for every request).
 */
class NodeRequest implements AdapterRequest {
  #incoming: IncomingMessage;
  #outgoing: ServerResponse;

  constructor(incoming: IncomingMessage, outgoing: ServerResponse) {
    this.#incoming = incoming;
    this.#outgoing = outgoing;
  }

  afterResponse(listener: () => void): void {
    // "close" comes after "finish" (the last byte handed to the kernel) or when the connection is destroyed,
    // which cancels the writes still queued. If it came already, the listener never runs: nothing is reused.
    this.#outgoing.once("close", listener);
  }

  remoteAddress(): string {
    return this.#incoming.socket.remoteAddress ?? "";
  }

  rawHeaders(): string[] {
    return this.#incoming.rawHeaders;
  }

  onClose(listener: () => void): void {
    this.#outgoing.once("close", listener);
  }

  abort(): void {
    // The socket, not the response: Bun's ServerResponse, destroyed before its head went out, sends a 200 head.
    this.#incoming.socket.destroy();
  }

  readBody(limit: number, idleMs = 0): Promise<Uint8Array[] | null> {
    const incoming = this.#incoming;
    const length = incoming.headers["content-length"];
    // Refused from the headers: the 413 closes the connection, so the body need not be read (or waited for).
    if (length !== undefined && Number(length) > limit) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      // Plain views, not Buffers: a body reads the same on every runtime (Buffer's toString and toJSON differ).
      const chunks: Uint8Array[] = [];
      let size = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = () => {
        incoming.removeAllListeners("data");
        reject(new DOMException(`no part of the body for ${idleMs} ms`, "TimeoutError"));
      };
      if (idleMs > 0) {
        timer = setTimeout(idle, idleMs);
        const stop = () => clearTimeout(timer);
        incoming.once("end", stop);
        incoming.once("close", stop);
        incoming.once("error", stop);
      }
      incoming.on("data", (chunk: Buffer) => {
        if (timer !== undefined) timer.refresh();
        size += chunk.length;
        if (size > limit) {
          clearTimeout(timer);
          incoming.removeAllListeners("data");
          incoming.resume();
          resolve(null);
          return;
        }
        chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      });
      incoming.once("end", () => {
        if (size <= limit) resolve(chunks);
      });
      incoming.once("error", reject);
    });
  }
}

/** One listening `node:http` server, and how to stop pinging its WebSockets. */
interface Listening {
  server: HttpServerNode;
  stopPinging: () => void;
}

/**
 * Serves `options.fetch` on a `node:http` (or `node:https`) server with the connection limits of `options`. With
 * `probe` (Deno), a listener that stopped accepting is noticed and replaced on the same port; the connections the
 * old one holds are served to their end.
 */
export async function serveNodeHttp(options: ServeOptions, probe = false): Promise<HttpServer> {
  // Loaded here, not at the top: worker processes never serve HTTP.
  const { createAdaptorServer } = await import("@hono/node-server");
  const attachWebSockets = options.websocket
    ? await (await import("./node_websocket.ts")).webSockets(options.websocket)
    : null;
  const createHttpsServer = options.tls ? (await import("node:https")).createServer : null;
  const maxHeaders = options.maxHeaders ?? MAX_HEADERS;
  const listen = (port: number) =>
    new Promise<Listening>((resolve, reject) => {
      const server = createAdaptorServer({
        fetch: (request: Request, env: unknown) => {
          const { incoming, outgoing } = env as { incoming: IncomingMessage; outgoing: ServerResponse };
          headersArrived(incoming.socket);
          if (incoming.rawHeaders.length > 2 * maxHeaders) return tooManyHeaders();
          return options.fetch(request, new NodeRequest(incoming, outgoing));
        },
        serverOptions: { ...limits(options), ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}) },
        ...(createHttpsServer ? { createServer: createHttpsServer } : {}),
      }) as HttpServerNode;
      ownServer(server);
      // listen() with options, not @hono/node-server's serve(): the options carry reusePort.
      const address = unix !== undefined
        ? { path: unix.path }
        : { port, host: options.hostname, ...(options.reusePort ? { reusePort: true } : {}) };
      server.listen(address, () => {
        server.off("error", reject);
        if (unix !== undefined) chmodSync(unix.path, unix.mode);
        resolve({
          server,
          stopPinging: attachWebSockets === null ? () => {} : attachWebSockets(server, options.fetch),
        });
      });
      server.once("error", reject);
      limitConnections(server, options, maxHeaders);
    });
  const unix = options.unixSocket;
  let current = await listen(options.port);
  const port = unix === undefined ? (current.server.address() as AddressInfo).port : 0;
  // Servers that stopped accepting, still serving the connections they hold.
  const stalled: Listening[] = [];
  let watch: ReturnType<typeof probeAccepting> | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let closing = false;
  if (probe && unix === undefined) {
    let failures = 0;
    const relisten = () => {
      retry = undefined;
      if (closing) return;
      listen(port).then((fresh) => {
        failures = 0;
        current = fresh;
        fresh.server.on("connection", watch!.accepted).on("drop", watch!.accepted);
      }, (error) => {
        const delay = RELISTEN_MS[Math.min(failures++, RELISTEN_MS.length - 1)];
        options.onListenerFailed?.(error, delay);
        retry = setTimeout(relisten, delay);
      });
    };
    watch = probeAccepting(port, options.hostname, () => {
      options.onListenerFailed?.(new Error("it stopped accepting connections (out of descriptors?)"), 0);
      stalled.push(current);
      current.server.close();
      relisten();
    });
    current.server.on("connection", watch.accepted).on("drop", watch.accepted);
  }
  return {
    port,
    hostname: unix === undefined ? options.hostname : `unix:${unix.path}`,
    close: (graceMs?: number) => {
      closing = true;
      clearTimeout(retry);
      watch?.stop();
      // The socket's file goes with the server, so that the next one finds no stale socket (one that stays, in a
      // folder a server that dropped root may not write, is replaced by the next as stale).
      try {
        if (unix !== undefined) rmSync(unix.path, { force: true });
      } catch {
        // not ours to remove any more
      }
      return Promise.all([current, ...stalled].map((listening) => closeServer(listening, graceMs))).then(() => {});
    },
  };
}

/** How long after a failed attempt to listen again the server tries once more, doubling to the last. */
const RELISTEN_MS = [250, 500, 1000, 2000, 5000];

/** Stops accepting and resolves once every connection has ended; after `graceMs`, they are closed. */
function closeServer({ server, stopPinging }: Listening, graceMs?: number): Promise<void> {
  return new Promise<void>((done) => {
    // close() only closes connections idle right now; keep-alive connections
    // whose request finishes later must be closed as they become idle.
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const force = graceMs === undefined ? undefined : setTimeout(() => server.closeAllConnections(), graceMs);
    stopPinging();
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(force);
      done();
    });
    server.closeIdleConnections();
  });
}

/** The limits Node enforces by properties rather than server options: connections, header fields, header time. */
function limitConnections(server: HttpServerNode, options: ServeOptions, maxHeaders: number): void {
  if (options.maxConnections) server.maxConnections = options.maxConnections;
  // One more than the limit is kept, so that a request over it shows (the surplus is dropped, not refused).
  server.maxHeadersCount = maxHeaders + 1;
  if (options.headersTimeout) timeHeaders(server, options.headersTimeout);
}

/** The server options that enforce the connection limits: Node checks them every connectionsCheckingInterval. */
function limits(options: ServeOptions) {
  const headersTimeout = options.headersTimeout ?? 60_000;
  return {
    headersTimeout,
    // No limit on a whole request: a large upload may take long, and the pools time out requests themselves.
    requestTimeout: 0,
    keepAliveTimeout: options.idleTimeout ?? 5000,
    connectionsCheckingInterval: Math.min(1000, headersTimeout),
  };
}
