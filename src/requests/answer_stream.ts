/**
 * A streamed answer on its way to the client: the worker's chunks queued for
 * the HTTP server, which takes them as fast as the client reads. The queue
 * holds at most {@linkcode STREAM_WINDOW} bytes; as the client takes them, its
 * server is given credit for as many (a `CREDIT` frame to a local worker, a
 * message to a worker host), so a slow client slows the worker instead of
 * growing the dispatcher's memory. An answer whose worker stated its length
 * is held to it: one byte more or fewer, and the body breaks off, so that the
 * client sees it cut rather than reading the rest as its next answer.
 *
 * @module
 */

import { STREAM_WINDOW } from "../protocol/frames.ts";

/** Credit is given in batches of at least this many bytes: one message per quarter window, not one per chunk. */
const CREDIT_BATCH = STREAM_WINDOW / 4;

/** The body of a streamed answer, and the credit its reading gives back. */
export class AnswerStream {
  /** What the client's `Response` reads. */
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Bytes queued so far, and bytes given back as credit. */
  #queued = 0;
  #credited = 0;
  #ended = false;
  readonly #length: number | null;
  readonly #cancelled: () => void;
  readonly #abort: (() => void) | undefined;

  /**
   * `credit(n)`: the client took `n` more bytes; `cancelled`: it went away (or the worker sent more than `length`,
   * the `Content-Length` it stated, when not `null`); `abort`: cuts the client's connection where the server would
   * log a body that breaks off as an error with its stack (see `AdapterRequest.abort`).
   */
  constructor(
    credit: (bytes: number) => void,
    cancelled: () => void,
    length: number | null,
    abort: (() => void) | undefined,
  ) {
    this.#length = length;
    this.#cancelled = cancelled;
    this.#abort = abort;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => {
        // Taken by the reader: all queued, less what still waits in the queue.
        const waiting = STREAM_WINDOW - (controller.desiredSize ?? 0);
        const taken = this.#queued - waiting - this.#credited;
        if (taken >= CREDIT_BATCH && !this.#ended) {
          this.#credited += taken;
          credit(taken);
        }
      },
      cancel: cancelled,
    }, new ByteLengthQueuingStrategy({ highWaterMark: STREAM_WINDOW }));
  }

  /** Queues a chunk for the client. */
  push(chunk: Uint8Array): void {
    if (this.#ended) return;
    if (this.#length !== null && this.#queued + chunk.length > this.#length) {
      this.end(true);
      // Not from within the chunk's own handling: the worker is told to stop once that is over.
      queueMicrotask(this.#cancelled);
      return;
    }
    this.#queued += chunk.length;
    try {
      this.#controller.enqueue(chunk);
    } catch {
      // the client went away; its server hears of it from the stream's cancel
    }
  }

  /** Ends the body: closed, or broken off when its worker `failed` or it is not the length stated. */
  end(failed: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    const broken = failed || (this.#length !== null && this.#queued !== this.#length);
    try {
      if (broken && this.#abort === undefined) this.#controller.error(new Error("Worker failed while streaming"));
      else {
        if (broken) this.#abort!();
        this.#controller.close();
      }
    } catch {
      // the client cancelled already
    }
  }
}
