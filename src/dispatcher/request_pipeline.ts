/**
 * The request pipeline: what the dispatcher does with one request, from the URL to the pool's answer. Its path is
 * decoded, `@sync` routes answer in the dispatcher, the pool is found (or 404, 503), the headers are collected for
 * the worker, `doCheck` runs, the body is read up to `maxBodySize`, and the request is handed to its pool's
 * supervisor. Nothing refused before the body is read reads it.
 *
 * @module
 */

import type { WorkerPool, WorkerResponse } from "../pool.ts";
import { type Body, InvalidBody } from "../protocol/body.ts";
import type { RequestHeader, ResponseHeader } from "../protocol/frames.ts";
import { errorResponse, flattenHeaders, toResponse } from "../protocol/results.ts";
import type { PathParams, RouteTable } from "../routing.ts";
import type { AdapterRequest } from "../runtime.ts";
import type { PoolBackend } from "../pool_backend.ts";
import { CLOSE } from "../protocol/close_codes.ts";
import type { Pending } from "../requests/pending.ts";
import type { CloseSocket, SocketLink } from "../requests/socket_link.ts";
import type { SocketHub } from "./socket_hub.ts";
import type { AnswerObserver } from "./observer.ts";
import { Client, type PendingRequest, RejectRequest } from "./client.ts";
import { readBody } from "./read_body.ts";
import { firstLine } from "../error_text.ts";
import { traceHeader, traceId, withHeader, withTrace } from "./trace.ts";

/** A `@sync` route's handler, called with the dispatcher as `this`. */
export type SyncTarget = (client: Client, params: PathParams) => unknown;

type LogMethod = (message: string, properties?: Record<string, unknown>) => void;

/** What the pipeline needs from its dispatcher. */
export interface PipelineHost {
  /** The dispatcher's overridable hooks, and `this` of its `@sync` handlers. */
  dispatcher: {
    findPool(path: string): WorkerPool | undefined;
    doCheck(client: Client): void | Promise<void>;
  };
  /** Whether the dispatcher overrides `doCheck` (without, no promise is made for it). */
  hasCheck: boolean;
  /** `Dispatcher.onResponse`, when the dispatcher overrides it. */
  onResponse: ((response: WorkerResponse, pending: PendingRequest) => void) | null;
  /** The `@sync` routes. */
  sync: RouteTable<{ name: string; fn: SyncTarget }>;
  /** The supervisor running each pool. */
  supervisorOf: Map<WorkerPool, PoolBackend>;
  /** The WebSockets accepted. */
  sockets: SocketHub;
  /** What records each answer (access log, metrics), or `null`. */
  observer: AnswerObserver | null;
  /** The dispatcher's options the pipeline reads. */
  options: {
    readonly maxBodySize: number;
    /** Time between two parts of a body before 408 (0: no limit). */
    readonly bodyTimeout: number;
    readonly maxPending: number;
    /** The origins whose pages may open WebSockets besides the site's own, or `"*"` for any. */
    readonly origins: readonly string[] | "*";
    /** Set when clients reach the dispatcher over TLS. */
    readonly tls: unknown;
  };
  log: { debug: LogMethod; error: LogMethod };
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** 413 for a body over `maxBodySize`; the connection closes, so the rest of the body need not be read. */
function tooLarge(trace: { "x-request-id": string }): Response {
  return errorResponse(413, "Payload too large", { ...trace, connection: "close" });
}

/**
 * Whether a WebSocket handshake may go on: without an `Origin` (not a browser), from the site's own origin (the
 * `Origin`'s host is the `Host`), or from one `origins` names (`"*"`: any).
 */
export function originAllowed(headers: Headers, origins: readonly string[] | "*"): boolean {
  const origin = headers.get("origin");
  if (origin === null || origins === "*" || origins.includes(origin)) return true;
  try {
    return new URL(origin).host === headers.get("host")?.toLowerCase();
  } catch {
    return false;
  }
}

/** A request as `handle` parsed it, on its way to #prepare (after its body is read, when it has one). */
interface Incoming {
  request: Request;
  extras: AdapterRequest;
  path: string;
  rawPath: string;
  rawQuery: string;
  /** The pool, when it was found before the body was read. */
  pool?: WorkerPool;
}

/** One dispatcher's request pipeline, and its count of the requests its pools hold. */
export class RequestPipeline {
  /** Requests waiting for or being served by workers. */
  pending = 0;
  /** With the access log or the admin listener on: what records each answer. */
  readonly observer: AnswerObserver | null;
  /** Set once the dispatcher shuts down: requests for pools get 503. */
  #stopping = false;
  /** While stopping: resolves the promise `stop()` gave once `pending` falls to 0. */
  #drained: (() => void) | null = null;
  #host: PipelineHost;
  // What every request reads, kept as fields of their own.
  #dispatcher: PipelineHost["dispatcher"];
  #sync: PipelineHost["sync"];
  #supervisorOf: Map<WorkerPool, PoolBackend>;
  #maxPending: number;
  #hasCheck: boolean;
  #nextId = 1;

  constructor(host: PipelineHost) {
    this.#host = host;
    this.#dispatcher = host.dispatcher;
    this.#sync = host.sync;
    this.#supervisorOf = host.supervisorOf;
    this.#maxPending = host.options.maxPending;
    this.#hasCheck = host.hasCheck;
    this.observer = host.observer;
  }

  /** Refuses requests for pools from now on (503); resolves once those it holds are done. */
  stop(): Promise<void> {
    this.#stopping = true;
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#drained = resolve));
  }

  /** `handle`, with what it throws answered 500. */
  handleSafely(request: Request, extras: AdapterRequest): Response | Promise<Response> {
    try {
      return this.handle(request, extras);
    } catch (error) {
      return this.failed(error, request);
    }
  }

  /** The 500 for a request that failed in the dispatcher, logged with its error. */
  failed = (error: unknown, request?: Request): Response => {
    this.#host.log.error("Request failed in the dispatcher: {error}", { error });
    return errorResponse(500, "Internal server error", traceHeader(request));
  };

  /**
   * Answers one request. Without a body to read and without `doCheck`, it runs
   * synchronously up to the pool and returns the pool's promise itself: each
   * promise layer more costs the dispatcher measurably on Deno.
   * The asynchronous paths catch their own errors.
   */
  handle(request: Request, extras: AdapterRequest): Response | Promise<Response> {
    const url = request.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const q = url.indexOf("?", pathStart);
    const rawPath = q < 0 ? url.slice(pathStart) : url.slice(pathStart, q);
    const rawQuery = q < 0 ? "" : url.slice(q + 1);
    let path = rawPath;
    if (rawPath.includes("%")) {
      try {
        path = decodeURIComponent(rawPath);
      } catch {
        return errorResponse(400, "Bad request", traceHeader(request));
      }
    }
    const method = request.method;
    if (this.#sync.routes.length > 0) {
      const match = this.#sync.match(method, path);
      if (match !== undefined) {
        const trace = traceHeader(request);
        if (match.allow) return errorResponse(405, "Method not allowed", { allow: match.allow.join(", "), ...trace });
        const incoming = { request, extras, path, rawPath, rawQuery };
        const { fn, name } = match.route.target;
        return this.#readBody(incoming)
          .then((body) =>
            body instanceof Response ? body : this.#runSync(fn, name, incoming, body, match.params, trace)
          )
          .catch((error) => this.failed(error, request));
      }
    }
    if (this.#stopping) return errorResponse(503, "Server shutting down", traceHeader(request));
    if (method !== "GET" && method !== "HEAD") {
      const pool = this.#poolBeforeBody(path, request);
      if (pool instanceof Response) return pool;
      const incoming = { request, extras, path, rawPath, rawQuery, pool };
      // doCheck runs before the body is read: a request it refuses is refused without reading it.
      if (this.#hasCheck) return this.#prepare(incoming, null);
      return this.#withBody(incoming).catch((error) => this.failed(error, request));
    }
    return this.#prepare({ request, extras, path, rawPath, rawQuery }, EMPTY);
  }

  /**
   * The pool for a request with a body, or the answer that would come once the body is read, given before it: no
   * pool for the path (404), too many requests pending or the pool degraded (503). The body is not read, so the
   * connection closes after the answer: a client cannot make the dispatcher hold bodies nobody will take.
   */
  #poolBeforeBody(path: string, request: Request): WorkerPool | Response {
    const pool = this.#dispatcher.findPool(path);
    let status = 0;
    let message = "";
    if (pool === undefined) [status, message] = [404, "Not found"];
    else if (this.pending >= this.#maxPending) [status, message] = [503, "Too many requests"];
    else if (this.#supervisorOf.get(pool)?.degraded) [status, message] = [503, "Service unavailable"];
    if (status === 0) return pool!;
    return errorResponse(status, message, { ...traceHeader(request), connection: "close" });
  }

  /**
   * The request's body as the chunks it arrived in (none for GET and HEAD), or the answer when there is none to be
   * had: 413 over `maxBodySize`, 400 when the client broke off while sending it (a client leaving is normal: a debug
   * line, not an error).
   */
  async #readBody(incoming: Incoming): Promise<Body | Response> {
    const { request, extras, path } = incoming;
    const method = request.method;
    if (method === "GET" || method === "HEAD") return EMPTY;
    const limit = this.#host.options.maxBodySize;
    const idleMs = this.#host.options.bodyTimeout;
    let body: Body | null;
    try {
      body = extras.readBody ? await extras.readBody(limit, idleMs) : await readBody(request, limit, idleMs);
    } catch (error) {
      if ((error as { name?: unknown } | null)?.name === "TimeoutError") {
        this.#host.log.debug("{method} {path}: no part of the body for {idleMs} ms: 408", { method, path, idleMs });
        return errorResponse(408, "Request timeout", { ...traceHeader(request), connection: "close" });
      }
      this.#host.log.debug("{method} {path}: the client broke off while sending the body ({reason})", {
        method,
        path,
        reason: firstLine(error),
      });
      return errorResponse(400, "Bad request", traceHeader(request));
    }
    return body ?? tooLarge(traceHeader(request));
  }

  async #withBody(incoming: Incoming): Promise<Response> {
    const body = await this.#readBody(incoming);
    return body instanceof Response ? body : this.#prepare(incoming, body);
  }

  /**
   * Collects the headers to forward and runs `doCheck` when there is one. The body is not parsed here: workers and
   * apps get the bytes as sent, and `client.data` parses on first use. `body` is `null` while unread (a request with
   * one, and `doCheck`): it is read after the check, or by it (`client.readBody()`).
   */
  #prepare(incoming: Incoming, body: Body | null): Response | Promise<Response> {
    const { request, extras, path, rawQuery } = incoming;
    if (extras.upgrade !== undefined && !originAllowed(request.headers, this.#host.options.origins)) {
      // Cross-site WebSocket hijacking: a page elsewhere would use the browser's cookies for this site.
      this.#host.log.debug("WebSocket handshake from origin {origin} refused", {
        origin: request.headers.get("origin"),
      });
      return errorResponse(403, "Forbidden", traceHeader(request));
    }
    // The headers forwarded to the worker, names in lower case; x-request-id is handled apart.
    const lower = extras.rawHeaders !== undefined;
    const raw = lower ? extras.rawHeaders!() : flattenHeaders(request.headers);
    const headers: string[] = [];
    let trace: string | null = null;
    let contentType: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const k = lower ? raw[i].toLowerCase() : raw[i];
      // Repeated headers (only rawHeaders() repeats them) are joined as Headers would join them.
      if (k === "x-request-id") trace = trace === null ? raw[i + 1] : `${trace}, ${raw[i + 1]}`;
      else {
        if (k === "content-type" && contentType === null) contentType = raw[i + 1];
        headers.push(k, raw[i + 1]);
      }
    }
    const id = traceId(trace);
    if (body !== null) {
      const client = new Client(request, path, rawQuery, body, extras, contentType);
      if (!this.#hasCheck) return this.#forward(incoming, client, body, headers, id);
      return this.#check(incoming, client, () => Promise.resolve(body), headers, id).catch((e) =>
        this.failed(e, request)
      );
    }
    let reading: Promise<Body | Response> | null = null;
    const read = () => (reading ??= this.#readBody(incoming));
    const client = new Client(request, path, rawQuery, null, extras, contentType, read);
    return this.#check(incoming, client, read, headers, id, () => reading === null).catch((e) =>
      this.failed(e, request)
    );
  }

  /**
   * Runs `doCheck`, then forwards the request with its body (`read`). A request refused while its body is `unread`
   * closes its connection: the body it may still send is not waited for.
   */
  async #check(
    incoming: Incoming,
    client: Client,
    read: () => Promise<Body | Response>,
    headers: string[],
    trace: string,
    unread: () => boolean = () => false,
  ): Promise<Response> {
    let refusal: Response | undefined;
    try {
      await this.#dispatcher.doCheck(client);
      refusal = client.response;
    } catch (error) {
      refusal = this.#rejected(error, client, "doCheck() failed: {error}", {});
    }
    if (refusal !== undefined) {
      const bodyLeft = unread() && incoming.request.headers.get("content-length") !== "0";
      return withTrace(bodyLeft ? withHeader(refusal, "connection", "close") : refusal, trace);
    }
    const body = await read();
    if (body instanceof Response) return body;
    return this.#forward(incoming, client, body, headers, trace);
  }

  /** The answer to a `doCheck` or `@sync` handler that threw. */
  #rejected(error: unknown, client: Client, message: string, properties: Record<string, unknown>): Response {
    if (error instanceof RejectRequest) return client.response ?? error.getResponse();
    if (error instanceof InvalidBody) return errorResponse(400, error.message);
    this.#host.log.error(message, { ...properties, error });
    return errorResponse(500, "Internal server error");
  }

  /** Hands the request to its pool; the promise is the worker's answer and never rejects. */
  #forward(
    incoming: Incoming,
    client: Client,
    body: Body,
    headers: string[],
    trace: string,
  ): Response | Promise<Response> {
    const path = client.path;
    const pool = incoming.pool ?? this.#dispatcher.findPool(path);
    if (pool === undefined) return errorResponse(404, "Not found", { "x-request-id": trace });
    const trail = this.observer?.trail(incoming.extras);
    if (trail !== undefined) trail.pool = pool.name;
    if (this.pending >= this.#maxPending) {
      return errorResponse(503, "Too many requests", { "x-request-id": trace });
    }
    const supervisor = this.#supervisorOf.get(pool)!;
    if (supervisor.degraded) return errorResponse(503, "Service unavailable", { "x-request-id": trace });
    const id = this.#nextId++;
    const wire: RequestHeader = { i: id, m: client.method, p: path, q: client.rawQuery, h: headers, x: trace };
    if (client.contentType !== null) wire.t = client.contentType;
    if (incoming.rawPath !== path) wire.r = incoming.rawPath;
    const upgrade = incoming.extras.upgrade !== undefined;
    if (upgrade) wire.u = 1;
    if (pool.mount !== null) {
      // A request-listener app reads them on req.socket.
      wire.a = client.remoteAddress;
      if (this.#host.options.tls !== null) wire.e = 1;
    }
    this.pending++;
    let resolve!: (response: Response) => void;
    const answer = new Promise<Response>((r) => (resolve = r));
    if (trail !== undefined) {
      trail.requestId = trace;
      trail.headers = headers;
      resolve = this.observer!.forwarding(incoming.request, incoming.extras, trail, resolve);
    }
    const onResponse = this.#host.onResponse;
    const pending = supervisor.request({
      kind: "client",
      id,
      wire,
      body,
      resolve,
      request: incoming.request,
      adapter: incoming.extras,
      upgrade: upgrade ? (link, h) => this.#upgrade(id, incoming.extras, link, h, resolve, trace) : null,
      observe: onResponse === null ? null : (response) => onResponse(response, { requestId: id, client, pool }),
    });
    if (trail !== undefined) trail.pending = pending;
    return answer;
  }

  /**
   * A WebSocket handshake its worker accepted: the runtime answers it, and the socket stays pinned to that worker.
   * Returns how to close it, or `null` when the handshake was malformed (the client gets 400).
   */
  #upgrade(
    id: number,
    extras: AdapterRequest,
    link: SocketLink,
    answer: ResponseHeader,
    resolve: (response: Response) => void,
    trace: string,
  ): CloseSocket | null {
    const accepted = this.#host.sockets.accept(id, link);
    const headers = answer.h ?? [];
    const at = headers.indexOf("sec-websocket-protocol");
    const protocol = at >= 0 && at % 2 === 0 ? headers[at + 1] : null;
    const trail = this.observer?.trail(extras);
    if (trail !== undefined) trail.status = 101;
    try {
      resolve(extras.upgrade!(accepted.events, protocol));
      return accepted.close;
    } catch (error) {
      this.#host.log.debug("WebSocket handshake refused by the runtime: {reason}", { reason: firstLine(error) });
      accepted.close(CLOSE.ABNORMAL, "Handshake failed", true);
      resolve(errorResponse(400, "Bad request", { "x-request-id": trace }));
      return null;
    }
  }

  async #runSync(
    target: SyncTarget,
    name: string,
    incoming: Incoming,
    body: Body,
    params: PathParams,
    trace: { "x-request-id": string },
  ): Promise<Response> {
    const { request, path, rawQuery, extras } = incoming;
    const client = new Client(request, path, rawQuery, body, extras);
    let response: Response;
    try {
      const result = await target.call(this.#dispatcher, client, params);
      response = client.response ?? toResponse(result);
    } catch (error) {
      response = this.#rejected(error, client, "@sync handler {name} failed: {error}", { name });
    }
    return withTrace(response, trace["x-request-id"]);
  }

  /** A request its pool is done with: one fewer pending. */
  finish(p: Pending): void {
    if (p.origin.kind !== "client") return;
    this.pending--;
    if (this.pending === 0) this.#drained?.();
  }
}
