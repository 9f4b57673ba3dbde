/**
 * Reused buffers for large bodies.
 *
 * @module
 */

/** Bytes of spill-file reads kept per process for later ones (e.g. 16 bodies of 1 MiB). */
export const SPILL_BUFFERS = 16 * 1024 * 1024;

/**
 * Buffers that large bodies are read into (from a spill file, or a frame
 * larger than one read from the channel), given back once nothing uses them
 * and filled again by a later read. A fresh buffer per body costs more than
 * the copy into it: on Node fresh external memory drives V8 towards full
 * collections, and Deno zero-fills it.
 */
export class ReadBuffers {
  /** Buffers lent out now: one is never handed out twice. */
  #lent = new WeakSet<ArrayBuffer>();
  #kept: ArrayBuffer[] = [];
  #keptBytes = 0;
  #alloc: (length: number) => ArrayBuffer;
  #budget: number;

  /**
   * @param alloc A new buffer of its own (not a slice of a shared one) of at least `length` bytes.
   * @param budget How many bytes of given-back buffers to keep at most.
   */
  constructor(alloc: (length: number) => ArrayBuffer, budget: number) {
    this.#alloc = alloc;
    this.#budget = budget;
  }

  /** `length` bytes to read into, lent out until {@linkcode give} takes them back. */
  take(length: number): Uint8Array {
    const kept = this.#kept;
    // The smallest kept buffer that fits, so that small bodies leave the large buffers to large ones.
    let best = -1;
    for (let i = 0; i < kept.length; i++) {
      if (kept[i].byteLength >= length && (best < 0 || kept[i].byteLength < kept[best].byteLength)) best = i;
    }
    let buffer: ArrayBuffer;
    if (best < 0) buffer = this.#alloc(length);
    else {
      buffer = kept[best];
      kept[best] = kept[kept.length - 1];
      kept.pop();
      this.#keptBytes -= buffer.byteLength;
    }
    this.#lent.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /**
   * Takes back bytes {@linkcode take} lent out, keeping them for a later one while the budget allows. Returns
   * whether they were lent by this pool: other bytes, or bytes given back already, are ignored.
   */
  give(data: Uint8Array): boolean {
    const buffer = data.buffer as ArrayBuffer;
    if (!this.#lent.delete(buffer)) return false;
    if (this.#keptBytes + buffer.byteLength <= this.#budget) {
      this.#kept.push(buffer);
      this.#keptBytes += buffer.byteLength;
    }
    return true;
  }
}
