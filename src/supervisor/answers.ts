/**
 * Answering pending requests: a worker's `RESPONSE` frame, or `START`,
 * `CHUNK`s and `END` of a streamed answer, become the `Response` the client
 * gets; failures (502, 504, 503, 499) are answered here too.
 *
 * @module
 */

import type { WorkerResponse } from "../pool.ts";
import { decodeBody } from "../protocol/body.ts";
import { recycleBody } from "../protocol/codec.ts";
import type { ResponseHeader, StartHeader } from "../protocol/frames.ts";
import { errorResponse, headersFrom, responseFromFrame } from "../protocol/results.ts";
import type { PoolHost } from "./host.ts";
import { NO_DEADLINE } from "./deadlines.ts";
import type { Pending } from "./pending.ts";

/** A JSON error answer for `p`, carrying its trace id. */
export function failure(p: Pending, status: number, message: string): Response {
  return errorResponse(status, message, p.wire.x === undefined ? undefined : { "x-request-id": p.wire.x });
}

/** Hands answers to the clients of a pool's pending requests. */
export class Answers {
  readonly #host: PoolHost;

  constructor(host: PoolHost) {
    this.#host = host;
  }

  /** Answers `p`; `finish` false keeps it pending (a stream has begun). */
  deliver(p: Pending, response: Response, finish = true): void {
    const resolve = p.resolve;
    p.resolve = null;
    if (resolve !== null) resolve(response);
    if (finish) this.#host.finished(p);
  }

  /**
   * Whether queued `p`'s client left: then it is settled with 499 (nginx's code for a client that closed the
   * request) instead of being dispatched, so that no server holds a response that would never come.
   */
  abandoned(p: Pending): boolean {
    if (p.client === null || !p.client.request.signal.aborted) return false;
    this.deliver(p, failure(p, 499, "Client closed request"));
    return true;
  }

  /** Answers `p` with a failure; a stream that has begun is broken off instead. */
  fail(p: Pending, response: Response): void {
    p.deadline = NO_DEADLINE;
    if (p.stream !== null) {
      try {
        p.stream.error(new Error("Request aborted"));
      } catch {
        // already closed
      }
      this.#host.finished(p);
      return;
    }
    this.deliver(p, response);
  }

  /** A worker's whole answer to `p`. `lent`: the body's bytes are to be given back once the runtime has sent them. */
  complete(p: Pending, h: ResponseHeader, body: Uint8Array, lent: boolean): void {
    const runtime = this.#host.runtime;
    const response = responseFromFrame(h, body, p.wire.x, runtime.setHeaderAfter);
    p.responseBytes = body.length;
    this.deliver(p, response);
    const answered = this.#host.answered;
    if (answered && p.client !== null) {
      const info = responseInfo(response.status, response.headers, body);
      queueMicrotask(() => answered(info, p));
    } else if (lent && p.adapter?.afterResponse !== undefined) {
      // Once the runtime no longer reads them, the bytes may take a later body; not when onResponse() sees
      // them: it may keep them.
      const files = runtime.spill();
      p.adapter.afterResponse(() => recycleBody(body, files));
    }
  }

  /** An answer to a request nobody waits for any more (timed out, cancelled): its lent bytes go back. */
  discard(body: Uint8Array, lent: boolean): void {
    if (lent) recycleBody(body, this.#host.runtime.spill());
  }

  /**
   * A streamed answer to `p` begins; `cancelled` runs when the client goes away mid-stream. The request has no
   * deadline from now on.
   */
  startStream(p: Pending, h: StartHeader, cancelled: () => void): void {
    p.deadline = NO_DEADLINE;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        p.stream = controller;
      },
      cancel: cancelled,
    });
    this.deliver(p, new Response(stream, { status: h.s, headers: headersFrom(h.h, p.wire.x) }), false);
  }

  /** The streamed answer to `p` ended, or `failed` in the worker. */
  endStream(p: Pending, failed: boolean): void {
    try {
      if (failed) p.stream?.error(new Error("Worker failed while streaming"));
      else p.stream?.close();
    } catch {
      // the client cancelled already
    }
    this.#host.finished(p);
  }
}

/** What `Dispatcher.onResponse` gets: the body decoded on first use. */
function responseInfo(status: number, headers: Headers, body: Uint8Array): WorkerResponse {
  let data: unknown;
  let parsed = false;
  return {
    status,
    headers,
    body,
    get data() {
      if (!parsed) {
        parsed = true;
        try {
          data = decodeBody(body, headers.get("content-type"));
        } catch {
          data = body;
        }
      }
      return data;
    },
  };
}
