/**
 * `WorkerRequest`: one request as a worker sees it, decoded lazily from the
 * frame the dispatcher sent.
 *
 * @module
 */

import type { PathParams } from "./routing.ts";

const decoder = new TextDecoder();

/** The request header as it crosses the channel. */
export interface WireRequest {
  /** Request id. */
  i: number;
  /** Method. */
  m: string;
  /** Decoded path. */
  p: string;
  /** Raw query string without `?`, or "". */
  q: string;
  /** Header names and values, flattened: `[name, value, name, value, ...]`. */
  h: string[];
  /** Content type, when the request has one. */
  t?: string;
  /** Set for fire-and-forget requests: nobody waits for the answer. */
  n?: 1;
  /** Raw (percent-encoded) path, when it differs from `p`. */
  r?: string;
  /** The request's trace id (`X-Request-ID`). */
  x?: string;
}

/** Parses `application/x-www-form-urlencoded` or a query string into an object (last value wins). */
export function parseForm(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

/** Parses a `Cookie` header. */
export function parseCookies(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      out[name] = decodeURIComponent(value);
    } catch {
      out[name] = value;
    }
  }
  return out;
}

/** The media type of a content type header, lower case, without parameters. */
export function mediaType(contentType: string | null | undefined): string {
  if (!contentType) return "";
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** Whether a media type is JSON (`application/json` or `application/*+json`). */
export function isJsonType(type: string): boolean {
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/**
 * Thrown by `req.data` and `client.data` when a body cannot be decoded (JSON the parser refuses).
 * Uncaught, it answers the request 400 `{"error": "Invalid JSON"}` instead of 500: the client sent it.
 */
export class InvalidBody extends Error {
  /** The HTTP status the request gets when the error is not caught. */
  readonly status = 400;

  /**
   * Creates the error.
   *
   * @param message What is wrong with the body.
   * @param cause The parser's error.
   */
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "InvalidBody";
  }
}

/**
 * Decodes a body by content type: JSON parsed, forms parsed, anything else as bytes; empty is `null`. A JSON body
 * the parser refuses, for whatever reason, throws {@linkcode InvalidBody}.
 */
export function decodeBody(body: Uint8Array, contentType: string | null | undefined): unknown {
  if (body.length === 0) return null;
  const type = mediaType(contentType);
  if (isJsonType(type)) {
    try {
      return JSON.parse(decoder.decode(body));
    } catch (error) {
      throw new InvalidBody("Invalid JSON", error);
    }
  }
  if (type === "application/x-www-form-urlencoded") return parseForm(decoder.decode(body));
  return body;
}

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
  #wire: WireRequest;
  #query?: Record<string, string> | null;
  #headers?: Headers;
  #data?: unknown;
  #cookies?: Record<string, string>;

  /** Built by forkyard from a request frame. */
  constructor(wire: WireRequest, body: Uint8Array, pathParams: PathParams) {
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
    if (this.#headers === undefined) {
      const h = new Headers();
      const list = this.#wire.h;
      for (let i = 0; i < list.length; i += 2) h.append(list[i], list[i + 1]);
      // The trace id travels once, as `x`, not also in the header list.
      if (this.#wire.x !== undefined) h.set("x-request-id", this.#wire.x);
      this.#headers = h;
    }
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
