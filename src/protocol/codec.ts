/**
 * The codec of the channel between the dispatcher and a worker: frames with a
 * small JSON header and raw body bytes, written coalesced once per event-loop
 * turn, large bodies passed through spill files. `frames.ts` says what each
 * frame means.
 *
 * Frame layout (big-endian):
 * `magic u8 | type u8 | header length u32 | body length u32 | header JSON | body`.
 *
 * @module
 */

import type { SpillFiles } from "../runtime.ts";
import { type Body, bodyLength } from "./body.ts";
import type { FrameHeaders } from "./frames.ts";
import { ReadBuffers } from "./read_buffers.ts";
import type { SpillOptions } from "./spill.ts";

/** First byte of every frame; anything else on the channel is garbage. */
export const MAGIC = 0xf5;
/** Size of the fixed part of a frame. */
export const PREFIX = 10;
const MAX_HEADER = 16 * 1024 * 1024;
const MAX_BODY = 1024 * 1024 * 1024;

const EMPTY: Uint8Array = new Uint8Array(0);

/**
 * Set on a frame's type when its body was written to a file. The frame's body is
 * then the body's length (u32) followed by the file's path.
 */
const SPILLED = 0x80;
/** Read spill files kept per writer for later bodies, and the largest file kept. */
const SPILL_KEEP = 4;
const SPILL_KEEP_SIZE = 8 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Thrown by {@linkcode FrameDecoder} when bytes on the channel are not a frame. */
export class ChannelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChannelError";
  }
}

/**
 * Callback receiving one decoded frame. `lent`: the body's bytes are lent (a large frame, or a spilled body
 * read into reused bytes); give them back with {@linkcode recycleBody} once nothing reads them, or drop them.
 */
export type FrameHandler = (type: number, header: unknown, body: Uint8Array, lent: boolean) => void;

/** Frames from this size on that arrive over several reads are assembled in reused bytes. */
const LENT_FRAME = 64 * 1024;
/** Bytes of such frames kept per process for later ones. */
const FRAME_BUFFERS = 4 * 1024 * 1024;
const frameBuffers = new ReadBuffers((length) => new ArrayBuffer(length), FRAME_BUFFERS);

/**
 * Gives back a body a {@linkcode FrameHandler} got as lent, once nothing reads or writes it any more: a later
 * frame or spill read may fill the same bytes. Bodies that were not lent, or were given back already, are ignored.
 */
export function recycleBody(body: Uint8Array, spill: SpillFiles | null): void {
  if (!frameBuffers.give(body)) spill?.recycle?.(body);
}

/** Incremental decoder: feed it chunks, it calls back once per whole frame. */
export class FrameDecoder {
  /** Bytes of an unfinished frame prefix (fewer than {@linkcode PREFIX}). */
  #pending: Uint8Array = EMPTY;
  /** An unfinished frame whose size is known: filled in place, never re-copied. */
  #frame: Uint8Array | null = null;
  #frameLent = false;
  #filled = 0;
  #onFrame: FrameHandler;
  #spill: SpillFiles | null;
  #onSpillRead: (path: string) => void;

  /**
   * @param onFrame Called once per whole frame.
   * @param spill Reads bodies the other side wrote to files (a spilled frame without it is a channel error).
   * @param onSpillRead Called with a spill file's path once it is read, to tell the writer
   *   (default: remove the file).
   */
  constructor(onFrame: FrameHandler, spill: SpillFiles | null = null, onSpillRead?: (path: string) => void) {
    this.#onFrame = onFrame;
    this.#spill = spill;
    this.#onSpillRead = onSpillRead ?? ((path) => spill?.unlink(path));
  }

  /** Feeds a chunk; throws {@linkcode ChannelError} on garbage. */
  push(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.#frame !== null) {
      const frame = this.#frame;
      const take = Math.min(frame.length - this.#filled, chunk.length);
      frame.set(take === chunk.length ? chunk : chunk.subarray(0, take), this.#filled);
      this.#filled += take;
      if (this.#filled < frame.length) return;
      this.#frame = null;
      this.#parse(frame, this.#frameLent);
      if (take === chunk.length) return;
      buf = chunk.subarray(take);
    } else if (this.#pending.length > 0) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending, 0);
      buf.set(chunk, this.#pending.length);
      this.#pending = EMPTY;
    }
    const rest = this.#parse(buf);
    if (rest === buf.length) return;
    const tail = buf.subarray(rest);
    if (tail.length < PREFIX) {
      this.#pending = tail.slice();
      return;
    }
    // A frame larger than what arrived: allocate it whole once and fill it as chunks come.
    const size = PREFIX + readU32(tail, 2) + readU32(tail, 6);
    this.#frameLent = size >= LENT_FRAME;
    const frame = this.#frameLent ? frameBuffers.take(size) : new Uint8Array(size);
    frame.set(tail, 0);
    this.#frame = frame;
    this.#filled = tail.length;
  }

  /**
   * Decodes every whole frame in `buf`; returns the offset of the first incomplete one. `lent`: `buf` is one
   * frame assembled in lent bytes.
   */
  #parse(buf: Uint8Array, lent = false): number {
    let off = 0;
    const len = buf.length;
    while (len - off >= PREFIX) {
      if (buf[off] !== MAGIC) throw new ChannelError(`bad frame start byte ${buf[off]}`);
      const type = buf[off + 1];
      const hlen = readU32(buf, off + 2);
      const blen = readU32(buf, off + 6);
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
      let body = blen > 0 ? buf.subarray(off + PREFIX + hlen, end) : EMPTY;
      let bodyLent = lent && blen > 0;
      off = end;
      if (type & SPILLED) {
        body = this.#unspill(body);
        bodyLent = this.#spill!.recycle !== undefined;
      }
      this.#onFrame(type & ~SPILLED, header, body, bodyLent);
    }
    return off;
  }

  /** Reads the body a spilled frame names. */
  #unspill(ref: Uint8Array): Uint8Array {
    const path = ref.length > 4 ? decoder.decode(ref.subarray(4)) : "";
    if (this.#spill === null) throw new ChannelError(`spilled body ${path} on a channel without spill files`);
    // Only forkyard's own files in the spill directory: a peer cannot make this side read anything else.
    const name = path.slice(this.#spill.dir.length + 1);
    if (!path.startsWith(this.#spill.dir + "/") || !name.startsWith("forkyard-") || name.includes("/")) {
      throw new ChannelError(`spilled body names ${path}, not a spill file`);
    }
    let body: Uint8Array;
    try {
      body = this.#spill.read(path, readU32(ref, 0));
    } catch (error) {
      throw new ChannelError(`cannot read spilled body ${path}: ${(error as Error).message}`);
    }
    this.#onSpillRead(path);
    return body;
  }
}

function writeU32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = (value >>> 16) & 255;
  buf[at + 2] = (value >>> 8) & 255;
  buf[at + 3] = value & 255;
}

function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}

/** A spilled frame's body: the length of the body in the file, then the file's path. */
function spillRef(path: string, length: number): Uint8Array {
  const ref = new Uint8Array(4 + path.length * 3);
  const n = encoder.encodeInto(path, ref.subarray(4)).written;
  writeU32(ref, 0, length);
  return ref.subarray(0, 4 + n);
}

/** Where a {@linkcode FrameWriter} sends its bytes; a returned promise means "wait". */
export type ByteSink = (data: Uint8Array) => Promise<void> | undefined;

/** Bodies from this size on are handed to the sink as they are instead of being copied. */
export const LARGE_BODY = 64 * 1024;
const BUFFER_SIZE = 64 * 1024;
/** String bodies whose UTF-8 form may be shorter than this are encoded straight into the buffer. */
const SMALL_TEXT = 16 * 1024;

/** Frames of any type with any JSON header: for tests and tools that speak the codec without the protocol. */
export type AnyFrames = { [type: number]: any };

/**
 * Encodes frames into a buffer and hands the bytes to the sink once per
 * event-loop turn. Large bodies are passed along without being copied. `M` maps
 * each frame type to its header (the protocol's, by default).
 */
export class FrameWriter<M extends object = FrameHeaders> {
  #buf: Uint8Array = new Uint8Array(BUFFER_SIZE);
  #start = 0;
  #len = 0;
  /** Pieces ready for the sink, in order, when a large body split the buffer. */
  #parts: Uint8Array[] = [];
  /** Bytes in `#parts`. */
  #queued = 0;
  #scheduled = false;
  #blocked: Promise<void> | undefined;
  #sink: ByteSink;
  #closed = false;
  #spill: SpillOptions | undefined;
  #spilled = 0;
  /** Spill files written and not yet read, with the largest size each has had. */
  #unread = new Map<string, number>();
  /** Spill files read by the other side, ready to be written again. */
  #free: [path: string, size: number][] = [];
  #flushNow = () => {
    this.#scheduled = false;
    this.#flush();
  };

  /**
   * @param sink Where the bytes go.
   * @param spill Where large bodies may go instead (see {@linkcode SpillOptions}).
   */
  constructor(sink: ByteSink, spill?: SpillOptions) {
    this.#sink = sink;
    this.#spill = spill;
  }

  #reserve(n: number) {
    if (this.#len + n <= this.#buf.length) return;
    // Hand over what the buffer holds and start a new one big enough.
    this.#cut();
    if (n > this.#buf.length - this.#len) {
      this.#buf = new Uint8Array(Math.max(BUFFER_SIZE, n));
      this.#start = 0;
      this.#len = 0;
    }
  }

  /** Moves the buffered bytes to the list of parts; the buffer's rest stays usable. */
  #cut() {
    if (this.#len > this.#start) {
      this.#parts.push(this.#buf.subarray(this.#start, this.#len));
      this.#queued += this.#len - this.#start;
    }
    this.#start = this.#len;
  }

  /**
   * Queues one frame. `header` is JSON-encoded; `body` is sent as is (chunks in order, never joined into one
   * buffer), or, given as a string, UTF-8 encoded straight into the buffer (small ones: no intermediate bytes).
   */
  send<T extends keyof M & number>(frame: T, header?: M[T], body: Body | string = EMPTY): void {
    if (this.#closed) return;
    let type: number = frame;
    if (typeof body === "string") {
      if (body.length * 3 < SMALL_TEXT) {
        this.#sendText(type, header, body);
        return;
      }
      body = encoder.encode(body);
    } else if (!(body instanceof Uint8Array) && body.length < 2) body = body[0] ?? EMPTY;
    let blen = bodyLength(body);
    const spill = this.#spill;
    if (spill !== undefined && blen >= spill.threshold) {
      const [path, size] = this.#free.pop() ?? [`${spill.files.dir}/${spill.prefix}${++this.#spilled}`, 0];
      try {
        spill.files.write(path, body instanceof Uint8Array ? [body] : body);
        this.#unread.set(path, Math.max(size, blen));
        type |= SPILLED;
        body = spillRef(path, blen);
        blen = body.length;
      } catch {
        // no room or no permission: the channel carries it from now on
        this.#spill = undefined;
        try {
          spill.files.unlink(path);
        } catch {
          // nothing was written
        }
      }
    }
    const json = header === undefined ? "" : JSON.stringify(header);
    const inline = blen < LARGE_BODY;
    this.#reserve(PREFIX + json.length * 3 + (inline ? blen : 0));
    const buf = this.#buf;
    const start = this.#len;
    const hlen = json.length === 0 ? 0 : encoder.encodeInto(json, buf.subarray(start + PREFIX)).written;
    buf[start] = MAGIC;
    buf[start + 1] = type;
    writeU32(buf, start + 2, hlen);
    writeU32(buf, start + 6, blen);
    this.#len = start + PREFIX + hlen;
    if (inline) {
      if (body instanceof Uint8Array) {
        if (blen > 0) buf.set(body, this.#len);
      } else {
        let off = this.#len;
        for (const chunk of body) {
          buf.set(chunk, off);
          off += chunk.length;
        }
      }
      this.#len += blen;
    } else {
      this.#cut();
      if (body instanceof Uint8Array) this.#parts.push(body);
      else for (const chunk of body) if (chunk.length > 0) this.#parts.push(chunk);
      this.#queued += blen;
    }
    this.#schedule();
  }

  /**
   * Queues a frame whose body `length` bytes at the start of the spill file `path` hold, written there by its
   * caller, who removes it once the request is done: the reader's release of it is ignored.
   */
  sendSpilled<T extends keyof M & number>(frame: T, header: M[T], path: string, length: number): void {
    if (this.#closed) return;
    const ref = spillRef(path, length);
    const json = JSON.stringify(header);
    this.#reserve(PREFIX + json.length * 3 + ref.length);
    const buf = this.#buf;
    const start = this.#len;
    const hlen = encoder.encodeInto(json, buf.subarray(start + PREFIX)).written;
    buf[start] = MAGIC;
    buf[start + 1] = frame | SPILLED;
    writeU32(buf, start + 2, hlen);
    writeU32(buf, start + 6, ref.length);
    buf.set(ref, start + PREFIX + hlen);
    this.#len = start + PREFIX + hlen + ref.length;
    this.#schedule();
  }

  /** A frame whose body is a short string, encoded in place after the header. */
  #sendText(type: number, header: unknown, text: string) {
    const json = header === undefined ? "" : JSON.stringify(header);
    this.#reserve(PREFIX + (json.length + text.length) * 3);
    const buf = this.#buf;
    const start = this.#len;
    const hlen = json.length === 0 ? 0 : encoder.encodeInto(json, buf.subarray(start + PREFIX)).written;
    const blen = encoder.encodeInto(text, buf.subarray(start + PREFIX + hlen)).written;
    buf[start] = MAGIC;
    buf[start + 1] = type;
    writeU32(buf, start + 2, hlen);
    writeU32(buf, start + 6, blen);
    this.#len = start + PREFIX + hlen + blen;
    this.#schedule();
  }

  #schedule() {
    if (!this.#scheduled && this.#blocked === undefined) {
      this.#scheduled = true;
      setImmediate(this.#flushNow);
    }
  }

  #flush() {
    if (this.#blocked !== undefined) return;
    this.#cut();
    if (this.#parts.length === 0) return;
    const parts = this.#parts;
    this.#parts = [];
    this.#queued = 0;
    // The sink may keep the bytes until they are written: never write into them again.
    if (this.#start > this.#buf.length / 2) {
      this.#buf = new Uint8Array(BUFFER_SIZE);
      this.#start = 0;
      this.#len = 0;
    }
    let wait: Promise<void> | undefined;
    for (const part of parts) wait = this.#sink(part) ?? wait;
    if (wait !== undefined) {
      this.#blocked = wait.then(() => {
        this.#blocked = undefined;
        this.#flush();
      });
    }
  }

  /**
   * The other side has read the spill file `path`: keep it for a later body
   * (up to a few, and none larger than 8 MiB) or remove it. Paths this writer
   * is not waiting on are ignored.
   */
  release(path: string): void {
    const size = this.#unread.get(path);
    if (size === undefined) return;
    this.#unread.delete(path);
    if (this.#spill !== undefined && this.#free.length < SPILL_KEEP && size <= SPILL_KEEP_SIZE) {
      this.#free.push([path, size]);
    } else {
      this.#spill?.files.unlink(path);
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

  /**
   * Bytes queued and not yet handed to the sink: while the sink is full (the other side reads slowly), what waits
   * here grows.
   */
  get queued(): number {
    return this.#queued + this.#len - this.#start;
  }

  /** Drops everything queued and ignores later frames. */
  close(): void {
    this.#closed = true;
    this.#parts = [];
    this.#queued = 0;
    this.#start = this.#len;
  }
}
