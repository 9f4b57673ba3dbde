/**
 * `Client`, the dispatcher's view of one request, and `RejectRequest`.
 *
 * @module
 */

import { type Body, decodeBody, joinBody, parseCookies, parseForm } from "../protocol/body.ts";
import { toResponse } from "../protocol/results.ts";
import type { WorkerPool } from "../pool.ts";

/** What `Dispatcher.onResponse` gets about the request a worker answered. */
export interface PendingRequest {
  /** The dispatcher's id of the request. */
  readonly requestId: number;
  /** The client. */
  readonly client: Client;
  /** The pool that served it. */
  readonly pool: WorkerPool;
}

/**
 * The dispatcher's view of one request: what `doCheck`, `@sync` handlers and
 * `onResponse` see.
 */
export class Client {
  /** The underlying web request. */
  readonly request: Request;
  /** HTTP method. */
  readonly method: string;
  /** Percent-decoded path. */
  readonly path: string;
  /** The `Content-Type` header, or `null`. */
  readonly contentType: string | null;
  #rawQuery: string;
  #body: Body | null;
  #read: (() => Promise<Body | Response>) | null;
  #peer: { remoteAddress(): string };
  #query?: Record<string, string> | null;
  #data: unknown;
  #cookies?: Record<string, string>;
  #response?: Response;

  /**
   * Created by the dispatcher for each request: with its `body`, or with `null` and how to `read` it (in `doCheck`,
   * which runs before the body is read).
   */
  constructor(
    request: Request,
    path: string,
    rawQuery: string,
    body: Body | null,
    peer: { remoteAddress(): string },
    contentType: string | null = request.headers.get("content-type"),
    read: (() => Promise<Body | Response>) | null = null,
  ) {
    this.request = request;
    this.method = request.method;
    this.path = path;
    this.#rawQuery = rawQuery;
    this.#body = body;
    this.#read = read;
    this.contentType = contentType;
    this.#peer = peer;
  }

  /**
   * Raw body bytes, as the request carried them. In `doCheck`, which runs before the body is read (a request refused
   * there is refused without reading it), `await client.readBody()` first; reading `body` or `data` before throws.
   */
  get body(): Uint8Array {
    if (this.#body === null) {
      throw new Error("The request's body is not read yet in doCheck: await client.readBody() before using it");
    }
    // Joined on first use: a body forwarded untouched is written out as the chunks it arrived in.
    if (!(this.#body instanceof Uint8Array)) this.#body = joinBody(this.#body);
    return this.#body;
  }

  /**
   * Reads the body (up to `maxBodySize`, within `bodyTimeout`) and returns it; `body` and `data` hold it afterwards.
   * For `doCheck`, which runs before the dispatcher reads the body; elsewhere the body is read already. A body too
   * large, too slow or broken off refuses the request (413, 408, 400) by throwing {@linkcode RejectRequest}.
   */
  async readBody(): Promise<Uint8Array> {
    if (this.#body === null) {
      const body = await this.#read!();
      if (body instanceof Response) {
        this.#response ??= body;
        throw new RejectRequest();
      }
      this.#body = body;
    }
    return this.body;
  }

  /** Request headers. */
  get headers(): Headers {
    return this.request.headers;
  }

  /** Query parameters (last value wins), or `null` when the URL has none. */
  get query(): Record<string, string> | null {
    if (this.#query === undefined) this.#query = this.#rawQuery ? parseForm(this.#rawQuery) : null;
    return this.#query;
  }

  /** Every query parameter, repeated ones included: `getAll("x")` is `["1", "2"]` for `?x=1&x=2`. */
  get searchParams(): URLSearchParams {
    return new URLSearchParams(this.#rawQuery);
  }

  /** The raw query string without `?`. */
  get rawQuery(): string {
    return this.#rawQuery;
  }

  /**
   * The body decoded like `WorkerRequest.data`: JSON, form object, bytes, or `null`. Decoded on first use only (the
   * dispatcher never parses a body it forwards); malformed JSON throws `InvalidBody`, which answers 400.
   */
  get data(): unknown {
    if (this.#data === undefined) this.#data = decodeBody(this.body, this.contentType);
    return this.#data;
  }

  /** Cookies from the `Cookie` header. */
  get cookies(): Record<string, string> {
    this.#cookies ??= parseCookies(this.request.headers.get("cookie"));
    return this.#cookies;
  }

  /** The peer's IP address. */
  get remoteAddress(): string {
    return this.#peer.remoteAddress();
  }

  /**
   * Answers the request from the dispatcher. A plain value is sent as JSON,
   * a string as text, bytes as binary, `null` as an empty body. The first
   * answer wins.
   *
   * @param body What to send.
   * @param status HTTP status.
   * @param headers Extra response headers.
   */
  respond(body: unknown, status = 200, headers?: HeadersInit): void {
    this.#response ??= toResponse(body, status, headers);
  }

  /** The answer given with {@linkcode Client.respond}, if any. */
  get response(): Response | undefined {
    return this.#response;
  }
}

/**
 * Thrown from `doCheck` to refuse a request. When `client.respond(...)` was
 * called first, that answer is sent; otherwise `data` (default
 * `{"error": "Forbidden"}`) with `status` (default 403).
 *
 * @example
 * ```ts
 * import { type Client, Dispatcher, RejectRequest } from "@forkyard/forkyard";
 *
 * class Guarded extends Dispatcher {
 *   override doCheck(client: Client) {
 *     if (!client.headers.get("authorization")) throw new RejectRequest({ error: "login first" }, 401);
 *   }
 * }
 * ```
 */
export class RejectRequest extends Error {
  /** The status sent when the client got no answer yet. */
  readonly status: number;
  /** The body sent when the client got no answer yet. */
  readonly data: unknown;

  /**
   * Creates a rejection.
   *
   * @param data Body to send; `{"error": "Forbidden"}` by default.
   * @param status HTTP status; 403 by default.
   */
  constructor(data?: unknown, status = 403) {
    super("Request rejected");
    this.name = "RejectRequest";
    this.data = data ?? { error: "Forbidden" };
    this.status = status;
  }

  /** The response this rejection sends. */
  getResponse(): Response {
    return toResponse(this.data, this.status);
  }
}
