/**
 * One request on its way through a pool, and who waits for its answer: a
 * client of this dispatcher, a dispatcher whose request a worker host took
 * over NATS, nobody (`WorkerPool.send`), or the supervisor's health check.
 *
 * @module
 */

import type { AnswerStream } from "./answer_stream.ts";
import type { WorkerPool, WorkerResponse } from "../pool.ts";
import type { Body, SpilledBody } from "../protocol/body.ts";
import type { RequestHeader, ResponseHeader, StartHeader } from "../protocol/frames.ts";
import type { AdapterRequest } from "../runtime.ts";
import type { AcceptSocket } from "./socket_link.ts";

/** An HTTP client of this dispatcher waits for the answer. */
export interface ClientOrigin {
  readonly kind: "client";
  /** The client's request: its signal says when the client left. */
  readonly request: Request;
  /** What the adapter offers for the request. */
  readonly adapter: AdapterRequest;
  /** For a WebSocket handshake: what accepts it when its worker answers 101; else `null`. */
  readonly upgrade: AcceptSocket | null;
  /** Sees each whole answer (`Dispatcher.onResponse`); `null` when the dispatcher has no such hook. */
  readonly observe: ((response: WorkerResponse) => void) | null;
}

/** Where a worker host sends the answer of a request it took from a dispatcher: as its worker's frames, unmade. */
export interface RelaySink {
  /** The whole answer; `lent` bytes are given back once this returns. */
  whole(head: ResponseHeader, body: Uint8Array): void;
  /** A streamed answer begins. */
  start(head: StartHeader): void;
  /** A part of a streamed answer. */
  chunk(body: Uint8Array): void;
  /** The streamed answer ended, or `failed` in the worker. */
  end(failed: boolean): void;
  /** The worker called `keepAlive()`. */
  keptAlive(): void;
  /** For a WebSocket handshake: its worker accepted it (a worker host's relay of it to the dispatcher). */
  upgrade?: AcceptSocket;
}

/** Who waits for a request's answer. */
export type Origin =
  | ClientOrigin
  | { readonly kind: "relayed"; readonly sink: RelaySink }
  | { readonly kind: "detached" }
  | { readonly kind: "check" };

/**
 * Where a request is in its life: waiting for a server, handed to one, streaming its answer (no deadline any more),
 * or done (answered, failed, timed out or given up).
 */
export type PendingState = "queued" | "sent" | "streaming" | "done";

/** What served a request: a local worker, with its slot, or, for a remote pool, a worker host, with none. */
export interface ServedBy {
  readonly slot: { readonly id: number } | null;
}

/** What every request carries, whoever waits for it. */
export interface RequestParts {
  /** The dispatcher's id; a WebSocket handshake's becomes its socket's. */
  readonly id: number;
  readonly wire: RequestHeader;
  readonly body: Body;
  /** The body in a spill file instead (a large upload a worker host took in parts); `body` is then empty. */
  readonly bodyFile?: SpilledBody;
  /** Receives the answer as a `Response`; `null` for relayed and detached requests. */
  readonly resolve: ((response: Response) => void) | null;
}

/** A request as a pool is given it: its parts, and who waits for its answer (one object: it is made per request). */
export type ClientRequest = RequestParts & Origin;

/** One request on its way through a pool; `S` is what serves it (a worker process, a worker host). */
export class Pending<S = unknown> {
  readonly requestId: number;
  /** Who waits for the answer: the request as the pool was given it. */
  readonly origin: ClientRequest;
  readonly pool: WorkerPool;
  readonly wire: RequestHeader;
  readonly body: Body;
  readonly bodyFile: SpilledBody | undefined;
  resolve: ((response: Response) => void) | null;
  state: PendingState = "queued";
  /** When the request times out (clock time); `Infinity` once it no longer can (streaming, done). */
  deadline = 0;
  /** What serves it, once known. */
  servedBy: S | null = null;
  /** Whether it was given to a second server already (`retryIdempotent`). */
  retried = false;
  /** The body bytes of a whole answer, once it came; -1 before, and for streams. */
  responseBytes = -1;
  /** The body of a streamed answer to a `Response`, once it began. */
  stream: AnswerStream | null = null;

  constructor(request: ClientRequest, pool: WorkerPool) {
    this.requestId = request.id;
    this.origin = request;
    this.pool = pool;
    this.wire = request.wire;
    this.body = request.body;
    this.bodyFile = request.bodyFile;
    this.resolve = request.resolve;
  }

  /**
   * Whether another server may take it once its own is gone (`retryIdempotent`): a GET or HEAD whose answer has not
   * begun to stream, given to a second server not yet.
   */
  get retryable(): boolean {
    return !this.retried && this.state !== "streaming" && (this.wire.m === "GET" || this.wire.m === "HEAD");
  }
}
