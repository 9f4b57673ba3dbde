/**
 * `forkyard serve --watch`: a rolling reload of the workers when source files change. Only the process that
 * serves watches (not its workers, nor the dispatchers a primary runs), and only source files: a log written into
 * the project, a control socket or anything else forkyard writes never sets it off.
 *
 * @module
 */

import { relative, resolve } from "node:path";
import process from "node:process";
import type { Dispatcher } from "../dispatcher/dispatcher.ts";
import { plural } from "../logging/plural.ts";
import type { Runtime } from "../runtime.ts";

/** How long the watcher waits after a change for more before it reloads: an editor or `git checkout` writes many. */
const WATCH_DEBOUNCE_MS = 200;

/** The files whose changes reload the workers. */
export const WATCHED_EXTENSIONS: readonly string[] = [".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".json"];

/** A `--watch-ignore` glob as a pattern: `**` any path, `*` any name part, `?` one character. */
function globPattern(glob: string): RegExp {
  const source = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(
    /\*\*\/?|\*|\?/g,
    (m) => m.startsWith("**") ? ".*" : m === "*" ? "[^/]*" : "[^/]",
  );
  return new RegExp(`^${source}$`);
}

/**
 * Whether a change to `path` (`rel`, from where `--watch` looks) reloads: a source file, not under `node_modules` or
 * a dot folder, not a dot file, and matched by no `--watch-ignore` glob (whole relative path, or file name).
 */
export function watchedChange(rel: string, ignore: readonly RegExp[]): boolean {
  const parts = rel.split(/[\\/]/);
  if (parts.some((part) => part === "node_modules" || part.startsWith("."))) return false;
  const name = parts[parts.length - 1];
  if (!WATCHED_EXTENSIONS.some((ext) => name.endsWith(ext))) return false;
  return !ignore.some((re) => re.test(rel) || re.test(name));
}

/**
 * Watches `paths` (relative to the working directory; none: `moduleDir`) and reloads `dispatcher`'s workers once
 * source files stop changing, logging one line per reload; returns what stops watching. A change during a reload
 * reloads again after it. The dispatcher's own code (its `@sync` routes, `doCheck`, options) changes only with a
 * restart.
 */
export function watchAndReload(
  runtime: Runtime,
  moduleDir: string,
  dispatcher: Dispatcher,
  watch: { paths: readonly string[]; ignore: readonly string[] },
): () => void {
  const ignore = watch.ignore.map(globPattern);
  const roots = watch.paths.length > 0 ? watch.paths.map((p) => resolve(p)) : [moduleDir];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let changed: string[] = [];
  let reloading: Promise<void> | null = null;
  const reload = async () => {
    const files = changed;
    changed = [];
    // Through each pool, not `dispatcher.reload()`: one line here says what changed and what it did.
    let replaced = 0;
    for (const pool of dispatcher.pools) replaced += await pool.reload();
    const { getLogger } = await import("../logging/logtape.ts");
    const what = files.length === 1 ? files[0] : `${files[0]} and ${plural(files.length - 1, "other file")}`;
    getLogger(["forkyard", "watch"]).info("{what} changed: {workers} reloaded", {
      what,
      files,
      replaced,
      workers: plural(replaced, "worker"),
    });
  };
  const fire = () => {
    if (reloading !== null) return void (timer = setTimeout(fire, WATCH_DEBOUNCE_MS));
    reloading = reload().catch(() => {}).finally(() => (reloading = null));
  };
  const stops = roots.map((root) =>
    runtime.watchFiles(root, (path) => {
      const rel = relative(process.cwd(), resolve(path));
      if (!watchedChange(relative(root, resolve(path)) || rel, ignore)) return;
      if (!changed.includes(rel)) changed.push(rel);
      clearTimeout(timer);
      timer = setTimeout(fire, WATCH_DEBOUNCE_MS);
    })
  );
  return () => {
    clearTimeout(timer);
    for (const stop of stops) stop();
  };
}
