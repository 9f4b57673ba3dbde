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

/**
 * The working directory, and whether paths are Windows paths. Synchronous: pool
 * options are resolved in constructors, before an adapter is loaded.
 */
export function workingDirectory(): { cwd: string; windows: boolean } {
  const host = globalThis as {
    Deno?: { cwd(): string; build: { os: string } };
    process?: { cwd(): string; platform: string };
  };
  if (host.Deno) return { cwd: host.Deno.cwd(), windows: host.Deno.build.os === "windows" };
  return { cwd: host.process!.cwd(), windows: host.process!.platform === "win32" };
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
