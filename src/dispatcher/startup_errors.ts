/**
 * One-line messages for what stops a server from starting: an address it cannot listen on, a module that cannot be
 * loaded. Each names the cause and the fix, without a stack or terminal colours, the way gunicorn and uvicorn say it.
 *
 * @module
 */

import { codeOf, firstLine } from "../error_text.ts";

/** Why listening on `hostname:port` failed, and what to do about it. */
export function listenFailure(error: unknown, hostname: string, port: number): string {
  const where = `${hostname}:${port}`;
  switch (codeOf(error)) {
    case "EADDRINUSE":
    case "AddrInUse":
      return `Cannot listen on ${where}: the address is already in use; stop the other server or choose another port (option "port" or --port)`;
    case "EACCES":
    case "PermissionDenied":
    case "NotCapable":
      return `Cannot listen on ${where}: permission denied; ports below 1024 need privileges, or choose another port`;
    case "EADDRNOTAVAIL":
    case "AddrNotAvailable":
      return `Cannot listen on ${where}: the address is not one of this machine's; check "hostname" (or --host)`;
    default:
      return `Cannot listen on ${where}: ${firstLine(error)}`;
  }
}

/**
 * Why importing `module` (as given on the command line) failed; `hint`, when the runtime has one (see
 * `Runtime.loadHint`), says how to run it instead.
 */
export function loadFailure(error: unknown, module: string, hint: string | null): string {
  return `cannot load "${module}": ${hint ?? firstLine(error)}`;
}
