/**
 * A request body crossing to the worker host that took its request, in parts
 * and under credit: the dispatcher sends a window's worth, and more as the host
 * says it wrote them away. A host writes a large body to a spill file as its
 * parts come, and its worker reads it from there, so that no upload is held
 * whole in a host's memory nor piles up in NATS's buffers.
 *
 * @module
 */

import type { Body, SpilledBody } from "../protocol/body.ts";
import { SPILL_THRESHOLD, spillPrefix } from "../protocol/spill.ts";
import type { Runtime, SpillFiles } from "../runtime.ts";

/** Body bytes a dispatcher sends beyond what the host has written away: a few parts keep the hop busy. */
export const UPLOAD_WINDOW = 4 * 1024 * 1024;

const EMPTY = new Uint8Array(0);
/** Numbers the spill files of uploads. */
let uploads = 0;

/** The body of a request a host took, from the dispatcher's side: its parts, cut as they are sent. */
export class OutgoingBody {
  readonly #chunks: readonly Uint8Array[];
  #index = 0;
  #offset = 0;
  #credit = UPLOAD_WINDOW;

  constructor(body: Body) {
    this.#chunks = body instanceof Uint8Array ? [body] : body;
  }

  /** Whether every byte was sent. */
  get done(): boolean {
    return this.#index >= this.#chunks.length;
  }

  /** The next `size` bytes at most, credit or not (the first part, beside the request's header). */
  take(size: number): Uint8Array {
    const chunks = this.#chunks;
    while (this.#index < chunks.length && this.#offset >= chunks[this.#index].length) this.#next();
    if (this.done || size <= 0) return EMPTY;
    const chunk = chunks[this.#index];
    if (chunk.length - this.#offset >= size || this.#index === chunks.length - 1) {
      // Within one chunk: a view, no copy.
      const part = chunk.subarray(this.#offset, this.#offset + size);
      this.#offset += part.length;
      if (this.#offset >= chunk.length) this.#next();
      return part;
    }
    const out: Uint8Array[] = [];
    let n = 0;
    while (n < size && !this.done) {
      const piece = chunks[this.#index].subarray(this.#offset, this.#offset + size - n);
      out.push(piece);
      n += piece.length;
      this.#offset += piece.length;
      if (this.#offset >= chunks[this.#index].length) this.#next();
    }
    const part = new Uint8Array(n);
    let at = 0;
    for (const piece of out) {
      part.set(piece, at);
      at += piece.length;
    }
    return part;
  }

  /** The parts of at most `size` bytes that the host's credit allows now. */
  *parts(size: number): Generator<Uint8Array> {
    while (this.#credit > 0 && !this.done) {
      const part = this.take(size);
      if (part.length === 0) return;
      this.#credit -= part.length;
      yield part;
    }
  }

  /** The host wrote `bytes` more away: as many more may go. */
  grant(bytes: number): void {
    this.#credit = Math.min(UPLOAD_WINDOW, this.#credit + bytes);
  }

  #next() {
    this.#index++;
    this.#offset = 0;
  }
}

/**
 * The body of a request a host took, from the host's side: bytes past the declared length are dropped, and a body
 * from {@linkcode SPILL_THRESHOLD} bytes on goes to `path` in the host's spill directory when it has one (and into
 * memory when the file cannot be written).
 */
export class IncomingBody {
  readonly length: number;
  #received = 0;
  #parts: Uint8Array[] | null = null;
  #file: string | null;
  readonly #files: SpillFiles | null;

  /** `runtime`: the host's, whose spill directory takes the file. */
  constructor(length: number, runtime: Pick<Runtime, "pid" | "spill">) {
    this.length = length;
    const files = this.#files = runtime.spill();
    const name = `${spillPrefix(runtime.pid)}up-${++uploads}`;
    this.#file = files !== null && length >= SPILL_THRESHOLD ? `${files.dir}/${name}` : null;
    if (this.#file === null) this.#parts = [];
  }

  /** Whether every byte came. */
  get complete(): boolean {
    return this.#received >= this.length;
  }

  /** Whether bytes were lost: the file could be neither written nor read back. The request must fail. */
  lost = false;

  /** Adds the next part (copied or written away: it may be a view into a message); returns the bytes taken. */
  add(part: Uint8Array): number {
    const bytes = part.subarray(0, this.length - this.#received);
    if (bytes.length === 0) return 0;
    if (this.#file !== null) {
      try {
        this.#files!.write(this.#file, [bytes], this.#received);
      } catch {
        // No room or no permission: what the file holds comes back into memory, and the rest stays there.
        try {
          this.#parts = this.#received === 0 ? [] : [this.#files!.read(this.#file, this.#received).slice()];
        } catch {
          this.#parts = [];
          this.lost = true;
        }
        this.discard();
      }
    }
    if (this.#parts !== null) this.#parts.push(bytes.slice());
    this.#received += bytes.length;
    return bytes.length;
  }

  /** The whole body, for the host's pool: in memory, or as its file (which the host removes once it is answered). */
  take(): { body: Body; bodyFile?: SpilledBody } {
    if (this.#file !== null) return { body: EMPTY, bodyFile: { path: this.#file, length: this.length } };
    return { body: this.#parts ?? [] };
  }

  /** Removes the file, if there is one: the request is answered or given up. */
  discard(): void {
    if (this.#file === null) return;
    this.#files!.unlink(this.#file);
    this.#file = null;
  }
}
