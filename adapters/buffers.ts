/**
 * Buffers for the bodies read from spill files, shared by the adapters' `SpillFiles`.
 *
 * @module
 */

/** Buffers kept for later reads, and the largest kept. */
const KEEP = 4;
const KEEP_SIZE = 8 * 1024 * 1024;

/**
 * The buffers a spill file's bytes are read into, given back with
 * `SpillFiles.recycle()` once nothing uses them and filled again by a
 * later read. A fresh buffer per body costs more than the copy into it: on
 * Node every 1 MiB of fresh external memory pushes V8 towards a mark-compact
 * (about 40 a second in a dispatcher under 1 MiB echo), and Deno zero-fills it.
 */
export class ReadBuffers {
  /** Buffers lent out now: one is never handed out twice. */
  #lent = new WeakSet<ArrayBuffer>();
  #kept: ArrayBuffer[] = [];
  #alloc: (length: number) => ArrayBuffer;

  /** @param alloc A new buffer of its own (not a slice of a shared one) of at least `length` bytes. */
  constructor(alloc: (length: number) => ArrayBuffer) {
    this.#alloc = alloc;
  }

  /** `length` bytes to read into, lent out until {@linkcode give} takes them back. */
  take(length: number): Uint8Array {
    const kept = this.#kept;
    let buffer: ArrayBuffer | undefined;
    for (let i = 0; i < kept.length; i++) {
      if (kept[i].byteLength >= length) {
        buffer = kept[i];
        kept.splice(i, 1);
        break;
      }
    }
    buffer ??= this.#alloc(length);
    this.#lent.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /** Keeps bytes {@linkcode take} lent out for a later one; other bytes, or bytes given back already, are ignored. */
  give(data: Uint8Array): void {
    const buffer = data.buffer as ArrayBuffer;
    if (!this.#lent.delete(buffer)) return;
    if (this.#kept.length < KEEP && buffer.byteLength <= KEEP_SIZE) this.#kept.push(buffer);
  }
}
