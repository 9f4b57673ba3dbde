/**
 * `WorkerSocket`: a WebSocket as a worker's handlers see it. The client's
 * connection is the dispatcher's; this object sends and closes through the
 * worker's channel, by the socket's id.
 *
 * @module
 */

import { type FrameWriter, LARGE_BODY } from "../protocol/codec.ts";
import { F } from "../protocol/frames.ts";
import type { PathParams } from "../routing.ts";
import type { WorkerRequest } from "./request.ts";

/** What a `@ws` route's method returns: the handlers of one socket's life. Each may be async. */
export interface WebSocketHandler {
  /** The client is connected; `req` is the handshake request. */
  onOpen?(ws: WorkerSocket, req: WorkerRequest): void | Promise<void>;
  /** A message from the client: text as a string, binary as bytes. */
  onMessage?(ws: WorkerSocket, data: string | Uint8Array): void | Promise<void>;
  /** The socket closed, by either side or because the dispatcher closed it (1001, 1009, 1012, ...). */
  onClose?(ws: WorkerSocket, code: number, reason: string): void | Promise<void>;
}

/** `readyState` values, as the web's `WebSocket` has them. */
export const READY_STATE = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;

/** Internal: the dispatcher says the client is connected. */
export const OPENED: unique symbol = Symbol("opened");
/** Internal: the dispatcher says the socket closed. */
export const CLOSED: unique symbol = Symbol("closed");
/** Internal: subscribe to, or leave, a topic. */
export const TOPIC: unique symbol = Symbol("topic");

const encoder = new TextEncoder();

/** A close code an application may send (RFC 6455, section 7.4). */
function sendableCode(code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999));
}

/** A WebSocket served by this worker: the dispatcher holds the connection and relays both ways. */
export class WorkerSocket {
  /** The socket's id, unique among the dispatcher's open sockets (the handshake's request id). */
  readonly id: number;
  /** The handshake's decoded path. */
  readonly path: string;
  /** The route's path parameters. */
  readonly params: PathParams;
  /** The handshake's headers. */
  readonly headers: Headers;
  /** The handshake's trace id (`X-Request-ID`). */
  readonly traceId: string | null;
  /** The subprotocol agreed on, or `null`. */
  readonly protocol: string | null;
  /** Anything the application wants to keep with the socket. */
  data: Record<string, unknown> = {};
  #state: number = READY_STATE.CONNECTING;
  #writer: FrameWriter;

  /** Made by the worker loop when it accepts a handshake; not by applications. */
  constructor(id: number, request: WorkerRequest, protocol: string | null, writer: FrameWriter) {
    this.id = id;
    this.path = request.path;
    this.params = request.pathParams;
    this.headers = request.headers;
    this.traceId = request.traceId;
    this.protocol = protocol;
    this.#writer = writer;
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed (see {@linkcode READY_STATE}). */
  get readyState(): number {
    return this.#state;
  }

  /**
   * Sends a message: a string as text, bytes as binary. Throws when the socket is not open (not yet, or no more),
   * so that a handler sending to a client that left gets an error it can catch.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.#state !== READY_STATE.OPEN) {
      throw new Error(`WebSocket ${this.id} is ${this.#state === READY_STATE.CONNECTING ? "not open yet" : "closed"}`);
    }
    if (typeof data === "string") this.#writer.send(F.WS_SEND, { i: this.id }, data);
    else {
      // The channel keeps large bodies by reference until it writes them: the caller may reuse its buffer at once.
      const bytes = bytesOf(data);
      this.#writer.send(F.WS_SEND, { i: this.id, b: 1 }, bytes.length >= LARGE_BODY ? bytes.slice() : bytes);
    }
  }

  /**
   * Closes the socket with `code` (1000 by default; 1000–1014 or 3000–4999) and `reason` (up to 123 bytes).
   * `onClose` follows once the dispatcher has closed it. Closing a closed socket does nothing.
   */
  close(code: number = 1000, reason: string = ""): void {
    if (!sendableCode(code)) throw new RangeError(`Invalid WebSocket close code ${code}`);
    if (encoder.encode(reason).length > 123) throw new RangeError("WebSocket close reason longer than 123 bytes");
    if (this.#state >= READY_STATE.CLOSING) return;
    this.#state = READY_STATE.CLOSING;
    this.#writer.send(F.WS_CLOSE, { i: this.id, c: code, r: reason });
  }

  /** @internal */
  [OPENED](): void {
    if (this.#state === READY_STATE.CONNECTING) this.#state = READY_STATE.OPEN;
  }

  /** @internal */
  [CLOSED](): void {
    this.#state = READY_STATE.CLOSED;
  }

  /** @internal Subscribes (`join`) or leaves a topic; nothing once closed. */
  [TOPIC](topic: string, join: boolean): void {
    if (this.#state === READY_STATE.CLOSED) return;
    this.#writer.send(join ? F.SUBSCRIBE : F.UNSUBSCRIBE, { i: this.id, t: topic });
  }
}

/** The bytes of an `ArrayBuffer` or a view, without copying. */
export function bytesOf(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}
