/**
 * Where the dispatcher's log lines go (stderr, or a file) without ever holding its event loop: lines wait in a
 * bounded buffer and are written one write at a time, off the loop. When the reader stalls (an unread pipe, a stuck
 * log shipper, a paused `docker logs`) and the buffer is full, lines are dropped and counted, never waited for; once
 * writing goes again, one warning says how many were lost.
 *
 * @module
 */

import type { LogTarget } from "../runtime.ts";

/** Bytes of lines a log output holds while its reader is behind, before it drops lines. */
export const LOG_BUFFER_BYTES = 1024 * 1024;

/** Lines dropped by every output of this process, for `/metrics`. */
let droppedTotal = 0;
const outputs = new Set<LogOutput>();

/** Resolves once every output has written what it holds, or after `ms`. */
export async function drainLogOutputs(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while ([...outputs].some((o) => !o.idle) && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}

/** Log lines dropped so far by this process's outputs because their readers were behind. */
export function logLinesDropped(): number {
  return droppedTotal;
}

/** One log destination: a bounded buffer in front of a target written asynchronously. */
export class LogOutput {
  readonly #open: () => LogTarget;
  readonly #limit: number;
  readonly #onDropped: (lines: number) => void;
  #target: LogTarget | null = null;
  #queue: string[] = [];
  #queued = 0;
  #writing = false;
  /** Lines dropped since the last warning. */
  #dropped = 0;
  /** A reopening asked for while a write was in flight. */
  #reopening = false;

  /**
   * @param open Opens the target (again, on {@linkcode LogOutput.reopen}).
   * @param onDropped Told, once writing goes again, how many lines were dropped meanwhile.
   * @param limit Bytes held at most.
   */
  constructor(open: () => LogTarget, onDropped: (lines: number) => void, limit: number = LOG_BUFFER_BYTES) {
    this.#open = open;
    this.#onDropped = onDropped;
    this.#limit = limit;
    outputs.add(this);
  }

  /** Queues `text` (`lines` lines, each ending in a newline); drops it when the buffer is full. */
  write(text: string, lines = 1): void {
    // Sizes in UTF-16 units: a line's bytes for the ASCII of log lines, a bound within 3x for the rest.
    if (this.#queued + text.length > this.#limit) {
      this.#dropped += lines;
      droppedTotal += lines;
      return;
    }
    this.#queue.push(text);
    this.#queued += text.length;
    if (!this.#writing) void this.#drain();
  }

  /** Whether nothing waits to be written. */
  get idle(): boolean {
    return !this.#writing && this.#queued === 0;
  }

  /** Closes the target and opens it again at the next write: logrotate moved the file (SIGUSR1). */
  reopen(): void {
    if (this.#writing) {
      this.#reopening = true;
      return;
    }
    this.#target?.close();
    this.#target = null;
  }

  async #drain() {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const parts = this.#queue;
        const size = this.#queued;
        this.#queue = [];
        const data = parts.length === 1 ? parts[0] : parts.join("");
        let written = false;
        try {
          this.#target ??= this.#open();
          await this.#target.write(data);
          written = true;
        } catch {
          // Not writable (a closed pipe, a full disk): the lines are lost, and counted.
          const lines = countLines(data);
          this.#dropped += lines;
          droppedTotal += lines;
        }
        this.#queued -= size;
        if (this.#reopening) {
          this.#reopening = false;
          this.#target?.close();
          this.#target = null;
        }
        // Written again after losses: one line says how many (it goes through this output too).
        if (written && this.#dropped > 0) {
          const dropped = this.#dropped;
          this.#dropped = 0;
          this.#onDropped(dropped);
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++;
  return Math.max(1, n);
}
