/**
 * Messages between a dispatcher and the worker hosts of a remote pool, over
 * NATS. Each NATS message carries one: a type byte, the length of a JSON
 * header, the header, and the body's bytes as they are.
 *
 * Subjects, for a pool whose subject is `S`:
 * - `S`, queue group {@linkcode QUEUE}: requests, each with the dispatcher's reply subject for its answer; only
 *   hosts with a free slot are subscribed.
 * - the reply subject, one per attempt: `ACK` (the host that took it, with a token of its own for this request) or
 *   `BUSY`, then `KEEPALIVE`s, `ANSWER`, `CHUNK`s and `END`, each carrying that token.
 * - `S.host.<id>`: to one host: the rest of a request's body (`BODY`), `CANCEL`, `CREDIT` for a streamed answer.
 * - `S.hb`: each host's heartbeat, a {@linkcode HostBeat}; `S.hello`: a dispatcher asks for one at once.
 * - `S.log`: each host's workers' log records; `S.pub`: what its workers publish to WebSocket topics.
 * - `S.ctl`: a dispatcher steers the hosts (all, or one by name), {@linkcode Steer}; each answers on the reply subject.
 *
 * @module
 */

import type { WorkerStatus } from "../pool.ts";
import { type CancelReason, KIND, type Kind, type RequestHeader } from "../protocol/frames.ts";
import type { WireRecord } from "../protocol/log_record.ts";
import { joinBody } from "../protocol/body.ts";
import { isLogLevel } from "../logging/levels.ts";

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
  /**
   * Dispatcher to the host: the client took `n` more bytes of a streamed answer, `{ k, n }`; as many more may come.
   * Host to dispatcher: it wrote `n` more bytes of the request's body away, `{ n }`; as many more may come.
   */
  CREDIT: 4,
  /**
   * Dispatcher to the host: a frame for the WebSocket its worker accepted (`WS_OPEN`, `WS_MESSAGE`, `WS_CLOSED`),
   * {@linkcode SocketIn}, the message as the body.
   */
  WS: 5,
  /** Host to dispatcher: it took the request, {@linkcode Ack}. */
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
  /**
   * Host to dispatcher, on the handshake's reply subject: a frame of the worker's about its WebSocket (`WS_SEND`,
   * `WS_CLOSE`, `SUBSCRIBE`, `UNSUBSCRIBE`), {@linkcode SocketOut}, the message as the body.
   */
  WS_OUT: 22,
  /** Host to every dispatcher, on `S.pub`: a worker's `publish(topic, data)`, `{ t, b? }`, the data as the body. */
  PUBLISH: 23,
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
const count = (v: unknown, max = Number.MAX_SAFE_INTEGER) =>
  Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
const text = (v: unknown, max: number) => typeof v === "string" && v.length <= max;
const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/**
 * Whether `head` is an answer's head a `Response` can be made of: a status from 200 to 599, a known body kind, header
 * names and values HTTP allows, and a body length (or `"stream"`). What arrives over NATS is checked before use: a
 * head `Headers` would refuse would otherwise throw in the middle of the dispatcher's message handling.
 */
export function isRemoteAnswer(head: unknown): head is RemoteAnswer {
  if (typeof head !== "object" || head === null) return false;
  const { s, k, h, n } = head as Record<string, unknown>;
  // 101: the worker accepted a WebSocket handshake.
  if (!Number.isInteger(s) || ((s as number) < 200 || (s as number) > 599) && !(s === 101 && n === 0)) return false;
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

/** A host's acknowledgement of a request: it took it. */
export interface Ack {
  /** The host's id (its heartbeats' `id`). */
  h: string;
  /** The host's name. */
  n: string;
  /**
   * A token the host drew for this request: every later message about it carries it as `a`, and the dispatcher
   * accepts only those. Whoever did not see the acknowledgement (it went to the dispatcher's inbox alone) cannot
   * answer in the host's place.
   */
  a: string;
}

/** A host id: it names a subject token and a map key. */
const HOST_ID = /^[^\s.*>]{1,128}$/;
const TOKEN = /^[0-9a-f]{16,64}$/;

/** Whether `value` is an {@linkcode Ack}. */
export function isAck(value: unknown): value is Ack {
  if (typeof value !== "object" || value === null) return false;
  const { h, n, a } = value as Record<string, unknown>;
  return typeof h === "string" && HOST_ID.test(h) && text(n, 256) && typeof a === "string" && TOKEN.test(a);
}

/** A fresh acknowledgement token: 64 random bits, as hex. */
export function ackToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** The acknowledgement token a host's message carries (`a`), or `undefined`. */
export function tokenOf(header: unknown): unknown {
  return typeof header === "object" && header !== null ? (header as { a?: unknown }).a : undefined;
}

const flatHeaders = (h: unknown) =>
  Array.isArray(h) && h.length % 2 === 0 && h.length <= 2 * 1024 && h.every((v) => typeof v === "string");

/**
 * Whether a request from NATS has the types a worker expects: a host passes it to its workers, which would throw
 * (or worse, be steered) on anything else. Anyone who may publish on the pool's subject can send one.
 */
export function isRemoteRequest(value: unknown): value is RemoteRequest {
  if (typeof value !== "object" || value === null) return false;
  const { w, n, t } = value as Record<string, unknown>;
  if (!count(n) || !finite(t) || (t as number) <= 0 || typeof w !== "object" || w === null) return false;
  const r = w as Record<string, unknown>;
  return count(r.i) && typeof r.m === "string" && HEADER_NAME.test(r.m) && typeof r.p === "string" &&
    r.p.startsWith("/") && typeof r.q === "string" && flatHeaders(r.h) &&
    (r.t === undefined || typeof r.t === "string") && (r.n === undefined || r.n === 1) &&
    (r.r === undefined || typeof r.r === "string") && (r.x === undefined || text(r.x, 256)) &&
    (r.u === undefined || r.u === 1) && (r.a === undefined || text(r.a, 64)) && (r.e === undefined || r.e === 1);
}

/** `wire` as a host's app sees it: an app pool's mount is the dispatcher's, and its app sees the path below it. */
export function belowMount(wire: RequestHeader, mount: string): RequestHeader {
  if (mount === "") return wire;
  const r = wire.r === undefined ? {} : { r: wire.r.slice(mount.length) || "/" };
  return { ...wire, p: wire.p.slice(mount.length) || "/", ...r };
}

/** Whether a dispatcher's message to one host (`BODY`, `CANCEL`, `CREDIT`) names its request: `{ k: reply subject }`. */
export function isDirect(value: unknown): value is { k: string; w?: CancelReason; n?: number } {
  if (typeof value !== "object" || value === null) return false;
  const { k, w, n } = value as Record<string, unknown>;
  return typeof k === "string" && k.length <= 256 && (n === undefined || count(n)) &&
    (w === undefined || w === "timeout" || w === "disconnect" || w === "shutdown" || w === "left");
}

/** Whether a host's credit for a request's body says how many bytes it wrote away: `{ n }`. */
export function isCredit(value: unknown): value is { n: number } {
  return typeof value === "object" && value !== null && count((value as { n?: unknown }).n);
}

/** Whether a log record relayed by a host has the types of {@linkcode HostLog}. */
export function isHostLog(value: unknown): value is HostLog {
  if (typeof value !== "object" || value === null) return false;
  const { host, r } = value as Record<string, unknown>;
  if (!text(host, 256) || typeof r !== "object" || r === null) return false;
  const { c, l, m, t, p } = r as Record<string, unknown>;
  return Array.isArray(c) && c.length <= 16 && c.every((name) => text(name, 128)) && isLogLevel(l) &&
    typeof m === "string" && finite(t) && typeof p === "object" && p !== null && !Array.isArray(p);
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
  return typeof b.id === "string" && HOST_ID.test(b.id) && text(b.name, 256) && count(b.pid) &&
    count(b.free, 1 << 20) && count(b.slots, 1 << 20) && count(b.every, 3_600_000) && (b.every as number) > 0 &&
    count(b.queue) && (b.bye === undefined || b.bye === 1) && Array.isArray(b.workers) &&
    b.workers.length <= 4096 && b.workers.every(isWorkerStatus);
}

/** A WebSocket frame from the dispatcher to the host holding the socket's worker: `f` the frame type. */
export interface SocketIn {
  /** The handshake's reply subject: the socket's name between them. */
  k: string;
  f: 7 | 8 | 9;
  /** Binary message. */
  b?: 1;
  /** Close code and reason (`WS_CLOSED`). */
  c?: number;
  r?: string;
}

/** A WebSocket frame from the host's worker to the dispatcher: `f` the frame type, `a` the handshake's token. */
export interface SocketOut {
  a: string;
  f: 43 | 44 | 45 | 46;
  b?: 1;
  c?: number;
  r?: string;
  /** Topic (`SUBSCRIBE`, `UNSUBSCRIBE`). */
  t?: string;
}

const closeFields = (c: unknown, r: unknown) =>
  (c === undefined || (count(c, 4999) && (c as number) >= 1000)) && (r === undefined || text(r, 123));

/** Whether `value` is a {@linkcode SocketIn}. */
export function isSocketIn(value: unknown): value is SocketIn {
  if (typeof value !== "object" || value === null) return false;
  const { k, f, b, c, r } = value as Record<string, unknown>;
  return text(k, 256) && (f === 7 || f === 8 || f === 9) && (b === undefined || b === 1) && closeFields(c, r);
}

/** Whether `value` is a {@linkcode SocketOut}. */
export function isSocketOut(value: unknown): value is SocketOut {
  if (typeof value !== "object" || value === null) return false;
  const { a, f, b, c, r, t } = value as Record<string, unknown>;
  const topic = f === 45 || f === 46 ? text(t, 1024) : t === undefined;
  return typeof a === "string" && (f === 43 || f === 44 || f === 45 || f === 46) && (b === undefined || b === 1) &&
    closeFields(c, r) && topic;
}

/** Whether `value` is a publication's header, `{ t, b? }`. */
export function isPublication(value: unknown): value is { t: string; b?: 1 } {
  if (typeof value !== "object" || value === null) return false;
  const { t, b } = value as Record<string, unknown>;
  return text(t, 1024) && (b === undefined || b === 1);
}

/** A dispatcher's word to the worker hosts, on `S.ctl`: `scale` to `workers`, or `reload`; only `host` when named. */
export type Steer = { op: "scale"; workers: number; host?: string } | { op: "reload"; host?: string };

/** A host's answer to a {@linkcode Steer}: its name, and the workers it now runs or replaced. */
export interface SteerAnswer {
  host: string;
  workers?: number;
  replaced?: number;
}

/** Whether `value` is a {@linkcode Steer}: scaling within the pool option's own bounds (checked again by the pool). */
export function isSteer(value: unknown): value is Steer {
  if (typeof value !== "object" || value === null) return false;
  const { op, workers, host } = value as Record<string, unknown>;
  if (host !== undefined && !text(host, 256)) return false;
  return op === "reload" ? workers === undefined : op === "scale" && count(workers, 1024) && (workers as number) > 0;
}

/** Whether `value` is a {@linkcode SteerAnswer}. */
export function isSteerAnswer(value: unknown): value is SteerAnswer {
  if (typeof value !== "object" || value === null) return false;
  const { host, workers, replaced } = value as Record<string, unknown>;
  return text(host, 256) && (workers === undefined || count(workers, 1024)) &&
    (replaced === undefined || count(replaced, 1 << 20));
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
export function partSize(maxPayload: number): number {
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
