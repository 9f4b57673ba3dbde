/**
 * `upgradeWebSocket` for app pools: Hono's helper, in the same shape as
 * `hono/deno`'s, `hono/bun`'s and `@hono/node-ws`'s, for a Hono app that runs in
 * forkyard's workers. The middleware marks the handshake's request as accepted
 * with its events; the worker loop answers 101 and drives the events with
 * Hono's own `WSContext`.
 *
 * @module
 */

import type { Context, Next } from "hono";
// Types only: Hono's WSContext is loaded by the first accepted socket, so that mod.ts loads no Hono module.
import type { UpgradeWebSocket, WSContext, WSEvents } from "hono/ws";
import type { WorkerRequest } from "./request.ts";
import { bytesOf, type WebSocketHandler, type WorkerSocket } from "./socket.ts";

/** Options of {@linkcode upgradeWebSocket}. */
export interface UpgradeWebSocketOptions {
  /** The subprotocol to agree on, when the client offers it. */
  protocol?: string;
}

interface Accepted {
  events: WSEvents<WorkerSocket>;
  protocol: string | null;
}

/** Handshakes accepted by the middleware, by the request the worker loop gave the app. */
const accepted = new WeakMap<Request, Accepted>();

/** Takes the events `upgradeWebSocket` registered for `request`, if it accepted it. */
export function takeUpgrade(request: Request): Accepted | undefined {
  const found = accepted.get(request);
  if (found !== undefined) accepted.delete(request);
  return found;
}

/**
 * Hono's `upgradeWebSocket` for apps in app pools:
 * `app.get("/ws", upgradeWebSocket((c) => ({ onOpen(evt, ws) {}, onMessage(evt, ws) {}, onClose(evt, ws) {} })))`,
 * where `ws` is Hono's `WSContext` (`send`, `close`, `readyState`, `raw`: the {@linkcode WorkerSocket}). Moving an
 * app behind forkyard changes the import only. A request that is no WebSocket handshake goes on to the next
 * handler.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { upgradeWebSocket } from "@forkyard/forkyard";
 *
 * const app = new Hono();
 * app.get("/echo", upgradeWebSocket(() => ({
 *   onMessage(evt, ws) {
 *     ws.send(String(evt.data));
 *   },
 * })));
 * export default app;
 * ```
 */
export const upgradeWebSocket: UpgradeWebSocket<WorkerSocket, UpgradeWebSocketOptions> = ((...args: unknown[]) => {
  if (typeof args[0] === "function") {
    const [createEvents, options] = args as [CreateEvents, UpgradeWebSocketOptions | undefined];
    return async function upgradeWebSocket(c: Context, next: Next) {
      if (!isHandshake(c)) return await next();
      return accept(c, await createEvents(c), options);
    };
  }
  const [c, events, options] = args as [Context, WSEvents<WorkerSocket>, UpgradeWebSocketOptions | undefined];
  if (!isHandshake(c)) return Promise.reject(new Error("Failed to upgrade WebSocket: not a WebSocket handshake"));
  return Promise.resolve(accept(c, events, options));
}) as UpgradeWebSocket<WorkerSocket, UpgradeWebSocketOptions>;

type CreateEvents = (c: Context) => WSEvents<WorkerSocket> | Promise<WSEvents<WorkerSocket>>;

function isHandshake(c: Context): boolean {
  return c.req.header("upgrade")?.toLowerCase() === "websocket";
}

function accept(c: Context, events: WSEvents<WorkerSocket>, options: UpgradeWebSocketOptions | undefined): Response {
  const offered = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const protocol = options?.protocol !== undefined && offered.includes(options.protocol) ? options.protocol : null;
  accepted.set(c.req.raw, { events, protocol });
  // The worker loop answers the handshake; this response only ends the app's handling.
  return new Response(null, { status: 200 });
}

/** Drives Hono's events for one socket, with Hono's `WSContext` around it. */
export async function honoHandler({ events }: Accepted, url: string): Promise<WebSocketHandler> {
  const { WSContext } = await import("hono/ws");
  let context: WSContext<WorkerSocket> | undefined;
  const ctx = (socket: WorkerSocket) =>
    context ??= new WSContext<WorkerSocket>({
      send: (data) => socket.send(data),
      close: (code, reason) => socket.close(code, reason),
      raw: socket,
      get readyState() {
        return socket.readyState as 0 | 1 | 2 | 3;
      },
      url,
      protocol: socket.protocol,
    });
  return {
    onOpen: (socket: WorkerSocket, _req: WorkerRequest) => events.onOpen?.(new Event("open"), ctx(socket)),
    onMessage: (socket, data) => {
      const payload = typeof data === "string" ? data : arrayBufferOf(data);
      events.onMessage?.(new MessageEvent("message", { data: payload }), ctx(socket));
    },
    onClose: (socket, code, reason) => events.onClose?.(closeEvent(code, reason), ctx(socket)),
  };
}

/** `data`'s bytes as an `ArrayBuffer` (what Hono's `WSContext.binaryType` "arraybuffer" promises). */
function arrayBufferOf(data: Uint8Array): ArrayBuffer {
  const bytes = bytesOf(data);
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return bytes.slice().buffer as ArrayBuffer;
}

/** A `CloseEvent` where the runtime has one (Node before 23 has not: an `Event` with the same fields). */
function closeEvent(code: number, reason: string): CloseEvent {
  const wasClean = code !== 1006;
  if (typeof CloseEvent === "function") return new CloseEvent("close", { code, reason, wasClean });
  return Object.assign(new Event("close"), { code, reason, wasClean }) as CloseEvent;
}
