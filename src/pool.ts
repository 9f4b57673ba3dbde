/**
 * `WorkerPool` and `AppPool`: named groups of worker processes, their options
 * and status. A pool is configuration; the dispatcher runs it with a
 * supervisor (`src/supervisor/`), which worker processes, re-running the
 * program, never load.
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";
import type { Client } from "./dispatcher/client.ts";
import { workingDirectory } from "./detect.ts";
import { isLogLevel } from "./logging/levels.ts";
import { compilePoolRoute } from "./routing.ts";
import type { WorkerClass } from "./worker/worker.ts";
import { boolOption, checkKeys, intOption, stringOption } from "./options.ts";

/** Longest wait before a crashed worker is restarted, in milliseconds. */
export const MAX_RESTART_DELAY = 30_000;

export interface WorkerPoolOptions {
  /** Number of worker processes. @default {1} */
  workers?: number;
  /** Paths this pool serves: exact paths, or `"/prefix/**"` for a prefix. None: the fallback pool. */
  routes?: string[];
  /** Time a request may take before the client gets 504. @default {30000} */
  timeout?: number;
  /** A worker without a heartbeat for this long is killed and replaced. @default {60000} */
  stuckTimeout?: number;
  /** Time a new worker may take to finish `setup()`. @default {30000} */
  startupTimeout?: number;
  /** Interval of worker heartbeats and `Worker.onIdle()`. @default {1000} */
  heartbeatInterval?: number;
  /** Lowest level of worker log records that are forwarded. @default {"warning"} */
  logLevel?: LogLevel;
  /** Restarts allowed within `restartWindow` before the pool is degraded. @default {10} */
  maxRestarts?: number;
  /** Window in which restarts are counted. @default {300000} */
  restartWindow?: number;
  /** First delay before restarting a crashed worker; doubles per crash, up to 30 s. @default {100} */
  restartDelay?: number;
  /** A worker up this long counts as healthy: backoff resets, a degraded pool recovers. @default {5000} */
  minUptime?: number;
  /** Log a warning when this many requests wait for a worker; 0 disables. @default {100} */
  queueWarning?: number;
  /** Requests one worker handles at the same time; more wait in the dispatcher. @default {32} */
  concurrency?: number;
  /** Retry a GET or HEAD request once on another worker when its worker died. @default {false} */
  retryIdempotent?: boolean;
  /** Values available to workers as `this.kwargs`; must be JSON-serialisable. @default {{}} */
  kwargs?: Record<string, unknown>;
  /** Pool name. @default {the worker class name} */
  name?: string;
  /** Replace a worker gracefully after it answered this many requests; 0 never. @default {0} */
  maxRequests?: number;
  /** Add a random 0..maxRequestsJitter to each worker's `maxRequests`, so workers do not recycle together. @default {0} */
  maxRequestsJitter?: number;
  /** Replace a worker gracefully once its resident memory exceeds this many MiB; 0 never. @default {0} */
  maxMemoryMb?: number;
  /** Fewest workers an elastic pool shrinks to. @default {workers} */
  minWorkers?: number;
  /** Most workers an elastic pool grows to. @default {workers} */
  maxWorkers?: number;
  /** An elastic pool adds a worker when the oldest queued request has waited this long. @default {500} */
  scaleUpDelay?: number;
  /** An elastic pool above `minWorkers` stops a worker that had no request for this long. @default {60000} */
  idleTimeout?: number;
  /**
   * Processes started ahead of need, with the runtime and program loaded, waiting to
   * take a slot: a crashed, stuck or recycled worker is then replaced in the time
   * its `setup()` takes instead of a whole process start. (With `module`, that module
   * is imported once the spare gets its slot.) Each costs the memory of an idle
   * process. @default {0}
   */
  spares?: number;
  /** Module that exports the worker class; workers then load it instead of re-running the main module. */
  module?: string | URL;
  /** Name of the export in `module` holding the worker class. @default {the class name} */
  export?: string;
}

const POOL_OPTIONS = [
  "workers",
  "routes",
  "timeout",
  "stuckTimeout",
  "startupTimeout",
  "heartbeatInterval",
  "logLevel",
  "maxRestarts",
  "restartWindow",
  "restartDelay",
  "minUptime",
  "queueWarning",
  "concurrency",
  "retryIdempotent",
  "maxRequests",
  "maxRequestsJitter",
  "maxMemoryMb",
  "minWorkers",
  "maxWorkers",
  "scaleUpDelay",
  "idleTimeout",
  "spares",
  "kwargs",
  "name",
  "module",
  "export",
] as const;

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
  /** Grows or shrinks the pool. */
  scale(workers: number): void;
  /** Replaces every worker, one at a time. */
  reload(): Promise<number>;
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

/** What a pending request carries; given to `Dispatcher.onResponse`. */
export interface PendingRequest {
  /** The dispatcher's id of the request. */
  readonly requestId: number;
  /** The client, or `null` for requests made with {@linkcode WorkerPool.send}. */
  readonly client: Client | null;
  /** The pool that served it. */
  readonly pool: WorkerPool;
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
 * A `module` option as a URL string: URLs as given, paths made absolute
 * against the working directory. Written without node:path and node:url, which
 * every worker process (it re-runs the program) would otherwise pay 2–3 ms to
 * load on Deno and Bun.
 */
export function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)) return module;
  const { cwd, windows } = workingDirectory();
  const slashes = (path: string) => windows ? path.replaceAll("\\", "/") : path;
  let path = slashes(module);
  if (!path.startsWith("/") && !(windows && /^[a-z]:\//i.test(path))) path = `${slashes(cwd)}/${path}`;
  const url = new URL("file://");
  // As node:url's pathToFileURL: characters the URL parser would drop or read as escapes.
  url.pathname = (path.startsWith("/") ? "" : "/") +
    path.replace(/[%\\\t\n\r]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"));
  return url.href;
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
  readonly options: Readonly<Required<Omit<WorkerPoolOptions, "routes" | "module" | "export" | "name">>> & {
    readonly routes: readonly string[] | null;
    readonly module: string | null;
    readonly export: string;
  };
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
    checkKeys("WorkerPool", options, POOL_OPTIONS);
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
    this.name = stringOption(what, "name", options.name, className);
    if (this.name === "") throw new TypeError(`Invalid WorkerPool option "name": "" (the pool needs a name)`);
    const routes = options.routes;
    if (routes !== undefined && (!Array.isArray(routes) || routes.length === 0)) {
      throw new TypeError(`Invalid WorkerPool option "routes": ${JSON.stringify(routes)} (expected a non-empty array)`);
    }
    this.#matchers = (routes ?? []).map((route) => {
      try {
        return compilePoolRoute(route);
      } catch (error) {
        throw new TypeError(`Invalid WorkerPool option "routes": ${(error as Error).message}`);
      }
    });
    const logLevel = options.logLevel ?? "warning";
    if (!isLogLevel(logLevel)) {
      throw new TypeError(
        `Invalid WorkerPool option "logLevel": ${
          JSON.stringify(logLevel)
        } (expected "debug", "info", "warning", "error" or "fatal")`,
      );
    }
    const kwargs = options.kwargs ?? {};
    if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) {
      throw new TypeError(`Invalid WorkerPool option "kwargs": expected an object`);
    }
    try {
      JSON.stringify(kwargs);
    } catch {
      throw new TypeError(`Invalid WorkerPool option "kwargs": not JSON-serialisable`);
    }
    if (options.module !== undefined && typeof options.module !== "string" && !(options.module instanceof URL)) {
      throw new TypeError(`Invalid WorkerPool option "module": expected a path or URL`);
    }
    const max = 2 ** 31 - 1;
    const workers = intOption(what, "workers", options.workers, 1, 1, 1024);
    const minWorkers = intOption(what, "minWorkers", options.minWorkers, workers, 1, workers);
    const maxWorkers = intOption(what, "maxWorkers", options.maxWorkers, workers, workers, 1024);
    this.options = {
      workers,
      minWorkers,
      maxWorkers,
      scaleUpDelay: intOption(what, "scaleUpDelay", options.scaleUpDelay, 500, 0, max),
      idleTimeout: intOption(what, "idleTimeout", options.idleTimeout, 60_000, 1, max),
      spares: intOption(what, "spares", options.spares, 0, 0, 64),
      maxRequests: intOption(what, "maxRequests", options.maxRequests, 0, 0),
      maxRequestsJitter: intOption(what, "maxRequestsJitter", options.maxRequestsJitter, 0, 0),
      maxMemoryMb: intOption(what, "maxMemoryMb", options.maxMemoryMb, 0, 0),
      routes: routes ? [...routes] : null,
      timeout: intOption(what, "timeout", options.timeout, 30_000, 1, max),
      stuckTimeout: intOption(what, "stuckTimeout", options.stuckTimeout, 60_000, 1, max),
      startupTimeout: intOption(what, "startupTimeout", options.startupTimeout, 30_000, 1, max),
      heartbeatInterval: intOption(what, "heartbeatInterval", options.heartbeatInterval, 1000, 10, max),
      logLevel,
      maxRestarts: intOption(what, "maxRestarts", options.maxRestarts, 10, 0),
      restartWindow: intOption(what, "restartWindow", options.restartWindow, 300_000, 1, max),
      restartDelay: intOption(what, "restartDelay", options.restartDelay, 100, 0, MAX_RESTART_DELAY),
      minUptime: intOption(what, "minUptime", options.minUptime, 5000, 0, max),
      queueWarning: intOption(what, "queueWarning", options.queueWarning, 100, 0),
      concurrency: intOption(what, "concurrency", options.concurrency, 32, 1),
      retryIdempotent: boolOption(what, "retryIdempotent", options.retryIdempotent, false),
      kwargs,
      module: options.module === undefined ? null : moduleUrl(options.module),
      export: stringOption(what, "export", options.export, className),
    };
    if (this.options.stuckTimeout <= this.options.heartbeatInterval) {
      throw new RangeError(
        `Invalid WorkerPool option "stuckTimeout": ${this.options.stuckTimeout} (must exceed heartbeatInterval ${this.options.heartbeatInterval})`,
      );
    }
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
   */
  scale(workers: number): void {
    const n = intOption("WorkerPool", "workers", workers, 1, 1, 1024);
    if (this.#runner) this.#runner.scale(n);
    else (this.options as { workers: number }).workers = n;
  }

  /**
   * Replaces every worker one at a time, each new process ready before the old
   * one stops taking requests. Resolves with how many workers were replaced.
   */
  reload(): Promise<number> {
    return this.#runner?.reload() ?? Promise.resolve(0);
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
