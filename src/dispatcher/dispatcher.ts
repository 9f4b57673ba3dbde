/**
 * `Dispatcher`: owns the HTTP server, serves static files and `@sync` routes,
 * runs `doCheck`, and hands every other request to a worker pool.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { LogRecord } from "@logtape/logtape";
import { loadRuntime } from "../detect.ts";
import { type EarlyLog, earlyLog } from "../logging/early_log.ts";
import { flushLogs } from "../logging/line_buffer.ts";
import { onServingSignals } from "../process_signals.ts";
import type { WorkerPool, WorkerResponse } from "../pool.ts";
import { decoratedMethods, RouteTable, SYNC_ROUTES } from "../routing.ts";
import type { HttpServer, Runtime } from "../runtime.ts";
import type { PoolBackend } from "../pool_backend.ts";
import { CLOSE } from "../protocol/close_codes.ts";
import type { Pending } from "../requests/pending.ts";
import type { SocketHub } from "./socket_hub.ts";
import type { DispatcherSlot } from "./primary_protocol.ts";
import type { DispatcherLink } from "./dispatcher_link.ts";
import { isWorkerProcess, runPoolWorker } from "../worker/entry.ts";
import { takeAdopter } from "./adoption.ts";
import type { Client, PendingRequest } from "./client.ts";
import { requestHandler } from "./hono_app.ts";
import type { DispatcherOptions, ResolvedDispatcherOptions } from "./options.ts";
import { resolveDispatcherOptions } from "./resolve_options.ts";
import { AnswerObserver, type RequestHandler } from "./observer.ts";
import { RequestPipeline, type SyncTarget } from "./request_pipeline.ts";
import { warnUnreachableRoutes } from "./unreachable_routes.ts";
import { removeSpillDir, removeStaleSpills } from "../protocol/spill.ts";
import { AdminListener } from "./admin.ts";
import { Metrics } from "./metrics.ts";
import { BOOT_FAILURE_STATUS, RunningPools, settledWithin, stopGrace } from "../running_pools.ts";
import { type ListenInfo, openListeners, startGate } from "./listeners.ts";
import { switchUser } from "./run_as.ts";
import { poolBackends } from "./pool_backends.ts";
import { plural } from "../logging/plural.ts";

export type { DispatcherOptions, ListenInfo };

/** What a primary of several dispatchers steers them by. */
type PrimaryHandle = { reload(): Promise<number>; stop(): Promise<void> };

/** How much longer than `shutdownTimeout` connections get to finish their answers before they are closed. */
const CLOSE_MARGIN_MS = 1000;

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
  /** The pools' backends, once run() started them. */
  #pools: RunningPools | undefined;
  /** With the admin listener on: what /metrics counts, and the listener. */
  #admin: AdminListener | undefined;
  #adminServer: HttpServer | undefined;
  /** In a dispatcher started by a primary, with the admin option on: its answers, counted for the primary. */
  #metrics: Metrics | undefined;
  /** With several dispatchers: in the primary, what runs them; in each of them (#link), its link to the primary. */
  #primary: PrimaryHandle | undefined;
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
  /** What records each answer, when the access log or the admin listener asks for it. */
  #observer: AnswerObserver | null = null;
  #stopping = false;
  #reloading: Promise<number> | undefined;
  #stopped: Promise<void> | undefined;
  /** Removes the signal handlers run() installed. */
  #unlisten: (() => void)[] = [];
  /** LogTape, loaded by run(): worker processes never load it unless their program does. */
  #logtape!: typeof import("../logging/logtape.ts");
  /** Before run() has loaded LogTape (a stop() or reload() that early), messages go to stderr. */
  #log: EarlyLog = earlyLog;
  readonly #hasCheck = this.doCheck !== Dispatcher.prototype.doCheck;
  readonly #hasOnResponse = this.onResponse !== Dispatcher.prototype.onResponse;
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
    if (info.path !== undefined) this.#log.info("Listening on unix:{path}", { ...info });
    else this.#log.info("Listening on {protocol}://{hostname}:{port}", { ...info });
    const paths = "the status page /, /metrics, /status, /ready, /events";
    if (info.admin) this.#log.info("Admin listener on http://{hostname}:{port}: {paths}", { ...info.admin, paths });
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
    this.#logtape = await import("../logging/logtape.ts");
    this.#logtape.configureDefaultLogging(runtime, this.options);
    this.#log = this.#logtape.getLogger(["forkyard", "dispatcher"]);
    // Several dispatchers: this process is their primary, or one of them with its share of the workers.
    let slot: DispatcherSlot | null = null;
    if (this.options.dispatchers > 1) {
      const several = await import("./primary_protocol.ts");
      slot = several.dispatcherSlot(runtime);
      if (slot === null) {
        // The primary of several dispatchers: it runs them, and the admin listener for them all.
        const { runPrimary } = await import("./run_primary.ts");
        const listening = (info: ListenInfo) => this.onListen(info);
        const adopt = (primary: PrimaryHandle) => (this.#primary = primary);
        return runPrimary({ runtime, dispatcher: this, log: this.#log, finished: this.#finished, adopt, listening });
      }
      for (const pool of this.pools) pool.scale(several.share(pool.options.workers, slot.index, slot.count));
    }
    const pipeline = await this.#prepare(runtime, slot);
    removeStaleSpills(runtime, this.#log);
    warnUnreachableRoutes(this.pools, (path) => this.findPool(path), this.#log);
    const handle = await requestHandler({
      runtime,
      middleware: this.#middleware,
      staticRoutes: this.options.staticRoutes,
      staticDotfiles: this.options.staticDotfiles,
      pipeline,
    });
    // Bound before any worker boots (as gunicorn binds before it forks): an address in use or a control socket taken
    // fails the start at once. What arrives meanwhile waits for the pools; `onListen` says when they are ready.
    const gate = startGate(handle);
    if (!await this.#listen(runtime, gate.fetch, slot)) return this.#exit(1);
    if (slot === null && !await this.#openControl(runtime, pipeline)) return this.#exit(1);
    if (!switchUser(runtime, this.options, this.#log)) return this.#exit(1);
    const pools = await this.#startPools(runtime, pipeline, slot);
    gate.open();
    await pools.settled();
    if (this.#stopping) return this.#finished; // stopped (a signal) while the workers were starting
    const failed = this.options.retryBoot ? null : pools.bootFailure();
    if (failed !== null) {
      // A server whose pool cannot start would only answer 503: a failed start, as gunicorn's "worker failed to boot".
      this.#log.error(
        'Cannot start pool "{pool}": its workers failed to boot ({reason}); option retryBoot keeps trying',
        failed,
      );
      return this.#exit(BOOT_FAILURE_STATUS);
    }
    if (slot !== null) {
      await this.#linkToPrimary(runtime, pipeline);
      await this.#finished;
      // Started by the primary to be a dispatcher and nothing else, like a worker: its channel would keep it alive.
      return this.#exit(0);
    }
    this.onListen({
      port: this.#server!.port,
      hostname: this.options.hostname,
      ...(this.options.unixSocket !== null ? { path: this.options.unixSocket } : {}),
      protocol: this.options.tls ? "https" : "http",
      ...(this.#adminServer ? { admin: { port: this.#adminServer.port, hostname: this.#adminServer.hostname } } : {}),
    });
    await this.#finished;
  }

  /**
   * Makes what only a dispatcher needs (worker processes re-run the program and need none of it): the socket hub,
   * the admin listener's metrics (not several dispatchers': their primary answers for them all, each of them counts
   * its answers for it), what records each answer, and the request pipeline.
   */
  async #prepare(runtime: Runtime, slot: DispatcherSlot | null): Promise<RequestPipeline> {
    const { SocketHub } = await import("./socket_hub.ts");
    const { setPubSub } = await import("../worker/pubsub.ts");
    const sockets = new SocketHub({
      maxMessageSize: this.options.wsMaxMessageSize,
      maxBuffered: this.options.wsMaxBuffered,
      relay: slot === null ? null : (topic, data) => this.#link?.publish(topic, data),
    });
    this.#sockets = sockets;
    setPubSub({ publish: (topic, data) => sockets.publish(topic, data) });
    if (slot === null && this.options.admin !== null) {
      this.#admin = new AdminListener({
        pid: runtime.pid,
        pending: () => this.pendingCount,
        pools: () =>
          this.#backends().map((s) => ({ status: s.status(), replaced: s.replacements(), dropped: s.dropped?.() })),
      }, this.options.admin);
    } else if (this.options.admin !== null) {
      this.#metrics = new Metrics();
    }
    const { accessLog, accessLogRedact } = this.options;
    this.#observer = AnswerObserver.forOptions(
      accessLog,
      accessLogRedact,
      this.#admin?.metrics ?? this.#metrics ?? null,
      {
        emit: (format) => this.#logtape.recordWriter(["forkyard", "access"], format === "json"),
        failed: (error) => this.#log.error("Access log failed: {error}", { error }),
      },
    );
    this.#pipeline = new RequestPipeline({
      dispatcher: this,
      hasCheck: this.#hasCheck,
      onResponse: this.#hasOnResponse ? (response, p) => this.#hook("onResponse", response, p) : null,
      sync: this.#sync,
      supervisorOf: this.#supervisorOf,
      sockets,
      observer: this.#observer,
      options: this.options,
      log: this.#log,
    });
    return this.#pipeline;
  }

  /** Starts every pool, and listens for the signals that stop, reload or resize them. */
  async #startPools(runtime: Runtime, pipeline: RequestPipeline, slot: DispatcherSlot | null): Promise<RunningPools> {
    const backends = await poolBackends(this.pools, (pool) => ({
      runtime,
      steers: (slot?.index ?? 0) === 0,
      finished: (p: Pending) => pipeline.finish(p),
      log: (record: LogRecord) => this.#hook("onLog", record),
      logger: this.#logtape.getLogger(["forkyard", "pool", pool.name]),
      sockets: this.#sockets,
    }));
    const pools = RunningPools.start(backends, this.#log, (now, second) => this.#tick(now, second));
    for (const backend of pools.backends) this.#supervisorOf.set(backend.pool, backend);
    this.#pools = pools;
    // Under a primary, the primary resizes the pools: its dispatchers would each add their own worker.
    this.#unlisten = onServingSignals(runtime, this, slot === null, this.#log);
    return pools;
  }

  /** Opens the admin listener, when there is one, and the server; false when one cannot listen (logged). */
  async #listen(runtime: Runtime, handle: RequestHandler, slot: DispatcherSlot | null): Promise<boolean> {
    const admin = this.#admin === undefined ? null : this.options.admin!;
    const listeners = await openListeners(runtime, this.options, {
      admin: admin === null ? null : { ...admin, fetch: (request) => this.#admin!.answer(request) },
      fetch: this.#observer === null ? handle : this.#observer.wrap(handle),
      sharedPort: slot?.port ?? null,
    }, this.#log);
    if (listeners === null) return false;
    this.#server = listeners.server;
    this.#adminServer = listeners.admin;
    return true;
  }

  /** One of several dispatchers: its link to the primary, which steers it and relays its topics. */
  async #linkToPrimary(runtime: Runtime, pipeline: RequestPipeline): Promise<void> {
    this.#link = new (await import("./dispatcher_link.ts")).DispatcherLink({
      runtime,
      pools: this.pools,
      pending: () => pipeline.pending,
      replaced: () => this.#backends().map((s) => s.replacements()),
      metrics: this.#metrics ?? null,
      sockets: this.#sockets!,
      reload: () => this.reload(),
      stop: () => this.stop(),
    });
    this.#link.listening(this.#server!.port);
  }

  /** Opens the control socket when the `control` option asks for one; false when it cannot (one line says why). */
  async #openControl(runtime: Runtime, pipeline: RequestPipeline): Promise<boolean> {
    if (this.options.control === false) return true;
    // Loaded here: worker processes, which re-run the program, need no socket server.
    const { openControl } = await import("../control_socket.ts");
    const close = await openControl(this.options.control, {
      pid: runtime.pid,
      port: this.port,
      pending: () => pipeline.pending,
      pools: this.pools,
      statuses: () => this.#backends().map((s) => s.status()),
      reload: () => this.reload(),
      stop: () => this.stop(),
    }, this.#log);
    if (close === null) return false;
    this.#closeControl = close;
    return true;
  }

  /** Every pool's backend, once started. */
  #backends(): readonly PoolBackend[] {
    return this.#pools?.backends ?? [];
  }

  /** Ends a run that cannot go on (or a dispatcher the primary started): shut down, then exit with `status`. */
  async #exit(status: number): Promise<void> {
    this.#stopped ??= this.#shutdown(status === 0);
    await this.#stopped;
    await flushLogs();
    this.#runtime!.exit(status);
  }

  /** Calls the application's hook `name`: what it throws is logged, never thrown on. */
  #hook<A extends unknown[]>(name: "onResponse" | "onLog" | "onIdle", ...args: A): void {
    try {
      (this[name] as (...args: A) => void)(...args);
    } catch (error) {
      this.#log.error(`${name}() failed: {error}`, { error });
    }
  }

  /** Once a tick, after the pools': once a second, the admin listener's counts and `onIdle()`. */
  #tick(now: number, second: boolean) {
    if (!second) return;
    this.#admin?.second(now);
    if (!this.#stopping) this.#hook("onIdle");
  }

  /**
   * Rolling reload (also on SIGHUP): replaces every worker of every pool, one
   * at a time, each new process ready before the old one stops taking
   * requests, so that no request fails. Resolves with how many were replaced.
   */
  reload(): Promise<number> {
    this.#reloading ??= this.#reloadAll().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async #reloadAll(): Promise<number> {
    this.#log.info("Reloading workers");
    let replaced = 0;
    if (this.#primary !== undefined) replaced = await this.#primary.reload();
    else for (const pool of this.pools) replaced += await pool.reload();
    this.#log.info("Reload done: {workers} replaced", { replaced, workers: plural(replaced, "worker") });
    return replaced;
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

  /** The one way down: stop listening, let pending requests finish (up to `shutdownTimeout`), stop the pools. */
  async #shutdown(announce = true) {
    this.#stopping = true;
    this.#link?.close();
    const drainedPipeline = this.#pipeline?.stop();
    if (announce) this.#log.info("Shutting down: {pending} pending", { pending: plural(this.pendingCount, "request") });
    // Connections still open when the grace time is over (slow or idle clients) are closed, so that shutdown ends.
    const closing = this.#server?.close(this.options.shutdownTimeout + CLOSE_MARGIN_MS).catch(() => {});
    this.#admin?.closeStreams();
    const closingAdmin = this.#adminServer?.close(CLOSE_MARGIN_MS).catch(() => {});
    const closingControl = this.#closeControl?.();
    // WebSockets never finish by themselves: closed with 1001 (going away), their workers told.
    this.#sockets?.closeAll(CLOSE.GOING_AWAY, "Server shutting down");
    if (drainedPipeline !== undefined) await settledWithin(drainedPipeline, this.options.shutdownTimeout);
    await this.#pools?.stop(stopGrace(this.options.shutdownTimeout));
    removeSpillDir(this.#runtime?.spill() ?? null);
    await Promise.all([closing, closingAdmin, closingControl]);
    for (const off of this.#unlisten) off();
    this.#done();
  }
}
