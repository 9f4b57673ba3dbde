/**
 * How a handler's value becomes an HTTP answer, written once: a worker encodes
 * it into a `RESPONSE` frame, the dispatcher turns that frame into a web
 * `Response`, and `@sync` handlers and `client.respond()` use the same rules.
 *
 * @module
 */

import { KIND, type Kind, type ResponseHeader } from "./frames.ts";

/** `Content-Type` of each body kind but `HEADERS` (which carries its own). */
export const KIND_TYPES: Readonly<Record<Kind, string>> = {
  [KIND.JSON]: "application/json",
  [KIND.TEXT]: "text/plain; charset=utf-8",
  [KIND.BINARY]: "application/octet-stream",
  [KIND.HEADERS]: "application/octet-stream",
};

/** Statuses whose answers have no body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

/** A handler's value as an answer's status, body kind and body. */
export interface EncodedResult {
  /** 200, or 204 for an empty answer. */
  status: number;
  /** How the body's `Content-Type` is set. */
  kind: Kind;
  /** The body; a string is sent as UTF-8; `null` for none. */
  body: Uint8Array | string | null;
}

/**
 * A handler's plain value (anything but a `Response`) as an answer: `null` or `undefined` is 204 without a body,
 * bytes are binary, a string is text, anything else JSON. Throws `TypeError` for a value JSON cannot carry.
 */
export function encodeResult(value: unknown): EncodedResult {
  if (value === undefined || value === null) return { status: 204, kind: KIND.JSON, body: null };
  if (value instanceof Uint8Array) return { status: 200, kind: KIND.BINARY, body: value };
  if (value instanceof ArrayBuffer) return { status: 200, kind: KIND.BINARY, body: new Uint8Array(value) };
  if (typeof value === "string") return { status: 200, kind: KIND.TEXT, body: value };
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`a ${typeof value} cannot be sent as JSON`);
  return { status: 200, kind: KIND.JSON, body: json };
}

/** A JSON error body: `{"error": message}`. */
export function errorBody(message: string): string {
  return `{"error":${JSON.stringify(message)}}`;
}

/** A JSON error response: `{"error": message}`. */
export function errorResponse(status: number, message: string, headers?: Record<string, string>): Response {
  return new Response(errorBody(message), {
    status,
    headers: headers === undefined
      ? { "content-type": "application/json" }
      : { "content-type": "application/json", ...headers },
  });
}

/**
 * A handler's value as a web `Response`, by {@linkcode encodeResult}'s rules; a `Response` is returned as is. Used
 * where the answer does not cross the channel (`@sync` handlers, `client.respond()`, `RejectRequest`).
 */
export function toResponse(value: unknown, status = 200, headers?: HeadersInit): Response {
  if (value instanceof Response) return value;
  const result = encodeResult(value);
  const h = new Headers(headers);
  if (result.body === null) return new Response(null, { status: status === 200 ? result.status : status, headers: h });
  if (!h.has("content-type")) h.set("content-type", KIND_TYPES[result.kind]);
  return new Response(NULL_BODY.has(status) ? null : result.body as BodyInit, { status, headers: h });
}

/** `headers` as a flat `[name, value, ...]` list. forEach, not for-of: Deno's Headers iterator costs more. */
export function flattenHeaders(headers: Headers): string[] {
  const out: string[] = [];
  headers.forEach((v, k) => out.push(k, v));
  return out;
}

/** A flat `[name, value, ...]` list as `Headers`, with `x-request-id` set to `trace` when given. */
export function headersFrom(flat: readonly string[] | undefined, trace?: string): Headers {
  const headers = new Headers();
  if (flat) { for (let i = 0; i < flat.length; i += 2) headers.append(flat[i], flat[i + 1]); }
  if (trace !== undefined) headers.set("x-request-id", trace);
  return headers;
}

/**
 * Answer headers that describe one connection, not the answer: the dispatcher's server frames every answer itself.
 * `Upgrade` passes, and is never taken for one that `Connection` names: a 426 must say what to upgrade to.
 */
const CONNECTION_FIELDS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header value `Headers` keeps as it is: bytes, no CR, LF or NUL, nothing to trim at either end. */
const PLAIN_VALUE = /^(?:[!-~\x80-\xff](?:[\t -~\x80-\xff]*[!-~\x80-\xff])?)?$/;

/** The `Content-Length` a worker's answer headers state, or `null` for none, one that is not a length, or several. */
function statedLength(flat: readonly string[]): number | null {
  let stated: string | null = null;
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i].length !== 14 || flat[i].toLowerCase() !== "content-length") continue;
    const value = flat[i + 1].trim();
    if (!/^\d{1,15}$/.test(value) || (stated !== null && stated !== value)) return null;
    stated = value;
  }
  return stated === null ? null : Number(stated);
}

/**
 * What may pass of an answer's `Content-Length`: a length in bytes (a `Content-Length` passes only when it says that
 * length, and the server sets it otherwise; a streamed answer is held to it), `"stated"` for an answer to HEAD or a 304
 * (it says the length of the body a GET would get), `"none"` where none may pass (a streamed answer that states none
 * is sent chunked; 204 and 205 have no body).
 */
export type StatedLength = number | "stated" | "none";

/** The `Content-Length` rule of an answer to `head` (a HEAD request) with `status` and `body` (`null`: streamed). */
export function lengthRule(
  head: boolean,
  status: number,
  body: Uint8Array | null,
  flat: readonly string[],
): StatedLength {
  if (head || status === 304) return "stated";
  if (NULL_BODY.has(status)) return "none";
  return body !== null ? body.length : statedLength(flat) ?? "none";
}

/** Whether the answer header `name` (lower case) with `value` may reach the client (see {@linkcode answerHeaders}). */
function passes(name: string, value: string, length: StatedLength, named: readonly string[] | null): boolean {
  if (CONNECTION_FIELDS.has(name) || (named !== null && named.includes(name))) return false;
  if (name !== "content-length") return true;
  return length === "stated" || (typeof length === "number" && value.trim() === String(length));
}

/** The headers a `Connection` header among `flat` names (but `upgrade`), or `null` for none. */
function namedByConnection(flat: readonly string[]): string[] | null {
  let named: string[] | null = null;
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i].length !== 10 || flat[i].toLowerCase() !== "connection") continue;
    for (const token of flat[i + 1].toLowerCase().split(",")) {
      const name = token.trim();
      if (name !== "upgrade") (named ??= []).push(name);
    }
  }
  return named;
}

/**
 * A worker's answer headers (flat `[name, value, ...]`) as the client may get them, with `x-request-id` set to
 * `trace`: without the headers of a connection (`Connection`, those it names, `Transfer-Encoding`, ...) and with
 * `Content-Length` only where it is true (see {@linkcode lengthRule}). A length that did not match the body would
 * leave the client reading the rest as its next answer. As a record (names in lower case) when `record` asks for one
 * and no name comes twice (several `Set-Cookie`) and none needs `Headers` to check or trim it: `@hono/node-server`
 * writes a record as it is, where it turns a `Headers` back into a record for every answer.
 */
export function answerHeaders(
  flat: readonly string[] | undefined,
  trace: string | undefined,
  length: StatedLength,
  record: boolean,
): Headers | Record<string, string> {
  const fields = flat ?? [];
  const named = namedByConnection(fields);
  if (record) {
    const out: Record<string, string> = {};
    let plain = true;
    for (let i = 0; i < fields.length && plain; i += 2) {
      const name = fields[i].toLowerCase();
      const value = fields[i + 1];
      if (!passes(name, value, length, named)) continue;
      if (name in out || !TOKEN.test(name) || !PLAIN_VALUE.test(value)) plain = false;
      else out[name] = value;
    }
    if (plain) {
      if (trace !== undefined) out["x-request-id"] = trace;
      return out;
    }
  }
  const headers = new Headers();
  for (let i = 0; i < fields.length; i += 2) {
    if (passes(fields[i].toLowerCase(), fields[i + 1], length, named)) headers.append(fields[i], fields[i + 1]);
  }
  if (trace !== undefined) headers.set("x-request-id", trace);
  return headers;
}

/**
 * The `Response` a `RESPONSE` frame describes, with `x-request-id` set to `trace`. `traceAfter`: set that header
 * after the response is made rather than in its headers record (cheaper where the runtime converts a record
 * slowly; see `Runtime.setHeaderAfter`). `head`: the answer to a HEAD request.
 */
export function responseFromFrame(
  h: ResponseHeader,
  body: Uint8Array,
  trace: string | undefined,
  traceAfter: boolean,
  head = false,
): Response {
  const status = h.s;
  const kind = h.k ?? KIND.JSON;
  if (status === 204 && body.length === 0 && kind !== KIND.HEADERS) {
    return new Response(null, { status, headers: trace === undefined ? undefined : { "x-request-id": trace } });
  }
  let headers: Record<string, string> | Headers;
  if (kind === KIND.HEADERS) {
    headers = answerHeaders(h.h, trace, lengthRule(head, status, body, h.h ?? []), !traceAfter);
  } else {
    const type = KIND_TYPES[kind];
    // A literal: cheaper than spreading a shared object into a new one.
    headers = trace !== undefined && !traceAfter
      ? { "content-type": type, "x-request-id": trace }
      : { "content-type": type };
  }
  const response = new Response(NULL_BODY.has(status) ? null : body as BodyInit, { status, headers });
  if (traceAfter && trace !== undefined && kind !== KIND.HEADERS) response.headers.set("x-request-id", trace);
  return response;
}
