/**
 * The loop of a worker: takes request frames, runs the matching handler (or
 * the app's `fetch`), and writes answers and heartbeats back.
 *
 * @module
 */

import type { AsyncLocalStorage } from "node:async_hooks";
import { InvalidBody } from "../protocol/body.ts";
import type { FrameWriter } from "../protocol/codec.ts";
import {
  type CancelHeader,
  type ConfigHeader,
  type CreditHeader,
  F,
  type InitHeader,
  KIND,
  type RequestHeader,
} from "../protocol/frames.ts";
import { encodeResult, errorBody } from "../protocol/results.ts";
import type { WorkerLogger } from "../logging/worker_logger.ts";
import { IdTable } from "../id_table.ts";
import { RouteTable, socketRoutes, workerRoutes } from "../routing.ts";
import { setPubSub } from "./pubsub.ts";
import { honoHandler, takeUpgrade } from "./upgrade_websocket.ts";
import type { WebSocketHandler } from "./socket.ts";
import { WorkerSockets } from "./sockets.ts";
import type { Runtime } from "../runtime.ts";
import { LISTENER_APP } from "../app_kind.ts";
import type { ListenerApp } from "./listener_app.ts";
import { ABORT, WorkerRequest } from "./request.ts";
import { type Inflight, relayResponse, wakeRelay } from "./relay.ts";
import {
  type ApiHandlerClass,
  type Worker,
  Worker as WorkerBase,
  type WorkerClass,
  type WorkerContext,
} from "./worker.ts";

/** A web-standard app: what an app pool's module exports. */
export interface FetchApp {
  /** Answers one request. */
  fetch(request: Request): Response | Promise<Response>;
}

interface Target {
  fn: (req: WorkerRequest) => unknown;
  owner: object;
}

const encoder = new TextEncoder();
const NOT_FOUND = encoder.encode(errorBody("Not found"));
const METHOD_NOT_ALLOWED = encoder.encode(errorBody("Method not allowed"));
const UPGRADE_REQUIRED = encoder.encode(errorBody("Upgrade required"));
const INTERNAL = encoder.encode(errorBody("Internal server error"));

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

/** Serves one worker process's requests, once its class (or app) is loaded. */
export class WorkerLoop {
  #runtime: Runtime;
  #writer: FrameWriter;
  #init: InitHeader;
  #worker!: Worker;
  #routes!: RouteTable<Target>;
  #socketRoutes: RouteTable<Target> = new RouteTable();
  #sockets: WorkerSockets;
  #app: FetchApp | undefined;
  #listener: ListenerApp | undefined;
  #inflight = new IdTable<Inflight>();
  #ready = false;
  #stopping = false;
  #log: WorkerLogger;
  #context: AsyncLocalStorage<Record<string, unknown>>;

  constructor(
    runtime: Runtime,
    writer: FrameWriter,
    init: InitHeader,
    log: WorkerLogger,
    context: AsyncLocalStorage<Record<string, unknown>>,
  ) {
    this.#runtime = runtime;
    this.#writer = writer;
    this.#init = init;
    this.#log = log;
    this.#context = context;
    this.#sockets = new WorkerSockets(writer, log);
    setPubSub({
      publish: (topic, data) => {
        if (typeof data === "string") writer.send(F.PUBLISH, { t: topic }, data);
        // The channel keeps large bodies by reference until it writes them; the caller may reuse its buffer.
        else writer.send(F.PUBLISH, { t: topic, b: 1 }, data.length >= 64 * 1024 ? data.slice() : data);
      },
    });
  }

  async start(target: WorkerClass | FetchApp | ListenerApp): Promise<void> {
    const init = this.#init;
    if (typeof target !== "function") {
      if (LISTENER_APP in target) this.#listener = target;
      else this.#app = target;
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
    for (const { pattern, fn } of socketRoutes(WorkerClass)) {
      this.#socketRoutes.add(pattern, [], { fn, owner: this.#worker });
    }
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
    this.#hook("onIdle");
  }

  /** Calls the worker's hook `name`: what it throws, or its promise rejects with, is logged, never thrown on. */
  #hook<A extends unknown[]>(name: "onIdle" | "onConfig" | "onRequestError" | "onDisconnect", ...args: A): void {
    const failed = (error: unknown) => this.#log.error(`${name}() failed: {error}`, { error });
    try {
      const done = (this.#worker[name] as (...args: A) => unknown).apply(this.#worker, args);
      if (done instanceof Promise) done.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  onFrame(type: number, header: unknown, body: Uint8Array) {
    switch (type) {
      case F.REQUEST:
        this.#request(header as RequestHeader, body);
        break;
      case F.CANCEL:
        this.#cancel(header as CancelHeader);
        break;
      case F.CREDIT:
        this.#credit(header as CreditHeader);
        break;
      case F.CONFIG:
        this.#hook("onConfig", (header as ConfigHeader).c);
        break;
      case F.STOP:
        this.#stop();
        break;
      case F.WS_OPEN:
      case F.WS_MESSAGE:
      case F.WS_CLOSED:
        this.#sockets.onFrame(type, header, body);
        break;
    }
  }

  #request(wire: RequestHeader, body: Uint8Array) {
    // Log records made while handling a request carry its trace id.
    if (wire.x !== undefined) this.#context.run({ requestId: wire.x }, () => this.#handle(wire, body));
    else this.#handle(wire, body);
  }

  #handle(wire: RequestHeader, body: Uint8Array) {
    const id = wire.i;
    if (this.#listener !== undefined) {
      this.#listenerRequest(wire, body);
      return;
    }
    if (this.#app !== undefined) {
      this.#appRequest(wire, body);
      return;
    }
    if (this.#socketRoutes.routes.length > 0) {
      const socket = this.#socketRoutes.match("GET", wire.p);
      if (socket?.route !== undefined && wire.u === 1) {
        this.#handshake(wire, body, socket.route.target, socket.params);
        return;
      }
      if (socket?.route !== undefined && this.#routes.match(wire.m, wire.p) === undefined) {
        this.#writer.send(
          F.RESPONSE,
          { i: id, s: 426, k: KIND.HEADERS, h: ["upgrade", "websocket", "content-type", "application/json"] },
          UPGRADE_REQUIRED,
        );
        return;
      }
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
        METHOD_NOT_ALLOWED,
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

  /**
   * A WebSocket handshake to a `@ws` route: the method's handlers accept it (101); a `Response` it returns refuses
   * it.
   */
  #handshake(wire: RequestHeader, body: Uint8Array, target: Target, params: Record<string, string | number>) {
    const id = wire.i;
    const request = new WorkerRequest(wire, body, params);
    this.#inflight.set(id, { request });
    const accept = (value: unknown) => {
      if (value instanceof Response) {
        this.#finish(id, value);
        return;
      }
      if (value === null || typeof value !== "object") {
        this.#fail(
          id,
          request,
          new TypeError(`@ws handler for ${wire.p} returned ${value}, not the socket's handlers`),
        );
        return;
      }
      if (!this.#inflight.delete(id)) return;
      this.#sockets.accept(request, value as WebSocketHandler, null);
      this.#afterRequest();
    };
    let result: unknown;
    try {
      result = target.fn.call(target.owner, request);
    } catch (error) {
      this.#fail(id, request, error);
      return;
    }
    if (result instanceof Promise) result.then(accept, (error) => this.#fail(id, request, error));
    else accept(result);
  }

  /** The raw path of `wire` below the app's mount, as the app sees it. */
  #appPath(wire: RequestHeader): string {
    const rest = (wire.r ?? wire.p).slice(this.#init.mount?.length ?? 0);
    return rest.startsWith("/") ? rest : "/" + rest;
  }

  /** App pools with a request-listener app: the request as Node's `req` and `res`. */
  #listenerRequest(wire: RequestHeader, body: Uint8Array) {
    const id = wire.i;
    const request = new WorkerRequest(wire, body, {});
    const entry: Inflight = { request };
    this.#inflight.set(id, entry);
    this.#listener!.serve(wire, body, this.#appPath(wire), {
      writer: this.#writer,
      id,
      entry,
      log: this.#log,
      fail: (error) => this.#fail(id, request, error),
      done: () => {
        if (this.#inflight.delete(id)) this.#afterRequest();
      },
    });
  }

  /** App pools: the request as a web `Request` without the mount prefix, to the app's `fetch`. */
  #appRequest(wire: RequestHeader, body: Uint8Array) {
    const id = wire.i;
    const request = new WorkerRequest(wire, body, {});
    this.#inflight.set(id, { request });
    const path = this.#appPath(wire);
    const headers = request.headers;
    const url = `http://${headers.get("host") ?? "localhost"}${path}${wire.q ? "?" + wire.q : ""}`;
    let result: unknown;
    let web: Request;
    try {
      const hasBody = body.length > 0 && wire.m !== "GET" && wire.m !== "HEAD";
      web = new Request(url, {
        method: wire.m,
        headers,
        body: hasBody ? body as BodyInit : null,
        signal: request.signal,
      });
      result = this.#app!.fetch(web);
    } catch (error) {
      this.#fail(id, request, error);
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        const upgrade = takeUpgrade(web);
        if (upgrade !== undefined && wire.u === 1) {
          honoHandler(upgrade, url).then((handler) => {
            if (!this.#inflight.delete(id)) return;
            this.#sockets.accept(request, handler, upgrade.protocol);
            this.#afterRequest();
          }, (error) => this.#fail(id, request, error));
        } else if (value instanceof Response) this.#finish(id, value);
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
      this.#hook("onRequestError", request, error);
    }
    if (!this.#inflight.delete(id)) return;
    if (invalid !== null) this.#writer.send(F.RESPONSE, { i: id, s: 400 }, errorBody(invalid.message));
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
    let result;
    try {
      result = encodeResult(value);
    } catch (error) {
      this.#log.error("Result of {method} {path} cannot be serialised as JSON: {error}", {
        method: entry.request.method,
        path: entry.request.path,
        error,
      });
      this.#writer.send(F.RESPONSE, { i: id, s: 500 }, INTERNAL);
      this.#afterRequest();
      return;
    }
    if (result.body === null) this.#writer.send(F.RESPONSE, { i: id, s: result.status });
    else if (result.kind === KIND.JSON) this.#writer.send(F.RESPONSE, { i: id, s: result.status }, result.body);
    else this.#writer.send(F.RESPONSE, { i: id, s: result.status, k: result.kind }, result.body);
    this.#afterRequest();
  }

  /** Sends a `Response` handler's answer; the request is done once it has been sent (or was cancelled). */
  #relay(id: number, entry: Inflight, response: Response) {
    void relayResponse(this.#writer, id, entry, response, {
      live: () => this.#inflight.has(id),
      log: this.#log,
      done: () => {
        if (this.#inflight.delete(id)) this.#afterRequest();
      },
    });
  }

  #credit({ i, n }: CreditHeader) {
    const entry = this.#inflight.get(i);
    if (entry === undefined || entry.credited === undefined) return;
    entry.credited += n;
    wakeRelay(entry);
  }

  #cancel({ i, w }: CancelHeader) {
    const entry = this.#inflight.get(i);
    // `left`, told once however often it comes: not taken, the handler's answer frees the slot (an app's unbegun: 499).
    if (entry === undefined || (w === "left" && entry.left)) return;
    const taken = w !== "left" && this.#inflight.delete(i);
    entry.left = !taken;
    if (entry.cancel?.() === true && !taken) this.#writer.send(F.RESPONSE, { i, s: 499 });
    if (taken) wakeRelay(entry);
    entry.request[ABORT](new Error(w === "timeout" ? "Request timed out" : "Client disconnected"));
    if (taken) entry.reader?.cancel().catch(() => {});
    if (w === "disconnect" || w === "left") this.#hook("onDisconnect", i);
    if (taken) this.#afterRequest();
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
