/**
 * Log lines written together once per event-loop turn: a busy access log
 * would otherwise pay a write per request. Whatever is held is written before
 * the process exits on purpose ({@linkcode flushLogs}).
 *
 * @module
 */

const buffers = new Set<LineBuffer>();

/** Lines held until the end of the current event-loop turn, then written in one go. */
export class LineBuffer {
  #lines: string[] = [];
  #write: (text: string) => void;
  #flush = () => this.flush();

  /** @param write Where the text goes (stderr). */
  constructor(write: (text: string) => void) {
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
    const text = this.#lines.length === 1 ? this.#lines[0] : this.#lines.join("");
    this.#lines = [];
    this.#write(text);
  }
}

/** Writes every buffer's held lines: before `exit()`, which would drop them. */
export function flushLogs(): void {
  for (const buffer of buffers) buffer.flush();
}
