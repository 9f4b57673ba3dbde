/**
 * `forkyard serve --watch`: a rolling reload of the workers when the served files change.
 *
 * @module
 */

import { resolve } from "node:path";
import type { Dispatcher } from "../dispatcher/dispatcher.ts";
import type { Runtime } from "../runtime.ts";

/** How long the watcher waits after a change for more before it reloads: an editor or `git checkout` writes many. */
const WATCH_DEBOUNCE_MS = 200;

/** Whether a changed path is one `--watch` ignores: under `node_modules` or a dot folder, or a dot file. */
function ignoredChange(path: string, root: string): boolean {
  const relative = path.startsWith(root) ? path.slice(root.length) : path;
  return relative.split(/[\\/]/).some((part) => part === "node_modules" || part.startsWith("."));
}

/**
 * `--watch`: a rolling reload of the workers once files under `root` stop changing; returns what stops watching.
 * The dispatcher's own code (its `@sync` routes, `doCheck`, options) changes only with a restart.
 */
export function watchAndReload(runtime: Runtime, root: string, dispatcher: Dispatcher, control: unknown): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let changed = "";
  const socket = typeof control === "string" ? resolve(control) : "";
  return runtime.watchFiles(root, (path) => {
    if (ignoredChange(path, root) || resolve(path) === socket) return;
    changed = path;
    clearTimeout(timer);
    timer = setTimeout(() => {
      runtime.writeStderr(`forkyard: ${changed.slice(root.length + 1) || changed} changed; reloading the workers\n`);
      void dispatcher.reload();
    }, WATCH_DEBOUNCE_MS);
  });
}
