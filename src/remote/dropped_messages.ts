/**
 * Messages from NATS that are not what they claim to be (malformed, or not from the host that took the request):
 * dropped, counted, and the first one logged, so that a flood of them costs one log line.
 *
 * @module
 */

/** The messages one dispatcher's pool or one worker host dropped. */
export class DroppedMessages {
  #count = 0;
  readonly #warn: (what: string) => void;

  /** `warn(what)`: logs the first one. */
  constructor(warn: (what: string) => void) {
    this.#warn = warn;
  }

  /** How many so far. */
  get count(): number {
    return this.#count;
  }

  /** Drops one, naming `what` it was. */
  drop(what: string): void {
    if (this.#count++ === 0) this.#warn(what);
  }
}
