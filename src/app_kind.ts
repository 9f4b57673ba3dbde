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
