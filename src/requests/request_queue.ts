/**
 * Requests waiting for a worker, first in first out. An array with a moving
 * head: taking from the front costs nothing, and the array is compacted only
 * once most of it is behind the head.
 *
 * @module
 */

/** A first-in-first-out queue of waiting items. */
export class RequestQueue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Items waiting. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** The item waiting longest, without taking it. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  /** Adds an item at the back. */
  push(item: T): void {
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    this.#items.push(item);
  }

  /** Puts items back at the front, in their order (requests retried on another worker go first). */
  pushFront(items: readonly T[]): void {
    this.#items.splice(this.#head, 0, ...items);
  }

  /** Takes the item waiting longest. */
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    }
    return item;
  }

  /** The items waiting, oldest first. */
  *[Symbol.iterator](): Iterator<T> {
    for (let k = this.#head; k < this.#items.length; k++) yield this.#items[k] as T;
  }

  /** Takes every item, oldest first. */
  takeAll(): T[] {
    const items = this.#items.slice(this.#head) as T[];
    this.#items.length = 0;
    this.#head = 0;
    return items;
  }
}
