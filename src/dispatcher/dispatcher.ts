/**
 * `Dispatcher`: owns the HTTP server, serves static files and `@sync` routes,
 * runs `doCheck`, and hands every other request to a worker pool.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { LogRecord } from "@logtape/logtape";
import { loadRuntime } from "../detect.ts";
import { flushLogs } from "../logging/line_buffer.ts";
import type { PendingRequest, WorkerPool, WorkerResponse } from "../pool.ts";
import { errorResponse } from "../protocol/results.ts";
import { decoratedMethods, RouteTable, SYNC_ROUTES } from "../routing.ts";
import type { HttpServer, Runtime } from "../runtime.ts";
import type { PoolBackend } from "../supervisor/host.ts";
import type { SocketHub } from "./socket_hub.ts";
import type { DispatcherSlot } from "./primary_protocol.ts";
import type { DispatcherLink } from "./dispatcher_link.ts";
import { isWorkerProcess, runPoolWorker } from "../worker/entry.ts";
import { takeAdopter } from "./adoption.ts";
import type { Client } from "./client.ts";
import { buildApp } from "./hono_app.ts";
import { type DispatcherOptions, type ResolvedDispatcherOptions, resolveDispatcherOptions } from "./options.ts";
import { AnswerObserver, type RequestHandler } from "./observer.ts";
import { RequestPipeline, type SyncTarget } from "./request_pipeline.ts";
import { removeStaleSpills, warnUnreachableRoutes } from "./startup_checks.ts";
import { AdminListener } from "./admin.ts";
import { Metrics } from "./metrics.ts";
import { firstLine } from "../error_text.ts";
import { listenFailure } from "./startup_errors.ts";

export type { DispatcherOptions };

/** Where the dispatcher listens, given to {@linkcode Dispatcher.onListen}. */
export interface ListenInfo {
  /** The bound port. */
  port: number;
  /** The address listened on. */
  hostname: string;
  /** `"http"` or `"https"`. */
  protocol: "http" | "https";
  /** Where the admin listener listens, when the `admin` option asks for one. */
  admin?: { port: number; hostname: string };
}

/** The exit status of a dispatcher whose pool could not start a worker (gunicorn's is 3 too). */
const BOOT_FAILURE_STATUS = 3;

const TICK_MS = 100;
/** How much longer than `shutdownTimeout` connections get to finish their answers before they are closed. */
const CLOSE_MARGIN_MS = 1000;
type LogMethod = (message: string, properties?: Record<string, unknown>) => void;

/**
 * The dispatcher: one process that owns every HTTP connection. Subclass it to
 * add `@sync` routes and hooks, then call {@linkcode Dispatcher.run}.
 *
 * In a worker process (started by a dispatcher re-running the main module),
 * the same `run()` call becomes that worker's loop.
 *
 * @example
 * ```ts
 * import { type Client, Dispatcher, sync, WorkerPool } from "@forkyard/forkyard";
 * import { MyWorker } from "./my_worker.ts";
 *
 * class MyDispatcher extends Dispatcher {
 *   @sync("/health")
 *   health(client: Client) {
 *     client.respond({ status: "ok" });
 *   }
 * }
 * await new MyDispatcher({
 *   port: 8080,
 *   pools: [new WorkerPool(MyWorker, { workers: 2, routes: ["/api/**"] })],
 * }).run();
 * ```
 */
export class Dispatcher {
  /** The worker pools, in routing order. */
  readonly pools: WorkerPool[];
  /** The options with defaults applied. */
  readonly options: ResolvedDispatcherOptions;
  #sync = new RouteTable<{ name: string; fn: SyncTarget }>();
  #middleware: MiddlewareHandler[] = [];
  #runtime: Runtime | undefined;
  #server: HttpServer | undefined;
  #supervisors: PoolBackend[] = [];
  /** With the admin listener on: what /metrics counts, and the listener. */
  #admin: AdminListener | undefined;
  #adminServer: HttpServer | undefined;
  /** In a dispatcher started by a primary, with the admin option on: its answers, counted for the primary. */
  #metrics: Metrics | undefined;
  /** With several dispatchers: in the primary, what runs them; in each of them (#link), its link to the primary. */
  #primary: { reload(): Promise<number>; stop(): Promise<void> } | undefined;
  #link: DispatcherLink | undefined;
  /** Stops the control socket, when the `control` option opened one. */
  #closeControl: (() => Promise<void>) | undefined;
  /** The supervisor running each pool, once run() started them. */
  #supervisorOf = new Map<WorkerPool, PoolBackend>();
  #fallback: WorkerPool | undefined;
  /** The WebSockets accepted, pinned to their workers, and their topics. */
  #sockets: SocketHub | undefined;
  /** What the dispatcher does with each request; made by run(). */
  #pipeline: RequestPipeline | undefined;
  #stopping = false;
  #reloading: Promise<number> | undefined;
  #stopped: Promise<void> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  /** LogTape, loaded by run(): worker processes never load it unless their program does. */
  #logtape!: typeof import("../logging/logtape.ts");
  /** Before run() has loaded LogTape (a stop() or reload() that early), messages go to stderr. */
  #log: { debug: LogMethod; info: LogMethod; warning: LogMethod; error: LogMethod } = {
    debug: () => {},
    info: (message) => console.error(message),
    warning: (message) => console.error(message),
    error: (message) => console.error(message),
  };
  #hasCheck: boolean;
  #hasOnResponse: boolean;
  #done!: () => void;
  #finished = new Promise<void>((resolve) => (this.#done = resolve));

  /**
   * Creates a dispatcher; nothing starts until {@linkcode Dispatcher.run}.
   *
   * @param options Dispatcher options; bad values throw `TypeError` or `RangeError` naming the option.
   */
  constructor(options: DispatcherOptions = {}) {
    this.options = resolveDispatcherOptions(options);
    this.pools = [...(options.pools ?? [])];
    this.#fallback = this.pools.find((p) => p.isFallback);
    for (const { name, fn, specs } of decoratedMethods(Object.getPrototypeOf(this), SYNC_ROUTES)) {
      for (const spec of specs) this.#sync.add(spec.pattern, spec.methods, { name, fn: fn as SyncTarget });
    }
    this.#hasCheck = this.doCheck !== Dispatcher.prototype.doCheck;
    this.#hasOnResponse = this.onResponse !== Dispatcher.prototype.onResponse;
  }

  /**
   * Called before a request is queued for a pool. Call `client.respond(...)`
   * and throw `RejectRequest` to refuse it; may be async.
   */
  doCheck(_client: Client): void | Promise<void> {}

  /** Called after the client got a worker's answer; `pending.pool` is the pool that served it. */
  onResponse(_response: WorkerResponse, _pending: PendingRequest): void {}

  /** Called about once a second. */
  onIdle(): void {}

  /** Receives every worker log record; the default writes it through LogTape. */
  onLog(record: LogRecord): void {
    this.#logtape.getLogger(record.category).emit(record);
  }

  /** Called once the server listens; the default logs the address. */
  onListen(info: ListenInfo): void {
    this.#log.info("Listening on {protocol}://{hostname}:{port}", { ...info });
    if (info.admin) this.#log.info("Admin listener on http://{hostname}:{port} (/metrics, /status)", { ...info.admin });
  }

  /** Adds Hono middleware that runs before static files, `@sync` routes and pools. */
  use(...middleware: MiddlewareHandler[]): this {
    if (this.#runtime) throw new Error("Dispatcher.use() must be called before run()");
    this.#middleware.push(...middleware);
    return this;
  }

  /** The pool serving `path`: the first whose routes match, else the fallback pool. */
  findPool(path: string): WorkerPool | undefined {
    for (const pool of this.pools) if (pool.matches(path)) return pool;
    return this.#fallback;
  }

  /** The bound port once listening, else the configured one. */
  get port(): number {
    return this.#server?.port ?? this.options.port;
  }

  /** Requests waiting for or being served by workers. */
  get pendingCount(): number {
    return this.#pipeline?.pending ?? 0;
  }

  /**
   * Starts the pools and the server and resolves after a graceful shutdown
   * (SIGTERM, SIGINT or {@linkcode Dispatcher.stop}). In a worker process it
   * runs the worker loop instead and never resolves. When the server cannot
   * listen (the port is in use, say), it logs one line naming the address and
   * the fix, stops the workers and exits the process with status 1.
   */
  async run(): Promise<void> {
    // Synchronously, before any await: the command line's import of a module that runs its own dispatcher may
    // settle right after this call.
    takeAdopter()?.(this, this.#finished);
    const runtime = await loadRuntime();
    if (isWorkerProcess(runtime)) return runPoolWorker(this.pools);
    if (this.#runtime) throw new Error("Dispatcher.run() was called twice");
    this.#runtime = runtime;
    // Loaded here, not at the top: worker processes re-run the program and need neither.
    const [logtape, { Supervisor }, { SocketHub }, { setPubSub }] = await Promise.all([
      import("../logging/logtape.ts"),
      import("../supervisor/supervisor.ts"),
      import("./socket_hub.ts"),
      import("../websocket/pubsub.ts"),
    ]);
    const sockets = new SocketHub({
      maxMessageSize: this.options.wsMaxMessageSize,
      maxBuffered: this.options.wsMaxBuffered,
    });
    this.#sockets = sockets;
    setPubSub({ publish: (topic, data) => sockets.publish(topic, data) });
    this.#logtape = logtape;
    this.#logtape.configureDefaultLogging(runtime);
    this.#log = this.#logtape.getLogger(["forkyard", "dispatcher"]);
    const pipeline = new RequestPipeline({
      dispatcher: this,
      hasCheck: this.#hasCheck,
      sync: this.#sync,
      supervisorOf: this.#supervisorOf,
      sockets,
      maxBodySize: this.options.maxBodySize,
      maxPending: this.options.maxPending,
      log: this.#log,
    });
    this.#pipeline = pipeline;
    // Several dispatchers: this process is their primary, or one of them with its share of the workers.
    let slot: DispatcherSlot | null = null;
    if (this.options.dispatchers > 1) {
      const several = await import("./primary_protocol.ts");
      slot = several.dispatcherSlot(runtime);
      if (slot === null) {
        await (await import("./run_primary.ts")).runPrimary({
          runtime,
          dispatcher: this,
          log: this.#log,
          finished: this.#finished,
          adopt: (primary) => (this.#primary = primary),
          listening: (info) => this.onListen(info),
        });
        return;
      }
      for (const pool of this.pools) pool.scale(several.share(pool.options.workers, slot.index, slot.count));
    }
    removeStaleSpills(runtime, this.#log);
    warnUnreachableRoutes(this.pools, (path) => this.findPool(path), this.#log);
    const app = await buildApp({
      runtime,
      middleware: this.#middleware,
      staticRoutes: this.options.staticRoutes,
      handle: (request, extras) => pipeline.handle(request, extras),
      failed: pipeline.failed,
    });
    // Without middleware or static files, Hono would only route everything to the pipeline: skip it.
    const direct = this.#middleware.length === 0 && Object.keys(this.options.staticRoutes).length === 0;
    // Remote pools' client code is loaded only when some pool is remote.
    const remote = this.pools.some((p) => p.options.remote !== null)
      ? await import("../remote/remote_pool.ts")
      : undefined;
    for (const pool of this.pools) {
      const host = {
        runtime,
        finished: (p: PendingRequest) => pipeline.finish(p),
        answered: this.#hasOnResponse
          ? (response: WorkerResponse, p: PendingRequest) => this.#answered(response, p)
          : undefined,
        log: (record: LogRecord) => this.#onWorkerLog(record),
        logger: this.#logtape.getLogger(["forkyard", "pool", pool.name]),
        sockets,
      };
      const supervisor: PoolBackend = pool.options.remote !== null
        ? new remote!.RemotePool(pool, host, pool.options.remote)
        : new Supervisor(pool, host);
      pool.attach(supervisor);
      this.#supervisors.push(supervisor);
      this.#supervisorOf.set(pool, supervisor);
      supervisor.start();
    }
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    const unlisten = [
      runtime.onSignal("SIGTERM", () => void this.stop()),
      runtime.onSignal("SIGINT", () => void this.stop()),
      runtime.onSignal("SIGHUP", () => void this.reload()),
    ];
    // Listen once the workers can take requests, so that the first requests do not wait for startup.
    await Promise.all(this.#supervisors.map((s) => s.settled()));
    if (this.#stopping) {
      // stopped (a signal) while the workers were starting
      await this.#finished;
      for (const off of unlisten) off();
      return;
    }
    const failed = this.options.retryBoot ? undefined : this.#supervisors.find((s) => s.bootFailure() !== null);
    if (failed !== undefined) {
      // A server whose pool cannot start would only answer 503: a failed start, as gunicorn's "worker failed to boot".
      this.#log.error(
        'Cannot start pool "{pool}": its workers failed to boot ({reason}); option retryBoot keeps trying',
        {
          pool: failed.pool.name,
          reason: failed.bootFailure(),
        },
      );
      for (const off of unlisten) off();
      await this.#shutdownPools();
      clearInterval(this.#ticker);
      flushLogs();
      runtime.exit(BOOT_FAILURE_STATUS);
      return;
    }
    // With several dispatchers, the primary answers for them all: each counts its answers and reports them.
    const admin = slot === null ? this.options.admin : null;
    if (slot !== null && this.options.admin !== null) this.#metrics = new Metrics();
    if (admin !== null) {
      this.#admin = new AdminListener({
        pid: runtime.pid,
        pending: () => pipeline.pending,
        pools: () => this.#supervisors.map((s) => ({ status: s.status(), replaced: s.replacements() })),
      });
    }
    try {
      if (admin !== null) {
        this.#adminServer = await runtime.serve({
          port: admin.port,
          hostname: admin.hostname,
          headersTimeout: this.options.headersTimeout,
          idleTimeout: this.options.idleTimeout,
          maxConnections: 0,
          // The same server as the public port's: a node:http one would change the process's Response class.
          httpServer: this.options.httpServer,
          fetch: (request) => this.#admin!.answer(request),
        });
      }
      this.#server = await runtime.serve({
        port: slot?.port ?? this.options.port,
        reusePort: slot !== null,
        hostname: this.options.hostname,
        tls: this.options.tls ?? undefined,
        headersTimeout: this.options.headersTimeout,
        idleTimeout: this.options.idleTimeout,
        maxConnections: this.options.maxConnections,
        httpServer: this.options.httpServer,
        websocket: { idleTimeout: this.options.wsIdleTimeout, maxMessageSize: this.options.wsMaxMessageSize },
        onListenerFailed: (error, retryMs) =>
          this.#log.error("The listener failed ({reason}); listening again in {retryMs} ms", {
            reason: firstLine(error),
            retryMs,
          }),
        fetch: this.#observed(
          direct
            ? (request, extras) => pipeline.handleSafely(request, extras)
            : (request, extras) => app.fetch(request, { extras }),
        ),
      });
    } catch (error) {
      for (const off of unlisten) off();
      await this.#adminServer?.close(0).catch(() => {});
      await this.#shutdownPools();
      clearInterval(this.#ticker);
      // A server that cannot listen is a failed start, as for gunicorn and uvicorn: one line, exit status 1.
      const failed = this.#adminServer === undefined && admin !== null ? admin : this.options;
      this.#log.error(listenFailure(error, failed.hostname, failed.port));
      flushLogs();
      runtime.exit(1);
      return;
    }
    if (slot !== null) {
      const { DispatcherLink } = await import("./dispatcher_link.ts");
      const link = new DispatcherLink({
        runtime,
        pools: this.pools,
        pending: () => pipeline.pending,
        replaced: () => this.#supervisors.map((s) => s.replacements()),
        metrics: this.#metrics ?? null,
        deliver: (topic, data) => sockets.deliver(topic, data),
        reload: () => this.reload(),
        stop: () => this.stop(),
      });
      this.#link = link;
      sockets.relay = (topic, data) => link.publish(topic, data);
      this.#link.listening(this.#server.port);
      await this.#finished;
      for (const off of unlisten) off();
      // Started by the primary to be a dispatcher and nothing else, like a worker: its channel would keep it alive.
      flushLogs();
      runtime.exit(0);
      return;
    }
    if (this.options.control !== false) {
      try {
        // Loaded here: worker processes, which re-run the program, need no socket server.
        const { listenControl, runCommand } = await import("./control.ts");
        this.#closeControl = await listenControl(this.options.control, (command) =>
          runCommand(command, {
            pid: runtime.pid,
            port: this.port,
            pending: () => pipeline.pending,
            pools: this.pools,
            statuses: () => this.#supervisors.map((s) => s.status()),
            reload: () => this.reload(),
            stop: () => this.stop(),
          }));
      } catch (error) {
        this.#log.error("Cannot open the control socket {path}: {reason}", {
          path: this.options.control,
          reason: firstLine(error),
        });
        await this.stop();
        flushLogs();
        runtime.exit(1);
        return;
      }
    }
    this.onListen({
      port: this.#server.port,
      hostname: this.options.hostname,
      protocol: this.options.tls ? "https" : "http",
      ...(this.#adminServer ? { admin: { port: this.#adminServer.port, hostname: this.#adminServer.hostname } } : {}),
    });
    await this.#finished;
    for (const off of unlisten) off();
  }

  /** `handle`, with each answer recorded when the `accessLog` or `admin` options ask for it; else `handle` itself. */
  #observed(handle: RequestHandler): RequestHandler {
    const format = this.options.accessLog;
    const metrics = this.#admin?.metrics ?? this.#metrics ?? null;
    if (format === false && metrics === null) return handle;
    const observer = new AnswerObserver({
      accessLog: format === false ? null : { format, emit: this.#logtape.recordWriter(["forkyard", "access"]) },
      metrics,
      failed: (error) => this.#log.error("Access log failed: {error}", { error }),
    });
    this.#pipeline!.observer = observer;
    return observer.wrap(handle);
  }

  #answered(response: WorkerResponse, p: PendingRequest) {
    try {
      this.onResponse(response, p);
    } catch (error) {
      this.#log.error("onResponse() failed: {error}", { error });
    }
  }

  #onWorkerLog(record: LogRecord) {
    try {
      this.onLog(record);
    } catch (error) {
      this.#log.error("onLog() failed: {error}", { error });
    }
  }

  #tick() {
    const now = Date.now();
    for (const s of this.#supervisors) {
      try {
        s.tick(now);
      } catch (error) {
        this.#log.error("Supervising pool {pool} failed: {error}", { pool: s.pool.name, error });
      }
    }
    if (++this.#ticks % (1000 / TICK_MS) === 0) this.#admin?.second(now);
    if (this.#ticks % (1000 / TICK_MS) === 0 && !this.#stopping) {
      try {
        this.onIdle();
      } catch (error) {
        this.#log.error("onIdle() failed: {error}", { error });
      }
    }
  }

  /**
   * Rolling reload (also on SIGHUP): replaces every worker of every pool, one
   * at a time, each new process ready before the old one stops taking
   * requests, so that no request fails. Resolves with how many were replaced.
   */
  async reload(): Promise<number> {
    if (this.#reloading) return this.#reloading;
    this.#log.info("Reloading workers");
    const primary = this.#primary;
    this.#reloading = (async () => {
      let replaced = 0;
      if (primary !== undefined) replaced = await primary.reload();
      else for (const pool of this.pools) replaced += await pool.reload();
      this.#log.info("Reload done: {replaced} workers replaced", { replaced });
      return replaced;
    })();
    try {
      return await this.#reloading;
    } finally {
      this.#reloading = undefined;
    }
  }

  /**
   * Shuts down gracefully: stops accepting connections, lets pending requests
   * finish for up to `shutdownTimeout`, answers the rest with 503, stops the
   * workers (killing those that do not exit) and makes `run()` resolve.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#primary !== undefined ? this.#primary.stop().then(() => this.#done()) : this.#shutdown();
    return this.#stopped;
  }

  async #shutdown() {
    this.#stopping = true;
    this.#link?.close();
    const pipeline = this.#pipeline;
    if (pipeline !== undefined) pipeline.stopping = true;
    this.#log.info("Shutting down: {pending} requests pending", { pending: this.pendingCount });
    // Connections still open when the grace time is over (slow or idle clients) are closed, so that shutdown ends.
    const closing = this.#server?.close(this.options.shutdownTimeout + CLOSE_MARGIN_MS).catch(() => {});
    this.#admin?.closeStreams();
    const closingAdmin = this.#adminServer?.close(CLOSE_MARGIN_MS).catch(() => {});
    const closingControl = this.#closeControl?.();
    // WebSockets never finish by themselves: closed with 1001 (going away), their workers told.
    this.#sockets?.closeAll(1001, "Server shutting down");
    if (pipeline !== undefined && pipeline.pending > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        pipeline.drained = resolve;
        timer = setTimeout(resolve, this.options.shutdownTimeout);
      });
      clearTimeout(timer);
    }
    for (const s of this.#supervisors) s.abortAll(() => errorResponse(503, "Server shutting down"));
    await this.#shutdownPools();
    clearInterval(this.#ticker);
    await closing;
    await closingAdmin;
    await closingControl;
    this.#done();
  }

  async #shutdownPools() {
    const grace = Math.max(1000, Math.min(this.options.shutdownTimeout, 5000));
    await Promise.all(this.#supervisors.map((s) => s.stop(grace)));
  }
}
