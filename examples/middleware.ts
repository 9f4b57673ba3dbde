/**
 * Hono middleware on the dispatcher: CORS, compression, secure headers and a
 * rate limit run before static files, @sync routes and pools.
 *
 *   deno task middleware  |  bun run examples/middleware.ts  |  npm run middleware
 *   curl -i localhost:8080/api/users
 */
import type { MiddlewareHandler } from "hono";
import { compress } from "hono/compress";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import { AppPool, Dispatcher } from "../mod.ts";

/** A fixed window of `limit` requests per `windowMs` per client address. */
function rateLimit(limit: number, windowMs: number): MiddlewareHandler {
  const windows = new Map<string, { count: number; resetAt: number }>();
  return async (c, next) => {
    const key = c.req.header("x-forwarded-for") ?? "local";
    const now = Date.now();
    const w = windows.get(key);
    if (!w || w.resetAt <= now) windows.set(key, { count: 1, resetAt: now + windowMs });
    else if (++w.count > limit) {
      c.header("retry-after", String(Math.ceil((w.resetAt - now) / 1000)));
      return c.json({ error: "Too many requests" }, 429);
    }
    await next();
  };
}

const dispatcher = new Dispatcher({
  port: Number(process.env.PORT ?? 8080),
  pools: [new AppPool("/api/users", new URL("./apps/users.ts", import.meta.url), { workers: 2 })],
});
dispatcher.use(cors({ origin: "*" }), secureHeaders(), compress(), rateLimit(100, 60_000));
await dispatcher.run();
