/**
 * The request a request-listener app gets (`req`): an `http.IncomingMessage` as far as apps look, made from the frame
 * the dispatcher sent. Its body, whole in the frame, is read as a stream, as from a socket.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import type { ListenerSocket } from "./listener_socket.ts";
import { methodsOf, pinMethods } from "./own_methods.ts";

/** Headers Node keeps the first of when a request repeats them; it joins the others (`cookie` with "; "). */
const FIRST_ONLY = new Set([
  "age",
  "authorization",
  "content-length",
  "content-type",
  "etag",
  "expires",
  "from",
  "host",
  "if-modified-since",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "proxy-authorization",
  "referer",
  "retry-after",
  "server",
  "user-agent",
]);

/** A flat `[name, value, ...]` list as Node's `req.headers`: `set-cookie` an array, repeats joined as Node joins them. */
export function nodeHeaders(flat: readonly string[]): Record<string, string | string[]> {
  // As Node's: without a prototype, so that no header name (constructor, __proto__) meets an inherited property.
  const headers: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i];
    const value = flat[i + 1];
    const had = headers[name];
    if (name === "set-cookie") {
      if (had === undefined) headers[name] = [value];
      else (had as string[]).push(value);
    } else if (had === undefined) headers[name] = value;
    else if (!FIRST_ONLY.has(name)) headers[name] = had + (name === "cookie" ? "; " : ", ") + value;
  }
  return headers;
}

/** An `http.IncomingMessage` stand-in for one request. */
export class ListenerRequest extends Readable {
  declare method: string;
  declare url: string;
  declare headers: Record<string, string | string[]>;
  declare rawHeaders: string[];
  declare httpVersion: string;
  declare httpVersionMajor: number;
  declare httpVersionMinor: number;
  /** The body has arrived whole: always so here (the dispatcher sends a body once it has all of it). */
  declare complete: boolean;
  declare aborted: boolean;
  declare upgrade: boolean;
  declare socket: ListenerSocket;
  declare connection: ListenerSocket;
  declare trailers: Record<string, string>;
  declare rawTrailers: string[];
  declare statusCode: null;
  declare statusMessage: null;

  /** `url`: the raw path and query as the app sees them (below its mount); `flat`: the headers, flattened. */
  constructor(method: string, url: string, flat: string[], body: Uint8Array, socket: ListenerSocket) {
    let rest: Uint8Array | null = body.length > 0 ? body : null;
    super({
      read() {
        if (rest !== null) this.push(Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength));
        rest = null;
        this.push(null);
      },
      destroy(error, callback) {
        callback(error);
      },
    });
    pinMethods(this, METHODS);
    this.method = method;
    this.url = url;
    this.headers = nodeHeaders(flat);
    this.rawHeaders = flat;
    this.httpVersion = "1.1";
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.complete = true;
    this.aborted = false;
    this.upgrade = false;
    this.socket = socket;
    this.connection = socket;
    this.trailers = {};
    this.rawTrailers = [];
    this.statusCode = null;
    this.statusMessage = null;
  }

  /** The client left or the request timed out: `aborted`, then `close`, as Node says it. */
  abandon(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit("aborted");
    this.destroy();
  }

  /** A no-op: the dispatcher's timeouts apply. */
  setTimeout(_ms?: number, _callback?: () => void): this {
    return this;
  }

  /** A no-op: an unread body is dropped with the request. */
  _dump(): void {}
}

const METHODS = methodsOf(ListenerRequest.prototype);
