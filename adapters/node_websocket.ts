/**
 * WebSockets on Node: node:http hands a handshake to the server's `upgrade` event, outside the request handler;
 * the `ws` package (what @hono/node-ws uses too) does the protocol. A handshake goes through the dispatcher's
 * `fetch` like any request; an answer other than an accepted upgrade is written to the raw socket.
 *
 * @module
 */

import { requestUrl } from "./request_head.ts";
import { headersArrived } from "./headers_timer.ts";
import type { IncomingMessage, Server } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type {
  AdapterRequest,
  ServeOptions,
  ServerWebSocket,
  WebSocketEvents,
  WebSocketLimits,
} from "../src/runtime.ts";

/** The parts of `ws` this adapter uses. */
interface WsSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array): void;
  close(code: number, reason: string): void;
  ping(): void;
  terminate(): void;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): void;
  on(event: "close", listener: (code: number, reason: Uint8Array) => void): void;
  on(event: "pong" | "error", listener: () => void): void;
}
interface WsServer {
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Uint8Array, done: (ws: WsSocket) => void): void;
}
interface WsModule {
  WebSocketServer: new (options: {
    noServer: true;
    maxPayload: number;
    perMessageDeflate: false;
    clientTracking: false;
    handleProtocols: (protocols: Set<string>, request: IncomingMessage) => string | false;
  }) => WsServer;
}

const OPEN = 1;
/** What `fetch` returns for an accepted handshake: `ws` has answered it on the socket already. */
const UPGRADED = new Response(null, { status: 200 });
const decoder = new TextDecoder();

/** A handshake's request: its raw headers and the socket to upgrade. */
class NodeUpgradeRequest implements AdapterRequest {
  #incoming: IncomingMessage;
  upgrade: (events: WebSocketEvents, protocol: string | null) => Response;

  constructor(incoming: IncomingMessage, upgrade: (events: WebSocketEvents, protocol: string | null) => Response) {
    this.#incoming = incoming;
    this.upgrade = upgrade;
  }

  remoteAddress(): string {
    return this.#incoming.socket.remoteAddress ?? "";
  }

  rawHeaders(): string[] {
    return this.#incoming.rawHeaders;
  }
}

/** Attaches WebSocket serving to a server; returns a function that stops it pinging. */
export type AttachWebSockets = (server: Server, fetch: ServeOptions["fetch"]) => () => void;

/**
 * Loads `ws` and returns what serves WebSocket handshakes on a server through `fetch`. Every socket silent for
 * `idleTimeout` is pinged, and cut when it stayed silent for another `idleTimeout`.
 */
export async function webSockets(limits: WebSocketLimits): Promise<AttachWebSockets> {
  const { WebSocketServer } = await import("ws") as unknown as WsModule;
  return (server, fetch) => attach(WebSocketServer, server, fetch, limits);
}

function attach(
  WebSocketServer: WsModule["WebSocketServer"],
  server: Server,
  fetch: ServeOptions["fetch"],
  limits: WebSocketLimits,
): () => void {
  const chosen = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageSize,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (_protocols, request) => chosen.get(request) ?? false,
  });
  const heard = new Map<WsSocket, boolean>();
  const pinger = limits.idleTimeout > 0
    ? setInterval(() => {
      for (const [ws, alive] of heard) {
        if (!alive) ws.terminate();
        else {
          heard.set(ws, false);
          ws.ping();
        }
      }
    }, limits.idleTimeout)
    : undefined;
  (pinger as { unref?: () => void } | undefined)?.unref?.();

  server.on("upgrade", (incoming: IncomingMessage, socket: Duplex, head: Uint8Array) => {
    socket.on("error", ignore);
    headersArrived(socket as Socket);
    const accept = (events: WebSocketEvents, protocol: string | null): Response => {
      if (protocol !== null) chosen.set(incoming, protocol);
      wss.handleUpgrade(incoming, socket, head, (ws) => listen(ws, events, heard));
      return UPGRADED;
    };
    // The server keeps one header more than it takes (maxHeadersCount): one over shows a request past the limit.
    const kept = (server as { maxHeadersCount?: number }).maxHeadersCount ?? 0;
    if (kept > 0 && incoming.rawHeaders.length >= 2 * kept) {
      socket.end("HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    const url = requestUrl(incoming.headers.host, incoming.url);
    const headers = new Headers();
    const raw = incoming.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
    let request: Request;
    try {
      if (url === null) throw new TypeError("Invalid Host header or request target");
      request = new Request(url, { method: incoming.method, headers });
    } catch {
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    Promise.resolve(fetch(request, new NodeUpgradeRequest(incoming, accept))).then(
      (response) => response === UPGRADED ? undefined : writeResponse(socket, response),
      () => socket.destroy(),
    );
  });
  return () => clearInterval(pinger);
}

const ignore = () => {};

/**
 * Wires an open socket to its events. Its listeners live as long as the socket, so they are made here, out of the
 * upgrade's scope: a closure there would keep the upgrade request and its head alive with the socket.
 */
function listen(ws: WsSocket, events: WebSocketEvents, heard: Map<WsSocket, boolean>): void {
  heard.set(ws, true);
  const alive = () => heard.has(ws) && heard.set(ws, true);
  ws.on("pong", alive);
  ws.on("error", ignore);
  ws.on("message", (data, isBinary) => {
    alive();
    events.message(isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.length) : decoder.decode(data));
  });
  ws.on("close", (code, reason) => {
    heard.delete(ws);
    events.close(code, decoder.decode(reason));
  });
  events.open(serverSocket(ws));
}

function serverSocket(ws: WsSocket): ServerWebSocket {
  return {
    send: (data) => {
      if (ws.readyState === OPEN) ws.send(data);
    },
    close: (code, reason) => {
      if (ws.readyState === OPEN) ws.close(code, reason);
    },
    bufferedAmount: () => ws.bufferedAmount,
  };
}

/** Writes a refusal (404, 401, 503, ...) as a plain HTTP/1.1 answer on the socket and closes it. */
async function writeResponse(socket: Duplex, response: Response): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer().catch(() => new ArrayBuffer(0)));
  let head = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ""}\r\n`;
  response.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding") {
      head += `${name}: ${value}\r\n`;
    }
  });
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  const headBytes = new TextEncoder().encode(head);
  const bytes = new Uint8Array(headBytes.length + body.length);
  bytes.set(headBytes);
  bytes.set(body, headBytes.length);
  socket.end(bytes);
}
