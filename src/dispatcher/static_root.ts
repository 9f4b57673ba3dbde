/**
 * Keeps static files inside their directory: the runtimes' `serveStatic` refuse `..` in a URL but follow symbolic
 * links, so a link inside the directory to a file or directory outside it would be served.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { realpath } from "node:fs/promises";
import { join, sep } from "node:path";
import { errorResponse } from "../protocol/results.ts";

/**
 * Middleware placed before `serveStatic({ root, rewriteRequestPath })`: a request whose file, links resolved, lies
 * outside `root` gets 404, as a missing file does; anything else goes on to `serveStatic`.
 */
export function confineToRoot(root: string, rewriteRequestPath: (path: string) => string): MiddlewareHandler {
  let base: Promise<string> | undefined;
  return async (c, next) => {
    base ??= realpath(root).catch(() => root);
    let relative: string;
    try {
      relative = decodeURIComponent(rewriteRequestPath(c.req.path));
    } catch {
      return next(); // serveStatic answers what it cannot decode
    }
    let target: string;
    try {
      target = await realpath(join(root, relative));
    } catch {
      return next(); // no such file: serveStatic's 404 (or its index.html lookup)
    }
    const dir = await base;
    if (target !== dir && !target.startsWith(dir.endsWith(sep) ? dir : dir + sep)) {
      return errorResponse(404, "Not found");
    }
    return next();
  };
}
