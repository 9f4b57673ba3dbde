/**
 * `Worker` and `ApiHandler`: the classes users extend to write the business
 * logic that runs in worker processes.
 *
 * @module
 */

import type { WorkerLogger } from "../logging/worker_logger.ts";
import type { WorkerRequest } from "./request.ts";

/** What forkyard hands a `Worker` when it creates one in a worker process. */
export interface WorkerContext {
  /** Index of the worker's slot in its pool, from 0. */
  workerId: number;
  /** Name of the pool. */
  poolName: string;
  /** The pool's `kwargs`. */
  kwargs: Record<string, unknown>;
  /** The worker's logger. */
  log: WorkerLogger;
  /** Sends a control message to the dispatcher. */
  control(message: "keepAlive" | "pause" | "resume"): void;
}

/** A class extending {@linkcode ApiHandler}. */
export interface ApiHandlerClass {
  /** Creates the handler for one worker. */
  // deno-lint-ignore no-explicit-any
  new (worker: any): ApiHandler<any>;
  /** Prefix of the handler's routes. */
  pattern: string;
}

/** A class extending {@linkcode Worker}. */
export interface WorkerClass {
  /** Creates the worker inside a worker process. */
  new (context: WorkerContext): Worker;
  /** Route groups served by the worker. */
  handlers: ApiHandlerClass[];
  /** The class name; the pool's default name. */
  readonly name: string;
}

/**
 * Base class of a worker: one instance lives in each worker process of a
 * pool. Declare routes with `@api` on its methods or on `ApiHandler` classes
 * listed in `static handlers`.
 *
 * @example
 * ```ts
 * import { api, Worker, type WorkerRequest } from "@forkyard/forkyard";
 *
 * class Compute extends Worker {
 *   factor = 1;
 *   override setup() {
 *     this.factor = Number(this.kwargs.factor ?? 2);
 *   }
 *   override onConfig(config: unknown) {
 *     this.factor = (config as { factor: number }).factor;
 *   }
 *   @api("/double/{n:int}", "GET")
 *   double(req: WorkerRequest) {
 *     return { result: (req.pathParams.n as number) * this.factor };
 *   }
 * }
 * ```
 */
export class Worker {
  /** `ApiHandler` classes whose routes this worker serves. */
  static handlers: ApiHandlerClass[] = [];
  /** Index of this worker's slot in its pool, from 0; a replacement keeps the id. */
  readonly workerId: number;
  /** Name of the pool. */
  readonly poolName: string;
  /** The pool's `kwargs` option. */
  readonly kwargs: Record<string, unknown>;
  /** Logger whose records the dispatcher writes, filtered by the pool's `logLevel`. */
  readonly log: WorkerLogger;
  #context: WorkerContext;

  /** Called by forkyard in the worker process; subclasses rarely need a constructor. */
  constructor(context: WorkerContext) {
    this.#context = context;
    this.workerId = context.workerId;
    this.poolName = context.poolName;
    this.kwargs = context.kwargs;
    this.log = context.log;
  }

  /** Runs once when the worker process starts, before it takes requests. May be async; a throw ends the process. */
  setup(): void | Promise<void> {}

  /** Receives what `pool.sendConfig(config)` sent, also replayed to workers started later. */
  onConfig(_config: unknown): void | Promise<void> {}

  /** Called every `heartbeatInterval`. */
  onIdle(): void | Promise<void> {}

  /** Called after a handler threw; the client already got a 500. */
  onRequestError(_request: WorkerRequest, _error: unknown): void {}

  /** Called when the client of a request in progress (or streaming) disconnected. */
  onDisconnect(_requestId: number): void {}

  /** Tells the dispatcher this worker is alive and postpones the timeout of its requests in progress. */
  keepAlive(): void {
    this.#context.control("keepAlive");
  }

  /** Stops this worker from being given new requests until {@linkcode Worker.resume}. */
  pause(): void {
    this.#context.control("pause");
  }

  /** Lets the dispatcher give this worker requests again. */
  resume(): void {
    this.#context.control("resume");
  }
}

/**
 * Groups routes under a common `static pattern`. `this.worker` is the worker
 * that owns the handler. A subclass inherits its parent's routes under its own
 * pattern.
 *
 * @example
 * ```ts
 * import { api, ApiHandler, Worker, type WorkerRequest } from "@forkyard/forkyard";
 *
 * class Users extends ApiHandler<UsersWorker> {
 *   static override pattern = "/api/users";
 *   @api("", "GET")
 *   list() {
 *     return this.worker.users;
 *   }
 *   @api("/{id:int}", "GET")
 *   get(req: WorkerRequest) {
 *     return this.worker.users[req.pathParams.id as number] ?? null;
 *   }
 * }
 * class UsersWorker extends Worker {
 *   static override handlers = [Users];
 *   users = ["ann", "bob"];
 * }
 * ```
 */
export class ApiHandler<W extends Worker = Worker> {
  /** Prefix of every route of this handler. */
  static pattern: string = "";
  /** The worker that owns this handler. */
  readonly worker: W;

  /** Created once per worker process by forkyard. */
  constructor(worker: W) {
    this.worker = worker;
  }
}
