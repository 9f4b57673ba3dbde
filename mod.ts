/**
 * forkyard runs HTTP handlers across a supervised pool of worker processes,
 * on Deno, Bun and Node.js. One dispatcher process owns every connection:
 * it serves static files and light `@sync` handlers itself, runs the auth
 * check, and hands every other request, as plain data, to a pool of worker
 * processes chosen by URL prefix.
 *
 * @example Quick start
 * ```ts
 * import { api, Dispatcher, Worker, WorkerPool, type WorkerRequest } from "@forkyard/forkyard";
 *
 * class Hello extends Worker {
 *   @api("/hello/{name}", "GET")
 *   hello(req: WorkerRequest) {
 *     return { hello: req.pathParams.name, pid: process.pid };
 *   }
 * }
 *
 * await new Dispatcher({
 *   port: 8080,
 *   pools: [new WorkerPool(Hello, { workers: 2 })],
 * }).run();
 * ```
 *
 * @module
 */

export { Dispatcher, type ListenInfo } from "./src/dispatcher/dispatcher.ts";
export type { DispatcherOptions, ResolvedDispatcherOptions } from "./src/dispatcher/options.ts";
export { Client, type PendingRequest, RejectRequest } from "./src/dispatcher/client.ts";
export {
  AppPool,
  type AppPoolOptions,
  type PoolRequest,
  type PoolStatus,
  WorkerPool,
  type WorkerResponse,
  type WorkerStatus,
} from "./src/pool.ts";
export { ApiHandler, type ApiHandlerClass, Worker, type WorkerClass, type WorkerContext } from "./src/worker/worker.ts";
export { WorkerRequest } from "./src/worker/request.ts";
export type { FetchApp } from "./src/worker/loop.ts";
export { InvalidBody } from "./src/protocol/body.ts";
export { type AnyFunction, api, type PathParams, type RouteDecorator, sync, ws } from "./src/routing.ts";
export { type WebSocketHandler, WorkerSocket } from "./src/worker/socket.ts";
export { type AnySocket, publish, subscribe, unsubscribe } from "./src/worker/pubsub.ts";
export { upgradeWebSocket, type UpgradeWebSocketOptions } from "./src/worker/upgrade_websocket.ts";
export { sse, type SSEEvent, type SSEStream } from "./src/sse.ts";
export type { WorkerLogger } from "./src/logging/worker_logger.ts";
export type { ResolvedPoolOptions, WorkerPoolOptions } from "./src/pool_options.ts";
export type { LogLevel, LogRecord } from "@logtape/logtape";
