/**
 * The loop of a worker process: reads request frames from stdin, runs the
 * matching handler, writes responses, heartbeats and log records to stdout.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import type { LogLevel } from "@logtape/logtape";
import { loadRuntime } from "./detect.ts";
import { IdTable } from "./id_table.ts";
import { F, FrameDecoder, FrameWriter, SPILL_THRESHOLD, spillPrefix } from "./framing.ts";
import {
  format,
  programUsesLogTape,
  toWire,
  type WireRecord,
  wireRecord,
  type WorkerLogger,
  workerLogger,
} from "./logging.ts";
import { ABORT, InvalidBody, type WireRequest, WorkerRequest } from "./request.ts";
import { RouteTable, workerRoutes } from "./routing.ts";
import type { ParentChannel, Runtime } from "./runtime.ts";
import {
  type ApiHandlerClass,
  type Worker,
  Worker as WorkerBase,
  type WorkerClass,
  type WorkerContext,
} from "./worker.ts";

/** The first frame a worker receives. */
export interface InitMessage {
  /** Pool name. */
  pool: string;
  /** Worker slot id. */
  id: number;
  /** The pool's kwargs. */
  kwargs: Record<string, unknown>;
  /** Lowest level the worker forwards. */
  logLevel: LogLevel;
  /** Milliseconds between heartbeats. */
  heartbeatInterval: number;
  /** For pools with a `module` option: the module URL to import. */
  module?: string;
  /** For pools with a `module` option: the export holding the worker class. */
  export?: string;
  /** For app pools: the mount prefix to strip. */
  mount?: string;
}

/** A web-standard app: what an app pool's module exports. */
export interface FetchApp {
  /** Answers one request. */
  fetch(request: Request): Response | Promise<Response>;
}

/** Response kinds in a RESPONSE frame: how the dispatcher sets `Content-Type`. */
export const KIND = { JSON: 0, TEXT: 1, BINARY: 2, HEADERS: 3 } as const;

interface Target {
  fn: (req: WorkerRequest) => unknown;
  owner: object;
}

const encoder = new TextEncoder();
const NOT_FOUND = encoder.encode('{"error":"Not found"}');
const INTERNAL = encoder.encode('{"error":"Internal server error"}');
const TICK = Symbol("tick");

function flattenHeaders(headers: Headers): string[] {
  const out: string[] = [];
  for (const [k, v] of headers) out.push(k, v);
  return out;
}

/** Builds the route table of a worker instance from its handlers and its own `@api` methods. */
export function buildWorkerRoutes(worker: Worker): RouteTable<Target> {
  const table = new RouteTable<Target>();
  const handlers = new Map<ApiHandlerClass, object>();
  for (const { pattern, methods, fn, handler } of workerRoutes(worker.constructor as WorkerClass)) {
    let owner: object = worker;
    if (handler !== null) {
      const Handler = handler as ApiHandlerClass;
      owner = handlers.get(Handler) ?? new Handler(worker);
      handlers.set(Handler, owner);
    }
    table.add(pattern, methods, { fn, owner });
  }
  return table;
}

interface Inflight {
  request: WorkerRequest;
  reader?: ReadableStreamDefaultReader<Uint8Array>;
}

class WorkerLoop {
  #runtime: Runtime;
  #writer: FrameWriter;
  #init: InitMessage;
  #worker!: Worker;
  #routes!: RouteTable<Target>;
  #app: FetchApp | undefined;
  #inflight = new IdTable<Inflight>();
  #ready = false;
  #stopping = false;
  #log: WorkerLogger;
  #context: AsyncLocalStorage<Record<string, unknown>>;

  constructor(
    runtime: Runtime,
    writer: FrameWriter,
    init: InitMessage,
    log: WorkerLogger,
    context: AsyncLocalStorage<Record<string, unknown>>,
  ) {
    this.#runtime = runtime;
    this.#writer = writer;
    this.#init = init;
    this.#log = log;
    this.#context = context;
  }

  async start(target: WorkerClass | FetchApp): Promise<void> {
    const init = this.#init;
    if (typeof target !== "function") {
      this.#app = target;
      this.#worker = new (class AppWorker extends WorkerBase {})(this.#workerContext());
      this.#routes = new RouteTable();
      this.#heartbeat();
      setInterval(() => this.#heartbeat(), init.heartbeatInterval);
      this.#ready = true;
      this.#writer.send(F.READY);
      return;
    }
    const WorkerClass = target;
    this.#worker = new WorkerClass(this.#workerContext());
    this.#routes = buildWorkerRoutes(this.#worker);
    this.#heartbeat();
    setInterval(() => this.#heartbeat(), init.heartbeatInterval);
    await this.#worker.setup();
    this.#ready = true;
    this.#writer.send(F.READY);
  }

  #workerContext(): WorkerContext {
    const init = this.#init;
    return {
      workerId: init.id,
      poolName: init.pool,
      kwargs: init.kwargs,
      log: this.#log,
      control: (message) => {
        if (message === "keepAlive") this.#writer.send(F.KEEPALIVE);
        else if (message === "pause") this.#writer.send(F.PAUSE);
        else this.#writer.send(F.RESUME);
      },
    };
  }

  #heartbeat() {
    this.#writer.send(F.HEARTBEAT, { r: this.#runtime.rss() });
    if (!this.#ready) return;
    try {
      const idle = this.#worker.onIdle();
      if (idle instanceof Promise) idle.catch((e) => this.#log.error("onIdle() failed: {error}", { error: e }));
    } catch (error) {
      this.#log.error("onIdle() failed: {error}", { error });
    }
  }

  onFrame(type: number, header: unknown, body: Uint8Array) {
    switch (type) {
      case F.REQUEST:
        this.#request(header as WireRequest, body);
        break;
      case F.CANCEL:
        this.#cancel(header as { i: number; w: string });
        break;
      case F.CONFIG:
        this.#config((header as { c: unknown }).c);
        break;
      case F.STOP:
        this.#stop();
        break;
    }
  }

  #config(config: unknown) {
    try {
      const done = this.#worker.onConfig(config);
      if (done instanceof Promise) done.catch((error) => this.#log.error("onConfig() failed: {error}", { error }));
    } catch (error) {
      this.#log.error("onConfig() failed: {error}", { error });
    }
  }

  #request(wire: WireRequest, body: Uint8Array) {
    // Log records made while handling a request carry its trace id.
    if (wire.x !== undefined) this.#context.run({ requestId: wire.x }, () => this.#handle(wire, body));
    else this.#handle(wire, body);
  }

  #handle(wire: WireRequest, body: Uint8Array) {
    const id = wire.i;
    if (this.#app !== undefined) {
      this.#appRequest(wire, body);
      return;
    }
    const match = this.#routes.match(wire.m, wire.p);
    if (match === undefined) {
      this.#writer.send(F.RESPONSE, { i: id, s: 404 }, NOT_FOUND);
      return;
    }
    if (match.allow) {
      this.#writer.send(
        F.RESPONSE,
        { i: id, s: 405, k: KIND.HEADERS, h: ["allow", match.allow.join(", "), "content-type", "application/json"] },
        encoder.encode('{"error":"Method not allowed"}'),
      );
      return;
    }
    const request = new WorkerRequest(wire, body, match.params);
    this.#inflight.set(id, { request });
    let result: unknown;
    try {
      result = match.route.target.fn.call(match.route.target.owner, request);
    } catch (error) {
      this.#fail(id, request, error);
      return;
    }
    if (result instanceof Promise) {
      result.then((value) => this.#finish(id, value), (error) => this.#fail(id, request, error));
    } else {
      this.#finish(id, result);
    }
  }

  /** App pools: the request as a web `Request` without the mount prefix, to the app's `fetch`. */
  #appRequest(wire: WireRequest, body: Uint8Array) {
    const id = wire.i;
    const request = new WorkerRequest(wire, body, {});
    this.#inflight.set(id, { request });
    const raw = wire.r ?? wire.p;
    const rest = raw.slice(this.#init.mount?.length ?? 0);
    const path = rest.startsWith("/") ? rest : "/" + rest;
    const headers = request.headers;
    const url = `http://${headers.get("host") ?? "localhost"}${path}${wire.q ? "?" + wire.q : ""}`;
    let result: unknown;
    try {
      const hasBody = body.length > 0 && wire.m !== "GET" && wire.m !== "HEAD";
      result = this.#app!.fetch(
        new Request(url, { method: wire.m, headers, body: hasBody ? body as BodyInit : null, signal: request.signal }),
      );
    } catch (error) {
      this.#fail(id, request, error);
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        if (value instanceof Response) this.#finish(id, value);
        else this.#fail(id, request, new TypeError(`The app's fetch() returned ${typeof value}, not a Response`));
      },
      (error) => this.#fail(id, request, error),
    );
  }

  #fail(id: number, request: WorkerRequest, error: unknown) {
    const invalid = error instanceof InvalidBody ? error : null;
    if (invalid !== null) {
      // The client's mistake, not the handler's: 400, and no error record.
      this.#log.info("{method} {path}: {message}", {
        method: request.method,
        path: request.path,
        message: invalid.message,
      });
    } else {
      this.#log.error("Handler for {method} {path} failed: {error}", {
        method: request.method,
        path: request.path,
        error,
      });
      try {
        this.#worker.onRequestError(request, error);
      } catch (hookError) {
        this.#log.error("onRequestError() failed: {error}", { error: hookError });
      }
    }
    if (!this.#inflight.delete(id)) return;
    if (invalid !== null) this.#writer.send(F.RESPONSE, { i: id, s: 400 }, JSON.stringify({ error: invalid.message }));
    else this.#writer.send(F.RESPONSE, { i: id, s: 500 }, INTERNAL);
    this.#afterRequest();
  }

  #finish(id: number, value: unknown) {
    const entry = this.#inflight.get(id);
    if (entry === undefined) return; // cancelled: the client has its answer already
    if (value instanceof Response) {
      this.#relay(id, entry, value);
      return;
    }
    this.#inflight.delete(id);
    if (value === undefined || value === null) {
      this.#writer.send(F.RESPONSE, { i: id, s: 204 });
    } else if (value instanceof Uint8Array) {
      this.#writer.send(F.RESPONSE, { i: id, s: 200, k: KIND.BINARY }, value);
    } else if (value instanceof ArrayBuffer) {
      this.#writer.send(F.RESPONSE, { i: id, s: 200, k: KIND.BINARY }, new Uint8Array(value));
    } else if (typeof value === "string") {
      this.#writer.send(F.RESPONSE, { i: id, s: 200, k: KIND.TEXT }, value);
    } else {
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch (error) {
        json = undefined;
        this.#log.error("Result of {method} {path} cannot be serialised as JSON: {error}", {
          method: entry.request.method,
          path: entry.request.path,
          error,
        });
      }
      if (json === undefined) {
        this.#writer.send(F.RESPONSE, { i: id, s: 500 }, INTERNAL);
      } else {
        this.#writer.send(F.RESPONSE, { i: id, s: 200 }, json);
      }
    }
    this.#afterRequest();
  }

  /** Sends a `Response`: in one frame when its body is already complete, else as a stream. */
  async #relay(id: number, entry: Inflight, response: Response) {
    const head = { i: id, s: response.status, k: KIND.HEADERS, h: flattenHeaders(response.headers) };
    const done = () => {
      if (this.#inflight.delete(id)) {
        this.#afterRequest();
      }
    };
    if (response.body === null) {
      this.#writer.send(F.RESPONSE, head);
      done();
      return;
    }
    const reader = response.body.getReader();
    entry.reader = reader;
    try {
      const first = await reader.read();
      if (first.done) {
        if (this.#inflight.has(id)) this.#writer.send(F.RESPONSE, head);
        done();
        return;
      }
      let next: Promise<ReadableStreamReadResult<Uint8Array>> | undefined = reader.read();
      // A body that is already complete finishes within this turn's microtasks: wait one turn, not a timer.
      const second = await Promise.race([next, new Promise<typeof TICK>((r) => setImmediate(r, TICK))]);
      if (second !== TICK && second.done) {
        if (this.#inflight.has(id)) this.#writer.send(F.RESPONSE, head, first.value);
        done();
        return;
      }
      if (!this.#inflight.has(id)) return;
      this.#writer.send(F.START, head);
      this.#writer.send(F.CHUNK, { i: id }, first.value);
      if (second !== TICK) {
        this.#writer.send(F.CHUNK, { i: id }, second.value);
        next = undefined;
      }
      for (;;) {
        const chunk = await (next ?? reader.read());
        next = undefined;
        if (!this.#inflight.has(id)) return;
        if (chunk.done) break;
        this.#writer.send(F.CHUNK, { i: id }, chunk.value);
      }
      this.#writer.send(F.END, { i: id });
    } catch (error) {
      if (!this.#inflight.has(id)) return;
      this.#log.error("Response body of {method} {path} failed: {error}", {
        method: entry.request.method,
        path: entry.request.path,
        error,
      });
      this.#writer.send(F.END, { i: id, e: 1 });
    }
    done();
  }

  #cancel({ i, w }: { i: number; w: string }) {
    const entry = this.#inflight.get(i);
    if (entry === undefined) return;
    this.#inflight.delete(i);
    entry.request[ABORT](new Error(w === "timeout" ? "Request timed out" : "Client disconnected"));
    entry.reader?.cancel().catch(() => {});
    if (w === "disconnect") {
      try {
        this.#worker.onDisconnect(i);
      } catch (error) {
        this.#log.error("onDisconnect() failed: {error}", { error });
      }
    }
    this.#afterRequest();
  }

  #afterRequest() {
    if (this.#stopping && this.#inflight.size === 0) this.#exit();
  }

  #stop() {
    this.#stopping = true;
    this.#afterRequest();
  }

  async #exit() {
    await this.#writer.drain();
    this.#runtime.exit(0);
  }
}

/** Imports a `module` pool's worker class (or, for app pools, its app), with an error naming the module and the export. */
export async function importWorkerClass(init: InitMessage): Promise<WorkerClass | FetchApp> {
  if (!init.module || !init.export) throw new Error(`Pool "${init.pool}" has no worker module`);
  const mod = await import(init.module) as Record<string, unknown>;
  const cls = mod[init.export];
  if (init.mount !== undefined) {
    if (
      cls === null || typeof cls !== "object" && typeof cls !== "function" ||
      typeof (cls as FetchApp).fetch !== "function"
    ) {
      throw new Error(
        `Cannot start app "${init.pool}": module "${init.module}" has no ${
          init.export === "default" ? "default export" : `export "${init.export}"`
        } with a fetch(request) method`,
      );
    }
    return cls as FetchApp;
  }
  if (typeof cls !== "function") {
    throw new Error(
      `Cannot start pool "${init.pool}": worker module "${init.module}" does not export "${init.export}"`,
    );
  }
  return cls as WorkerClass;
}

/**
 * A worker process's end of the channel to its dispatcher: frames go out through `writer` (large bodies through
 * spill files), frames come in to `onFrame`, except the dispatcher's word that it read a spill file, which the writer
 * takes. Garbage on the channel exits the process with 70; the channel's end (the dispatcher is gone, so nobody can
 * read the answers) exits it with 0.
 */
export function openWorkerChannel(
  runtime: Runtime,
  onFrame: (type: number, header: unknown, body: Uint8Array) => void,
): { channel: ParentChannel; writer: FrameWriter } {
  const channel = runtime.parentChannel();
  const files = runtime.spill();
  const writer = new FrameWriter(
    (data) => channel.write(data),
    files === null ? undefined : { files, prefix: spillPrefix(runtime.pid), threshold: SPILL_THRESHOLD },
  );
  const decoder = new FrameDecoder(
    (type, header, body) => {
      if (type === F.RELEASE) writer.release((header as { p: string }).p);
      else onFrame(type, header, body);
    },
    files,
    (path) => writer.send(F.RELEASED, { p: path }),
  );
  channel.start(
    (chunk) => {
      try {
        decoder.push(chunk);
      } catch {
        runtime.exit(70);
      }
    },
    () => runtime.exit(0),
  );
  return { channel, writer };
}

/**
 * Runs this process as a worker: waits for the dispatcher's init frame, loads
 * the worker class, and serves until told to stop or until stdin closes (the
 * dispatcher is gone). Never returns.
 */
export async function runWorkerProcess(
  resolveClass: (init: InitMessage) => WorkerClass | FetchApp | Promise<WorkerClass | FetchApp>,
): Promise<never> {
  const runtime = await loadRuntime();
  let loop: WorkerLoop | undefined;
  const early: [number, unknown, Uint8Array][] = [];
  let gotInit!: (init: InitMessage) => void;
  const initReceived = new Promise<InitMessage>((resolve) => (gotInit = resolve));
  const { channel, writer } = openWorkerChannel(runtime, (type, header, body) => {
    if (type === F.INIT) gotInit(header as InitMessage);
    else if (loop) loop.onFrame(type, header, body);
    else early.push([type, header, body.slice()]);
  });
  // Ctrl+C reaches the whole process group and SIGHUP means "reload" to the
  // dispatcher: a worker ignores both and waits for the dispatcher's word.
  runtime.onSignal("SIGINT", () => {});
  runtime.onSignal("SIGHUP", () => {});
  const init = await initReceived;
  const category = ["forkyard", "worker", init.pool];
  const inspect = (value: unknown) => runtime.inspect(value);
  const send = (record: WireRecord) => writer.send(F.LOG, record);
  // Log records made while handling a request carry its trace id (and LogTape's withContext properties).
  const context = new AsyncLocalStorage<Record<string, unknown>>();
  const current = () => context.getStore();
  // console.* and stdout are not filtered by logLevel: they are the program's plain output.
  const emit = (level: LogLevel, text: string, source: string) =>
    send(wireRecord([...category, source], level, text, {}, current()));
  captureConsole((level, args) => emit(level, format(inspect, args), "console"));
  channel.redirectStdout((text) => emit("info", text.replace(/\n$/, ""), "stdout"));
  const log = workerLogger(category, init.logLevel, send, current, inspect);
  const bridge = logTapeBridge(init.logLevel, send, context, inspect);
  try {
    const target = await resolveClass(init);
    await bridge();
    loop = new WorkerLoop(runtime, writer, init, log, context);
    const started = loop.start(target);
    for (const [type, header, body] of early) loop.onFrame(type, header, body);
    await started;
    await bridge();
  } catch (error) {
    log.fatal("Worker {id} of pool {pool} failed to start: {error}", { id: init.id, pool: init.pool, error });
    await writer.drain();
    runtime.exit(1);
  }
  return new Promise<never>(() => {});
}

/**
 * Forwards the program's own LogTape records, as the worker's are: LogTape is
 * loaded and configured only once the program has made a LogTape logger, which
 * is checked after the worker's module is loaded, after `setup()`, and then
 * every few seconds (records made before that are LogTape's to drop).
 */
function logTapeBridge(
  lowest: LogLevel,
  send: (record: WireRecord) => void,
  context: AsyncLocalStorage<Record<string, unknown>>,
  inspect: (value: unknown) => string,
): () => Promise<void> {
  let done = false;
  const check = async () => {
    if (done || !programUsesLogTape()) return;
    done = true;
    clearInterval(timer);
    const { configureWorkerLogging } = await import("./logtape.ts");
    configureWorkerLogging((record) => send(toWire(record, inspect)), lowest, context);
  };
  const timer = setInterval(check, 2000);
  return check;
}

function captureConsole(emit: (level: LogLevel, args: unknown[]) => void) {
  const levels: [string, LogLevel][] = [
    ["log", "info"],
    ["info", "info"],
    ["debug", "debug"],
    ["trace", "debug"],
    ["warn", "warning"],
    ["error", "error"],
  ];
  const target = console as unknown as Record<string, (...args: unknown[]) => void>;
  for (const [name, level] of levels) target[name] = (...args: unknown[]) => emit(level, args);
}
