/**
 * The Node.js adapter: `node:child_process`, `process` signals and the
 * `node:http` server of `node_http.ts`.
 *
 * @module
 */

import { spawn as spawnProcess } from "node:child_process";
import process from "node:process";
import * as fs from "node:fs";
import { existsSync } from "node:fs";
import { Socket } from "node:net";
import { inspect } from "node:util";
import type { MiddlewareHandler } from "hono";
import type {
  ChildProcess,
  ParentChannel,
  Runtime,
  SignalName,
  SpawnOptions,
  SpillFiles,
  StaticOptions,
} from "../src/runtime.ts";
import { codeOf, firstLine } from "../src/error_text.ts";
import {
  childEnv,
  dropProcessPrivileges,
  fsLogTarget,
  fsSpill,
  processAlive,
  processChannel,
  spawnNodeLike,
  takeChannelFd,
  watchTree,
} from "./node_like.ts";
import { serveNodeHttp } from "./node_http.ts";

/** Node flags that must not reach a worker process. */
const DROP_FLAG = /^--(test|inspect|watch|eval|print|input-type|check)/;

function selfCommand(script: string): string[] {
  const flags = process.execArgv.filter((flag, i, all) =>
    !DROP_FLAG.test(flag) && !(i > 0 && DROP_FLAG.test(all[i - 1]) && !flag.startsWith("-"))
  );
  return [process.execPath, ...flags, script];
}

function spawn(options: SpawnOptions): ChildProcess {
  return spawnNodeLike(spawnProcess, options);
}

/** SO_REUSEPORT in `net` listen options came with Node 22.12 and 23.1, on Linux (and a few other systems). */
function reusePortMissing(): string | null {
  if (process.platform !== "linux") return `SO_REUSEPORT is used on Linux only, not ${process.platform}`;
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)) return null;
  return `Node ${process.versions.node} cannot listen with SO_REUSEPORT (Node 22.12 or later can)`;
}

/**
 * Node refusing a TypeScript module it has no loader for (decorators above all; its type stripping transforms
 * nothing): say how to run it.
 */
function loadHint(error: unknown, module: string): string | null {
  if (!/\.[cm]?tsx?$/.test(module)) return null;
  const code = codeOf(error);
  const refused = code === "ERR_UNKNOWN_FILE_EXTENSION" || code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX" ||
    code === "ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING" ||
    (error instanceof SyntaxError &&
      /decorator|Invalid or unexpected token|Unexpected token '@'/i.test(firstLine(error)));
  if (!refused) return null;
  return `Node runs TypeScript with decorators only through a loader; ` +
    `run NODE_OPTIONS="--import tsx" npx forkyard serve ${module} (after npm install tsx), ` +
    `or bunx --bun forkyard serve ${module}`;
}

/** The worker's end: frames go out on a pipe of their own when the dispatcher gave one (see `CHANNEL_FD_ENV`). */
function parentChannel(): ParentChannel {
  const fd = takeChannelFd(process);
  return processChannel(process, fd === null ? undefined : new Socket({ fd, readable: false, writable: true }));
}

let warmed = false;

/**
 * Once per process, calls `process.nextTick` 20,000 times with a no-op before the dispatcher serves: without it, the tick objects
 * node:http makes several times per request often end up in a slow shape (V8 migrating their maps), which costs the
 * dispatcher CPU on every request. In rounds of 500, each run before the next: 20,000 ticks queued at once outlive
 * the young generation and grow it for good. Numbers in `git log -S warmNextTick`; Deno and Bun gain nothing by it.
 */
async function warmNextTick(): Promise<void> {
  if (warmed) return;
  warmed = true;
  const noop = () => {};
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 500; i++) process.nextTick(noop);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

let spillFiles: SpillFiles | null | undefined;

/** The Node.js implementation of {@linkcode Runtime}. */
export const runtime: Runtime = {
  name: "node",
  setHeaderAfter: false,
  loadHint,
  pid: process.pid,
  selfCommand,
  spawn,
  parentChannel,
  onSignal(signal: SignalName, handler: () => void): () => void {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  serve: async (options) => {
    await warmNextTick();
    return serveNodeHttp(options);
  },
  serveStatic: async (options: StaticOptions): Promise<MiddlewareHandler> => {
    const { serveStatic } = await import("@hono/node-server/serve-static");
    return serveStatic({ root: options.root, rewriteRequestPath: options.rewriteRequestPath });
  },
  env: (name) => process.env[name],
  mainModule: () => process.argv[1],
  args: () => process.argv.slice(2),
  stderrIsTerminal: () => process.stderr.isTTY === true,
  writeStderr: (text) => void process.stderr.write(text),
  openLog: (path) => fsLogTarget(fs, path),
  writeStdout: (text) => void process.stdout.write(text),
  reusePortMissing: () => reusePortMissing(),
  reusePortFlags: [],
  spill: () => (spillFiles ??= existsSync("/dev/shm") ? fsSpill("/dev/shm", () => fs, process.env) : null),
  inspect: (value) => inspect(value),
  rss: () => process.memoryUsage.rss(),
  alive: (pid) => processAlive(process, pid),
  ids: () => ({ uid: process.getuid!(), gid: process.getgid!() }),
  dropPrivileges: (to) => dropProcessPrivileges(process, to),
  watchFiles: (dir, onChange) => watchTree(fs, dir, onChange),
  exit: (code) => process.exit(code),
};

export { childEnv };
