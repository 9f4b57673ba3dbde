/**
 * The runtime interface forkyard's core talks to, for those who write or test
 * an adapter: one implementation per runtime lives in `adapters/`, mapping
 * process spawning, pipes, signals and serving onto `Deno.Command`,
 * `Bun.spawn` and `node:child_process`. Application code does not need it.
 *
 * @example Loading the adapter of the current runtime
 * ```ts
 * import { loadRuntime } from "@forkyard/forkyard/runtime";
 *
 * const runtime = await loadRuntime();
 * console.log(runtime.name, runtime.pid);
 * ```
 *
 * @module
 */

export { detectRuntime, loadRuntime } from "./src/detect.ts";
export type {
  AdapterRequest,
  ChildProcess,
  ExitStatus,
  HttpServer,
  ParentChannel,
  Runtime,
  RuntimeName,
  ServeOptions,
  ServerWebSocket,
  SignalName,
  SpawnOptions,
  SpillFiles,
  StaticHandler,
  StaticOptions,
  WebSocketEvents,
  WebSocketLimits,
} from "./src/runtime.ts";
