/**
 * The Hono app in front of the pools, when there is something for it to do:
 * the application's middleware and the static routes (confined to their
 * directories, dotfiles refused, ETags from size and time), then everything else to the dispatcher's own
 * handler. Every answer carries an `X-Request-ID`.
 *
 * @module
 */

import type { Hono, MiddlewareHandler } from "hono";
import type { AdapterRequest, Runtime } from "../runtime.ts";
import { traceHeader, withTrace } from "./trace.ts";

/** What the app is built from. */
export interface AppParts {
  runtime: Runtime;
  /** `Dispatcher.use()`'s middleware, in order. */
  middleware: readonly MiddlewareHandler[];
  /** URL prefix to directory. */
  staticRoutes: Readonly<Record<string, string>>;
  /** Whether names starting with a dot may be served from them. */
  staticDotfiles: boolean;
  /** The dispatcher's handler: `@sync` routes and the pools. */
  handle: (request: Request, extras: AdapterRequest) => Response | Promise<Response>;
  /** The answer to an error thrown on the way. */
  failed: (error: unknown, request?: Request) => Response;
}

/** Builds the app; Hono is loaded here, since worker processes re-run the main module and never route HTTP. */
export async function buildApp(parts: AppParts): Promise<Hono<{ Bindings: { extras: AdapterRequest } }>> {
  const { runtime } = parts;
  const [{ Hono }, { guardStatic }] = await Promise.all([import("hono"), import("./static_guard.ts")]);
  const guard = { dotfiles: parts.staticDotfiles };
  const app = new Hono<{ Bindings: { extras: AdapterRequest } }>();
  app.onError((error, c) => parts.failed(error, c.req.raw));
  // Static files and middleware answers carry an X-Request-ID too; the pools' and the handler's have one already.
  app.use(async (c, next) => {
    await next();
    if (c.res.headers.has("x-request-id")) return;
    const res = withTrace(c.res, traceHeader(c.req.raw)["x-request-id"]);
    if (res !== c.res) c.res = res;
  });
  for (const mw of parts.middleware) app.use(mw);
  for (const [prefix, dir] of Object.entries(parts.staticRoutes)) {
    const base = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
    const rewrite = (path: string) => path.slice(base.length) || "/";
    const serve = await runtime.serveStatic({ root: dir, rewriteRequestPath: rewrite });
    app.use(`${base}/*`, guardStatic(dir, rewrite, guard), serve);
    if (base !== "") {
      const index = () => "/";
      app.use(
        base,
        guardStatic(dir, index, guard),
        await runtime.serveStatic({ root: dir, rewriteRequestPath: index }),
      );
    }
  }
  app.all("*", (c) => parts.handle(c.req.raw, c.env.extras));
  return app;
}

/**
 * What the server calls with each request: the pipeline itself, or, when there is middleware or static files, the
 * app in front of it (without them, Hono would only route everything to the pipeline).
 */
export async function requestHandler(parts: {
  runtime: Runtime;
  middleware: readonly MiddlewareHandler[];
  staticRoutes: Readonly<Record<string, string>>;
  staticDotfiles: boolean;
  pipeline: {
    handle(request: Request, extras: AdapterRequest): Response | Promise<Response>;
    handleSafely(request: Request, extras: AdapterRequest): Response | Promise<Response>;
    failed: (error: unknown, request?: Request) => Response;
  };
}): Promise<(request: Request, extras: AdapterRequest) => Response | Promise<Response>> {
  const { pipeline } = parts;
  if (parts.middleware.length === 0 && Object.keys(parts.staticRoutes).length === 0) {
    return (request, extras) => pipeline.handleSafely(request, extras);
  }
  const app = await buildApp({
    ...parts,
    handle: (request, extras) => pipeline.handle(request, extras),
    failed: pipeline.failed,
  });
  return (request, extras) => app.fetch(request, { extras });
}
