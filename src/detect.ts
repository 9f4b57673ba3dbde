/**
 * Runtime detection: the only module in `src/` that looks at runtime globals.
 *
 * @module
 */

import type { Runtime, RuntimeName } from "./runtime.ts";

/** Tells which runtime this code runs on. */
export function detectRuntime(): RuntimeName {
  if ("Deno" in globalThis) return "deno";
  const proc = (globalThis as { process?: { versions?: Record<string, string> } }).process;
  if (proc?.versions?.bun) return "bun";
  return "node";
}

let loaded: Promise<Runtime> | undefined;

/** Loads the adapter for the current runtime (once). */
export function loadRuntime(): Promise<Runtime> {
  loaded ??= (async () => {
    switch (detectRuntime()) {
      case "deno":
        return (await import("../adapters/deno.ts")).runtime;
      case "bun":
        return (await import("../adapters/bun.ts")).runtime;
      default:
        return (await import("../adapters/node.ts")).runtime;
    }
  })();
  return loaded;
}
