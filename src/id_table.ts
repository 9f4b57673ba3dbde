/**
 * `IdTable`: the requests in flight, by request id.
 *
 * Why not a `Map`: request ids only grow, and every request is added and
 * deleted once. Under that churn a V8 `Map` keeps rehashing, and its obsolete
 * tables, once old, keep finished requests alive through every young-generation
 * collection (see `git log -S IdTable` for the measurements).
 *
 * This table is open addressing with linear probing over a power-of-two array,
 * deletion by backward shift (no tombstones), and it clears every array it
 * leaves behind when it resizes, so nothing obsolete points at a request.
 *
 * @module
 */

const MIN_CAPACITY = 16;

/** Integer-keyed table of values that are never `undefined`. */
export class IdTable<V> {
  #keys: Float64Array = new Float64Array(MIN_CAPACITY);
  #values: (V | undefined)[] = new Array<V | undefined>(MIN_CAPACITY).fill(undefined);
  #mask = MIN_CAPACITY - 1;
  #size = 0;

  /** Entries in the table. */
  get size(): number {
    return this.#size;
  }

  #slot(id: number): number {
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    let i = id & mask;
    while (values[i] !== undefined && keys[i] !== id) i = (i + 1) & mask;
    return i;
  }

  /** The value stored under `id`. */
  get(id: number): V | undefined {
    return this.#values[this.#slot(id)];
  }

  /** Whether `id` is in the table. */
  has(id: number): boolean {
    return this.#values[this.#slot(id)] !== undefined;
  }

  /** Stores `value` under `id`, replacing any value there. */
  set(id: number, value: V): void {
    const i = this.#slot(id);
    if (this.#values[i] === undefined) {
      this.#size++;
      this.#keys[i] = id;
    }
    this.#values[i] = value;
    if (this.#size * 2 > this.#values.length) this.#resize(this.#values.length * 2);
  }

  /** Removes `id`; false when it was not there. */
  delete(id: number): boolean {
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    let i = this.#slot(id);
    if (values[i] === undefined) return false;
    // Backward shift: move later entries of the same probe run into the hole.
    for (let j = (i + 1) & mask; values[j] !== undefined; j = (j + 1) & mask) {
      const home = keys[j] & mask;
      // Entry j may fill hole i unless its home slot lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        keys[i] = keys[j];
        values[i] = values[j];
        i = j;
      }
    }
    values[i] = undefined;
    this.#size--;
    if (values.length > MIN_CAPACITY * 4 && this.#size * 8 < values.length) this.#resize(values.length / 2);
    return true;
  }

  /** The values, as a new array: the table may change while the caller walks it. */
  values(): V[] {
    const out: V[] = [];
    if (this.#size === 0) return out;
    for (const value of this.#values) if (value !== undefined) out.push(value);
    return out;
  }

  /** Removes everything. */
  clear(): void {
    this.#values.fill(undefined);
    this.#size = 0;
    if (this.#values.length > MIN_CAPACITY) this.#resize(MIN_CAPACITY);
  }

  #resize(capacity: number) {
    const keys = this.#keys;
    const values = this.#values;
    this.#keys = new Float64Array(capacity);
    this.#values = new Array<V | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (value === undefined) continue;
      const j = this.#slot(keys[i]);
      this.#keys[j] = keys[i];
      this.#values[j] = value;
    }
    values.fill(undefined);
  }
}
