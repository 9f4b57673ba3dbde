/**
 * The response a request-listener app writes (`res`): an `http.ServerResponse` as far as apps look, sent to the
 * dispatcher as frames. An answer ended within the event-loop turn it began in goes as one `RESPONSE`; one still being
 * written after that turn (or flushed, or larger than the stream window) goes as `START`, `CHUNK`s and `END`, and
 * `write()` returns `false` once the client is a window behind, with `drain` when it has caught up.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Stream } from "node:stream";
import { EventEmitter } from "node:events";
import type { FrameWriter } from "../protocol/codec.ts";
import { F, KIND, STREAM_WINDOW } from "../protocol/frames.ts";
import type { ListenerRequest } from "./incoming_message.ts";
import type { ListenerSocket } from "./listener_socket.ts";
import type { Inflight } from "./relay.ts";
import { methodsOf, pinMethods } from "./own_methods.ts";

/** Where a response's frames go, and what it tells its worker. */
export interface ResponseChannel {
  writer: FrameWriter;
  /** The request's id. */
  id: number;
  /** The request in the worker's table: credit for a streamed answer arrives on it. */
  entry: Inflight;
  /** Nothing of the answer was sent and it cannot be: 500 for the client, `error` in the log. */
  fail(error: unknown): void;
  /** The request is over: answered, abandoned or failed. */
  done(): void;
}

type HeaderValue = string | number | readonly string[];
type Callback = (error?: Error | null) => void;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Whether answers with `status` have no body: what the app writes is dropped, as Node drops it. */
const noBody = (status: number) => status < 200 || status === 204 || status === 205 || status === 304;
/** The connection's own headers: the dispatcher's server frames the answer itself. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding"]);

function codeError(ErrorType: new (message: string) => Error, code: string, message: string): Error {
  return Object.assign(new ErrorType(message), { code });
}

function checkHeader(name: string, value: unknown): void {
  if (typeof name !== "string" || !TOKEN.test(name)) {
    throw codeError(TypeError, "ERR_INVALID_HTTP_TOKEN", `Header name must be a valid HTTP token ["${name}"]`);
  }
  if (value === undefined) {
    throw codeError(TypeError, "ERR_HTTP_INVALID_HEADER_VALUE", `Invalid value "undefined" for header "${name}"`);
  }
  for (const v of Array.isArray(value) ? value : [value]) {
    if (INVALID_VALUE.test(String(v))) {
      throw codeError(TypeError, "ERR_INVALID_CHAR", `Invalid character in header content ["${name}"]`);
    }
  }
}

function bytesOf(chunk: unknown, encoding: unknown): Uint8Array {
  if (typeof chunk === "string") {
    return Buffer.from(chunk, (typeof encoding === "string" ? encoding : "utf8") as "utf8");
  }
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw codeError(
    TypeError,
    "ERR_INVALID_ARG_TYPE",
    `The "chunk" argument must be of type string or an instance of Buffer or Uint8Array. Received ${typeof chunk}`,
  );
}

/** An `http.ServerResponse` stand-in for one request. */
export class ListenerResponse extends Stream {
  declare statusCode: number;
  declare statusMessage: string | undefined;
  declare req: ListenerRequest;
  declare socket: ListenerSocket | null;
  declare connection: ListenerSocket | null;
  declare sendDate: boolean;
  declare chunkedEncoding: boolean;
  declare shouldKeepAlive: boolean;
  declare useChunkedEncodingByDefault: boolean;
  declare strictContentLength: boolean;
  // Node's getters, kept as data (what Node's would answer): an object whose accessors are its own is slow to make.
  /** Whether the head is decided (`writeHead`, a write, or the end): headers can no longer change. */
  declare headersSent: boolean;
  /** `end()` was called. */
  declare writableEnded: boolean;
  /** `end()` was called (Node's older name). */
  declare finished: boolean;
  /** The answer has been handed to the dispatcher whole. */
  declare writableFinished: boolean;
  declare writable: boolean;
  /** Cancelled, destroyed or failed: nothing more is sent. */
  declare destroyed: boolean;
  declare closed: boolean;
  declare errored: null;
  declare writableNeedDrain: boolean;
  /** Bytes written and not yet sent. */
  declare writableLength: number;
  declare writableHighWaterMark: number;
  declare writableCorked: number;
  declare writableObjectMode: boolean;
  #channel: ResponseChannel;
  /** A HEAD request: the app's body is not sent. */
  #head: boolean;
  #headers = new Map<string, { name: string; value: HeaderValue }>();
  /** What was written before the answer started to stream. */
  #parts: Uint8Array[] = [];
  #flushing = false;
  #started = false;
  #sent = 0;

  constructor(req: ListenerRequest, channel: ResponseChannel) {
    super();
    pinMethods(this, METHODS);
    this.#channel = channel;
    this.#head = req.method === "HEAD";
    this.statusCode = 200;
    this.statusMessage = undefined;
    this.req = req;
    this.socket = req.socket;
    this.connection = req.socket;
    this.sendDate = true;
    this.chunkedEncoding = false;
    this.shouldKeepAlive = true;
    this.useChunkedEncodingByDefault = true;
    this.strictContentLength = false;
    this.headersSent = false;
    this.writableEnded = false;
    this.finished = false;
    this.writableFinished = false;
    this.writable = true;
    this.destroyed = false;
    this.closed = false;
    this.errored = null;
    this.writableNeedDrain = false;
    this.writableLength = 0;
    this.writableHighWaterMark = STREAM_WINDOW;
    this.writableCorked = 0;
    this.writableObjectMode = false;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.headersSent) throw this.#sentError("set");
    checkHeader(name, value);
    this.#headers.set(name.toLowerCase(), { name, value });
    return this;
  }

  appendHeader(name: string, value: HeaderValue): this {
    if (this.headersSent) throw this.#sentError("append");
    checkHeader(name, value);
    const key = name.toLowerCase();
    const had = this.#headers.get(key);
    if (had === undefined) this.#headers.set(key, { name, value });
    else had.value = [...(Array.isArray(had.value) ? had.value : [String(had.value)]), ...[value].flat().map(String)];
    return this;
  }

  setHeaders(headers: Headers | Map<string, HeaderValue>): this {
    for (const [name, value] of headers) this.setHeader(name, value);
    return this;
  }

  getHeader(name: string): HeaderValue | undefined {
    return this.#headers.get(String(name).toLowerCase())?.value;
  }

  getHeaders(): Record<string, HeaderValue> {
    const out: Record<string, HeaderValue> = Object.create(null);
    for (const [key, { value }] of this.#headers) out[key] = value;
    return out;
  }

  getHeaderNames(): string[] {
    return [...this.#headers.keys()];
  }

  getRawHeaderNames(): string[] {
    return [...this.#headers.values()].map((h) => h.name);
  }

  hasHeader(name: string): boolean {
    return this.#headers.has(String(name).toLowerCase());
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw this.#sentError("remove");
    this.#headers.delete(String(name).toLowerCase());
  }

  writeHead(
    statusCode: number,
    reason?: string | Record<string, HeaderValue> | HeaderValue[],
    headers?: Record<string, HeaderValue> | HeaderValue[],
  ): this {
    if (this.headersSent) throw this.#sentError("write the head of");
    const status = Number(statusCode);
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw codeError(RangeError, "ERR_HTTP_INVALID_STATUS_CODE", `Invalid status code: ${statusCode}`);
    }
    if (typeof reason === "string") this.statusMessage = reason;
    else headers = reason;
    if (Array.isArray(headers)) {
      // [name, value, name, value] or [[name, value], ...]: they replace the names set before, repeats kept.
      const pairs = (Array.isArray(headers[0]) ? headers.flat() : headers) as HeaderValue[];
      if (pairs.length % 2 !== 0) throw codeError(TypeError, "ERR_INVALID_ARG_VALUE", "Invalid headers array");
      for (let i = 0; i < pairs.length; i += 2) this.#headers.delete(String(pairs[i]).toLowerCase());
      for (let i = 0; i < pairs.length; i += 2) this.appendHeader(String(pairs[i]), pairs[i + 1]);
    } else if (headers) {
      for (const name of Object.keys(headers)) this.setHeader(name, headers[name]);
    }
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }

  write(chunk: unknown, encoding?: string | Callback, callback?: Callback): boolean {
    if (typeof encoding === "function") [callback, encoding] = [encoding, undefined];
    if (chunk === null) throw codeError(TypeError, "ERR_STREAM_NULL_VALUES", "May not write null values to stream");
    if (this.writableEnded || this.destroyed) {
      const error = this.writableEnded
        ? codeError(Error, "ERR_STREAM_WRITE_AFTER_END", "write after end")
        : codeError(Error, "ERR_STREAM_DESTROYED", "Cannot call write after a stream was destroyed");
      if (callback) queueMicrotask(() => callback(error));
      return false;
    }
    this.#add(bytesOf(chunk, encoding));
    if (callback) queueMicrotask(() => callback(null));
    return !this.#behind();
  }

  end(chunk?: unknown, encoding?: string | Callback, callback?: Callback): this {
    if (typeof chunk === "function") [callback, chunk] = [chunk as Callback, undefined];
    if (typeof encoding === "function") [callback, encoding] = [encoding, undefined];
    if (this.writableEnded || this.destroyed) {
      if (callback) queueMicrotask(() => callback(null));
      return this;
    }
    if (chunk !== undefined && chunk !== null) this.#add(bytesOf(chunk, encoding));
    if (this.destroyed) return this; // a status that cannot answer failed it as it began to stream
    this.headersSent = true;
    this.writableEnded = true;
    this.finished = true;
    this.writable = false;
    const { writer, id } = this.#channel;
    if (!this.#started && !this.#finalStatus()) return this;
    if (this.#started) writer.send(F.END, { i: id });
    else writer.send(F.RESPONSE, { i: id, s: this.statusCode, k: KIND.HEADERS, h: this.#flatHeaders() }, this.#parts);
    this.#parts = [];
    this.writableLength = 0;
    if (callback) this.once("finish", callback);
    queueMicrotask(() => {
      this.writableFinished = true;
      this.emit("finish");
      this.#close(false);
    });
    return this;
  }

  /** Sends the head now: the answer streams from here. */
  flushHeaders(): void {
    if (this.writableEnded || this.destroyed || this.#started) return;
    this.headersSent = true;
    this.#start();
  }

  /** Ends the answer unfinished: a 500 if none of it was sent, else a stream the client sees break. */
  destroy(error?: Error): this {
    if (this.writableEnded || this.destroyed) return this;
    this.#abandon(error ?? new Error("The app destroyed the response before it ended"));
    return this;
  }

  /**
   * The request was cancelled (the client left, or it timed out): nothing more is sent. Whether none of the answer
   * had been sent (the worker may then answer for the app).
   */
  cancel(): boolean {
    if (this.destroyed || this.writableFinished) return false;
    this.destroyed = true;
    this.#parts = [];
    this.#close(true);
    return !this.#started;
  }

  /**
   * The app failed: the answer ends as {@linkcode ListenerResponse.destroy} ends it. Whether `error` was logged with the
   * 500 that answered (nothing of the answer had been sent).
   */
  failed(error: unknown): boolean {
    if (this.writableEnded || this.destroyed) return false;
    const answered = !this.#started;
    this.#abandon(error);
    return answered;
  }

  setTimeout(_ms?: number, _callback?: () => void): this {
    return this;
  }
  addTrailers(_headers: unknown): void {}
  writeContinue(): void {}
  writeProcessing(): void {}
  writeEarlyHints(_hints: unknown, callback?: () => void): void {
    if (callback) queueMicrotask(callback);
  }
  cork(): void {}
  uncork(): void {}
  assignSocket(_socket: unknown): void {}
  detachSocket(_socket: unknown): void {}
  /** EventEmitter's own: Bun's `http.ServerResponse` has one of its own, which Express's prototype would bring. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    return EventEmitter.prototype.emit.call(this, event, ...args);
  }

  #sentError(what: string): Error {
    return codeError(Error, "ERR_HTTP_HEADERS_SENT", `Cannot ${what} headers after they are sent to the client`);
  }

  #add(data: Uint8Array) {
    this.headersSent = true;
    if (this.#head || data.length === 0 || noBody(this.statusCode)) return;
    if (this.#started) {
      this.#channel.writer.send(F.CHUNK, { i: this.#channel.id }, data);
      this.#sent += data.length;
      return;
    }
    this.#parts.push(data);
    this.writableLength += data.length;
    if (this.writableLength > STREAM_WINDOW) this.#start();
    else if (!this.#flushing) {
      this.#flushing = true;
      // Written over more than a turn: the client gets the answer as it comes.
      setImmediate(() => {
        if (!this.writableEnded && !this.destroyed && !this.#started) this.#start();
      });
    }
  }

  /**
   * Whether the status can answer a request: 1xx are the connection's (an upgrade's 101 above all, which the
   * dispatcher would take for an accepted WebSocket), and the web's `Response` takes 200 to 599. Else the answer fails.
   */
  #finalStatus(): boolean {
    const status = this.statusCode;
    if (Number.isInteger(status) && status >= 200 && status <= 599) return true;
    this.#abandon(new RangeError(`Status ${status} cannot answer a request (expected 200 to 599)`));
    return false;
  }

  #start() {
    if (!this.#finalStatus()) return;
    const { writer, id, entry } = this.#channel;
    this.#started = true;
    entry.credited = 0;
    writer.send(F.START, { i: id, s: this.statusCode, h: this.#flatHeaders() });
    for (const part of this.#parts) writer.send(F.CHUNK, { i: id }, part);
    this.#sent = this.writableLength;
    this.#parts = [];
    this.writableLength = 0;
  }

  /** Whether the client is a window behind: the app should wait for `drain`. */
  #behind(): boolean {
    if (!this.#started || this.#sent - (this.#channel.entry.credited ?? 0) <= STREAM_WINDOW) return false;
    if (!this.writableNeedDrain) {
      this.writableNeedDrain = true;
      this.#waitCredit();
    }
    return true;
  }

  #waitCredit() {
    this.#channel.entry.wake = () => {
      if (this.destroyed) return;
      if (this.#sent - (this.#channel.entry.credited ?? 0) > STREAM_WINDOW) return this.#waitCredit();
      this.writableNeedDrain = false;
      this.emit("drain");
    };
  }

  /** The head as the frame carries it: lower-case names, one entry per value, without the connection's own. */
  #flatHeaders(): string[] {
    const flat: string[] = [];
    for (const [key, { value }] of this.#headers) {
      if (HOP_BY_HOP.has(key)) continue;
      if (Array.isArray(value)) { for (const v of value) flat.push(key, String(v)); }
      else flat.push(key, String(value));
    }
    if (!this.#started && !this.#head) {
      // A whole answer's length is its bytes': a wrong Content-Length would break the dispatcher's framing.
      const at = flat.indexOf("content-length");
      if (at >= 0 && at % 2 === 0 && Number(flat[at + 1]) !== this.writableLength) flat.splice(at, 2);
    }
    return flat;
  }

  #abandon(error: unknown) {
    const { writer, id } = this.#channel;
    const started = this.#started;
    this.destroyed = true;
    this.#parts = [];
    if (started) writer.send(F.END, { i: id, e: 1 });
    else this.#channel.fail(error);
    this.#close(true);
  }

  #close(abandoned: boolean) {
    this.closed = true;
    this.writable = false;
    this.req.socket.close(abandoned);
    if (abandoned) this.req.abandon();
    else if (!this.req.destroyed) this.req.destroy();
    this.emit("close");
    this.#channel.done();
  }
}

const METHODS = methodsOf(ListenerResponse.prototype);
