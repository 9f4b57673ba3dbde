/**
 * `WorkerRequest`: one request as a worker sees it, decoded lazily from the
 * frame the dispatcher sent.
 *
 * @module
 */

import { decodeBody, parseCookies, parseForm } from "../protocol/body.ts";
import type { RequestHeader } from "../protocol/frames.ts";
import { headersFrom } from "../protocol/results.ts";
import type { PathParams } from "../routing.ts";

/** Key of the method that aborts a request's signal; internal to forkyard. */
export const ABORT: unique symbol = Symbol("forkyard.abort");

/**
 * One request as a worker's handler receives it.
 *
 * @example
 * ```ts
 * import { api, Worker, type WorkerRequest } from "@forkyard/forkyard";
 *
 * class Echo extends Worker {
 *   @api("/echo/{id:int}", "POST")
 *   echo(req: WorkerRequest) {
 *     return { id: req.pathParams.id, query: req.query, data: req.data };
 *   }
 * }
 * ```
 */
export class WorkerRequest {
  /** The dispatcher's id for this request; `-1` for fire-and-forget requests. */
  readonly requestId: number;
  /** HTTP method, upper case. */
  readonly method: string;
  /** Percent-decoded path. */
  readonly path: string;
  /** Parameters from the route pattern, converted (`{id:int}` gives a number). */
  readonly pathParams: PathParams;
  /** Raw body bytes. */
  readonly body: Uint8Array;
  #controller?: AbortController;
  #wire: RequestHeader;
  #query?: Record<string, string> | null;
  #headers?: Headers;
  #data?: unknown;
  #cookies?: Record<string, string>;

  /** Built by forkyard from a request frame. */
  constructor(wire: RequestHeader, body: Uint8Array, pathParams: PathParams) {
    this.#wire = wire;
    this.requestId = wire.n ? -1 : wire.i;
    this.method = wire.m;
    this.path = wire.p;
    this.pathParams = pathParams;
    this.body = body;
  }

  /** Aborted when the client disconnects or the request times out. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  /** Aborts {@linkcode WorkerRequest.signal}; called by forkyard. */
  [ABORT](reason: Error): void {
    this.#controller ??= new AbortController();
    this.#controller.abort(reason);
  }

  /** Query parameters (last value wins), or `null` when the URL has none. {@linkcode WorkerRequest.searchParams} has every value. */
  get query(): Record<string, string> | null {
    if (this.#query === undefined) this.#query = this.#wire.q ? parseForm(this.#wire.q) : null;
    return this.#query;
  }

  /** Every query parameter, repeated ones included: `req.searchParams.getAll("x")` is `["1", "2"]` for `?x=1&x=2`. */
  get searchParams(): URLSearchParams {
    return new URLSearchParams(this.#wire.q);
  }

  /** Request headers. */
  get headers(): Headers {
    // The trace id travels once, as `x`, not also in the header list.
    this.#headers ??= headersFrom(this.#wire.h, this.#wire.x);
    return this.#headers;
  }

  /** The `Content-Type` header, or `null`. */
  get contentType(): string | null {
    return this.#wire.t ?? null;
  }

  /** The trace id: the client's `X-Request-ID`, or one the dispatcher generated. Also on the response. */
  get traceId(): string | null {
    return this.#wire.x ?? null;
  }

  /**
   * The body: parsed JSON, a parsed form (object), other bytes as `Uint8Array`, or `null` when empty. Malformed JSON
   * throws {@linkcode InvalidBody}, which answers 400 unless the handler catches it.
   */
  get data(): unknown {
    if (this.#data === undefined) this.#data = decodeBody(this.body, this.#wire.t);
    return this.#data;
  }

  /** Cookies from the `Cookie` header. */
  get cookies(): Record<string, string> {
    this.#cookies ??= parseCookies(this.headers.get("cookie"));
    return this.#cookies;
  }
}
