/**
 * One request on its way through a pool: from the dispatcher's `submit` to
 * the queue, a worker, and its answer.
 *
 * @module
 */

import type { Client } from "../dispatcher/client.ts";
import type { PendingRequest, WorkerPool } from "../pool.ts";
import type { Body } from "../protocol/body.ts";
import type { FrameWriter } from "../protocol/codec.ts";
import type { RequestHeader, ResponseHeader } from "../protocol/frames.ts";
import type { AdapterRequest } from "../runtime.ts";

/** The worker a WebSocket is pinned to, as the dispatcher's socket hub sees it. */
export interface SocketLink {
  /** The worker's channel. */
  readonly writer: FrameWriter;
  /** Socket `id` closed: its worker serves one socket fewer. */
  closed(id: number): void;
}

/** Closes a socket from the dispatcher's side; `tell`: whether its worker hears of it. */
export type CloseSocket = (code: number, reason: string, tell: boolean) => void;

/** Accepts a WebSocket handshake its worker answered with 101; returns how to close the socket, or `null`. */
export type AcceptSocket = (link: SocketLink, answer: ResponseHeader) => CloseSocket | null;

/** What served a request: a local worker, with its slot, or, for a remote pool, a worker host, with none. */
export interface ServedBy {
  readonly slot: { readonly id: number } | null;
}

/** A client's request as the dispatcher hands it to a pool. */
export interface ClientRequest {
  /** The dispatcher's id; a WebSocket handshake's becomes its socket's. */
  id: number;
  /** The client; `null` on a worker host, whose client is a dispatcher's. */
  client: Client | null;
  wire: RequestHeader;
  body: Body;
  /** Receives the answer. */
  resolve: (response: Response) => void;
  /** What the adapter offers for the request; `null` on a worker host. */
  adapter: AdapterRequest | null;
  /** For a WebSocket handshake: what accepts it when its worker answers 101. */
  upgrade: AcceptSocket | null;
}

/** One request on its way through a pool; `W` is what serves it (a worker process). */
export class Pending<W = unknown> implements PendingRequest {
  readonly requestId: number;
  readonly client: Client | null;
  readonly pool: WorkerPool;
  readonly wire: RequestHeader;
  readonly body: Body;
  /** What the adapter offers for the client's request; `null` for requests made with `WorkerPool.send`. */
  readonly adapter: AdapterRequest | null;
  resolve: ((response: Response) => void) | null;
  /**
   * When the request times out (clock time); `Infinity` once it no longer can: answered with a failure, timed out
   * already, or streaming. The deadline walk and the queue both go by this.
   */
  deadline = 0;
  /** The worker serving it, once dispatched. */
  worker: W | null = null;
  /** Whether it was given to a second worker already (`retryIdempotent`). */
  retried = false;
  /** The body bytes of a whole answer, once it came; -1 before, and for streams. */
  responseBytes = -1;
  /** The stream of a streamed answer, once it began. */
  stream: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** For a WebSocket handshake: what accepts it when its worker answers 101. */
  upgrade: AcceptSocket | null = null;

  /**
   * Whether another worker may take it once its own is gone (`retryIdempotent`): a GET or HEAD whose answer has not
   * begun to stream, given to a second worker not yet.
   */
  get retryable(): boolean {
    return !this.retried && this.stream === null && (this.wire.m === "GET" || this.wire.m === "HEAD");
  }

  constructor(
    id: number,
    client: Client | null,
    pool: WorkerPool,
    wire: RequestHeader,
    body: Body,
    resolve: ((response: Response) => void) | null,
    adapter: AdapterRequest | null = null,
  ) {
    this.requestId = id;
    this.client = client;
    this.pool = pool;
    this.wire = wire;
    this.body = body;
    this.adapter = adapter;
    this.resolve = resolve;
  }
}
