/**
 * One-line messages for what stops a server from starting: an address it cannot listen on, a module that cannot be
 * loaded. Each names the cause and the fix, without a stack or terminal colours, the way gunicorn and uvicorn say it.
 *
 * @module
 */

import { codeOf, firstLine } from "../error_text.ts";

/**
 * Why listening on `hostname:port` failed, and what to do about it; `option`: the option that gave the address
 * (`port`, whose hostname is `hostname`'s, or `admin`, which gives both).
 */
export function listenFailure(
  error: unknown,
  hostname: string,
  port: number,
  option: "port" | "admin" = "port",
): string {
  const where = `${hostname}:${port}`;
  const portOption = option === "admin" ? `option "admin" or --admin` : `option "port" or --port`;
  const hostOption = option === "admin" ? `"admin" (or --admin)` : `"hostname" (or --host)`;
  switch (codeOf(error)) {
    case "EADDRINUSE":
    case "AddrInUse":
      return `Cannot listen on ${where}: the address is already in use; stop the other server or choose another port (${portOption})`;
    case "EACCES":
    case "PermissionDenied":
    case "NotCapable":
      return `Cannot listen on ${where}: permission denied; ports below 1024 need privileges, or choose another port (${portOption})`;
    case "EADDRNOTAVAIL":
    case "AddrNotAvailable":
      return `Cannot listen on ${where}: the address is not one of this machine's; check ${hostOption}`;
    default:
      return `Cannot listen on ${where}: ${firstLine(error)}`;
  }
}

/** Why listening on the Unix socket `path` failed (option `unixSocket`), and what to do about it. */
export function unixListenFailure(error: unknown, path: string): string {
  const where = `Cannot listen on unix:${path}`;
  switch (codeOf(error)) {
    case "EADDRINUSE":
      return `${where}: another server listens on it; stop it or choose another path (option "unixSocket" or --bind)`;
    case "ENOTSOCK":
      return `${where}: something other than a socket is at the path; remove it or choose another path (option "unixSocket" or --bind)`;
    case "EACCES":
      return `${where}: permission denied; choose a path in a directory this user may write (option "unixSocket" or --bind)`;
    default:
      return `${where}: ${firstLine(error)}`;
  }
}

/**
 * Why importing `module` (as given on the command line) failed, in at most two lines: the runtime's message, then
 * where in the source, when the runtime said (a syntax error). `hint`, when the runtime has one (see
 * `Runtime.loadHint`), says how to run it instead.
 */
export function loadFailure(error: unknown, module: string, hint: string | null): string {
  if (hint !== null) return `cannot load "${module}": ${hint}`;
  const { message, at } = sourceError(error);
  const esm = /Cannot use import statement outside a module|require is not defined in ES module scope/.test(message)
    ? `; ${module} is loaded as CommonJS: add "type": "module" to its package.json, or name it .mjs (.mts)`
    : "";
  return `cannot load "${module}": ${message}${esm}${at === null ? "" : `\n  at ${at}`}`;
}

/**
 * A load error's message and the place in the source it names, which each runtime gives its own way: Bun on the
 * error (`position`), esbuild (tsx) and Deno in the message's later lines, Node in the stack's first line.
 */
function sourceError(error: unknown): { message: string; at: string | null } {
  const e = error as { message?: unknown; stack?: unknown; position?: unknown; errors?: unknown } | null;
  const first = Array.isArray(e?.errors) && e.errors.length > 0 ? e.errors[0] : e;
  const position = (first as { position?: { file?: unknown; line?: unknown; column?: unknown } } | null)?.position;
  if (typeof position?.file === "string" && typeof position.line === "number") {
    const message = firstLine(String((first as { message?: unknown }).message ?? first));
    return { message, at: `${position.file}:${position.line}:${position.column ?? 0}` };
  }
  const text = typeof e?.message === "string" ? e.message : String(error);
  // esbuild: "Transform failed with 1 error:\n/app.ts:1:10: ERROR: Top-level await is ..."
  const esbuild = /^(\S+:\d+:\d+): ERROR: (.*)$/m.exec(text);
  if (esbuild !== null) return { message: esbuild[2], at: esbuild[1] };
  // Deno: "SyntaxError: Unexpected eof\n  |\n3 | ...\n    at file:///app.ts:3:30"
  const deno = /^\s+at (file:\/\/\S+:\d+:\d+)$/m.exec(text);
  if (deno !== null) return { message: firstLine(error).replace(/^TypeError: (?=SyntaxError)/, ""), at: deno[1] };
  // Node: a SyntaxError's stack opens with "/app.js:3" and the line itself.
  const node = error instanceof SyntaxError && typeof e?.stack === "string" ? /^(\/\S+:\d+)\n/.exec(e.stack) : null;
  return { message: firstLine(error), at: node?.[1] ?? null };
}
