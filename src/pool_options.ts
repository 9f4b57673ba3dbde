/**
 * A pool's options: their types, and their schema (defaults, ranges, one-line
 * docs, command-line flags, config-file keys).
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";
import { workingDirectory } from "./detect.ts";
import { LOG_LEVELS } from "./logging/levels.ts";
import { MAX_MS, type OptionSpec, resolveOptions, type Schema } from "./options.ts";
import { type RemoteOptions, type ResolvedRemote, resolveRemote } from "./remote_options.ts";

/** A pool's health check, with defaults applied (see the `healthCheck` option). */
export interface HealthCheck {
  /** Path asked (below the app's mount for app pools). */
  path: string;
  /** Time between checks of one worker, in milliseconds. */
  interval: number;
  /** Time a check may take, in milliseconds. */
  timeout: number;
  /** Failed checks in a row that get a worker replaced. */
  retries: number;
}

/** Longest wait before a crashed worker is restarted, in milliseconds. */
export const MAX_RESTART_DELAY = 30_000;

/** Options of a {@linkcode WorkerPool}. Durations are milliseconds. */
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
  /**
   * Time a replaced worker (reload, recycling, scaling down) keeps its open WebSockets before they are closed with
   * 1012, so that their clients reconnect to the new workers. @default {10000}
   */
  wsDrainTimeout?: number;
  /**
   * An HTTP health check of each worker: a GET of `path` (below the mount for app pools) every `interval` ms
   * (default 10000); an answer that is not 2xx, or none within `timeout` ms (default 2000), `retries` times in a row
   * (default 3) gets the worker replaced. Off by default.
   */
  healthCheck?: { path: string; interval?: number; timeout?: number; retries?: number };
  /**
   * Run the pool's workers on other hosts, reached over NATS: `{ nats: "nats://host:4222", subject }`. Each worker
   * host runs `forkyard worker --nats URL module:Export --workers N`; the dispatcher starts no worker of its own.
   * Off by default.
   */
  remote?: RemoteOptions;
  /** Environment variables set for this pool's workers only, beside the dispatcher's own. @default {{}} */
  env?: Record<string, string>;
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

/** A pool's options schema, in the order the docs list them. */
export const POOL_SCHEMA: Schema = {
  workers: { type: "integer", default: 1, min: 1, max: 1024, flags: ["--workers"], doc: "Number of worker processes" },
  routes: {
    type: "custom",
    typeDoc: "string[]",
    defaultDoc: "none: the fallback pool",
    doc: 'Paths this pool serves: exact paths, or `"/prefix/**"` for a prefix and everything under it',
  },
  timeout: {
    type: "integer",
    default: 30_000,
    min: 1,
    max: MAX_MS,
    flags: ["--timeout"],
    doc: 'Time a request may take before the client gets 504 `{"error": "Request timeout"}`',
  },
  stuckTimeout: {
    type: "integer",
    default: 60_000,
    min: 1,
    max: MAX_MS,
    doc: "A worker without a heartbeat for this long is killed and replaced; must exceed `heartbeatInterval`",
  },
  startupTimeout: {
    type: "integer",
    default: 30_000,
    min: 1,
    max: MAX_MS,
    doc: "Time a new worker may take to finish `setup()`",
  },
  heartbeatInterval: {
    type: "integer",
    default: 1000,
    min: 10,
    max: MAX_MS,
    doc: "Interval of worker heartbeats and `Worker.onIdle()`",
  },
  logLevel: {
    type: "string",
    choices: LOG_LEVELS,
    default: "warning",
    flags: ["--log-level"],
    doc: "Lowest level of worker log records forwarded to the dispatcher",
  },
  maxRestarts: {
    type: "integer",
    default: 10,
    min: 0,
    doc:
      'Restarts allowed within `restartWindow`; beyond it the pool is degraded: 503 `{"error": "Service unavailable"}`',
  },
  restartWindow: {
    type: "integer",
    default: 300_000,
    min: 1,
    max: MAX_MS,
    doc: "Window in which restarts are counted",
  },
  restartDelay: {
    type: "integer",
    default: 100,
    min: 0,
    max: MAX_RESTART_DELAY,
    doc: "First delay before restarting a crashed worker; doubles per crash, up to 30 s",
  },
  minUptime: {
    type: "integer",
    default: 5000,
    min: 0,
    max: MAX_MS,
    doc: "A worker up this long counts as healthy: its backoff resets, a degraded pool recovers",
  },
  queueWarning: {
    type: "integer",
    default: 100,
    min: 0,
    doc: "Log a warning when this many requests wait for a worker; 0 disables",
  },
  concurrency: {
    type: "integer",
    default: 32,
    min: 1,
    flags: ["--concurrency"],
    doc: "Requests one worker handles at the same time; more wait in the dispatcher",
  },
  wsDrainTimeout: {
    type: "integer",
    default: 10_000,
    min: 0,
    max: MAX_MS,
    doc: "Time a replaced worker keeps its WebSockets before they are closed with 1012",
  },
  retryIdempotent: {
    type: "boolean",
    default: false,
    flags: ["--retry-idempotent"],
    flagDefault: true,
    doc: "Retry a GET or HEAD request once on another worker when its worker died",
  },
  healthCheck: {
    type: "custom",
    typeDoc: "`{ path, interval, timeout, retries }`",
    defaultDoc: "off",
    doc:
      "GET `path` of each worker every `interval` (10000); not 2xx within `timeout` (2000) `retries` (3) times in a row: replaced",
  },
  remote: {
    type: "custom",
    typeDoc: "`{ nats, subject, token, user, pass, tls, insecure }`",
    defaultDoc: "off",
    doc:
      'Workers on other hosts, reached over NATS at `nats` (`"nats://host:4222"`); `subject` defaults to `"forkyard." + name`; `insecure: true` lets a server beyond loopback in without credentials (docs/remote.md)',
  },
  env: {
    type: "custom",
    typeDoc: "object",
    defaultDoc: "`{}`",
    doc: "Environment variables set for this pool's workers only, beside the dispatcher's own",
  },
  kwargs: {
    type: "custom",
    typeDoc: "object",
    defaultDoc: "`{}`",
    doc: "Values available to workers as `this.kwargs`; must be JSON-serialisable",
  },
  name: { type: "string", defaultDoc: "the worker class name", doc: "Pool name, for logs, status and `send()`" },
  maxRequests: {
    type: "integer",
    default: 0,
    min: 0,
    flags: ["--max-requests"],
    doc: "Replace a worker gracefully once it was handed this many requests; 0 never",
  },
  maxRequestsJitter: {
    type: "integer",
    default: 0,
    min: 0,
    flags: ["--max-requests-jitter"],
    doc: "Add a random 0..maxRequestsJitter to each worker's `maxRequests`, so that workers do not recycle together",
  },
  maxMemoryMb: {
    type: "integer",
    default: 0,
    min: 0,
    flags: ["--max-memory-mb"],
    doc: "Replace a worker gracefully once its resident memory exceeds this many MiB; 0 never",
  },
  minWorkers: {
    type: "integer",
    default: { same: "workers" },
    min: 1,
    max: "workers",
    doc: "Fewest workers an elastic pool shrinks to",
  },
  maxWorkers: {
    type: "integer",
    default: { same: "workers" },
    min: "workers",
    max: 1024,
    doc: "Most workers an elastic pool grows to",
  },
  scaleUpDelay: {
    type: "integer",
    default: 500,
    min: 0,
    max: MAX_MS,
    doc: "An elastic pool adds a worker when the oldest waiting request has waited this long",
  },
  idleTimeout: {
    type: "integer",
    default: 60_000,
    min: 1,
    max: MAX_MS,
    doc: "An elastic pool above `minWorkers` stops a worker that had no request for this long",
  },
  spares: {
    type: "integer",
    default: 0,
    min: 0,
    max: 64,
    flags: ["--spares"],
    doc: "Processes started ahead of need, program loaded, to replace a crashed, stuck or recycled worker at once",
  },
  module: {
    type: "custom",
    typeDoc: "string \\| URL",
    doc: "Module that exports the worker class; workers then load it instead of re-running the main module",
  },
  export: {
    type: "string",
    defaultDoc: "the class name",
    doc: "Name of the export in `module` holding the worker class",
  },
} satisfies { [K in keyof Required<WorkerPoolOptions>]: OptionSpec };

/** A pool's options with defaults applied. */
export type ResolvedPoolOptions =
  & Readonly<Required<Omit<WorkerPoolOptions, "routes" | "module" | "export" | "name" | "healthCheck" | "remote">>>
  & {
    readonly healthCheck: HealthCheck | null;
    /** The worker hosts' NATS server and subject, for a remote pool. */
    readonly remote: ResolvedRemote | null;
    readonly routes: readonly string[] | null;
    readonly module: string | null;
    readonly export: string;
    readonly name: string;
  };

/** A `healthCheck` option with its defaults applied; throws naming what is wrong. */
function resolveHealthCheck(value: unknown): HealthCheck {
  const bad = (what: string) => new TypeError(`Invalid WorkerPool option "healthCheck": ${what}`);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad("expected { path, interval, timeout, retries }");
  }
  const { path, interval = 10_000, timeout = 2000, retries = 3, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw bad(`unknown key "${unknown[0]}" (expected path, interval, timeout, retries)`);
  if (typeof path !== "string" || !path.startsWith("/")) throw bad(`path ${JSON.stringify(path)} (expected "/...")`);
  const int = (name: string, v: unknown, min: number) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > MAX_MS) {
      throw bad(`${name} ${JSON.stringify(v)} (expected an integer from ${min} to ${MAX_MS})`);
    }
    return v;
  };
  return {
    path,
    interval: int("interval", interval, 10),
    timeout: int("timeout", timeout, 1),
    retries: int("retries", retries, 1),
  };
}

/** Checks a pool's options and applies the defaults; throws naming the option. */
export function resolvePoolOptions(options: WorkerPoolOptions, className: string): ResolvedPoolOptions {
  const what = "WorkerPool";
  const scalars = resolveOptions(what, POOL_SCHEMA, options as Record<string, unknown>);
  const name = (scalars.name as string | undefined) ?? className;
  if (name === "") throw new TypeError(`Invalid WorkerPool option "name": "" (the pool needs a name)`);
  const routes = options.routes;
  if (routes !== undefined && (!Array.isArray(routes) || routes.length === 0)) {
    throw new TypeError(`Invalid WorkerPool option "routes": ${JSON.stringify(routes)} (expected a non-empty array)`);
  }
  const healthCheck = options.healthCheck === undefined ? null : resolveHealthCheck(options.healthCheck);
  const remote = options.remote === undefined ? null : resolveRemote(options.remote, name, what);
  const env = options.env ?? {};
  if (
    typeof env !== "object" || env === null || Array.isArray(env) ||
    Object.values(env).some((value) => typeof value !== "string")
  ) {
    throw new TypeError(`Invalid WorkerPool option "env": expected an object of variable names to strings`);
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
  const resolved = {
    ...scalars,
    name,
    export: (scalars.export as string | undefined) ?? className,
    routes: routes ? [...routes] : null,
    kwargs,
    env: { ...env },
    healthCheck,
    remote,
    module: options.module === undefined ? null : moduleUrl(options.module),
  } as unknown as ResolvedPoolOptions;
  if (resolved.stuckTimeout <= resolved.heartbeatInterval) {
    throw new RangeError(
      `Invalid WorkerPool option "stuckTimeout": ${resolved.stuckTimeout} (must exceed heartbeatInterval ${resolved.heartbeatInterval})`,
    );
  }
  return resolved;
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
