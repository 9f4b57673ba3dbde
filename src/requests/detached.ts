/**
 * Fire-and-forget requests (`WorkerPool.send`): a request head and body made
 * from a {@linkcode PoolRequest}, for a worker that answers nobody.
 *
 * @module
 */

import type { PoolRequest } from "../pool.ts";
import type { RequestHeader } from "../protocol/frames.ts";
import { KIND } from "../protocol/frames.ts";
import { encodeResult, KIND_TYPES } from "../protocol/results.ts";

const encoder = new TextEncoder();
const EMPTY: Uint8Array = new Uint8Array(0);

/** The head and body of a fire-and-forget request with id `id`: bytes as they are, a string as text, else JSON. */
export function detachedRequest(id: number, request: PoolRequest): { wire: RequestHeader; body: Uint8Array } {
  let body = EMPTY;
  let type: string | undefined;
  if (request.data !== undefined) {
    const encoded = request.data === null ? { kind: KIND.JSON, body: "null" } : encodeResult(request.data);
    body = typeof encoded.body === "string" ? encoder.encode(encoded.body) : encoded.body ?? EMPTY;
    type = KIND_TYPES[encoded.kind];
  }
  const headers = { ...(type ? { "content-type": type } : {}), ...request.headers };
  const h: string[] = [];
  for (const [k, v] of Object.entries(headers)) h.push(k.toLowerCase(), v);
  const wire: RequestHeader = {
    i: id,
    m: (request.method ?? "POST").toUpperCase(),
    p: request.path,
    q: request.query ? new URLSearchParams(request.query).toString() : "",
    h,
    n: 1,
  };
  const ct = headers["content-type"];
  if (ct) wire.t = ct;
  return { wire, body };
}
