/**
 * `WorkerPool` and `AppPool`: named groups of worker processes, their options
 * and status. A pool is configuration; the dispatcher runs it with a
 * supervisor (`src/supervisor/`), which worker processes, re-running the
 * program, never load.
 *
 * @module
 */

import { resolveOption } from "./options.ts";
import {
  MAX_RESTART_DELAY,
  POOL_SCHEMA,
  type ResolvedPoolOptions,
  resolvePoolOptions,
  type WorkerPoolOptions,
} from "./pool_options.ts";
import { compilePoolRoute } from "./routing.ts";
import type { WorkerClass } from "./worker/worker.ts";

export { MAX_RESTART_DELAY, type WorkerPoolOptions };

/** One worker's entry in {@linkcode PoolStatus}. */
export interface WorkerStatus {
  /** Slot id, from 0; a replacement keeps the id. */
  id: number;
  /** Process id, or `null` while no process runs in the slot. */
  pid: number | null;
  /** Whether the process is ready and serving. */
  alive: boolean;
  /** `"starting"`, `"ready"`, `"draining"` or `"down"`. */
  state: string;
  /** Milliseconds since the epoch of the last message from the worker. */
  lastSeen: number | null;
  /** Id of a request in progress, or `null`. */
  currentRequest: number | null;
  /** Requests in progress. */
  inflight: number;
  /** Times this slot's process was replaced after a crash, stall or failed start. */
  restarts: number;
  /** Why the slot's previous process ended, if it did. */
  lastExitReason: string | null;
  /** Milliseconds since the process became ready. */
  uptime: number;
  /** Resident memory reported in the last heartbeat, in bytes. */
  rss: number;
  /** Requests this process answered. */
  served: number;
  /** WebSockets pinned to this process. */
  sockets: number;
  /** For a remote pool: the name of the worker host this worker runs on. */
  host?: string;
}

/** What {@linkcode WorkerPool.status} returns. */
export interface PoolStatus {
  /** Pool name. */
  name: string;
  /** One entry per worker slot. */
  workers: WorkerStatus[];
  /** Requests waiting for a worker. */
  queueSize: number;
  /** Whether the pool answers 503 because its workers keep failing. */
  degraded: boolean;
  /** Process ids of the processes started ahead of need, waiting to replace a worker (option `spares`). */
  spares: number[];
}

/** @internal What runs a pool's processes once the dispatcher started it: its supervisor. */
export interface PoolRunner {
  /** Workers, queue and health. */
  status(): PoolStatus;
  /** Sends `config` to every running worker. */
  broadcastConfig(config: unknown): void;
  /** Sends a request nobody waits for. */
  sendDetached(request: PoolRequest): void;
  /** Grows or shrinks the pool (a remote pool's hosts: all, or the one named `host`). */
  scale(workers: number, host?: string): void;
  /** Replaces every worker, one at a time (a remote pool's hosts: all, or the one named `host`). */
  reload(host?: string): Promise<number>;
}

/** A request sent to a pool with {@linkcode WorkerPool.send}, without waiting for the answer. */
export interface PoolRequest {
  /** HTTP method. @default {"POST"} */
  method?: string;
  /** Path, as a route of the pool's workers sees it. */
  path: string;
  /** Query parameters. */
  query?: Record<string, string>;
  /** Body: bytes are sent as is, a string as text, anything else as JSON. */
  data?: unknown;
  /** Request headers. */
  headers?: Record<string, string>;
}

/** A worker's answer, as `Dispatcher.onResponse` sees it. */
export interface WorkerResponse {
  /** HTTP status. */
  readonly status: number;
  /** Response headers. */
  readonly headers: Headers;
  /** Body bytes; empty for streamed responses. */
  readonly body: Uint8Array;
  /** The body decoded by content type (JSON, form, bytes or `null`). */
  readonly data: unknown;
}

/**
 * A pool of worker processes that run one `Worker` class, serving the paths in
 * `routes` (or everything no other pool serves, when `routes` is absent).
 *
 * @example
 * ```ts
 * import { api, Dispatcher, Worker, WorkerPool } from "@forkyard/forkyard";
 *
 * class Compute extends Worker {
 *   @api("/api/compute/square/{n:int}", "GET")
 *   square(req: { pathParams: Record<string, unknown> }) {
 *     return { result: (req.pathParams.n as number) ** 2 };
 *   }
 * }
 * const compute = new WorkerPool(Compute, { workers: 2, routes: ["/api/compute/**"], timeout: 5000 });
 * await new Dispatcher({ port: 8080, pools: [compute] }).run();
 * ```
 */
export class WorkerPool {
  /** The pool's name: `options.name` or the worker class name. */
  readonly name: string;
  /** The worker class, or its export name for pools with a `module`. */
  readonly workerClass: WorkerClass | string;
  /** The options with defaults applied. */
  readonly options: ResolvedPoolOptions;
  /** For app pools: the path prefix the app is mounted at (stripped before the app sees a request). */
  readonly mount: string | null = null;
  #matchers: ((path: string) => boolean)[];
  #runner: PoolRunner | undefined;
  #config: { value: unknown } | undefined;

  /**
   * Creates a pool; its processes start when the dispatcher runs.
   *
   * @param workerClass The `Worker` subclass; with the `module` option, its export name may be given instead.
   * @param options Pool options.
   */
  constructor(workerClass: WorkerClass | string, options: WorkerPoolOptions = {}) {
    if (typeof options !== "object" || options === null) throw new TypeError("WorkerPool options must be an object");
    const what = "WorkerPool";
    if (typeof workerClass === "string") {
      if (options.module === undefined) {
        throw new TypeError(`WorkerPool "${workerClass}": a worker class given by name needs the "module" option`);
      }
    } else if (typeof workerClass !== "function") {
      throw new TypeError(`WorkerPool needs a Worker class, got ${workerClass === null ? "null" : typeof workerClass}`);
    }
    this.workerClass = workerClass;
    const className = typeof workerClass === "string" ? workerClass : workerClass.name;
    this.options = resolvePoolOptions(options, className);
    this.name = this.options.name;
    this.#matchers = (this.options.routes ?? []).map((route) => {
      try {
        return compilePoolRoute(route);
      } catch (error) {
        throw new TypeError(`Invalid ${what} option "routes": ${(error as Error).message}`);
      }
    });
  }

  /** Whether this pool has no `routes` and so takes what no other pool serves. */
  get isFallback(): boolean {
    return this.#matchers.length === 0;
  }

  /** Whether one of this pool's `routes` matches `path`. */
  matches(path: string): boolean {
    for (const match of this.#matchers) if (match(path)) return true;
    return false;
  }

  /** Workers, queue and health of the pool. */
  status(): PoolStatus {
    if (this.#runner) return this.#runner.status();
    return { name: this.name, workers: [], queueSize: 0, degraded: false, spares: [] };
  }

  /**
   * Sends `config` to every worker's `onConfig`; workers started later get the
   * latest config before their first request.
   */
  sendConfig(config: unknown): void {
    JSON.stringify(config);
    this.#config = { value: config };
    this.#runner?.broadcastConfig(config);
  }

  /**
   * Sends a request to this pool without waiting for its answer
   * (fire-and-forget). The worker sees `requestId` -1.
   */
  send(request: PoolRequest): void {
    if (!this.#runner) throw new Error(`Pool "${this.name}" is not running`);
    this.#runner.sendDetached(request);
  }

  /**
   * Changes the number of workers at run time (gunicorn's TTIN/TTOU): new
   * workers start at once; surplus ones finish their requests, then stop.
   * For a remote pool, each worker host runs `workers` (or only the host named
   * `host`); a name no live host has throws.
   */
  scale(workers: number, host?: string): void {
    const n = resolveOption("WorkerPool", "workers", POOL_SCHEMA.workers, workers) as number;
    if (host !== undefined && this.options.remote === undefined) {
      throw new Error(`Pool "${this.name}" runs no worker hosts: it is not remote`);
    }
    if (this.#runner) this.#runner.scale(n, host);
    else (this.options as { workers: number }).workers = n;
  }

  /**
   * Replaces every worker one at a time, each new process ready before the old
   * one stops taking requests. Resolves with how many workers were replaced.
   * For a remote pool, every worker host reloads (or only the one named `host`).
   */
  reload(host?: string): Promise<number> {
    if (host !== undefined && this.options.remote === undefined) {
      return Promise.reject(new Error(`Pool "${this.name}" runs no worker hosts: it is not remote`));
    }
    return this.#runner?.reload(host) ?? Promise.resolve(0);
  }

  /** @internal The last config sent, for replay. */
  get lastConfig(): { value: unknown } | undefined {
    return this.#config;
  }

  /** @internal Connects the pool to what runs it (done by the dispatcher). */
  attach(runner: PoolRunner | undefined): void {
    this.#runner = runner;
  }
}

/** Options of an {@linkcode AppPool}: every `WorkerPool` option but `routes`, plus `export`. */
export type AppPoolOptions = Omit<WorkerPoolOptions, "routes" | "module">;

/**
 * A pool whose workers run a web-standard app: any module whose default
 * export (or `options.export`) has `fetch(request)`, such as a Hono app. The
 * pool serves `mount` and everything below it; the prefix is stripped before
 * the app sees the request (`/api/users/7` reaches an app mounted at
 * `/api/users` as `/7`). Supervision is the same as for worker pools.
 *
 * @example
 * ```ts
 * import { AppPool, Dispatcher } from "@forkyard/forkyard";
 *
 * await new Dispatcher({
 *   pools: [new AppPool("/api/users", new URL("./users_app.ts", import.meta.url), { workers: 2 })],
 * }).run();
 * ```
 */
export class AppPool extends WorkerPool {
  /** The path prefix, without a trailing slash ("" for the root). */
  override readonly mount: string;

  /**
   * Creates an app pool; its processes start when the dispatcher runs.
   *
   * @param mount Path prefix served by the app, e.g. `"/api/users"` (or `"/"`).
   * @param module Module whose default export has `fetch(request)`.
   * @param options Pool options.
   */
  constructor(mount: string, module: string | URL, options: AppPoolOptions = {}) {
    if (typeof mount !== "string" || !mount.startsWith("/") || mount.includes("*") || mount.includes("{")) {
      throw new TypeError(`Invalid AppPool mount ${JSON.stringify(mount)}: expected a path such as "/api/users"`);
    }
    if (typeof module !== "string" && !(module instanceof URL)) {
      throw new TypeError(`Invalid AppPool module ${JSON.stringify(module)}: expected a path or URL`);
    }
    const prefix = mount.replace(/\/+$/, "");
    const { export: name = "default", ...rest } = options;
    super(name, { ...rest, module, export: name, routes: [`${prefix}/**`], name: options.name ?? (prefix || "/") });
    this.mount = prefix;
  }
}
