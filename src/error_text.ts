/**
 * Errors as one line of text: what start-up failures, logs and the command
 * line print instead of a stack.
 *
 * @module
 */

const ANSI = new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g");

/** The first line of an error's message, without terminal colour codes. */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(ANSI, "").split("\n")[0].trim();
}

/** An error's code (`EADDRINUSE`) or, on Deno, its class name (`AddrInUse`). */
export function codeOf(error: unknown): string {
  const e = error as { code?: unknown; name?: unknown } | null;
  if (typeof e?.code === "string") return e.code;
  return typeof e?.name === "string" ? e.name : "";
}
