/**
 * The Unix socket a dispatcher listens on instead of a TCP port (`unixSocket`, `--bind unix:PATH`): what is at its
 * path before it listens, as gunicorn and uvicorn treat it. A stale socket (nobody answers) is replaced; a live one
 * belongs to another server and fails the start, as a taken port does; anything else at the path is not touched. A
 * directory every user may write without the sticky bit is refused: another user could replace the socket there
 * with one of their own, or with a link the socket's mode would then be set on.
 *
 * @module
 */

import { lstatSync, statSync, unlinkSync } from "node:fs";
import { socketAnswers } from "../socket_answers.ts";

/** An error with a code, as the runtimes' listen errors have. */
function failure(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Clears the way for listening on `path`; throws (with `code` EADDRINUSE or ENOTSOCK) when it must not. */
export async function clearUnixSocket(path: string): Promise<void> {
  // Not node:path, which mod.ts does not load at import.
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
  const mode = statSync(dir).mode;
  if ((mode & 0o002) !== 0 && (mode & 0o1000) === 0) {
    throw failure(`its directory ${dir} is writable by every user and not sticky; choose a path in another`, "EUNSAFE");
  }
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw failure("something other than a socket is at the path", "ENOTSOCK");
  if (await socketAnswers(path)) throw failure("another server listens on it", "EADDRINUSE");
  unlinkSync(path);
}
