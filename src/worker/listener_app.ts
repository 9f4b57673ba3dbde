/**
 * Request-listener apps in app pools: what a module exports that Node's `http.createServer` would take (an Express
 * app, connect, Koa's `app.callback()`), a `node:http` `Server` whose `request` listeners serve (Fastify's
 * `fastify.server`, NestJS's `app.getHttpServer()`), a Koa app or a Fastify instance; and one request served by it,
 * through {@linkcode ListenerRequest} and {@linkcode ListenerResponse}.
 *
 * @module
 */

import { LISTENER_APP } from "../app_kind.ts";
import type { RequestHeader } from "../protocol/frames.ts";
import { ListenerRequest } from "./incoming_message.ts";
import { ListenerSocket } from "./listener_socket.ts";
import { ListenerResponse, type ResponseChannel } from "./server_response.ts";
import type { WorkerLogger } from "../logging/worker_logger.ts";

/** A Node request listener: `(req, res) => void`. */
export type RequestListener = (req: ListenerRequest, res: ListenerResponse) => unknown;

/** An app pool's request-listener app, once found in its module's export. */
export class ListenerApp {
  readonly [LISTENER_APP] = true;
  /** The listeners each request goes to, in order (one, but for a `Server` with several). */
  readonly listeners: readonly RequestListener[];

  constructor(listeners: readonly RequestListener[]) {
    this.listeners = listeners;
  }

  /** Serves the request `wire` (body `body`, raw path `path` below the app's mount). */
  serve(wire: RequestHeader, body: Uint8Array, path: string, hooks: ListenerRequestHooks): void {
    serveListener(this.listeners, wire, body, path, hooks);
  }
}

type Exported = Record<string, unknown>;

/** The listeners of an export `appKind()` calls `"listener"`; a Fastify instance is made ready first. */
export async function listenerApp(value: unknown, what: string): Promise<ListenerApp> {
  if (typeof value === "function") return new ListenerApp([value as RequestListener]);
  let v = value as Exported;
  if (typeof v.callback === "function" && typeof v.use === "function") {
    return new ListenerApp([(v.callback as () => RequestListener).call(v)]);
  }
  if (typeof v.listeners !== "function") {
    await (v.ready as () => Promise<unknown>).call(v);
    v = v.server as Exported;
  }
  const listeners = (v.listeners as (event: string) => RequestListener[]).call(v, "request");
  if (listeners.length === 0) {
    throw new Error(
      `${what} is a server with no "request" listener (for Fastify, export fastify.server after ready())`,
    );
  }
  return new ListenerApp(listeners);
}

/** What serving one request needs of its worker, beyond its response channel. */
export interface ListenerRequestHooks extends ResponseChannel {
  log: WorkerLogger;
}

function serveListener(
  listeners: readonly RequestListener[],
  wire: RequestHeader,
  body: Uint8Array,
  path: string,
  hooks: ListenerRequestHooks,
): void {
  // The app may destroy the connection: that ends the response (made below, before the app can).
  const socket = new ListenerSocket(wire.a, wire.e === 1, () => response.destroy());
  const flat = wire.x === undefined ? wire.h : [...wire.h, "x-request-id", wire.x];
  const req = new ListenerRequest(wire.m, wire.q ? `${path}?${wire.q}` : path, flat, body, socket);
  const response = new ListenerResponse(req, hooks);
  // The client left, or the request timed out: the worker's cancel ends the response.
  hooks.entry.cancel = () => response.cancel();
  const failed = (error: unknown) => {
    // Before any of the answer was sent, its 500 is logged with the error; after, the stream breaks, logged here.
    if (!response.failed(error)) {
      hooks.log.error("Request listener for {method} {path} failed: {error}", { method: wire.m, path: wire.p, error });
    }
  };
  try {
    for (const listener of listeners) {
      const result = listener(req, response);
      if (result instanceof Promise) result.catch(failed);
    }
  } catch (error) {
    failed(error);
  }
}
