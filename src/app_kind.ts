/**
 * The kinds of app an app pool's module may export: a web-standard `fetch(request)` app (Hono, itty-router, a plain
 * object), or a Node request-listener app (Express, connect, Koa, Fastify, a `node:http` `Server`). Told apart here,
 * without loading either kind's code, for the command line and the worker.
 *
 * @module
 */

/** Marks a request-listener app once its worker has found its listeners. */
export const LISTENER_APP: unique symbol = Symbol("forkyard.listenerApp");

type Exported = Record<string, unknown>;

/**
 * What an app pool serves of a module: its export when that is an app, else the server the module started while it
 * loaded (it called `listen()` itself, see `listen_capture.ts`) unless the export is a class (a `Worker`), else `null`.
 */
export function appOf(exported: unknown, started: object | null): unknown {
  if (appKind(exported) !== null) return exported;
  const isClass = typeof exported === "function" && /^class\b/.test(Function.prototype.toString.call(exported));
  return started !== null && !isClass ? started : null;
}

/**
 * What kind of app `value` is: `"fetch"` (it has a `fetch(request)` method), `"listener"` (a function that is not a
 * class, such as an Express app; a `node:http` `Server`; a Koa app; a Fastify instance), or `null`.
 */
export function appKind(value: unknown): "fetch" | "listener" | null {
  if (value === null || (typeof value !== "object" && typeof value !== "function")) return null;
  const v = value as Exported;
  if (typeof v.fetch === "function") return "fetch";
  if (typeof value === "function") return /^class\b/.test(Function.prototype.toString.call(value)) ? null : "listener";
  if (typeof v.listeners === "function" && typeof v.on === "function") return "listener";
  if (typeof v.callback === "function" && typeof v.use === "function") return "listener";
  const server = v.server as Exported | null | undefined;
  if (typeof v.ready === "function" && typeof server?.listeners === "function") return "listener";
  return null;
}
