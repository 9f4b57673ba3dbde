/**
 * What stands before the runtimes' `serveStatic`: every file served, a
 * directory's index file and the bare prefix's included, is resolved (links
 * followed) and must lie inside its directory; dotfiles (`.env`, `.git/`) are
 * refused unless the `staticDotfiles` option allows them; the ETag comes from
 * the file's size and modification time (a hash would read the whole file per
 * request), and answers carry `X-Content-Type-Options: nosniff`.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { realpath, stat } from "node:fs/promises";
import { basename, join, sep } from "node:path";
import { errorResponse } from "../protocol/results.ts";

/** How static files are guarded. */
export interface StaticGuardOptions {
  /** Whether names starting with a dot may be served. */
  dotfiles: boolean;
}

/** The file `serveStatic` would serve for `path` (a directory's `index.html`), links resolved; `null` if none. */
async function servedFile(path: string): Promise<{ file: string; size: number; mtime: number } | null> {
  try {
    let file = await realpath(path);
    let info = await stat(file);
    if (info.isDirectory()) {
      file = await realpath(join(file, "index.html"));
      info = await stat(file);
    }
    return info.isFile() ? { file, size: info.size, mtime: info.mtimeMs } : null;
  } catch {
    return null;
  }
}

/** Whether `path` has a segment that starts with a dot. */
function hasDotSegment(path: string): boolean {
  return path.split(/[\\/]/).some((segment) => segment.startsWith("."));
}

/**
 * Middleware placed before `serveStatic({ root, rewriteRequestPath })`: a request whose file lies outside `root`, or
 * is a dotfile, gets 404 as a missing file does; one whose ETag matches `If-None-Match` gets 304 without the file
 * being read; anything else goes on to `serveStatic`.
 */
export function guardStatic(
  root: string,
  rewriteRequestPath: (path: string) => string,
  options: StaticGuardOptions,
): MiddlewareHandler {
  let base: Promise<string> | undefined;
  return async (c, next) => {
    base ??= realpath(root).catch(() => root);
    let relative: string;
    try {
      relative = decodeURIComponent(rewriteRequestPath(c.req.path));
    } catch {
      return errorResponse(404, "Not found");
    }
    if (!options.dotfiles && hasDotSegment(relative)) return errorResponse(404, "Not found");
    const served = await servedFile(join(root, relative));
    if (served === null) return next(); // no such file: serveStatic's 404
    const dir = await base;
    const inside = served.file === dir || served.file.startsWith(dir.endsWith(sep) ? dir : dir + sep);
    if (!inside || (!options.dotfiles && basename(served.file).startsWith("."))) return errorResponse(404, "Not found");
    const etag = `W/"${served.size.toString(16)}-${Math.floor(served.mtime).toString(16)}"`;
    const headers = { etag, "x-content-type-options": "nosniff" };
    const match = c.req.header("if-none-match");
    if (match !== undefined && match.split(",").some((tag) => tag.trim() === etag || tag.trim() === "*")) {
      return new Response(null, { status: 304, headers });
    }
    await next();
    if (c.res.status === 200 || c.res.status === 206) c.res.headers.set("etag", etag);
    c.res.headers.set("x-content-type-options", "nosniff");
  };
}
