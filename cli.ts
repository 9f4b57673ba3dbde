#!/usr/bin/env node
/**
 * The `forkyard` command line:
 *
 * ```sh
 * deno run -A jsr:@forkyard/forkyard/cli serve ./app.ts
 * bunx forkyard serve forkyard.json --port 3000
 * npx forkyard --help
 * ```
 *
 * @module
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { main } from "./src/cli/cli.ts";
import { loadRuntime } from "./src/detect.ts";
import { flushLogs } from "./src/logging/line_buffer.ts";

export { dispatcherFor, dispatcherFromConfig, main, parseArgs, UsageError, VERSION } from "./src/cli/cli.ts";
export type { CliArgs, RunningDispatcher } from "./src/cli/cli.ts";

function isMain(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === "boolean") return meta.main;
  // Node before 24.2 has no import.meta.main; npm's bin is a symlink to this file.
  const script = (globalThis as { process?: { argv?: string[] } }).process?.argv?.[1];
  try {
    return script !== undefined && realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  const runtime = await loadRuntime();
  const status = await main(runtime.args(), runtime);
  await flushLogs();
  runtime.exit(status);
}
