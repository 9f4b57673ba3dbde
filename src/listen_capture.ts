/**
 * Apps that listen themselves, unchanged: a module that calls `app.listen(3000)` (Express, Koa, Fastify's
 * `fastify.listen()`, `http.createServer(handler).listen()`) while it is imported does not bind the port. Its server is
 * kept, told that it listens, and served as if the module had exported it, as `node:cluster` takes over a worker's
 * `listen()`. forkyard's own servers are marked and listen for real.
 *
 * @module
 */

import http from "node:http";

/** Marks forkyard's own servers, which listen for real even while an import is watched. */
const OWN: unique symbol = Symbol.for("forkyard.ownServer") as never;

/** Marks `server` as forkyard's own: {@linkcode captureListen} lets it listen. */
export function ownServer<T extends object>(server: T): T {
  (server as Record<symbol, unknown>)[OWN] = true;
  return server;
}

/** A server an imported module asked to listen, and the port it asked for. */
export interface CapturedServer {
  server: http.Server;
  /** The port given to `listen()`, when it was one (`null`: none, 0, or a path). */
  port: number | null;
}

/** The port a `listen(...)` call names: `listen(3000)`, `listen("3000")`, `listen({ port: 3000 })`. */
function portOf(args: unknown[]): number | null {
  const first = args[0];
  const value = typeof first === "object" && first !== null ? (first as { port?: unknown }).port : first;
  const port = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536 ? port : null;
}

/**
 * Runs `load` (a module's import) with `listen()` of `node:http` servers taken over: the first server the module
 * starts is returned with its result; servers forkyard marked with {@linkcode ownServer} listen as usual.
 */
export async function captureListen<T>(load: () => Promise<T>): Promise<{ value: T; captured: CapturedServer | null }> {
  const proto = http.Server.prototype as unknown as Record<string, unknown>;
  const own = Object.getOwnPropertyDescriptor(proto, "listen");
  const listen = proto.listen as (this: http.Server, ...args: unknown[]) => http.Server;
  let captured: CapturedServer | null = null;
  proto.listen = function (this: http.Server, ...args: unknown[]) {
    if ((this as unknown as Record<symbol, unknown>)[OWN] === true) return listen.apply(this, args);
    const port = portOf(args);
    captured ??= { server: this, port };
    // What the app may ask of a server that listens (Fastify logs its address).
    Object.defineProperty(this, "listening", { value: true, configurable: true });
    this.address = () => ({ address: "127.0.0.1", family: "IPv4", port: port ?? 0 });
    const callback = args.findLast((a) => typeof a === "function") as (() => void) | undefined;
    if (callback !== undefined) this.once("listening", callback);
    setTimeout(() => this.emit("listening"), 0);
    return this;
  };
  try {
    return { value: await load(), captured };
  } finally {
    if (own !== undefined) Object.defineProperty(proto, "listen", own);
    else delete proto.listen;
  }
}

/** Modules imported through {@linkcode importCapturing}, by address: a second import gets the first's server too. */
const imported = new Map<string, Promise<{ value: Record<string, unknown>; captured: CapturedServer | null }>>();

/**
 * Imports the module at `href` with {@linkcode captureListen}, once per process: the server it started is remembered
 * for every later caller (a worker preloads its module before it knows what to take from it).
 */
export function importCapturing(
  href: string,
): Promise<{ value: Record<string, unknown>; captured: CapturedServer | null }> {
  let loading = imported.get(href);
  if (loading === undefined) {
    loading = captureListen(() => import(href) as Promise<Record<string, unknown>>);
    imported.set(href, loading);
  }
  return loading;
}
