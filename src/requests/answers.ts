/**
 * Answers as `Response`s: a worker's `RESPONSE` frame, or the `START`,
 * `CHUNK`s and `END` of a streamed answer, become the `Response` a client (or
 * a health check) gets; failures (502, 503, 504, 499) are JSON error answers.
 * Relayed requests never come here: their answers leave a worker host as
 * frames.
 *
 * @module
 */

import type { WorkerResponse } from "../pool.ts";
import { decodeBody } from "../protocol/body.ts";
import { recycleBody } from "../protocol/codec.ts";
import type { ResponseHeader, StartHeader } from "../protocol/frames.ts";
import { answerHeaders, errorResponse, lengthRule, responseFromFrame } from "../protocol/results.ts";
import type { Runtime } from "../runtime.ts";
import type { Pending } from "./pending.ts";
import { AnswerStream } from "./answer_stream.ts";

/** A JSON error answer for `p`, carrying its trace id. */
export function failure(p: Pending, status: number, message: string): Response {
  return errorResponse(status, message, p.wire.x === undefined ? undefined : { "x-request-id": p.wire.x });
}

/** Gives `response` to whoever waits for `p`, once. */
export function resolveWith(p: Pending, response: Response): void {
  const resolve = p.resolve;
  p.resolve = null;
  if (resolve !== null) resolve(response);
}

/**
 * A worker's whole answer to `p`, made a `Response` once. `lent`: the body's bytes are to be given back once the
 * runtime has sent them.
 */
export function answerWhole(p: Pending, h: ResponseHeader, body: Uint8Array, lent: boolean, runtime: Runtime): void {
  const response = responseFromFrame(h, body, p.wire.x, runtime.setHeaderAfter, p.wire.m === "HEAD");
  p.responseBytes = body.length;
  resolveWith(p, response);
  const origin = p.origin;
  if (origin.kind !== "client") {
    if (lent) recycleBody(body, runtime.spill());
    return;
  }
  const observe = origin.observe;
  if (observe !== null) {
    const info = responseInfo(response.status, response.headers, body);
    queueMicrotask(() => observe(info));
  } else if (lent && origin.adapter.afterResponse !== undefined) {
    // Once the runtime no longer reads them, the bytes may take a later body; not when onResponse() sees
    // them: it may keep them.
    const files = runtime.spill();
    origin.adapter.afterResponse(() => recycleBody(body, files));
  }
}

/**
 * Answers `p` with a streamed `Response` whose body its server's chunks fill; `credit` and `cancelled` go back to it.
 * `record`: its headers may be a record (see {@linkcode answerHeaders}).
 */
export function openStream(
  p: Pending,
  h: StartHeader,
  credit: (bytes: number) => void,
  cancelled: () => void,
  record: boolean,
): void {
  const length = lengthRule(p.wire.m === "HEAD", h.s, null, h.h);
  const adapter = p.origin.kind === "client" ? p.origin.adapter : null;
  const abort = adapter?.abort === undefined ? undefined : () => adapter.abort!();
  const stream = new AnswerStream(credit, cancelled, typeof length === "number" ? length : null, abort);
  p.stream = stream;
  resolveWith(p, new Response(stream.body, { status: h.s, headers: answerHeaders(h.h, p.wire.x, length, record) }));
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
