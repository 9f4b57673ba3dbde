/**
 * The binary channel between the dispatcher and a worker: frames with a small
 * JSON header and raw body bytes, written coalesced once per event-loop turn.
 *
 * Frame layout (big-endian):
 * `magic u8 | type u8 | header length u32 | body length u32 | header JSON | body`.
 *
 * @module
 */

import { setImmediate } from "node:timers";

/** First byte of every frame; anything else on the channel is garbage. */
export const MAGIC = 0xf5;
/** Size of the fixed part of a frame. */
export const PREFIX = 10;
const MAX_HEADER = 16 * 1024 * 1024;
const MAX_BODY = 1024 * 1024 * 1024;

/** Frame types. Dispatcher to worker below 32, worker to dispatcher from 32. */
export const F = {
  INIT: 1,
  REQUEST: 2,
  CONFIG: 3,
  CANCEL: 4,
  STOP: 5,
  READY: 32,
  HEARTBEAT: 33,
  RESPONSE: 34,
  START: 35,
  CHUNK: 36,
  END: 37,
  LOG: 38,
  KEEPALIVE: 39,
  PAUSE: 40,
  RESUME: 41,
} as const;

const EMPTY: Uint8Array = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Thrown by {@linkcode FrameDecoder} when bytes on the channel are not a frame. */
export class ChannelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChannelError";
  }
}

/** Callback receiving one decoded frame. */
export type FrameHandler = (type: number, header: any, body: Uint8Array) => void;

/** Incremental decoder: feed it chunks, it calls back once per whole frame. */
export class FrameDecoder {
  #pending: Uint8Array = EMPTY;
  #onFrame: FrameHandler;

  constructor(onFrame: FrameHandler) {
    this.#onFrame = onFrame;
  }

  /** Feeds a chunk; throws {@linkcode ChannelError} on garbage. */
  push(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.#pending.length > 0) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending, 0);
      buf.set(chunk, this.#pending.length);
    }
    let off = 0;
    const len = buf.length;
    while (len - off >= PREFIX) {
      if (buf[off] !== MAGIC) throw new ChannelError(`bad frame start byte ${buf[off]}`);
      const type = buf[off + 1];
      const hlen = ((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0;
      const blen = ((buf[off + 6] << 24) | (buf[off + 7] << 16) | (buf[off + 8] << 8) | buf[off + 9]) >>> 0;
      if (hlen > MAX_HEADER || blen > MAX_BODY) throw new ChannelError("frame too large");
      const end = off + PREFIX + hlen + blen;
      if (end > len) break;
      let header: unknown = undefined;
      if (hlen > 0) {
        try {
          header = JSON.parse(decoder.decode(buf.subarray(off + PREFIX, off + PREFIX + hlen)));
        } catch {
          throw new ChannelError("frame header is not JSON");
        }
      }
      const body = blen > 0 ? buf.subarray(off + PREFIX + hlen, end) : EMPTY;
      off = end;
      this.#onFrame(type, header, body);
    }
    this.#pending = off === len ? EMPTY : buf.subarray(off);
  }
}

/** Where a {@linkcode FrameWriter} sends its bytes; a returned promise means "wait". */
export type ByteSink = (data: Uint8Array) => Promise<void> | undefined;

/** Encodes frames into one buffer and hands it to the sink once per event-loop turn. */
export class FrameWriter {
  #buf: Uint8Array = new Uint8Array(16 * 1024);
  #len = 0;
  #scheduled = false;
  #blocked: Promise<void> | undefined;
  #sink: ByteSink;
  #closed = false;
  #flushNow = () => {
    this.#scheduled = false;
    this.#flush();
  };

  constructor(sink: ByteSink) {
    this.#sink = sink;
  }

  #reserve(n: number) {
    const need = this.#len + n;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** Queues one frame. `header` is JSON-encoded; `body` is copied as is. */
  send(type: number, header?: unknown, body: Uint8Array = EMPTY): void {
    if (this.#closed) return;
    const json = header === undefined ? "" : JSON.stringify(header);
    this.#reserve(PREFIX + json.length * 3 + body.length);
    const buf = this.#buf;
    const start = this.#len;
    const hlen = json.length === 0 ? 0 : encoder.encodeInto(json, buf.subarray(start + PREFIX)).written;
    const blen = body.length;
    buf[start] = MAGIC;
    buf[start + 1] = type;
    buf[start + 2] = hlen >>> 24;
    buf[start + 3] = (hlen >>> 16) & 255;
    buf[start + 4] = (hlen >>> 8) & 255;
    buf[start + 5] = hlen & 255;
    buf[start + 6] = blen >>> 24;
    buf[start + 7] = (blen >>> 16) & 255;
    buf[start + 8] = (blen >>> 8) & 255;
    buf[start + 9] = blen & 255;
    if (blen > 0) buf.set(body, start + PREFIX + hlen);
    this.#len = start + PREFIX + hlen + blen;
    if (!this.#scheduled && this.#blocked === undefined) {
      this.#scheduled = true;
      setImmediate(this.#flushNow);
    }
  }

  #flush() {
    if (this.#len === 0 || this.#blocked !== undefined) return;
    const data = this.#buf.subarray(0, this.#len);
    // The sink may keep the bytes until they are written: never reuse them.
    this.#buf = new Uint8Array(Math.min(this.#buf.length, 1024 * 1024));
    this.#len = 0;
    const wait = this.#sink(data);
    if (wait !== undefined) {
      this.#blocked = wait.then(() => {
        this.#blocked = undefined;
        this.#flush();
      });
    }
  }

  /** Writes whatever is queued now and resolves once the sink has taken it all. */
  async drain(): Promise<void> {
    this.#flush();
    while (this.#blocked !== undefined) {
      await this.#blocked;
      this.#flush();
    }
  }

  /** Drops everything queued and ignores later frames. */
  close(): void {
    this.#closed = true;
    this.#len = 0;
  }
}
