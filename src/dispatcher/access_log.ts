/**
 * The access log: one record per answered request, under the LogTape category
 * `["forkyard", "access"]`, with every field as a property and the message in
 * the combined log format of Apache and nginx, or as one JSON object.
 *
 * @module
 */

import type { ServedBy } from "../requests/pending.ts";

/** Where the answer to a request came from, filled in on its way through the dispatcher. */
export interface AccessTrail {
  /** `performance.now()` when the request arrived. */
  started: number;
  /** Handed to a pool: the pool's answer is logged as it is delivered, not by the outer handler. */
  forwarded: boolean;
  /** The pool that served it; `null` when the dispatcher answered itself. */
  pool: string | null;
  /** The trace id, when the dispatcher has it at hand. */
  requestId: string | null;
  /** The request headers as the dispatcher read them (flat, names in lower case), or `null`. */
  headers: readonly string[] | null;
  /** The status to log when the answer's own says less (101 for an accepted WebSocket); 0: the answer's. */
  status: number;
  /** The request in the pool: its worker and its answer's size. */
  pending:
    | { readonly servedBy: ServedBy | null; readonly responseBytes: number }
    | null;
}

/** A fresh trail for a request arriving now. */
export function newTrail(): AccessTrail {
  return {
    started: performance.now(),
    forwarded: false,
    pool: null,
    requestId: null,
    headers: null,
    status: 0,
    pending: null,
  };
}

/** One access record's properties. */
export interface AccessEntry {
  /** Client address. */
  remoteAddress: string;
  /** Request method. */
  method: string;
  /** Path and query as sent. */
  url: string;
  /** Response status. */
  status: number;
  /** Response body bytes, when known before the body is sent (not for streams). */
  bytes: number | null;
  /** Milliseconds from the request's arrival to its answer's head (a stream's end is not waited for). */
  duration: number;
  /** Serving pool, or `null`. */
  pool: string | null;
  /** Serving worker slot, or `null`. */
  workerId: number | null;
  /** The trace id (`X-Request-ID`). */
  requestId: string | null;
  /** `Referer` header. */
  referer: string | null;
  /** `User-Agent` header. */
  userAgent: string | null;
}

/** Whether query parameter `name` (still percent-encoded) is one whose value is not logged. */
function secretName(name: string, redacted: ReadonlySet<string>): boolean {
  let lower: string;
  try {
    lower = decodeURIComponent(name.replace(/\+/g, " ")).toLowerCase();
  } catch {
    lower = name.toLowerCase();
  }
  if (redacted.has(lower)) return true;
  const cut = lower.search(/[-_.][^-_.]*$/);
  return cut >= 0 && redacted.has(lower.slice(cut + 1));
}

/** `target` (a path with its query, or a whole URL) with the values of secret query parameters replaced. */
export function redactQuery(target: string, redacted: ReadonlySet<string>): string {
  const q = target.indexOf("?");
  if (q < 0 || redacted.size === 0) return target;
  const hash = target.indexOf("#", q);
  const query = hash < 0 ? target.slice(q + 1) : target.slice(q + 1, hash);
  const parts = query.split("&").map((part) => {
    const eq = part.indexOf("=");
    return eq >= 0 && secretName(part.slice(0, eq), redacted) ? `${part.slice(0, eq)}=REDACTED` : part;
  });
  return `${target.slice(0, q + 1)}${parts.join("&")}${hash < 0 ? "" : target.slice(hash)}`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The last second formatted, and its text: a busy access log formats each second once, not each request. */
let clfSecond = -1;
let clfText = "";

/** `[04/Dec/2026:18:00:00 +0000]`, the combined format's time, in UTC. */
function clfTime(time: number): string {
  const second = Math.floor(time / 1000);
  if (second !== clfSecond) {
    clfSecond = second;
    clfText = formatClf(time);
  }
  return clfText;
}

function formatClf(time: number): string {
  const d = new Date(time);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${
    two(d.getUTCMinutes())
  }:${two(d.getUTCSeconds())} +0000`;
}

/** A header value for the combined format: quotes and backslashes escaped, `-` when absent. */
function quoted(value: string | null): string {
  return value === null ? '"-"' : `"${value.replace(/["\\]/g, (c) => "\\" + c)}"`;
}

/**
 * The combined log format (`%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`), then the duration in
 * milliseconds, the pool, the worker and the trace id.
 */
export function combinedLine(e: AccessEntry, time: number): string {
  return `${e.remoteAddress} - - [${clfTime(time)}] ${quoted(`${e.method} ${e.url} HTTP/1.1`)} ${e.status} ${
    e.bytes ?? "-"
  } ${quoted(e.referer)} ${quoted(e.userAgent)} ${e.duration.toFixed(3)}ms pool=${e.pool ?? "-"} worker=${
    e.workerId ?? "-"
  } id=${e.requestId ?? "-"}`;
}

/** The entry as one JSON object, with its time. */
export function jsonLine(e: AccessEntry, time: number): string {
  return JSON.stringify({ time: new Date(time).toISOString(), ...e });
}

/** The path and query of a request URL, as the client sent them. */
export function requestTarget(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return start < 0 ? "/" : url.slice(start);
}

/** A request header: from the list the dispatcher read when it has one, else from `Headers`. */
function header(request: Request, trail: AccessTrail, name: string): string | null {
  const list = trail.headers;
  if (list === null) return request.headers.get(name);
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return null;
}

/** The entry for a request and its answer. */
export function accessEntry(
  request: Request,
  remoteAddress: string,
  response: Response,
  trail: AccessTrail,
): AccessEntry {
  const pending = trail.pending;
  let bytes: number | null;
  if (pending !== null) bytes = pending.responseBytes < 0 ? null : pending.responseBytes;
  else {
    const length = response.headers.get("content-length");
    bytes = length !== null ? Number(length) : response.body === null ? 0 : null;
  }
  return {
    remoteAddress,
    method: request.method,
    url: requestTarget(request.url),
    status: trail.status || response.status,
    bytes,
    duration: performance.now() - trail.started,
    pool: trail.pool,
    workerId: pending?.servedBy?.slot?.id ?? null,
    requestId: trail.requestId ?? response.headers.get("x-request-id"),
    referer: header(request, trail, "referer"),
    userAgent: header(request, trail, "user-agent"),
  };
}
