/**
 * Log lines written together once per event-loop turn: a busy access log
 * would otherwise pay a write per request. Whatever is held is written before
 * the process exits on purpose ({@linkcode flushLogs}).
 *
 * @module
 */

import { drainLogOutputs } from "./log_output.ts";

const buffers = new Set<LineBuffer>();

/** Lines held until the end of the current event-loop turn, then written in one go. */
export class LineBuffer {
  #lines: string[] = [];
  #write: (text: string, lines: number) => void;
  #flush = () => this.flush();

  /** @param write Where the text of `lines` lines goes (a {@linkcode LogOutput}). */
  constructor(write: (text: string, lines: number) => void) {
    this.#write = write;
    buffers.add(this);
  }

  /** Holds `line` (with its newline) for the end of this turn. */
  write(line: string): void {
    if (this.#lines.push(line) === 1) setImmediate(this.#flush);
  }

  /** Writes what is held now. */
  flush(): void {
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    this.#lines = [];
    this.#write(lines.length === 1 ? lines[0] : lines.join(""), lines.length);
  }
}

/**
 * Writes every buffer's held lines and waits, up to `ms`, for the outputs to take them: before `exit()`, which would
 * drop them. A reader that stays behind costs the lines, not the exit.
 */
export async function flushLogs(ms = 1000): Promise<void> {
  for (const buffer of buffers) buffer.flush();
  await drainLogOutputs(ms);
}
