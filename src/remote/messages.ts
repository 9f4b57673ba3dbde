/**
 * Messages between a dispatcher and the worker hosts of a remote pool, over
 * NATS. Each NATS message carries one: a type byte, the length of a JSON
 * header, the header, and the body's bytes as they are.
 *
 * Subjects, for a pool whose subject is `S`:
 * - `S`, queue group {@linkcode QUEUE}: requests, each with the dispatcher's reply subject for its answer; only
 *   hosts with a free slot are subscribed.
 * - the reply subject: `ACK` (the host that took it) or `BUSY`, `KEEPALIVE`s, then `ANSWER`, `CHUNK`s and `END`.
 * - `S.host.<id>`: to one host: the rest of a request's body (`BODY`), `CANCEL`.
 * - `S.hb`: each host's heartbeat, a {@linkcode HostBeat}; `S.hello`: a dispatcher asks for one at once.
 * - `S.log`: each host's workers' log records.
 *
 * @module
 */

import type { WorkerStatus } from "../pool.ts";
import { KIND, type Kind, type RequestHeader } from "../protocol/frames.ts";
import type { WireRecord } from "../protocol/log_record.ts";
import { joinBody } from "../protocol/body.ts";

/** The maximum payload of a message when the NATS server does not say (its own default). */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** The queue group every worker host of a pool joins. */
export const QUEUE = "forkyard";

/** Message types. */
export const M = {
  /** Dispatcher to any host (queue group): {@linkcode RemoteRequest}, the body or its first part. */
  REQUEST: 1,
  /** Dispatcher to the host that took a request: the next part of its body, `{ k, last }`. */
  BODY: 2,
  /** Dispatcher to the host: the client no longer waits, `{ k }`. */
  CANCEL: 3,
  /** Host to dispatcher: it took the request, `{ h: host id, n: host name }`. */
  ACK: 16,
  /** Host to dispatcher: it has no free slot (it just filled up); the request goes to another. */
  BUSY: 21,
  /** Host to dispatcher: status and headers, {@linkcode RemoteAnswer}, and the body or its first part. */
  ANSWER: 17,
  /** Host to dispatcher: the next part of an answer's body. */
  CHUNK: 18,
  /** Host to dispatcher: the answer's body is complete, `{ e: 1 }` when it broke off. */
  END: 19,
  /** Host to dispatcher: the worker called `keepAlive()`; the request's timeout starts again. */
  KEEPALIVE: 20,
} as const;

/** A request as it crosses to a worker host. */
export interface RemoteRequest {
  /** The request, as a local worker would get it. */
  w: RequestHeader;
  /** The body's whole length in bytes; parts follow as `BODY` messages when it is longer than this message's. */
  n: number;
  /** Milliseconds left before the dispatcher answers 504. */
  t: number;
}

/** An answer's head: the worker's own (`RESPONSE` or `START` frame), as it crosses to the dispatcher. */
export interface RemoteAnswer {
  /** Status. */
  s: number;
  /** Body kind, as the worker's `RESPONSE` frame gave it; absent: JSON. */
  k?: Kind;
  /** Headers, flattened `[name, value, ...]`: every one the worker set, with kind `HEADERS` and for streams. */
  h?: string[];
  /** Set when the body is a stream of unknown length: `CHUNK`s until `END`; else the body's length. */
  n: number | "stream";
}

/** A header name as HTTP allows it (a token), and a value without line breaks or NUL. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/**
 * Whether `head` is an answer's head a `Response` can be made of: a status from 200 to 599, a known body kind, header
 * names and values HTTP allows, and a body length (or `"stream"`). What arrives over NATS is checked before use: a
 * head `Headers` would refuse would otherwise throw in the middle of the dispatcher's message handling.
 */
export function isRemoteAnswer(head: unknown): head is RemoteAnswer {
  if (typeof head !== "object" || head === null) return false;
  const { s, k, h, n } = head as Record<string, unknown>;
  if (!Number.isInteger(s) || (s as number) < 200 || (s as number) > 599) return false;
  if (k !== undefined && !(Object.values(KIND) as unknown[]).includes(k)) return false;
  if (n !== "stream" && !(Number.isSafeInteger(n) && (n as number) >= 0)) return false;
  if (h === undefined) return true;
  if (!Array.isArray(h) || h.length % 2 !== 0) return false;
  for (let i = 0; i < h.length; i += 2) {
    if (typeof h[i] !== "string" || !HEADER_NAME.test(h[i]) || typeof h[i + 1] !== "string") return false;
    if (!HEADER_VALUE.test(h[i + 1])) return false;
  }
  return true;
}

/** What a worker host says about itself every heartbeat, on `S.hb`. */
export interface HostBeat {
  /** Unique per host process. */
  id: string;
  /** The host's name (`--name`, else its hostname). */
  name: string;
  pid: number;
  /** Requests it can take now. */
  free: number;
  /** Requests it can take when idle: ready workers × concurrency. */
  slots: number;
  /** Its heartbeat interval, in milliseconds: the dispatcher counts it gone after three missed. */
  every: number;
  /** Its workers. */
  workers: WorkerStatus[];
  /** Requests waiting for a worker on the host. */
  queue: number;
  /** Set when it stops taking requests (shutting down). */
  bye?: 1;
}

const count = (v: unknown, max = Number.MAX_SAFE_INTEGER) =>
  Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
const text = (v: unknown, max: number) => typeof v === "string" && v.length <= max;
const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** Whether a worker's status, as a host's heartbeat carries it, has the types of {@linkcode WorkerStatus}. */
function isWorkerStatus(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const w = value as Record<string, unknown>;
  return count(w.id, 1 << 20) && (w.pid === null || count(w.pid)) && typeof w.alive === "boolean" &&
    text(w.state, 16) && (w.lastSeen === null || finite(w.lastSeen)) &&
    (w.currentRequest === null || count(w.currentRequest)) && count(w.inflight) && count(w.restarts) &&
    (w.lastExitReason === null || text(w.lastExitReason, 1000)) && finite(w.uptime) && count(w.rss) &&
    count(w.served) && count(w.sockets) && (w.host === undefined || text(w.host, 256));
}

/**
 * Whether a heartbeat has the types of {@linkcode HostBeat}: anyone who may publish on the pool's subjects can send
 * one, and its values reach the status page, `/metrics` and the dispatcher's choice of host.
 */
export function isHostBeat(value: unknown): value is HostBeat {
  if (typeof value !== "object" || value === null) return false;
  const b = value as Record<string, unknown>;
  return text(b.id, 128) && (b.id as string).length > 0 && text(b.name, 256) && count(b.pid) &&
    count(b.free, 1 << 20) && count(b.slots, 1 << 20) && count(b.every, 3_600_000) && (b.every as number) > 0 &&
    count(b.queue) && (b.bye === undefined || b.bye === 1) && Array.isArray(b.workers) &&
    b.workers.length <= 4096 && b.workers.every(isWorkerStatus);
}

/** A worker's log record, as the host passes it on, on `S.log`. */
export interface HostLog {
  /** The host's name. */
  host: string;
  /** The record, its properties naming pool, worker and pid. */
  r: WireRecord;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A plain JSON message (heartbeats, log records, config): the value's JSON text. */
export function jsonMessage(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** A plain JSON message's value, or `undefined` when it is not JSON. */
export function parseJsonMessage<T>(data: Uint8Array): T | undefined {
  try {
    return JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
}

/** One message: `type`, `header` as JSON, then `body`. */
export function encode(type: number, header: unknown, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(5 + json.length + body.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, json.length);
  out.set(json, 5);
  out.set(body, 5 + json.length);
  return out;
}

/** A message's type, header and body (a view into `data`); `null` when it is not one. */
export function decode(data: Uint8Array): { type: number; header: unknown; body: Uint8Array } | null {
  if (data.length < 5) return null;
  const length = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
  if (5 + length > data.length) return null;
  try {
    const header = JSON.parse(decoder.decode(data.subarray(5, 5 + length)));
    return { type: data[0], header, body: data.subarray(5 + length) };
  } catch {
    return null;
  }
}

/** What a body part may take of the server's maximum payload, in a message of its own (`BODY`, `CHUNK`). */
function partSize(maxPayload: number): number {
  return Math.max(1024, maxPayload - 256);
}

/** How much of a body fits beside `header` in the first message (`REQUEST`, `ANSWER`); 0 when the header fills it. */
export function firstPartSize(maxPayload: number, header: unknown): number {
  return Math.max(0, maxPayload - 256 - encoder.encode(JSON.stringify(header)).length);
}

/**
 * `body` cut for messages of at most `maxPayload` bytes: the part that goes beside `header` in the first message,
 * then the parts that go in messages of their own (views into `body`). With no header, every part is of the latter.
 */
export function splitBody(body: Uint8Array, maxPayload: number, header?: unknown): [Uint8Array, Uint8Array[]] {
  const first = header === undefined ? 0 : firstPartSize(maxPayload, header);
  const size = partSize(maxPayload);
  const rest: Uint8Array[] = [];
  for (let at = first; at < body.length; at += size) rest.push(body.subarray(at, at + size));
  return [body.subarray(0, first), rest];
}

/** A body arriving in parts, until `length` bytes came. */
export class BodyParts {
  readonly #parts: Uint8Array[] = [];
  #received = 0;
  readonly length: number;

  constructor(length: number) {
    this.length = length;
  }

  /** Adds a part (copied: it may be a view into a message's buffer); returns the whole body once complete. */
  add(part: Uint8Array): Uint8Array | null {
    this.#parts.push(part.slice());
    this.#received += part.length;
    return this.#received >= this.length ? joinBody(this.#parts) : null;
  }
}
